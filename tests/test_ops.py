"""keras_norms.ops against the NumPy oracle (tests/reference.py)."""

import keras
import numpy as np
import pytest

from keras_norms import ops as norm_ops

import reference
from helpers import float64_enabled
from helpers import to_numpy
from helpers import value_and_gradients

SHAPES_AND_AXES = [
    ((16, 5), (0,)),
    ((4, 6, 3), (0, 1)),
    ((3, 5, 4, 2), (0, 1, 2)),
    ((3, 5, 4, 2), (0, 2, 3)),
    ((2, 3, 4, 5, 6), (1, 2, 3, 4)),
]


@pytest.mark.parametrize("shape, axes", SHAPES_AND_AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_moments_match_oracle(rng, shape, axes, keepdims):
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    mean, variance = norm_ops.moments(x, axes, keepdims=keepdims)
    ref_mean, ref_variance, _ = reference.moments(x, axes)
    if not keepdims:
        ref_mean = np.squeeze(ref_mean, axes)
        ref_variance = np.squeeze(ref_variance, axes)
    np.testing.assert_allclose(to_numpy(mean), ref_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(variance), ref_variance, rtol=1e-5)


def test_moments_with_mask_match_oracle(rng):
    x = rng.normal(size=(6, 7, 3)).astype("float32")
    mask = rng.random((6, 7, 1)) > 0.4
    x[~np.broadcast_to(mask, x.shape)] = 1e6  # padding must not leak in
    mean, variance, count = norm_ops.moments_and_count(x, (0, 1), mask=mask)
    ref_mean, ref_variance, ref_count = reference.moments(x, (0, 1), mask)
    np.testing.assert_allclose(to_numpy(mean), ref_mean.reshape(-1), rtol=1e-5)
    np.testing.assert_allclose(
        to_numpy(variance), ref_variance.reshape(-1), rtol=1e-5
    )
    np.testing.assert_array_equal(to_numpy(count), ref_count.reshape(-1))


def test_fully_masked_slice_gives_zero_statistics_not_nan(rng):
    x = rng.normal(size=(4, 2)).astype("float32")
    mask = np.array([[True, False]] * 4)
    mean, variance = norm_ops.moments(x, 0, mask=mask)
    assert np.all(np.isfinite(to_numpy(mean)))
    np.testing.assert_array_equal(to_numpy(mean)[1], 0.0)
    np.testing.assert_array_equal(to_numpy(variance)[1], 0.0)


@pytest.mark.parametrize("center", [1e3, 1e4, 1e5])
def test_large_mean_float32_matches_float64(rng, center):
    # Keras core's torch backend returns NaN here (E[x^2] - E[x]^2).
    x = (center + rng.normal(size=(512, 16))).astype("float32")
    outputs, mean, variance, _ = norm_ops.batch_normalization_training(x)
    ref_y, ref_mean, ref_variance, _ = reference.batch_norm_train(x)
    np.testing.assert_allclose(to_numpy(outputs), ref_y, atol=1e-3)
    np.testing.assert_allclose(to_numpy(variance), ref_variance, rtol=1e-3)
    np.testing.assert_allclose(to_numpy(mean), ref_mean, rtol=1e-6)


def test_large_mean_moments_match_float64(rng):
    x = (1e4 + rng.normal(size=(4096,))).astype("float32")
    _, variance = norm_ops.moments(x, 0)
    _, ref_variance, _ = reference.moments(x, 0)
    np.testing.assert_allclose(
        to_numpy(variance), ref_variance.item(), rtol=1e-3
    )


@pytest.mark.parametrize("axis", [-1, 1])
def test_normalize_and_batch_normalization_inference(rng, axis):
    x = rng.normal(size=(4, 3, 5, 6)).astype("float32")
    channels = x.shape[axis]
    mean = rng.normal(size=channels).astype("float32")
    variance = rng.uniform(0.5, 2.0, channels).astype("float32")
    gamma = rng.normal(size=channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    y = norm_ops.batch_normalization(
        x, mean, variance, axis=axis, offset=beta, scale=gamma, epsilon=1e-3
    )
    ref = reference.batch_norm_inference(
        x, mean, variance, axis=axis, gamma=gamma, beta=beta, epsilon=1e-3
    )
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1, (1, 2), (-1, -2, -3)])
def test_layer_normalization(rng, axis):
    x = rng.normal(1.0, 2.0, (3, 4, 5, 6)).astype("float32")
    axes = reference._axes(axis, 4)
    param_shape = tuple(x.shape[a] for a in axes)
    gamma = rng.normal(size=param_shape).astype("float32")
    beta = rng.normal(size=param_shape).astype("float32")
    y = norm_ops.layer_normalization(x, axis, offset=beta, scale=gamma)
    ref = reference.layer_norm(x, axis, gamma, beta)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, groups, axis",
    [
        ((2, 8), 4, -1),
        ((2, 5, 6), 3, -1),
        ((2, 3, 4, 6), 2, -1),
        ((2, 6, 3, 4), 3, 1),
        ((2, 2, 3, 4, 8), 8, -1),
        ((2, 4, 4, 6), -1, -1),
    ],
)
def test_group_normalization(rng, shape, groups, axis):
    x = rng.normal(3.0, 2.0, shape).astype("float32")
    channels = shape[axis]
    gamma = rng.normal(size=channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    y = norm_ops.group_normalization(x, groups, axis, offset=beta, scale=gamma)
    ref = reference.group_norm(
        x, channels if groups == -1 else groups, axis, gamma, beta
    )
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-5, atol=1e-5)


def test_group_normalization_rejects_groups_not_dividing_channels():
    with pytest.raises(ValueError, match=r"channels \(6\).*groups=4"):
        norm_ops.group_normalization(np.ones((2, 6), "float32"), 4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_keep_dtype_and_float32_statistics(rng, dtype):
    x = keras.ops.cast(rng.normal(100.0, 1.0, (64, 4)), dtype)
    outputs, mean, variance, _ = norm_ops.batch_normalization_training(x)
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    assert keras.backend.standardize_dtype(mean.dtype) == "float32"
    assert keras.backend.standardize_dtype(variance.dtype) == "float32"
    x64 = to_numpy(keras.ops.cast(x, "float32")).astype("float64")
    ref, *_ = reference.batch_norm_train(x64)
    y = to_numpy(keras.ops.cast(outputs, "float32"))
    assert np.all(np.isfinite(y))
    # float16 has 11 significant bits, bfloat16 8.
    np.testing.assert_allclose(y, ref, atol=0.02 if dtype == "float16" else 0.1)


def _bn_loss(x, gamma, beta, upstream):
    y, *_ = norm_ops.batch_normalization_training(
        x, axis=-1, offset=beta, scale=gamma, epsilon=1e-3
    )
    return keras.ops.sum(y * upstream)


def test_batch_norm_gradients_match_paper_formulas(rng):
    with float64_enabled():
        x = rng.normal(5.0, 2.0, (12, 3))
        gamma = rng.normal(size=3)
        beta = rng.normal(size=3)
        upstream = keras.ops.convert_to_tensor(
            rng.normal(size=(12, 3)), "float64"
        )
        _, (dx, dgamma, dbeta) = value_and_gradients(
            lambda a, g, b: _bn_loss(a, g, b, upstream), x, gamma, beta
        )
        ref_dx, ref_dgamma, ref_dbeta = reference.batch_norm_backward(
            x, to_numpy(upstream), gamma
        )
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(dbeta, ref_dbeta, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: norm_ops.batch_normalization_training(x, axis=1)[0],
        lambda x: norm_ops.batch_normalization_training(
            x, mask=np.array([[1], [1], [0], [1]], bool)[:, :, None, None]
        )[0],
        lambda x: norm_ops.layer_normalization(x, axis=(1, 2, 3)),
        lambda x: norm_ops.group_normalization(x, 2, axis=1),
        lambda x: norm_ops.moments(x, (0, 2))[1],
    ],
    ids=["batch", "batch_masked", "layer", "group", "variance"],
)
def test_gradients_match_finite_differences(rng, op):
    x = rng.normal(1.0, 1.5, (4, 4, 3, 2))
    weights = rng.normal(size=x.shape)
    with float64_enabled():
        w = keras.ops.convert_to_tensor(weights, "float64")

        def loss(t):
            y = op(t)
            w_part = w if y.shape == w.shape else w[:, :, 0, :][:, :1, :]
            return keras.ops.sum(y * w_part)

        _, (grad,) = value_and_gradients(loss, x)

        def loss_numpy(a):
            return float(
                to_numpy(loss(keras.ops.convert_to_tensor(a, "float64")))
            )

        numeric = reference.numerical_gradient(loss_numpy, x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_reference_bn_backward_agrees_with_finite_differences(rng):
    # Checks the oracle itself, so the analytic test above cannot pass by a
    # shared mistake.
    x = rng.normal(size=(7, 2))
    gamma = rng.normal(size=2)
    upstream = rng.normal(size=(7, 2))

    def loss(a):
        y, *_ = reference.batch_norm_train(a, gamma=gamma)
        return float(np.sum(y * upstream))

    dx, _, _ = reference.batch_norm_backward(x, upstream, gamma)
    np.testing.assert_allclose(
        dx, reference.numerical_gradient(loss, x), rtol=1e-5, atol=1e-7
    )


def test_moving_average_against_the_oracle(rng):
    moving = rng.normal(size=(4, 3)).astype("float32")
    value = rng.normal(size=(4, 3)).astype("float32")
    reached = rng.random((4, 3)) > 0.4
    for momentum in (0.0, 0.9, 1.0):
        updated = to_numpy(
            norm_ops.moving_average(moving, value, 1.0 - momentum, reached)
        )
        expected = np.where(
            reached, reference.moving_average(moving, value, momentum), moving
        )
        np.testing.assert_allclose(updated, expected, rtol=1e-6, atol=1e-7)
    # Without `reached`, every entry moves.
    np.testing.assert_allclose(
        to_numpy(norm_ops.moving_average(moving, value, 0.25)),
        reference.moving_average(moving, value, 0.75),
        rtol=1e-6,
    )


@pytest.mark.parametrize("shape", [(4, 5, 3), (32, 64, 64)])
@pytest.mark.parametrize("parameter_shape", ["features", "one_by_features"])
@pytest.mark.parametrize("fast_paths", [True, False])
def test_per_step_parameters_shared_by_the_steps(
    rng, shape, parameter_shape, fast_paths
):
    # gamma and beta of one value per feature, for every step: (features,)
    # or (1, features) against axis=(1, 2). The larger shape takes the
    # fused kernels where a backend has them (TensorFlow from 2**17 values).
    batch, steps, features = shape
    x = rng.normal(20.0, 2.0, shape).astype("float32")
    gamma = rng.normal(1.0, 0.3, features).astype("float32")
    beta = rng.normal(size=features).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    given = (1, features) if parameter_shape == "one_by_features" else None

    def normalized(x, gamma, beta):
        if given is not None:
            gamma = keras.ops.reshape(gamma, given)
            beta = keras.ops.reshape(beta, given)
        y, *_ = norm_ops.batch_normalization_training(
            x, axis=(1, 2), offset=beta, scale=gamma
        )
        return y

    def loss(*arrays):
        weights = keras.ops.convert_to_tensor(upstream)
        return keras.ops.sum(normalized(*arrays) * weights)

    if fast_paths:
        y = to_numpy(normalized(x, gamma, beta))
        _, (dx, dgamma, dbeta) = value_and_gradients(loss, x, gamma, beta)
    else:
        with norm_ops.reference_only():
            y = to_numpy(normalized(x, gamma, beta))
            _, (dx, dgamma, dbeta) = value_and_gradients(loss, x, gamma, beta)
    x64 = x.astype("float64")
    x_hat, *_ = reference.batch_norm_train(x64, axis=(1, 2))
    flat = (batch, steps * features)
    ref_dx, *_ = reference.batch_norm_backward(
        x64.reshape(flat), upstream.reshape(flat), np.tile(gamma, steps)
    )
    np.testing.assert_allclose(y, x_hat * gamma + beta, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, ref_dx.reshape(shape), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(
        dgamma, np.sum(upstream * x_hat, axis=(0, 1)), rtol=1e-3, atol=1e-2
    )
    np.testing.assert_allclose(
        dbeta, np.sum(upstream, axis=(0, 1)), rtol=1e-4, atol=1e-3
    )


@pytest.mark.parametrize("bad", [(6, 3), (2, 1, 3), (4,)])
def test_per_step_parameters_that_do_not_broadcast_are_rejected(bad):
    x = np.ones((4, 5, 3), "float32")
    with pytest.raises(ValueError, match=r"`scale` must .*scale.shape="):
        norm_ops.batch_normalization_training(
            x, axis=(1, 2), scale=np.ones(bad, "float32")
        )
