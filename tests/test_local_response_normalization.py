"""LocalResponseNormalization and ops.local_response_norm vs the oracle.

The oracle (tests/reference.py) sums the window with an explicit loop; the
op pools a zero-padded tensor. Torch's and TensorFlow's own LRN kernels are
checked too when they are the backend.
"""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms import ops as norm_ops

import reference
from helpers import BACKEND
from helpers import float64_enabled
from helpers import save_and_load
from helpers import to_numpy
from helpers import value_and_gradients

LRN = layers.LocalResponseNormalization

# Large enough that the window sum dominates k: a wrong window cannot pass.
ALPHA, BETA, K = 0.8, 0.75, 1.5


def _inputs(rng, shape, dtype="float32"):
    return rng.normal(0.0, 2.0, shape).astype(dtype)


def _compiled(fn):
    """``fn`` as one compiled program on JAX (op-by-op eager dispatch
    compiles every primitive separately, 3-4x slower for these small
    tests); unchanged on the other backends."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _oracle(mode):
    if mode == "across_channels":
        return reference.lrn_across_channels
    return reference.lrn_within_channel


# Every rank, channel axis and window size (odd, even, 1, wider than the
# channels) appears at least once; each case is a new compilation on JAX,
# so the list is short rather than a full product.
@pytest.mark.parametrize(
    "shape, axis, size",
    [
        ((5, 7), -1, 9),
        ((3, 7, 6), -1, 3),
        ((3, 6, 7), 1, 4),
        ((2, 4, 5, 7), -1, 5),
        ((2, 4, 5, 7), -1, 1),
        ((2, 7, 4, 5), 1, 2),
        ((2, 4, 7, 5), 2, 3),
        ((2, 3, 4, 5, 7), -1, 4),
        ((2, 7, 3, 4, 5), 1, 5),
    ],
    ids=str,
)
def test_across_channels_matches_oracle(rng, shape, axis, size):
    x = _inputs(rng, shape)
    y = _compiled(
        lambda t: norm_ops.local_response_norm(
            t, size, ALPHA, BETA, K, axis=axis
        )
    )(x)
    ref = reference.lrn_across_channels(x, size, ALPHA, BETA, K, axis=axis)
    assert tuple(y.shape) == shape
    np.testing.assert_allclose(to_numpy(y), ref, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize(
    "shape, axis, size",
    [
        ((2, 9, 3), -1, 3),
        ((2, 3, 9), 1, 5),
        ((2, 6, 7, 3), -1, 5),
        ((2, 3, 6, 7), 1, 3),
        ((2, 6, 3, 7), 2, 3),
        ((2, 4, 5, 3, 2), -1, 3),
        ((2, 2, 4, 5, 3), 1, 1),
    ],
    ids=str,
)
def test_within_channel_matches_oracle(rng, shape, axis, size):
    x = _inputs(rng, shape)
    y = _compiled(
        lambda t: norm_ops.local_response_norm(
            t, size, ALPHA, BETA, K, mode="within_channel", axis=axis
        )
    )(x)
    ref = reference.lrn_within_channel(x, size, ALPHA, BETA, K, axis=axis)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=2e-6, atol=1e-6)


def test_within_channel_with_caffe_constants(rng):
    # Caffe: b = a / (1 + alpha / n^2 * sum over the n x n window)^beta.
    x = _inputs(rng, (2, 7, 6, 3))
    layer = LRN(size=3, alpha=2.0, beta=0.75, mode="within_channel")
    manual = np.empty_like(x, dtype="float64")
    padded = np.pad(x.astype("float64") ** 2, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for h in range(7):
        for w in range(6):
            total = padded[:, h : h + 3, w : w + 3, :].sum(axis=(1, 2))
            manual[:, h, w, :] = x[:, h, w, :] / (1 + 2.0 / 9 * total) ** 0.75
    np.testing.assert_allclose(to_numpy(_compiled(layer)(x)), manual, rtol=2e-6)


def test_float64_inputs_are_computed_in_float64(rng):
    with float64_enabled():
        x = rng.normal(0.0, 2.0, (2, 5, 5, 6))
        y = norm_ops.local_response_norm(
            keras.ops.convert_to_tensor(x, "float64"), 4, ALPHA, BETA, K
        )
        assert keras.backend.standardize_dtype(y.dtype) == "float64"
        ref = reference.lrn_across_channels(x, 4, ALPHA, BETA, K)
        np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-12)


@pytest.mark.parametrize(
    "dtype, mode",
    [("float16", "across_channels"), ("bfloat16", "within_channel")],
)
def test_low_precision_keeps_dtype(rng, dtype, mode):
    x = keras.ops.cast(_inputs(rng, (2, 5, 5, 6)), dtype)
    y = norm_ops.local_response_norm(x, 3, ALPHA, BETA, K, mode=mode)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    x64 = to_numpy(keras.ops.cast(x, "float32")).astype("float64")
    oracle = _oracle(mode)
    ref = oracle(x64, 3, ALPHA, BETA, K)
    tolerance = 2e-3 if dtype == "float16" else 2e-2
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")), ref, rtol=tolerance, atol=1e-3
    )


@pytest.mark.parametrize(
    "mode, size, shape, axis",
    [
        ("across_channels", 3, (2, 3, 2, 5), -1),
        ("across_channels", 4, (2, 5, 3, 2), 1),
        ("within_channel", 3, (2, 4, 3, 2), -1),
    ],
)
def test_gradients_match_finite_differences_of_the_oracle(
    rng, mode, size, shape, axis
):
    x = rng.normal(0.0, 2.0, shape)
    upstream = rng.normal(size=shape)
    oracle = _oracle(mode)
    with float64_enabled():
        weights = keras.ops.convert_to_tensor(upstream, "float64")

        def loss(t):
            y = norm_ops.local_response_norm(
                t, size, ALPHA, BETA, K, mode=mode, axis=axis
            )
            return keras.ops.sum(y * weights)

        value, (grad,) = value_and_gradients(_compiled(loss), x)

    def loss_oracle(a):
        y = oracle(a, size, ALPHA, BETA, K, axis=axis)
        return float(np.sum(y * upstream))

    np.testing.assert_allclose(value, loss_oracle(x), rtol=1e-12)
    numeric = reference.numerical_gradient(loss_oracle, x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_from_alexnet_matches_the_paper_formula(rng):
    x = _inputs(rng, (2, 4, 4, 11)) * 20.0  # AlexNet's k=2, alpha=1e-4
    layer = LRN.from_alexnet()
    ref = reference.lrn_alexnet_paper(x, k=2.0, n=5, alpha=1e-4, beta=0.75)
    # The test would pass trivially if the term were negligible.
    assert np.max(np.abs(ref - x / 2.0**0.75)) > 1e-2
    np.testing.assert_allclose(
        to_numpy(_compiled(layer)(x)), ref, rtol=2e-6, atol=1e-6
    )
    other = LRN.from_alexnet(k=1.0, n=3, alpha=0.5, beta=0.6, axis=1)
    x_first = np.moveaxis(x, -1, 1) / 20.0
    ref_first = reference.lrn_alexnet_paper(
        x_first, k=1.0, n=3, alpha=0.5, beta=0.6, axis=1
    )
    np.testing.assert_allclose(
        to_numpy(_compiled(other)(x_first)), ref_first, rtol=2e-6, atol=1e-6
    )


@pytest.mark.parametrize("depth_radius", [0, 1, 2, 5])
def test_from_tensorflow_matches_tensorflow_formula(rng, depth_radius):
    x = _inputs(rng, (2, 3, 4, 13))
    layer = LRN.from_tensorflow(depth_radius, bias=1.3, alpha=0.2, beta=0.6)
    assert layer.size == 2 * depth_radius + 1
    ref = reference.lrn_tensorflow(x, depth_radius, 1.3, 0.2, 0.6)
    np.testing.assert_allclose(
        to_numpy(_compiled(layer)(x)), ref, rtol=2e-6, atol=1e-6
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="needs TensorFlow")
@pytest.mark.parametrize("depth_radius", [0, 2, 5])
def test_from_tensorflow_equals_tf_nn_local_response_normalization(
    rng, depth_radius
):
    import tensorflow as tf

    x = tf.constant(_inputs(rng, (2, 5, 4, 16)))
    upstream = tf.constant(rng.normal(size=(2, 5, 4, 16)).astype("float32"))
    layer = LRN.from_tensorflow(depth_radius, bias=2.0, alpha=0.1, beta=0.75)

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * upstream)
        return y.numpy(), tape.gradient(loss, x).numpy()

    ours, our_grad = run(layer)
    native, native_grad = run(
        lambda t: tf.nn.local_response_normalization(
            t, depth_radius, bias=2.0, alpha=0.1, beta=0.75
        )
    )
    np.testing.assert_allclose(ours, native, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(our_grad, native_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(BACKEND != "torch", reason="needs PyTorch")
@pytest.mark.parametrize(
    "shape", [(2, 9, 7), (2, 9, 4, 5), (2, 9, 3, 4, 2)], ids=str
)
@pytest.mark.parametrize("size", [1, 2, 4, 5, 11])
def test_equals_torch_local_response_norm(rng, shape, size):
    import torch

    x_first = _inputs(rng, shape)
    upstream = rng.normal(size=shape).astype("float32")

    def run(fn, array, weights):
        t = torch.tensor(array, requires_grad=True)
        y = fn(t)
        (y * torch.tensor(weights)).sum().backward()
        return y.detach().numpy(), t.grad.numpy()

    native, native_grad = run(
        lambda t: torch.nn.functional.local_response_norm(
            t, size, ALPHA, BETA, K
        ),
        x_first,
        upstream,
    )
    first, first_grad = run(
        lambda t: norm_ops.local_response_norm(t, size, ALPHA, BETA, K, axis=1),
        x_first,
        upstream,
    )
    last, last_grad = run(
        lambda t: norm_ops.local_response_norm(t, size, ALPHA, BETA, K),
        np.moveaxis(x_first, 1, -1),
        np.moveaxis(upstream, 1, -1),
    )
    np.testing.assert_allclose(first, native, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(first_grad, native_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.moveaxis(last, -1, 1), native, rtol=2e-6)
    np.testing.assert_allclose(
        np.moveaxis(last_grad, -1, 1), native_grad, rtol=1e-5, atol=1e-6
    )


def test_in_a_model_with_variable_spatial_size(rng):
    last = keras.Input((None, None, 6))
    first = keras.Input((6, None, None))
    cases = [
        ("last", "across_channels", -1),
        ("first", "across_channels", 1),
        ("last", "within_channel", -1),
        ("first", "within_channel", 1),
    ]
    inputs = {"last": last, "first": first}
    outputs = [
        LRN(3, ALPHA, BETA, K, mode=mode, axis=axis)(inputs[layout])
        for layout, mode, axis in cases
    ]
    model = keras.Model([last, first], outputs)
    for spatial in [(5, 4), (3, 7)]:
        x = {
            "last": _inputs(rng, (2, *spatial, 6)),
            "first": _inputs(rng, (2, 6, *spatial)),
        }
        ys = model.predict([x["last"], x["first"]], verbose=0)
        for y, (layout, mode, axis) in zip(ys, cases, strict=True):
            ref = _oracle(mode)(x[layout], 3, ALPHA, BETA, K, axis=axis)
            np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-6)


def test_mixed_precision_policy(rng):
    keras.config.set_dtype_policy("mixed_float16")
    layer = LRN(3, ALPHA, BETA, K)
    x = _inputs(rng, (2, 4, 4, 6))
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    ref = reference.lrn_across_channels(x.astype("float16"), 3, ALPHA, BETA, K)
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")), ref, rtol=2e-3, atol=1e-3
    )


CONFIGS = [
    {},
    {"size": 4, "alpha": 0.3, "beta": 0.5, "k": 2.0, "axis": 1},
    {"size": 3, "mode": "within_channel", "axis": 1},
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_config_round_trip(kwargs):
    layer = LRN(**kwargs, name="lrn")
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    assert LRN.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is LRN
    assert revived.get_config() == config


def test_save_and_load(rng, tmp_path):
    model = keras.Sequential(
        [keras.Input((6, 4, 5))] + [LRN(**kwargs) for kwargs in CONFIGS]
    )
    x = _inputs(rng, (2, 6, 4, 5))
    loaded = save_and_load(model, tmp_path)
    assert [type(layer) for layer in loaded.layers] == [LRN] * 3
    assert [layer.get_config() for layer in loaded.layers] == [
        layer.get_config() for layer in model.layers
    ]
    np.testing.assert_allclose(
        to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6
    )


def test_classmethods_serialize_as_the_canonical_parameters():
    layer = LRN.from_tensorflow(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    config = layer.get_config()
    assert (config["size"], config["k"]) == (5, 2.0)
    np.testing.assert_allclose(config["alpha"], 5e-4)
    np.testing.assert_allclose(LRN.from_alexnet(n=3).alpha, 3e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, "`size`.*size=0"),
        ({"size": -3}, "`size`.*size=-3"),
        ({"size": 2.5}, "`size`.*size=2.5"),
        ({"size": True}, "`size`.*size=True"),
        ({"size": 4, "mode": "within_channel"}, "odd.*size=4"),
        ({"alpha": -1e-4}, "`alpha`.*alpha=-0.0001"),
        ({"alpha": "0.1"}, "`alpha`.*alpha='0.1'"),
        ({"beta": None}, "`beta`.*beta=None"),
        ({"beta": float("nan")}, "`beta`.*beta=nan"),
        ({"k": 0.0}, "`k`.*k=0.0"),
        ({"k": -1}, "`k`.*k=-1"),
        ({"mode": "across"}, "`mode`.*mode='across'"),
        ({"axis": 1.0}, "`axis`.*axis=1.0"),
        ({"axis": "channels_last"}, "`axis`.*axis='channels_last'"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRN(**kwargs)
    if "axis" not in kwargs:
        x = np.ones((1, 3, 3, 4), "float32")
        with pytest.raises(ValueError, match=match):
            norm_ops.local_response_norm(x, **kwargs)


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: LRN.from_tensorflow(depth_radius=-1), "depth_radius=-1"),
        (lambda: LRN.from_tensorflow(depth_radius=1.5), "depth_radius=1.5"),
        (lambda: LRN.from_tensorflow(alpha=-1.0), "`alpha`.*alpha=-1.0"),
        (lambda: LRN.from_tensorflow(bias=0.0), "`bias`.*bias=0.0"),
        (lambda: LRN.from_alexnet(n=4), "`n`.*n=4"),
        (lambda: LRN.from_alexnet(n=0), "`n`.*n=0"),
        (lambda: LRN.from_alexnet(alpha=-2.0), "`alpha`.*alpha=-2.0"),
    ],
)
def test_bad_classmethod_arguments_raise(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize(
    "kwargs, shape, match",
    [
        ({"mode": "within_channel"}, (2, 8), r"rank 3, 4 or 5.*\(2, 8\)"),
        (
            {"mode": "within_channel"},
            (2, 3, 3, 3, 3, 4),
            r"rank 3, 4 or 5.*\(2, 3, 3, 3, 3, 4\)",
        ),
        ({"axis": 4}, (2, 3, 3, 4), "out of range.*axis=4"),
        ({"axis": 0}, (2, 3, 3, 4), "batch axis.*axis=0"),
    ],
)
def test_bad_input_shapes_raise_at_build(kwargs, shape, match):
    layer = LRN(**kwargs)
    with pytest.raises(ValueError, match=match):
        layer.build(shape)


def test_op_rejects_batch_axis_and_rank_one():
    with pytest.raises(ValueError, match="axis=0"):
        norm_ops.local_response_norm(np.ones((2, 3, 4), "float32"), axis=0)
    with pytest.raises(ValueError, match="rank >= 2"):
        norm_ops.local_response_norm(np.ones((4,), "float32"))
