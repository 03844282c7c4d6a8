"""Moving statistics (every non-trainable variable) change only in training.

predict, evaluate, a call with training=False and fit of a frozen layer
leave them bit-for-bit unchanged; fit of a trainable layer moves them (so
the comparison can fail).
"""

import keras
import numpy as np
import pytest

import keras_norms

from helpers import to_numpy

L = keras_norms.layers

STATEFUL = {
    "batch_norm": (lambda: L.BatchNormalization(momentum=0.5), (8, 4, 3)),
    "batch_renorm": (
        lambda: L.BatchNormalization(renorm=True, momentum=0.5),
        (8, 4, 3),
    ),
    "batch_norm_synchronized": (
        lambda: L.BatchNormalization(synchronized=True, momentum=0.5),
        (8, 4, 3),
    ),
    "timestep_batch_norm": (
        lambda: L.TimestepBatchNormalization(momentum=0.5),
        (8, 5, 3),
    ),
    "recurrent_batch_norm": (
        lambda: L.RecurrentBatchNormalization(momentum=0.5),
        (8, 5, 3),
    ),
    "bn_lstm": (
        lambda: L.BNLSTM(4, return_sequences=True, momentum=0.5),
        (8, 5, 3),
    ),
    "weight_norm_data_init": (
        lambda: L.WeightNormalization(keras.layers.Dense(3), data_init=True),
        (8, 6),
    ),
    "spectral_norm": (
        lambda: L.SpectralNormalization(keras.layers.Dense(3)),
        (8, 6),
    ),
}


def _model(name, rng):
    factory, shape = STATEFUL[name]
    inputs = keras.Input(shape[1:])
    layer = factory()
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = (rng.normal(size=shape) * 2.0 + 1.0).astype("float32")
    y = rng.normal(size=to_numpy(model(x)).shape).astype("float32")
    return model, layer, x, y


def _state(layer, variables=None):
    # Taken while the layer is trainable: frozen, all its weights are
    # non-trainable, but only the statistics must stay unchanged.
    variables = variables or layer.non_trainable_weights
    assert variables, "a stateful layer without non-trainable variables"
    return [to_numpy(v).copy() for v in variables]


def _assert_same(before, after):
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(new, old)


def _fit(model, x, y):
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_inference_leaves_state_unchanged(name, rng):
    model, layer, x, y = _model(name, rng)
    _fit(model, x, y)  # non-default statistics (and data init done)
    before = _state(layer)
    model.predict(x, batch_size=4, verbose=0)
    _assert_same(before, _state(layer))
    model.evaluate(x, y, batch_size=4, verbose=0)
    _assert_same(before, _state(layer))
    model(x, training=False)
    _assert_same(before, _state(layer))


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_frozen_fit_leaves_state_unchanged(name, rng):
    model, layer, x, y = _model(name, rng)
    _fit(model, x, y)
    statistics = list(layer.non_trainable_weights)
    before = _state(layer, statistics)
    layer.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    _fit(model, x, y)
    _assert_same(before, _state(layer, statistics))


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_fit_changes_state(name, rng):
    model, layer, x, y = _model(name, rng)
    before = _state(layer)
    _fit(model, x, y)
    after = _state(layer)
    assert any(
        not np.array_equal(old, new)
        for old, new in zip(before, after, strict=True)
    )
