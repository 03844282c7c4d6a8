"""Property-based checks of keras_norms.ops against the float64 oracle.

Hypothesis draws shapes (ranks 2-5), axes (positive and negative), dtypes,
groups, LRN sizes and masks (empty ones too); a few dozen derandomized
examples per property keep CI reproducible and fast.
"""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_norms

import reference
from helpers import float64_enabled
from helpers import to_numpy
from helpers import value_and_gradients

OPS = keras_norms.ops
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True)
DTYPES = ["float16", "bfloat16", "float32", "float64"]
# Absolute tolerance on O(1) outputs: a few units of the dtype's rounding.
TOLERANCE = {
    "float16": 1e-2,
    "bfloat16": 8e-2,
    "float32": 1e-4,
    "float64": 1e-9,
}


def _shape(min_rank=2, max_rank=5):
    return st.lists(
        st.integers(1, 4), min_size=min_rank, max_size=max_rank
    ).map(tuple)


def _tensor(data, shape, dtype, scale=1.0):
    """A backend tensor of ``dtype`` and its exact values in float64."""
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    values = np.random.default_rng(seed).normal(size=shape) * scale
    tensor = keras.ops.cast(values.astype("float32"), dtype)
    if dtype == "float64":
        tensor = keras.ops.convert_to_tensor(values, "float64")
    return tensor, to_numpy(keras.ops.cast(tensor, "float64"))


def _axis(data, ndim):
    axis = data.draw(st.integers(0, ndim - 1), label="axis")
    negative = data.draw(st.booleans(), label="negative axis")
    return axis - ndim if negative else axis


def _close(actual, expected, dtype, scale=1.0):
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(actual, "float64")),
        expected,
        rtol=TOLERANCE[dtype],
        atol=TOLERANCE[dtype] * scale,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(data=st.data(), shape=_shape())
def test_moments_and_count_with_masks(dtype, data, shape):
    with float64_enabled():
        x, exact = _tensor(data, shape, dtype)
        ndim = len(shape)
        axes = _distinct_axes(data, ndim)
        masked = data.draw(st.booleans(), label="masked")
        mask = None
        if masked:
            # Often empty along the reduced axes: p(true) is small.
            seed = data.draw(st.integers(0, 2**31 - 1))
            mask = np.random.default_rng(seed).random(shape) < 0.3
        mean, variance, count = OPS.moments_and_count(
            x, axes, mask=mask, keepdims=True
        )
        want_mean, want_variance, want_count = reference.moments(
            exact, axes, mask
        )
        # Statistics are computed in at least float32.
        stat = "float64" if dtype == "float64" else "float32"
        _close(mean, want_mean, stat)
        _close(variance, want_variance, stat)
        np.testing.assert_array_equal(
            np.broadcast_to(to_numpy(count), want_count.shape), want_count
        )
        unbiased = OPS.unbiased_variance(variance, count)
        want_count = np.broadcast_to(want_count, want_variance.shape)
        want_unbiased = np.where(
            want_count > 1,
            want_variance * want_count / np.maximum(want_count - 1, 1),
            want_variance,
        )
        _close(unbiased, want_unbiased, stat)


def _axis_strategy(ndim):
    return st.integers(-ndim, ndim - 1)


def _distinct_axes(data, ndim):
    """Distinct axes, each drawn positive or negative."""
    drawn = data.draw(st.lists(_axis_strategy(ndim), min_size=1), label="axes")
    return list({a % ndim: a for a in drawn}.values())


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(data=st.data(), shape=_shape())
def test_batch_normalization_training_and_inference(dtype, data, shape):
    with float64_enabled():
        x, exact = _tensor(data, shape, dtype)
        axis = _axis(data, len(shape))
        channels = shape[axis]
        rng = np.random.default_rng(channels)
        gamma = rng.uniform(0.5, 1.5, channels)
        beta = rng.normal(size=channels)
        cast = lambda v: keras.ops.cast(v, dtype)  # noqa: E731
        outputs, mean, variance, _ = OPS.batch_normalization_training(
            x, axis=axis, offset=cast(beta), scale=cast(gamma)
        )
        gamma = to_numpy(keras.ops.cast(cast(gamma), "float64"))
        beta = to_numpy(keras.ops.cast(cast(beta), "float64"))
        want, want_mean, want_variance, _ = reference.batch_norm_train(
            exact, axis, gamma, beta
        )
        # Normalized values reach sqrt(count) in magnitude.
        _close(outputs, want, dtype, scale=4.0)
        stat = "float64" if dtype == "float64" else "float32"
        _close(mean, want_mean, stat)
        _close(variance, want_variance, stat)
        inferred = OPS.batch_normalization(
            x,
            cast(want_mean),
            cast(want_variance + 0.5),
            axis=axis,
            offset=cast(beta),
            scale=cast(gamma),
        )
        expected = reference.batch_norm_inference(
            exact,
            to_numpy(keras.ops.cast(cast(want_mean), "float64")),
            to_numpy(keras.ops.cast(cast(want_variance + 0.5), "float64")),
            axis,
            gamma,
            beta,
        )
        _close(inferred, expected, dtype, scale=4.0)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(data=st.data(), shape=_shape())
def test_layer_normalization(dtype, data, shape):
    with float64_enabled():
        x, exact = _tensor(data, shape, dtype)
        ndim = len(shape)
        axes = sorted(
            {
                a % ndim
                for a in data.draw(st.lists(_axis_strategy(ndim), min_size=1))
            }
            - {0}
        ) or [ndim - 1]
        outputs = OPS.layer_normalization(x, axis=axes)
        _close(outputs, reference.layer_norm(exact, axes), dtype, scale=4.0)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(
    data=st.data(),
    shape=_shape(3, 5),
    groups=st.sampled_from([1, 2, 3, -1]),
)
def test_group_normalization(dtype, data, shape, groups):
    with float64_enabled():
        axis = data.draw(st.sampled_from([1, -1]), label="layout")
        shape = list(shape)
        per_group = data.draw(st.integers(1, 2), label="channels per group")
        shape[axis] = (abs(groups) if groups > 0 else 3) * per_group
        x, exact = _tensor(data, tuple(shape), dtype)
        outputs = OPS.group_normalization(x, groups, axis=axis)
        want_groups = shape[axis] if groups == -1 else groups
        expected = reference.group_norm(exact, want_groups, axis=axis)
        _close(outputs, expected, dtype, scale=4.0)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(
    data=st.data(),
    size=st.integers(1, 6),
    mode=st.sampled_from(["across_channels", "within_channel"]),
)
def test_local_response_norm(dtype, data, size, mode):
    with float64_enabled():
        ndim = data.draw(
            st.integers(3, 4) if mode == "within_channel" else st.integers(2, 4)
        )
        shape = tuple(data.draw(st.integers(1, 5)) for _ in range(ndim))
        axis = data.draw(st.sampled_from([1, -1]), label="layout")
        if mode == "within_channel" and size % 2 == 0:
            size += 1
        x, exact = _tensor(data, shape, dtype, scale=2.0)
        alpha, beta, k = 0.5, 0.75, 2.0
        outputs = OPS.local_response_norm(
            x, size=size, alpha=alpha, beta=beta, k=k, mode=mode, axis=axis
        )
        oracle = (
            reference.lrn_across_channels
            if mode == "across_channels"
            else reference.lrn_within_channel
        )
        expected = oracle(exact, size, alpha, beta, k, axis=axis)
        _close(outputs, expected, dtype, scale=4.0)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(data=st.data(), shape=_shape())
def test_prelu(dtype, data, shape):
    with float64_enabled():
        x, exact = _tensor(data, shape, dtype)
        slope = keras.ops.cast(
            np.linspace(-0.5, 0.5, shape[-1]).astype("float32"), dtype
        )
        alpha = to_numpy(keras.ops.cast(slope, "float64"))
        _close(OPS.prelu(x, slope), reference.prelu(exact, alpha), dtype)


@PROPERTY
@given(m=st.integers(2, 6), channels=st.integers(1, 4), seed=st.integers(0, 99))
def test_batch_normalization_gradients(m, channels, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, channels))
    gamma = rng.uniform(0.5, 1.5, channels)
    beta = rng.normal(size=channels)
    dy = rng.normal(size=(m, channels))

    def loss(x, gamma, beta):
        outputs, _, _, _ = OPS.batch_normalization_training(
            x, offset=beta, scale=gamma
        )
        return keras.ops.sum(outputs * keras.ops.convert_to_tensor(dy))

    with float64_enabled():
        _, grads = value_and_gradients(loss, x, gamma, beta)
    for got, want in zip(
        grads, reference.batch_norm_backward(x, dy, gamma), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
