"""Config round trips and model.save / load_model for every public layer."""

import keras
import numpy as np
import pytest

from helpers import save_and_load
from helpers import to_numpy
from layer_cases import LAYER_CASES


def _model_with(layer, shape, rng):
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, layer(inputs))
    # Non-default weights, so a load that re-initializes would be caught.
    for weight in model.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_config_round_trip(name):
    factory, _ = LAYER_CASES[name]
    layer = factory()
    config = layer.get_config()
    restored = layer.__class__.from_config(config)
    assert restored.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["module"] is None or "keras_norms" in str(serialized)
    assert serialized["registered_name"].startswith("keras_norms>")
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is type(layer)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_save_and_load_model(name, tmp_path, rng):
    factory, shape = LAYER_CASES[name]
    model = _model_with(factory(), shape, rng)
    x = rng.normal(size=shape).astype("float32")
    loaded = save_and_load(model, tmp_path)
    assert type(loaded.layers[-1]) is type(model.layers[-1])
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)),
        to_numpy(model(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )
    for original, restored in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(original), to_numpy(restored))
