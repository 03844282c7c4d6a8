"""The backend fast paths against the keras.ops reference and the oracle.

`keras_norms.ops` dispatches batch, layer and group normalization to the
backend's fused kernels where they compute the same thing
(`keras_norms.native`). Each case here runs once on the default dispatch
and once inside `keras_norms.ops.reference_only()`: outputs, statistics
and gradients (to the input, gamma and beta) must agree with each other
and with the NumPy float64 oracle, also on float32 data whose mean is 1e4
(error <= 1e-4). A spy checks that the fast path really ran where the
backend has one, so the comparison cannot pass by comparing the reference
with itself.
"""

import keras
import numpy as np
import pytest

from keras_norms import ops as norm_ops

import reference
from helpers import BACKEND
from helpers import float64_enabled
from helpers import to_numpy
from helpers import value_and_gradients

BN = "batch_normalization_training"
LN = "layer_normalization"
GN = "group_normalization"
# The closed-form gradient of `standardize`, attached by the backend.
STANDARDIZE = "custom_gradient"

# (op, input shape, arguments); the oracle is chosen by the op. The
# expected fast path of each backend follows; None: the reference runs.
# (TensorFlow's fused batch norm takes inputs of 2**17 values or more, on
# CPU with the channels last only: tests/test_devices.py covers NCHW.)
CASES = [
    (BN, (64, 8), {"axis": -1}),
    (BN, (6, 5, 7), {"axis": -1}),
    (BN, (4, 6, 6, 8), {"axis": -1}),
    (BN, (4, 8, 6, 6), {"axis": 1}),
    (BN, (3, 4, 5, 5, 6), {"axis": -1}),
    (BN, (4, 5, 6, 3), {"axis": 2}),
    (BN, (6, 5, 3), {"axis": [1, 2]}),
    (BN, (6, 5, 2, 3), {"axis": [1, 3]}),
    (LN, (4, 7, 16), {"axis": -1}),
    (LN, (4, 5, 6, 3), {"axis": [2, 3]}),
    (LN, (4, 5, 6), {"axis": 1}),
    (GN, (4, 6, 6, 8), {"groups": 4, "axis": -1}),
    (GN, (4, 8, 6, 6), {"groups": 2, "axis": 1}),
    (GN, (5, 12), {"groups": 3, "axis": -1}),
    (BN, (16, 32, 32, 16), {"axis": -1}),
    (BN, (16, 16, 32, 32), {"axis": 1}),
    (BN, (64, 128, 16), {"axis": [1, 2]}),
    # Per-step statistics of time-major data: statistics over axis 1.
    (BN, (5, 6, 3), {"axis": [0, 2]}),
    (BN, (4, 6, 3, 2), {"axis": [0, 2, 3]}),
]
EXPECTED_FAST = {
    "torch": [BN] * 7 + [None, LN, LN, None, GN, GN, GN] + [BN] * 5,
    "tensorflow": [STANDARDIZE] * 14
    + [BN, STANDARDIZE, BN]
    + [STANDARDIZE] * 2,
    "jax": [STANDARDIZE] * 19,
}
# In float16 / bfloat16 (statistics in float32 on every path), the same.
EXPECTED_FAST_HALF = EXPECTED_FAST


def parameter_shape(op, shape, arguments):
    axes = arguments["axis"]
    axes = axes if isinstance(axes, list) else [axes]
    return tuple(shape[a] for a in axes)


def oracle(op, x, gamma, beta, arguments):
    if op == "batch_normalization_training":
        return reference.batch_norm_train(x, arguments["axis"], gamma, beta)[:3]
    if op == "layer_normalization":
        return (reference.layer_norm(x, arguments["axis"], gamma, beta),)
    return (
        reference.group_norm(
            x, arguments["groups"], arguments["axis"], gamma, beta
        ),
    )


def run(op, x, gamma, beta, arguments):
    """The op's outputs (and, for batch norm, its statistics)."""
    function = getattr(norm_ops, op)
    result = function(x, offset=beta, scale=gamma, **arguments)
    if op == "batch_normalization_training":
        return result[:3]
    return (result,)


def assert_ran(calls, expected):
    """The fast path ``expected`` ran (None: no fast path ran)."""
    assert calls == ([] if expected is None else [expected])


def inputs(rng, op, shape, arguments, center, dtype="float32"):
    x = (center + rng.normal(size=shape)).astype(dtype)
    parameter = parameter_shape(op, shape, arguments)
    gamma = rng.uniform(0.5, 1.5, parameter).astype(dtype)
    beta = rng.normal(size=parameter).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("center", [0.0, 1e4])
@pytest.mark.parametrize("index", range(len(CASES)))
def test_fast_path_matches_reference_and_oracle(rng, fast_calls, index, center):
    op, shape, arguments = CASES[index]
    x, gamma, beta = inputs(rng, op, shape, arguments, center)
    fast = run(op, x, gamma, beta, arguments)
    assert_ran(fast_calls, EXPECTED_FAST[BACKEND][index])
    with norm_ops.reference_only():
        slow = run(op, x, gamma, beta, arguments)
    expected = oracle(op, x, gamma, beta, arguments)
    # Outputs within 1e-4; statistics (at 1e4, float32 holds 1e-3 steps)
    # within a few float32 roundings.
    for got, ref, want in zip(fast, slow, expected, strict=True):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(
            to_numpy(got), to_numpy(ref), rtol=1e-6, atol=1e-4
        )


@pytest.mark.parametrize("index", range(len(CASES)))
def test_fast_path_gradients_match_reference(rng, fast_calls, index):
    op, shape, arguments = CASES[index]
    x, gamma, beta = inputs(rng, op, shape, arguments, 3.0)
    upstream = rng.normal(size=shape).astype("float32")

    def loss(x, gamma, beta):
        (y, *_) = run(op, x, gamma, beta, arguments)
        return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

    _, fast = value_and_gradients(loss, x, gamma, beta)
    assert_ran(fast_calls, EXPECTED_FAST[BACKEND][index])
    with norm_ops.reference_only():
        _, slow = value_and_gradients(loss, x, gamma, beta)
    for got, want in zip(fast, slow, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_fast_batch_norm_gradients_match_analytic_formulas(rng):
    # DESIGN.md section 4, in float64 where the backend's kernel has it.
    dtype = "float32" if BACKEND == "tensorflow" else "float64"
    with float64_enabled():
        x = rng.normal(2.0, 3.0, (32, 5)).astype(dtype)
        gamma = rng.uniform(0.5, 1.5, 5).astype(dtype)
        dy = rng.normal(size=(32, 5)).astype(dtype)

        def loss(x, gamma):
            y, *_ = norm_ops.batch_normalization_training(x, scale=gamma)
            return keras.ops.sum(y * keras.ops.convert_to_tensor(dy))

        _, (dx, dgamma) = value_and_gradients(loss, x, gamma)
    ref_dx, ref_dgamma, _ = reference.batch_norm_backward(x, dy, gamma)
    tolerance = 1e-4 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(dx, ref_dx, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(
        dgamma, ref_dgamma, rtol=tolerance, atol=tolerance
    )


def test_float64_stays_float64_on_fast_paths(rng):
    with float64_enabled():
        x = rng.normal(1e8, 1.0, (16, 4)).astype("float64")
        y, mean, variance, _ = norm_ops.batch_normalization_training(x)
        ln = norm_ops.layer_normalization(x)
        gn = norm_ops.group_normalization(x, 2)
        for value in (y, mean, variance, ln, gn):
            assert keras.backend.standardize_dtype(value.dtype) == "float64"
        ref_y, ref_mean, _, _ = reference.batch_norm_train(x)
        np.testing.assert_allclose(to_numpy(y), ref_y, atol=1e-6)
        np.testing.assert_allclose(to_numpy(mean), ref_mean, rtol=1e-15)
        np.testing.assert_allclose(
            to_numpy(ln), reference.layer_norm(x), atol=1e-6
        )


# One unit in the last place at 1, for the half-precision dtypes.
HALF_EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("index", range(len(CASES)))
def test_half_precision_fast_path_matches_reference(
    rng, fast_calls, index, dtype
):
    # What a layer receives under a mixed-precision policy: a half input,
    # float32 weights. The statistics are computed in float32 on every
    # path; only the final rounding to the half dtype may differ (one
    # unit in the last place of outputs up to ~8 in size).
    op, shape, arguments = CASES[index]
    x, gamma, beta = inputs(rng, op, shape, arguments, 3.0)
    upstream = rng.normal(size=shape).astype("float32")
    tolerance = 8 * HALF_EPSILON[dtype]

    def loss(x, gamma, beta):
        half = keras.ops.cast(x, dtype)
        (y, *_) = run(op, half, gamma, beta, arguments)
        assert keras.backend.standardize_dtype(y.dtype) == dtype
        up = keras.ops.cast(keras.ops.convert_to_tensor(upstream), dtype)
        return keras.ops.cast(keras.ops.sum(y * up), "float32")

    def results(x):
        outputs = run(op, keras.ops.cast(x, dtype), gamma, beta, arguments)
        return [to_numpy(keras.ops.cast(v, "float32")) for v in outputs]

    fast = results(x)
    fast_calls.clear()
    _, fast_gradients = value_and_gradients(loss, x, gamma, beta)
    assert_ran(fast_calls, EXPECTED_FAST_HALF[BACKEND][index])
    with norm_ops.reference_only():
        slow = results(x)
        _, slow_gradients = value_and_gradients(loss, x, gamma, beta)
    rounded = to_numpy(keras.ops.cast(keras.ops.cast(x, dtype), "float32"))
    expected = oracle(op, rounded.astype("float64"), gamma, beta, arguments)
    np.testing.assert_allclose(fast[0], slow[0], atol=tolerance)
    np.testing.assert_allclose(fast[0], expected[0], atol=tolerance)
    # Batch statistics: float32 sums from the same rounded input.
    for got, ref, want in zip(fast[1:], slow[1:], expected[1:], strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for got, want in zip(fast_gradients, slow_gradients, strict=True):
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got, want, atol=tolerance * scale)


def test_single_value_per_channel_falls_back(rng, fast_calls):
    # torch's kernel refuses one value per channel; ours gives 0, not NaN.
    x = rng.normal(size=(1, 3)).astype("float32")
    y, mean, variance, _ = norm_ops.batch_normalization_training(x)
    np.testing.assert_array_equal(to_numpy(y), np.zeros((1, 3)))
    np.testing.assert_array_equal(to_numpy(variance), np.zeros(3))


def test_layer_uses_the_same_dispatch(rng, fast_calls):
    import keras_norms

    x = (1e4 + rng.normal(size=(8, 4, 4, 6))).astype("float32")
    layer = keras_norms.layers.BatchNormalization(momentum=0.5)
    y = layer(x, training=True)
    assert bool(fast_calls)
    expected, mean, variance, _ = reference.batch_norm_train(x)
    np.testing.assert_allclose(to_numpy(y), expected, atol=1e-4)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), 0.5 * mean, rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance),
        reference.moving_average(1.0, variance, 0.5),
        rtol=1e-4,
    )


@pytest.mark.parametrize(
    "shape, axes, parameter_shape",
    [
        ((6, 4, 5), (0, 1), (1, 1, 5)),  # batch norm: per-channel scale
        ((6, 4, 5), (2,), (5,)),  # layer norm: scale varies when reduced
        ((6, 4, 5), (1,), (4, 1)),  # per-step scale over the time axis
    ],
)
def test_standardize_gradients_through_statistics(
    rng, shape, axes, parameter_shape
):
    # The loss uses the returned mean and variance too: their gradients
    # must reach x on every path (the JAX closed form adds them).
    x = rng.normal(2.0, 1.5, shape).astype("float32")
    gamma = rng.uniform(0.5, 1.5, parameter_shape).astype("float32")
    beta = rng.normal(size=parameter_shape).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")

    def loss(x, gamma, beta):
        y, mean, variance, _ = norm_ops.standardize(
            x, axes, offset=beta, scale=gamma
        )
        up = keras.ops.convert_to_tensor(upstream)
        return (
            keras.ops.sum(y * up)
            + 3.0 * keras.ops.sum(mean)
            + 2.0 * keras.ops.sum(variance)
        )

    value, fast = value_and_gradients(loss, x, gamma, beta)
    with norm_ops.reference_only():
        ref_value, slow = value_and_gradients(loss, x, gamma, beta)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(fast, slow, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    # And against finite differences of the float64 oracle in x.
    def oracle_loss(x64):
        mean, variance, _ = reference.moments(x64, axes)
        y = (x64 - mean) / np.sqrt(variance + 1e-3) * gamma + beta
        return np.sum(y * upstream) + 3 * mean.sum() + 2 * variance.sum()

    numerical = reference.numerical_gradient(oracle_loss, x.astype("float64"))
    np.testing.assert_allclose(fast[0], numerical, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "weights",
    [(1.0, 0.0, 0.0), (0.0, 3.0, 0.0), (0.0, 0.0, 2.0), (0.0, 3.0, 2.0)],
    ids=["outputs", "mean", "variance", "statistics"],
)
@pytest.mark.parametrize(
    "axes, parameter_shape", [((0, 1), (1, 1, 5)), ((2,), (5,))]
)
def test_standardize_gradients_of_each_result_when_traced(
    rng, weights, axes, parameter_shape
):
    # Traced, TensorFlow hands zeros constants to the results no gradient
    # reaches, and the closed form skips their terms: whichever results
    # the loss uses, the gradient must stay whole.
    shape = (6, 4, 5)
    x = rng.normal(2.0, 1.5, shape).astype("float32")
    gamma = rng.uniform(0.5, 1.5, parameter_shape).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    w_outputs, w_mean, w_variance = weights

    def loss(x, gamma):
        y, mean, variance, _ = norm_ops.standardize(x, axes, scale=gamma)
        up = keras.ops.convert_to_tensor(upstream)
        total = keras.ops.sum(mean) * w_mean
        total = total + keras.ops.sum(variance) * w_variance
        if w_outputs:
            total = total + keras.ops.sum(y * up) * w_outputs
        return total

    _, (got, _) = value_and_gradients(loss, x, gamma, compiled=True)

    def oracle_loss(x64):
        mean, variance, _ = reference.moments(x64, axes)
        y = (x64 - mean) / np.sqrt(variance + 1e-3) * gamma
        return (
            w_outputs * np.sum(y * upstream)
            + w_mean * mean.sum()
            + w_variance * variance.sum()
        )

    numerical = reference.numerical_gradient(oracle_loss, x.astype("float64"))
    np.testing.assert_allclose(got, numerical, rtol=1e-3, atol=1e-3)


def test_per_step_normalization_trains_on_an_unknown_time_axis(rng):
    # Traced with a time axis of None (TensorFlow retraces a model fitted
    # on several lengths with a relaxed shape): the per-step parameters
    # and the fast paths must take their sizes at run time.
    import keras_norms

    inputs = keras.Input((None, 4))
    layer = keras_norms.layers.TimestepBatchNormalization(
        max_timesteps=8, momentum=0.5
    )
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", "mse")
    for steps in (3, 5, 4):
        x = rng.normal(2.0, 1.0, (6, steps, 4)).astype("float32")
        model.fit(x, np.zeros_like(x), batch_size=6, epochs=1, verbose=0)
    moving_mean = to_numpy(layer.moving_mean)
    # Steps 0-3 saw three batches, step 4 one, steps 5-7 none.
    assert np.all(np.abs(moving_mean[:5]) > 0.5)
    np.testing.assert_array_equal(moving_mean[5:], 0.0)


# Sums over leading axes into 4096 outputs or more: JAX sums them as a
# matrix product on CPU (XLA's YNNPACK reduction is ~50x slower there from
# 32768 outputs, and slower inside per-step batch norm from 4096). The
# others keep the reduction (fewer outputs, a run with the last axis, a
# middle run).
SUM_CASES = [
    ((16, 32768), (0,), True),
    ((4, 2, 8, 4096), (0, 1), True),
    ((16, 4096), (0,), True),
    ((16, 2048), (0,), False),
    ((4, 32768), (1,), False),
    ((2, 8, 32768), (1,), False),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axes, as_product", SUM_CASES)
def test_sum_over_leading_axes_matches_oracle(
    rng, fast_calls, shape, axes, as_product, dtype
):
    from keras_norms.ops._moments import sum_adjacent_axes

    with float64_enabled():
        x = (1e4 + rng.normal(size=shape)).astype(dtype)
        total = sum_adjacent_axes(keras.ops.convert_to_tensor(x, dtype), axes)
        assert keras.backend.standardize_dtype(total.dtype) == dtype
    expected = np.sum(x.astype("float64"), axis=axes, keepdims=True)
    assert to_numpy(total).shape == expected.shape
    # float32: each sum rounds like the reduction's (n terms of 1e4).
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(to_numpy(total), expected, rtol=rtol)
    fast = as_product and BACKEND == "jax"
    assert fast_calls == (["sum_adjacent_axes"] if fast else [])


def test_wide_per_step_batch_norm_matches_reference(rng, fast_calls):
    # (batch, time, features) with time x features = 32768: every
    # statistic and closed-form gradient sum runs as a product on JAX.
    import keras_norms

    x = rng.normal(3.0, 2.0, (8, 64, 512)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = keras_norms.layers.TimestepBatchNormalization()
    layer.build(x.shape)

    def loss(x):
        y = layer(x, training=True)
        return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

    _, fast = value_and_gradients(loss, x)
    assert ("sum_adjacent_axes" in fast_calls) == (BACKEND == "jax")
    with norm_ops.reference_only():
        _, slow = value_and_gradients(loss, x)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-4, atol=1e-4)
    flat = x.reshape(8, -1).astype("float64")
    expected, *_ = reference.batch_norm_train(flat, axis=-1)
    np.testing.assert_allclose(
        to_numpy(layer(x, training=True)).reshape(8, -1), expected, atol=1e-4
    )
