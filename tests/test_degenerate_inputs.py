"""Degenerate inputs: batch 1, constant data, tiny and huge magnitudes per
dtype, fully masked samples. Outputs and statistics stay finite wherever
the math in that dtype is finite, and match the float64 oracle."""

import keras
import numpy as np
import pytest

import keras_norms

import reference
from helpers import float64_enabled
from helpers import to_numpy

OPS = keras_norms.ops
DTYPES = ["float16", "bfloat16", "float32", "float64"]
# Largest and smallest magnitudes whose squares (the variance) the
# statistics dtype still holds: float32 statistics for the small dtypes.
MAGNITUDES = {
    "float16": [1e-3, 1e3],
    "bfloat16": [1e-15, 1e15],
    "float32": [1e-15, 1e15],
    "float64": [1e-100, 1e100],
}


def _as(values, dtype):
    if dtype == "float64":
        return keras.ops.convert_to_tensor(values, "float64")
    return keras.ops.cast(np.asarray(values, "float32"), dtype)


def _exact(tensor):
    return to_numpy(keras.ops.cast(tensor, "float64"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_of_one_and_constant_inputs(dtype, rng):
    with float64_enabled():
        beta = rng.normal(size=3)
        for values in [rng.normal(size=(1, 3)), np.full((5, 3), 7.0)]:
            x = _as(values, dtype)
            outputs, mean, variance, _ = OPS.batch_normalization_training(
                x, offset=_as(beta, dtype)
            )
            # Zero variance: every value is its mean, the output is beta.
            want, want_mean, _, _ = reference.batch_norm_train(
                _exact(x), beta=_exact(_as(beta, dtype))
            )
            np.testing.assert_array_equal(to_numpy(variance), 0.0)
            np.testing.assert_allclose(_exact(mean), want_mean, rtol=1e-6)
            np.testing.assert_allclose(_exact(outputs), want, atol=1e-6)
            layer_out = OPS.layer_normalization(x)
            want = reference.layer_norm(_exact(x))
            np.testing.assert_allclose(_exact(layer_out), want, atol=1e-2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiny_and_huge_magnitudes(dtype, rng):
    with float64_enabled():
        for magnitude in MAGNITUDES[dtype]:
            x = _as(rng.normal(size=(6, 4)) * magnitude, dtype)
            exact = _exact(x)
            mean, variance = OPS.moments(x, 0)
            want_mean, want_variance, _ = reference.moments(exact, 0)
            assert np.all(np.isfinite(to_numpy(variance)))
            np.testing.assert_allclose(
                _exact(mean), want_mean[0], rtol=1e-4, atol=0
            )
            np.testing.assert_allclose(
                _exact(variance), want_variance[0], rtol=1e-4, atol=0
            )
            # Epsilon scaled to the data: normalized values are O(1).
            epsilon = float(want_variance.max()) * 1e-3
            outputs = OPS.layer_normalization(x, epsilon=epsilon)
            want = reference.layer_norm(exact, epsilon=epsilon)
            tolerance = {"float16": 1e-2, "bfloat16": 8e-2}.get(dtype, 1e-4)
            np.testing.assert_allclose(_exact(outputs), want, atol=tolerance)


def test_fully_masked_sample_keeps_statistics_finite(rng):
    x = rng.normal(size=(3, 4, 2)).astype("float32")
    mask = np.ones((3, 4, 1), bool)
    mask[1] = False  # sample 1 fully masked
    mask[:, 2] = False  # step 2 masked in every sample: no values at all
    outputs, mean, variance, count = OPS.batch_normalization_training(
        x, axis=-1, mask=mask
    )
    want, want_mean, want_variance, want_count = reference.batch_norm_train(
        x, mask=mask
    )
    for value in (outputs, mean, variance):
        assert np.all(np.isfinite(to_numpy(value)))
    np.testing.assert_allclose(to_numpy(mean), want_mean, atol=1e-6)
    np.testing.assert_allclose(to_numpy(variance), want_variance, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(count), want_count)
    empty_mean, empty_variance, empty_count = OPS.moments_and_count(
        x, (0, 1), mask=np.zeros((3, 4, 1), bool)
    )
    np.testing.assert_array_equal(to_numpy(empty_count), 0.0)
    np.testing.assert_array_equal(to_numpy(empty_mean), 0.0)
    np.testing.assert_array_equal(to_numpy(empty_variance), 0.0)


def test_group_normalization_one_value_per_group():
    # torch's group_norm refuses this ("Expected more than 1 value per
    # channel"): the fast path must leave it to the reference.
    x = np.array([[[0.5]]], "float32")  # batch 1, one channel, one position
    outputs = OPS.group_normalization(x, 1, axis=1)
    np.testing.assert_allclose(
        to_numpy(outputs), reference.group_norm(x, 1, axis=1), atol=1e-6
    )
