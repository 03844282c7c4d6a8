"""float16 / bfloat16 inputs and the mixed dtype policies."""

import keras
import numpy as np
import pytest

import keras_norms

from helpers import to_numpy
from layer_cases import LAYER_CASES


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_mixed_policy_gives_finite_low_precision_outputs(name, policy, rng):
    factory, shape = LAYER_CASES[name]
    keras.config.set_dtype_policy(policy)
    layer = factory()
    x = rng.normal(50.0, 5.0, shape).astype("float32")
    low = policy.split("_")[1]
    for training in (True, False):
        y = layer(x, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == low
        assert np.all(np.isfinite(to_numpy(keras.ops.cast(y, "float32"))))
    for weight in layer.weights:
        assert weight.dtype == "float32"
    # Same layer computed in float32 (the statistics are float32 anyway).
    keras.config.set_dtype_policy("float32")
    reference_layer = layer.__class__.from_config(
        {**layer.get_config(), "dtype": "float32"}
    )
    reference_layer.build(shape)
    reference_layer.set_weights(layer.get_weights())
    expected = to_numpy(reference_layer(x, training=False))
    got = to_numpy(keras.ops.cast(layer(x, training=False), "float32"))
    tolerance = 0.05 if low == "bfloat16" else 0.01
    np.testing.assert_allclose(
        got, expected, atol=tolerance * 3, rtol=tolerance
    )


# The larger shape reaches TensorFlow's fused kernel (2**17 values).
@pytest.mark.parametrize("shape", [(64, 3), (4096, 32)])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_layer_keeps_float32_statistics(dtype, shape, rng):
    layer = keras_norms.layers.BatchNormalization(
        dtype=f"mixed_{dtype}", momentum=0.0
    )
    x = keras.ops.cast(rng.normal(300.0, 2.0, shape), dtype)
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    assert layer.moving_mean.dtype == "float32"
    x32 = to_numpy(keras.ops.cast(x, "float32")).astype("float64")
    # float16 would round the mean 300 + N(0, 2) to a step of 0.25; the
    # float32 statistics keep it exact to float32 precision.
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), x32.mean(axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), x32.var(axis=0), rtol=1e-4
    )
