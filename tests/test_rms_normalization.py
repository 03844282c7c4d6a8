"""keras_norms.ops.rms_normalization and layers.RMSNormalization against
the float64 NumPy oracle (tests/reference_rms.py), Keras's own layer and
finite differences."""

import keras
import numpy as np
import pytest

from keras_norms import ops as norm_ops
from keras_norms.layers import LayerNormalization
from keras_norms.layers import RMSNormalization

import reference
import reference_rms
from helpers import BACKEND
from helpers import float64_enabled
from helpers import to_numpy
from helpers import value_and_gradients
from test_fast_paths import assert_ran

RMS = "rms_normalization"

# (input shape, axis); the last column: torch's fused kernel runs (the
# normalized axes are the trailing ones).
CASES = [
    ((4, 7), -1, True),
    ((3, 5, 16), -1, True),
    ((3, 4, 5), [1, 2], True),
    ((3, 4, 5), [-1, -2], True),  # unsorted: the same as [1, 2]
    ((2, 3, 4, 5), [2, 3], True),
    ((3, 4, 5), 1, False),
    ((2, 3, 4, 5), [1, 3], False),
    ((2, 6, 3, 3), 1, False),  # channels first
]
IDS = [f"{shape}-axis={axis}" for shape, axis, _ in CASES]


def scale_shape(shape, axis):
    axes = sorted(a % len(shape) for a in np.atleast_1d(axis))
    return tuple(shape[a] for a in axes)


def keras_dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


# -- the op ------------------------------------------------------------------


@pytest.mark.parametrize("with_scale", [True, False])
@pytest.mark.parametrize("shape, axis, fused", CASES, ids=IDS)
def test_op_matches_oracle(rng, fast_calls, shape, axis, fused, with_scale):  # noqa: F811
    x = rng.normal(0.5, 2.0, shape).astype("float32")
    scale = (
        rng.uniform(0.5, 1.5, scale_shape(shape, axis)).astype("float32")
        if with_scale
        else None
    )
    y = norm_ops.rms_normalization(x, scale=scale, axis=axis, epsilon=1e-5)
    assert keras_dtype(y) == "float32"
    assert_ran(fast_calls, RMS if fused and BACKEND == "torch" else None)
    expected = reference_rms.rms_norm(x, axis, scale, epsilon=1e-5)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape, axis, fused", CASES[:3] + CASES[5:7])
def test_op_in_float64_stays_float64(rng, shape, axis, fused):
    with float64_enabled():
        x = rng.normal(3.0, 2.0, shape)
        scale = rng.uniform(0.5, 1.5, scale_shape(shape, axis))
        y = norm_ops.rms_normalization(x, scale=scale, axis=axis)
        assert keras_dtype(y) == "float64"
        np.testing.assert_allclose(
            to_numpy(y),
            reference_rms.rms_norm(x, axis, scale),
            rtol=1e-13,
            atol=1e-13,
        )


@pytest.mark.parametrize(
    "dtype, tolerance", [("float16", 2**-10), ("bfloat16", 2**-7)]
)
def test_half_precision_inputs_keep_their_dtype(rng, dtype, tolerance):
    # 6e4 is within float16's range, but its square (3.6e9) is not: the
    # mean square must be taken in float32.
    x = rng.uniform(-6e4, 6e4, (4, 3, 8))
    x = keras.ops.convert_to_tensor(x.astype("float32"), dtype)
    y = norm_ops.rms_normalization(x)
    assert keras_dtype(y) == dtype
    got = to_numpy(keras.ops.cast(y, "float32"))
    assert np.all(np.isfinite(got))
    rounded_x = to_numpy(keras.ops.cast(x, "float32"))
    np.testing.assert_allclose(
        got,
        reference_rms.rms_norm(rounded_x),
        rtol=2 * tolerance,
        atol=2 * tolerance,
    )


@pytest.mark.parametrize("center, spread", [(1e4, 1.0), (0.0, 1e15)])
def test_large_mean_and_large_magnitude(rng, center, spread):
    # No cancellation in a mean of squares: float32 keeps ~1e-7 relative
    # precision whatever the scale (below 1e19, where x^2 overflows).
    x = (center + spread * rng.normal(size=(8, 32))).astype("float32")
    y = to_numpy(norm_ops.rms_normalization(x))
    np.testing.assert_allclose(
        y, reference_rms.rms_norm(x), rtol=2e-6, atol=2e-6
    )


def test_scale_of_the_wrong_rank_is_a_clear_error(rng):
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"Argument `scale`.*scale.shape="):
        norm_ops.rms_normalization(x, scale=np.ones((3, 4)), axis=-1)


def test_zero_slice_gives_zeros_not_nan():
    x = np.zeros((2, 5), "float32")
    y = to_numpy(norm_ops.rms_normalization(x))
    np.testing.assert_array_equal(y, np.zeros((2, 5)))


def test_equals_layer_normalization_on_centered_data(rng):
    # With the mean subtracted, the mean square is the variance.
    x = rng.normal(3.0, 2.0, (4, 3, 6))
    x = (x - x.mean(axis=-1, keepdims=True)).astype("float32")
    rms = RMSNormalization(epsilon=1e-3)(x)
    layer = LayerNormalization(epsilon=1e-3, center=False, scale=False)(x)
    np.testing.assert_allclose(to_numpy(rms), to_numpy(layer), atol=1e-5)


# -- gradients ---------------------------------------------------------------


@pytest.mark.parametrize("shape, axis", [((3, 5), -1), ((2, 3, 4), [1, 2])])
def test_reference_backward_agrees_with_finite_differences(rng, shape, axis):
    # Checks the analytic oracle itself, so that the tests below cannot
    # pass by a shared mistake.
    x = rng.normal(size=shape)
    scale = rng.uniform(0.5, 1.5, scale_shape(shape, axis))
    upstream = rng.normal(size=shape)
    dx, dscale = reference_rms.rms_norm_backward(x, upstream, axis, scale)
    np.testing.assert_allclose(
        dx,
        reference.numerical_gradient(
            lambda a: np.sum(reference_rms.rms_norm(a, axis, scale) * upstream),
            x,
        ),
        rtol=1e-6,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        dscale.reshape(scale.shape),
        reference.numerical_gradient(
            lambda s: np.sum(reference_rms.rms_norm(x, axis, s) * upstream),
            scale,
        ),
        rtol=1e-6,
        atol=1e-8,
    )


@pytest.mark.parametrize("shape, axis, fused", CASES, ids=IDS)
def test_gradients_match_finite_differences_in_float64(rng, shape, axis, fused):
    x = rng.normal(0.5, 1.5, shape)
    scale = rng.uniform(0.5, 1.5, scale_shape(shape, axis))
    upstream = rng.normal(size=shape)

    def loss(x, scale):
        y = norm_ops.rms_normalization(x, scale=scale, axis=axis)
        return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

    with float64_enabled():
        _, (dx, dscale) = value_and_gradients(loss, x, scale)

    def oracle_loss(x, scale):
        return np.sum(reference_rms.rms_norm(x, axis, scale) * upstream)

    np.testing.assert_allclose(
        dx,
        reference.numerical_gradient(lambda a: oracle_loss(a, scale), x),
        rtol=1e-6,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        dscale,
        reference.numerical_gradient(lambda s: oracle_loss(x, s), scale),
        rtol=1e-6,
        atol=1e-8,
    )


@pytest.mark.parametrize("center", [0.0, 1e3])
@pytest.mark.parametrize("shape, axis, fused", CASES, ids=IDS)
def test_fast_path_matches_reference_and_oracle(
    rng,
    fast_calls,
    shape,
    axis,
    fused,
    center,
):
    x = (center + rng.normal(size=shape)).astype("float32")
    scale = rng.uniform(0.5, 1.5, scale_shape(shape, axis)).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")

    def loss(x, scale):
        y = norm_ops.rms_normalization(x, scale=scale, axis=axis)
        return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

    expected_fast = RMS if fused and BACKEND == "torch" else None
    fast = norm_ops.rms_normalization(x, scale=scale, axis=axis)
    assert_ran(fast_calls, expected_fast)
    fast_calls.clear()
    _, fast_gradients = value_and_gradients(loss, x, scale)
    assert_ran(fast_calls, expected_fast)
    fast_calls.clear()
    with norm_ops.reference_only():
        slow = norm_ops.rms_normalization(x, scale=scale, axis=axis)
        _, slow_gradients = value_and_gradients(loss, x, scale)
    assert_ran(fast_calls, None)
    expected = reference_rms.rms_norm(x, axis, scale)
    np.testing.assert_allclose(to_numpy(fast), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(fast), to_numpy(slow), rtol=1e-6, atol=1e-6
    )
    dx, dscale = reference_rms.rms_norm_backward(x, upstream, axis, scale)
    for got, want, oracle in zip(
        fast_gradients, slow_gradients, (dx, dscale), strict=True
    ):
        # Gradients at a mean of 1e3 are of order 1e-3 (dx) or sums of
        # thousands of terms (dscale): relative tolerances.
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            got, oracle.reshape(got.shape), rtol=1e-4, atol=1e-6
        )


# -- the layer ---------------------------------------------------------------


def _random_scale(layer, rng):
    scale = rng.uniform(-0.5, 1.5, layer.scale.shape).astype("float32")
    layer.scale.assign(scale)
    return scale


@pytest.mark.parametrize("unit_offset", [False, True])
@pytest.mark.parametrize(
    "shape, axis",
    [((4, 6), -1), ((1, 6), -1), ((3, 4, 5), [1, 2]), ((2, 3, 4, 5), 1)],
)
def test_layer_matches_oracle(rng, shape, axis, unit_offset):
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    layer = RMSNormalization(axis=axis, epsilon=1e-4, unit_offset=unit_offset)
    layer.build(shape)
    assert tuple(layer.scale.shape) == scale_shape(shape, axis)
    scale = _random_scale(layer, rng)
    y = layer(x)
    expected = reference_rms.rms_norm(
        x, axis, scale, epsilon=1e-4, unit_offset=unit_offset
    )
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-5, atol=1e-5)


def test_unit_offset_starts_at_zero_and_multiplies_by_one_plus_scale(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = RMSNormalization(unit_offset=True)
    y = to_numpy(layer(x))
    np.testing.assert_array_equal(to_numpy(layer.scale), np.zeros(6))
    np.testing.assert_allclose(y, reference_rms.rms_norm(x), rtol=1e-6)
    # Same numbers as the plain form with the scale shifted by one.
    plain = RMSNormalization()
    plain.build(x.shape)
    np.testing.assert_array_equal(to_numpy(plain.scale), np.ones(6))
    scale = _random_scale(layer, rng)
    plain.scale.assign(1.0 + scale)
    np.testing.assert_allclose(
        to_numpy(layer(x)), to_numpy(plain(x)), rtol=1e-6
    )
    # An explicit initializer wins.
    ones = RMSNormalization(unit_offset=True, scale_initializer="ones")
    ones.build(x.shape)
    np.testing.assert_array_equal(to_numpy(ones.scale), np.ones(6))
    config = layer.get_config()
    assert config["unit_offset"] is True
    assert RMSNormalization.from_config(config).unit_offset is True


def test_unit_offset_scale_gradient(rng):
    x = rng.normal(size=(5, 4)).astype("float32")
    upstream = rng.normal(size=(5, 4)).astype("float32")
    layer = RMSNormalization(unit_offset=True)
    layer.build(x.shape)
    scale = _random_scale(layer, rng)

    def loss(x, scale):
        y = layer.stateless_call([scale], [], x)[0]
        return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

    _, (dx, dscale) = value_and_gradients(loss, x, scale)
    ref_dx, ref_dscale = reference_rms.rms_norm_backward(
        x, upstream, scale=1.0 + scale
    )
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dscale, ref_dscale, rtol=1e-4, atol=1e-5)


def test_regularizer_and_constraint(rng):
    layer = RMSNormalization(
        scale_regularizer=keras.regularizers.L2(0.5),
        scale_constraint="non_neg",
    )
    layer.build((2, 3))
    scale = np.array([1.0, -2.0, 3.0], "float32")
    layer.scale.assign(scale)
    layer(np.ones((2, 3), "float32"))
    np.testing.assert_allclose(
        float(to_numpy(sum(layer.losses))), 0.5 * np.sum(scale**2), rtol=1e-6
    )
    assert isinstance(layer.scale.constraint, keras.constraints.NonNeg)


def test_mask_passes_through(rng):
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    x[0, 2:] = 0.0  # two masked steps
    mask = np.any(x != 0, axis=-1)
    layer = RMSNormalization()
    assert layer.compute_mask(x, mask) is mask
    # A mask-consuming layer after ours averages the unmasked steps only.
    inputs = keras.Input((4, 5))
    masked = keras.layers.Masking()(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(layer(masked))
    y = to_numpy(keras.Model(inputs, pooled)(x))
    normalized = reference_rms.rms_norm(x, -1, to_numpy(layer.scale))
    expected = (normalized * mask[..., None]).sum(1) / mask.sum(1)[:, None]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


# -- mixed precision ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_against_the_float64_oracle(rng, policy):
    keras.config.set_dtype_policy(policy)
    layer = RMSNormalization(axis=[1, 2])
    x = rng.normal(30.0, 50.0, (4, 3, 8)).astype("float32")
    layer.build(x.shape)
    assert layer.scale.dtype == "float32"
    scale = _random_scale(layer, rng)
    y = layer(x)
    low = policy.split("_")[1]
    assert keras_dtype(y) == low
    tolerance = 2**-7 if low == "bfloat16" else 2**-10
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")),
        reference_rms.rms_norm(x, [1, 2], scale),
        rtol=2 * tolerance,
        atol=2 * tolerance,
    )
    # A float16/bfloat16 input (what the previous layer gives) as well.
    x_low = keras.ops.cast(x, low)
    y = layer(x_low)
    assert keras_dtype(y) == low
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")),
        reference_rms.rms_norm(
            to_numpy(keras.ops.cast(x_low, "float32")), [1, 2], scale
        ),
        rtol=2 * tolerance,
        atol=2 * tolerance,
    )


# Keras 3.8, the oldest Keras allowed, has no RMSNormalization (new in 3.9).
needs_keras_rms = pytest.mark.skipif(
    not hasattr(keras.layers, "RMSNormalization"),
    reason=f"Keras {keras.__version__} has no RMSNormalization",
)


@needs_keras_rms
def test_finite_under_mixed_float16_where_keras_is_not(rng):
    # Inputs of 7e4 exceed float16's 65504: Keras's layer rounds them to
    # float16 (inf) before its float32 mean square; ours does not.
    x = (7e4 + 10.0 * rng.normal(size=(4, 8))).astype("float32")
    x[:, ::2] *= -1.0
    keras.config.set_dtype_policy("mixed_float16")
    ours = RMSNormalization()(x)
    theirs = keras.layers.RMSNormalization()(x)
    assert keras_dtype(ours) == keras_dtype(theirs) == "float16"
    got = to_numpy(keras.ops.cast(ours, "float32"))
    np.testing.assert_allclose(
        got, reference_rms.rms_norm(x), rtol=2**-9, atol=2**-9
    )
    assert not np.all(np.isfinite(to_numpy(keras.ops.cast(theirs, "float32"))))


# -- Keras's configs and weights ---------------------------------------------


@needs_keras_rms
@pytest.mark.parametrize(
    "arguments, shape",
    [
        ({}, (4, 6)),
        ({"axis": [1, 2], "epsilon": 1e-3}, (4, 3, 5)),
        ({"axis": (-1, -2)}, (4, 3, 5)),
        ({"dtype": "mixed_bfloat16"}, (4, 6)),
    ],
)
def test_keras_config_and_weights_load(rng, tmp_path, arguments, shape):
    theirs = keras.layers.RMSNormalization(**arguments)
    model = keras.Sequential([keras.Input(shape[1:]), theirs])
    scale = rng.uniform(0.5, 1.5, theirs.scale.shape).astype("float32")
    theirs.scale.assign(scale)
    path = str(tmp_path / "keras.weights.h5")
    model.save_weights(path)

    ours = RMSNormalization.from_config(theirs.get_config())
    assert [w.name for w in ours.weights] == []
    ours_model = keras.Sequential([keras.Input(shape[1:]), ours])
    ours_model.load_weights(path)
    assert [w.name for w in ours.weights] == ["scale"]
    np.testing.assert_array_equal(to_numpy(ours.scale), scale)

    x = rng.normal(size=shape).astype("float32")
    y = to_numpy(keras.ops.cast(ours_model(x), "float32"))
    np.testing.assert_allclose(
        y,
        to_numpy(keras.ops.cast(model(x), "float32")),
        rtol=1e-2 if "dtype" in arguments else 1e-5,
        atol=1e-2 if "dtype" in arguments else 1e-6,
    )
    np.testing.assert_allclose(
        y,
        reference_rms.rms_norm(
            x, arguments.get("axis", -1), scale, arguments.get("epsilon", 1e-6)
        ),
        rtol=1e-2 if "dtype" in arguments else 1e-5,
        atol=1e-2 if "dtype" in arguments else 1e-6,
    )


# -- errors at build ---------------------------------------------------------


@pytest.mark.parametrize(
    "axis, shape, pattern",
    [
        (3, (4, 5, 6), "out of range"),
        (0, (4, 5), "batch axis"),
        ([1, -2], (4, 5, 6), "repeat"),
        (1, (4, None, 6), "size of axis 1"),
    ],
)
def test_bad_axis_is_an_error_at_build(axis, shape, pattern):
    layer = RMSNormalization(axis=axis)
    with pytest.raises(ValueError, match=pattern) as error:
        layer.build(shape)
    assert f"axis={axis!r}" in str(error.value)
