"""PReLU layer and ops.prelu vs the oracle and keras.layers.PReLU."""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms import ops as norm_ops

import reference
from helpers import float64_enabled
from helpers import save_and_load
from helpers import to_numpy
from helpers import value_and_gradients


@pytest.mark.parametrize(
    "x_shape, alpha_shape",
    [((6, 5), ()), ((4, 3, 5), (3, 5)), ((2, 4, 4, 3), (1, 1, 3))],
)
def test_op_matches_oracle(rng, x_shape, alpha_shape):
    x = rng.normal(size=x_shape).astype("float32")
    alpha = rng.uniform(-0.5, 1.5, alpha_shape).astype("float32")
    y = norm_ops.prelu(x, alpha)
    np.testing.assert_allclose(
        to_numpy(y), reference.prelu(x, alpha), rtol=1e-6, atol=1e-7
    )
    assert np.any(x < 0) and np.any(x > 0)


def test_gradients_match_oracle_and_finite_differences(rng):
    # Values away from the kink at 0, where finite differences are exact.
    x = rng.normal(size=(5, 3, 4))
    x = np.where(np.abs(x) < 0.05, 0.5, x)
    alpha = rng.uniform(0.0, 0.5, (1, 4))
    upstream = rng.normal(size=x.shape)
    with float64_enabled():
        weights = keras.ops.convert_to_tensor(upstream, "float64")

        def loss(t, a):
            return keras.ops.sum(norm_ops.prelu(t, a) * weights)

        value, (dx, dalpha) = value_and_gradients(loss, x, alpha)

    def loss_oracle(t, a):
        return float(np.sum(reference.prelu(t, a) * upstream))

    ref_dx, ref_dalpha = reference.prelu_gradients(x, alpha, upstream)
    np.testing.assert_allclose(value, loss_oracle(x, alpha), rtol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        dalpha, ref_dalpha.sum(axis=(0, 1), keepdims=True)[0], rtol=1e-12
    )
    # The analytic oracle itself against finite differences.
    np.testing.assert_allclose(
        ref_dx,
        reference.numerical_gradient(lambda t: loss_oracle(t, alpha), x),
        rtol=1e-6,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        dalpha,
        reference.numerical_gradient(lambda a: loss_oracle(x, a), alpha),
        rtol=1e-6,
    )


def test_default_slope_is_0_25_per_element_like_keras_shape(rng):
    layer = layers.PReLU()
    x = rng.normal(size=(3, 4, 5, 2)).astype("float32")
    y = layer(x)
    assert layer.alpha.path.endswith("alpha")
    assert tuple(layer.alpha.shape) == (4, 5, 2)
    np.testing.assert_array_equal(to_numpy(layer.alpha), 0.25)
    np.testing.assert_allclose(
        to_numpy(y), reference.prelu(x, 0.25), rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize(
    "shared_axes, alpha_shape",
    [
        ([1, 2], (1, 1, 3)),
        (1, (1, 4, 3)),
        ([-3, -2], (1, 1, 3)),
        ([1, 2, 3], (1, 1, 1)),
    ],
)
def test_shared_axes(rng, shared_axes, alpha_shape):
    layer = layers.PReLU(
        alpha_initializer="random_uniform", shared_axes=shared_axes
    )
    x = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    y = layer(x)
    assert tuple(layer.alpha.shape) == alpha_shape
    np.testing.assert_allclose(
        to_numpy(y),
        reference.prelu(x, to_numpy(layer.alpha)),
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("shared_axes", [None, [1, 2]])
def test_drop_in_for_keras_prelu(rng, shared_axes):
    ours = layers.PReLU(shared_axes=shared_axes)
    theirs = keras.layers.PReLU(shared_axes=shared_axes)
    x = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    np.testing.assert_array_equal(to_numpy(theirs.alpha), 0.0)  # Keras: 0
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        to_numpy(ours(x)), to_numpy(theirs(x)), rtol=1e-6
    )


def test_float_initializer_and_low_precision(rng):
    keras.config.set_dtype_policy("mixed_float16")
    layer = layers.PReLU(alpha_initializer=0.1, shared_axes=[1])
    x = rng.normal(size=(4, 6, 2)).astype("float32")
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.alpha.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(y, "float32")),
        reference.prelu(x, 0.1),
        rtol=1e-3,
        atol=1e-3,
    )


def test_slope_is_learned(rng):
    # Targets from a PReLU with slope 0.6: training must move 0.25 to 0.6.
    x = rng.normal(size=(256, 3)).astype("float32")
    target = reference.prelu(x, 0.6).astype("float32")
    model = keras.Sequential([keras.Input((3,)), layers.PReLU(shared_axes=1)])
    # The loss is (a - 0.6)^2 * mean(min(0, x)^2): each step halves the gap.
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), loss="mse", run_eagerly=True
    )
    model.fit(x, target, epochs=12, batch_size=256, verbose=0)
    np.testing.assert_allclose(to_numpy(model.layers[0].alpha), 0.6, atol=0.02)


def test_config_round_trip_and_save_load(rng, tmp_path):
    layer = layers.PReLU(
        alpha_initializer=0.3,
        alpha_regularizer="l2",
        alpha_constraint="non_neg",
        shared_axes=(1, 2),
        name="prelu",
    )
    config = layer.get_config()
    assert config["shared_axes"] == [1, 2]
    assert layers.PReLU.from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((4, 4, 3)), layer])
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    model.layers[0].alpha.assign(np.array([[[0.1, 0.2, 0.7]]], "float32"))
    loaded = save_and_load(model, tmp_path)
    assert type(loaded.layers[0]) is layers.PReLU
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    np.testing.assert_array_equal(
        to_numpy(loaded.layers[0].alpha),
        np.array([[[0.1, 0.2, 0.7]]], "float32"),
    )
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shared_axes": "1"}, "`shared_axes`.*shared_axes='1'"),
        ({"shared_axes": []}, r"`shared_axes`.*shared_axes=\[\]"),
        ({"shared_axes": [1, 2.0]}, r"`shared_axes`.*shared_axes=\[1, 2.0\]"),
        ({"alpha_initializer": "no_such_init"}, "no_such_init"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.PReLU(**kwargs)


@pytest.mark.parametrize(
    "shared_axes, shape, match",
    [
        ([0], (2, 3, 4), r"non-batch axis.*shared_axes=\[0\]"),
        ([3], (2, 3, 4), r"non-batch axis.*shared_axes=\[3\]"),
        ([-3], (2, 3, 4), r"non-batch axis.*shared_axes=\[-3\]"),
        (None, (2, None, 4), r"known size.*\(2, None, 4\)"),
        (None, (2,), r"rank >= 2.*\(2,\)"),
    ],
)
def test_bad_shapes_raise_at_build(shared_axes, shape, match):
    layer = layers.PReLU(shared_axes=shared_axes)
    with pytest.raises(ValueError, match=match):
        layer.build(shape)
