"""keras_norms.layers.WeightNormalization and its ops, against the oracle."""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import WeightNormalization
from keras_norms.layers._weight_normalization import DATA_INIT_EPSILON

import reference
import reference_folding
from helpers import BACKEND
from helpers import KERAS_VERSION
from helpers import assert_same_weights
from helpers import float64_enabled
from helpers import save_and_load
from helpers import skip_unless_channels_first_convolutions_run
from helpers import to_numpy
from helpers import value_and_gradients


def _random_g(layer, rng):
    g = rng.uniform(0.5, 2.0, layer.g.shape).astype(layer.g.dtype)
    layer.g.assign(g)
    return g


def test_dense_forward_matches_oracle(rng):
    x = rng.normal(size=(6, 5)).astype("float32")
    layer = WeightNormalization(
        keras.layers.Dense(4, activation="tanh"), data_init=False
    )
    layer.build(x.shape)
    g = _random_g(layer, rng)
    v = to_numpy(layer.v)
    bias = rng.normal(size=4).astype("float32")
    layer.layer.bias.assign(bias)
    w = reference_folding.weight_norm(v, g, "last")
    expected = np.tanh(reference_folding.dense(x, w, bias))
    for training in (False, True):
        np.testing.assert_allclose(
            to_numpy(layer(x, training=training)),
            expected,
            rtol=1e-5,
            atol=1e-6,
        )
    kernel, effective_bias = layer.effective_weights()
    np.testing.assert_allclose(to_numpy(kernel), w, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(to_numpy(effective_bias), bias)


def test_conv2d_forward_matches_oracle(rng):
    x = rng.normal(size=(2, 6, 5, 3)).astype("float32")
    layer = WeightNormalization(
        keras.layers.Conv2D(4, (3, 2), activation="relu"), data_init=False
    )
    layer.build(x.shape)
    g = _random_g(layer, rng)
    bias = rng.normal(size=4).astype("float32")
    layer.layer.bias.assign(bias)
    w = reference_folding.weight_norm(to_numpy(layer.v), g, "last")
    expected = np.maximum(reference_folding.conv2d(x, w, bias), 0.0)
    np.testing.assert_allclose(
        to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5
    )


# name: (layer factory, input shape, kernel layout)
WRAPPABLE = {
    "dense": (lambda: keras.layers.Dense(3), (4, 5), "last"),
    "conv1d": (lambda: keras.layers.Conv1D(3, 2), (2, 6, 4), "last"),
    "conv2d_channels_first": (
        lambda: keras.layers.Conv2D(3, 2, data_format="channels_first"),
        (2, 4, 5, 5),
        "last",
    ),
    "conv3d": (lambda: keras.layers.Conv3D(2, 2), (2, 3, 4, 3, 2), "last"),
    "conv2d_transpose": (
        lambda: keras.layers.Conv2DTranspose(3, 3, strides=2),
        (2, 4, 4, 2),
        "transpose",
    ),
    "depthwise_conv2d": (
        lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
        (2, 5, 5, 3),
        "depthwise",
    ),
}


@pytest.mark.parametrize("name", sorted(WRAPPABLE))
def test_initial_output_equals_wrapped_layer(rng, name):
    factory, shape, layout = WRAPPABLE[name]
    if "channels_first" in name:
        skip_unless_channels_first_convolutions_run()
    x = rng.normal(size=shape).astype("float32")
    wrapped = factory()
    expected = to_numpy(wrapped(x))  # built before wrapping
    v = to_numpy(wrapped.kernel)
    layer = WeightNormalization(wrapped, data_init=False)
    np.testing.assert_allclose(
        to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer.g), reference_folding.kernel_norms(v, layout), rtol=1e-6
    )
    # The wrapped layer's kernel (v) itself is untouched.
    np.testing.assert_array_equal(to_numpy(wrapped.kernel), v)
    # ||w_c|| = |g_c| for any g.
    g = _random_g(layer, rng)
    kernel, _ = layer.effective_weights()
    np.testing.assert_allclose(
        reference_folding.kernel_norms(to_numpy(kernel), layout), g, rtol=1e-5
    )


def test_inference_before_data_init_equals_wrapped_layer(rng):
    x = rng.normal(size=(8, 5)).astype("float32")
    wrapped = keras.layers.Dense(3, activation="relu")
    expected = to_numpy(wrapped(x))
    layer = WeightNormalization(wrapped)  # data_init=True
    np.testing.assert_allclose(
        to_numpy(layer(x, training=False)), expected, rtol=1e-5, atol=1e-6
    )
    assert float(to_numpy(layer.initialized)) == 0.0


def _pre_activations(layer, x):
    """x (*) w + b with the layer's effective kernel and bias (NumPy)."""
    g = to_numpy(layer.g) + to_numpy(layer.g_offset)
    w = reference_folding.weight_norm(to_numpy(layer.v), g, "last")
    bias = to_numpy(layer.layer.bias) + to_numpy(layer.bias_offset)
    return reference_folding.dense(x, w, bias)


def test_data_init_standardizes_the_first_batch_once(rng):
    x = rng.normal(3.0, 2.0, (128, 6)).astype("float32")
    layer = WeightNormalization(keras.layers.Dense(4, activation="relu"))
    layer.build(x.shape)
    g = _random_g(layer, rng)
    v = to_numpy(layer.v)
    bias = to_numpy(layer.layer.bias)
    y = to_numpy(layer(x, training=True))
    assert float(to_numpy(layer.initialized)) == 1.0
    # Oracle: t = x (*) (g v / ||v||), zero bias; g <- g / sqrt(var + eps),
    # b <- -mean / sqrt(var + eps).
    t = reference_folding.dense(x, reference_folding.weight_norm(v, g, "last"))
    factor, new_bias = reference_folding.data_init(t, DATA_INIT_EPSILON)
    np.testing.assert_allclose(
        to_numpy(layer.g) + to_numpy(layer.g_offset), g * factor, rtol=1e-4
    )
    np.testing.assert_allclose(
        to_numpy(layer.layer.bias) + to_numpy(layer.bias_offset),
        new_bias,
        rtol=1e-4,
        atol=1e-5,
    )
    # The trainable variables keep their values; the offsets hold the init.
    np.testing.assert_array_equal(to_numpy(layer.g), g)
    np.testing.assert_array_equal(to_numpy(layer.layer.bias), bias)
    # The first call's output already uses the initialized parameters.
    standardized = (t - t.mean(axis=0)) / np.sqrt(t.var(axis=0))
    np.testing.assert_allclose(
        y, np.maximum(standardized, 0.0), rtol=1e-3, atol=1e-4
    )
    t_after = _pre_activations(layer, x)
    np.testing.assert_allclose(t_after.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(t_after.var(axis=0), 1.0, rtol=1e-4)

    # A second training call on other data does not initialize again.
    offsets = to_numpy(layer.g_offset), to_numpy(layer.bias_offset)
    other = rng.normal(-5.0, 7.0, (64, 6)).astype("float32")
    layer(other, training=True)
    np.testing.assert_array_equal(to_numpy(layer.g_offset), offsets[0])
    np.testing.assert_array_equal(to_numpy(layer.bias_offset), offsets[1])
    assert abs(_pre_activations(layer, other).mean()) > 0.1


def test_data_init_of_channels_first_conv(rng):
    skip_unless_channels_first_convolutions_run()
    x = rng.normal(1.0, 3.0, (16, 2, 6, 6)).astype("float32")
    layer = WeightNormalization(
        keras.layers.Conv2D(3, 3, data_format="channels_first")
    )
    y = to_numpy(layer(x, training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)


def test_data_init_inside_fit_happens_on_the_first_batch_only(rng):
    first = rng.normal(2.0, 1.5, (32, 5)).astype("float32")
    second = rng.normal(-3.0, 4.0, (32, 5)).astype("float32")
    x = np.concatenate([first, second])
    inputs = keras.Input((5,))
    layer = WeightNormalization(keras.layers.Dense(4), name="weight_norm")
    model = keras.Model(inputs, layer(inputs))
    # Learning rate 0: only the data initialization changes anything.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(
        x, np.zeros((64, 4)), batch_size=32, shuffle=False, epochs=2, verbose=0
    )
    assert float(to_numpy(layer.initialized)) == 1.0
    t_first = _pre_activations(layer, first)
    np.testing.assert_allclose(t_first.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(t_first.var(axis=0), 1.0, rtol=1e-4)
    t_second = _pre_activations(layer, second)
    assert np.max(np.abs(t_second.mean(axis=0))) > 0.5


def test_fit_trains_g_and_v(rng):
    x = rng.normal(size=(64, 5)).astype("float32")
    y = np.sin(x[:, :2])
    inputs = keras.Input((5,))
    layer = WeightNormalization(keras.layers.Dense(8, activation="tanh"))
    outputs = keras.layers.Dense(2)(layer(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    g, v = to_numpy(layer.g).copy(), to_numpy(layer.v).copy()
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.all(np.abs(to_numpy(layer.g) - g) > 1e-5)
    assert np.max(np.abs(to_numpy(layer.v) - v)) > 1e-3
    assert len(model.trainable_weights) == 5  # g, v, bias, dense kernel/bias


def test_gradients_match_finite_differences_and_paper(rng):
    x = rng.normal(size=(5, 4))
    upstream = rng.normal(size=(5, 3))
    with float64_enabled():
        layer = WeightNormalization(
            keras.layers.Dense(3, activation="tanh", dtype="float64"),
            data_init=False,
            dtype="float64",
        )
        layer.build(x.shape)
        bias = to_numpy(layer.layer.bias)

        def loss(g, v):
            # The layer reads g and v from the scope, as in JAX's training
            # step: gradients must flow through it to both.
            mapping = [(layer.g, g), (layer.v, v)]
            with keras.StatelessScope(mapping):
                y = layer(keras.ops.convert_to_tensor(x))
            return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

        g0 = rng.uniform(0.5, 2.0, 3)
        v0 = rng.normal(size=(4, 3))
        value, (grad_g, grad_v) = value_and_gradients(loss, g0, v0)

    def oracle_loss(g, v):
        w = reference_folding.weight_norm(v, g, "last")
        return np.sum(np.tanh(x @ w + bias) * upstream)

    # Keras's own Dense computes float64 at reduced precision on the JAX
    # (float32 matmul) and torch (error ~2e-8) backends; TF keeps float64.
    tolerance = 1e-8 if BACKEND == "tensorflow" else 2e-5
    np.testing.assert_allclose(value, oracle_loss(g0, v0), rtol=tolerance)
    expected_g = reference.numerical_gradient(lambda g: oracle_loss(g, v0), g0)
    expected_v = reference.numerical_gradient(lambda v: oracle_loss(g0, v), v0)
    np.testing.assert_allclose(
        grad_g, expected_g, rtol=max(tolerance, 1e-6), atol=1e-7
    )
    np.testing.assert_allclose(
        grad_v, expected_v, rtol=max(tolerance, 1e-6), atol=1e-7
    )
    # And the paper's closed form, from the gradient with respect to w.
    w = reference_folding.weight_norm(v0, g0, "last")
    grad_w = x.T @ (upstream * (1.0 - np.tanh(x @ w + bias) ** 2))
    paper_g, paper_v = reference_folding.weight_norm_gradients(v0, g0, grad_w)
    np.testing.assert_allclose(grad_g, paper_g, rtol=tolerance, atol=1e-12)
    np.testing.assert_allclose(grad_v, paper_v, rtol=tolerance, atol=1e-12)


def test_save_and_load_round_trip(rng, tmp_path):
    inputs = keras.Input((8, 8, 2))
    x = WeightNormalization(
        keras.layers.Conv2D(4, 3, activation="relu"), name="wn_conv"
    )(inputs)
    x = keras.layers.Flatten()(x)
    x = WeightNormalization(keras.layers.Dense(3), data_init=False)(x)
    model = keras.Model(inputs, x)
    data = rng.normal(size=(8, 8, 8, 2)).astype("float32")
    model(data, training=True)  # data init of the first wrapper
    expected = to_numpy(model(data, training=False))
    loaded = save_and_load(model, tmp_path)
    assert isinstance(loaded.layers[1], WeightNormalization)
    assert loaded.layers[1].layer.activation is keras.activations.relu
    np.testing.assert_allclose(
        to_numpy(loaded(data, training=False)), expected, rtol=1e-6, atol=1e-6
    )
    assert_same_weights(model, loaded)
    # The saved flag stops a second data initialization after loading.
    offsets = to_numpy(loaded.layers[1].g_offset)
    loaded(rng.normal(5.0, 3.0, data.shape).astype("float32"), training=True)
    np.testing.assert_array_equal(to_numpy(loaded.layers[1].g_offset), offsets)


def test_config_round_trip():
    layer = WeightNormalization(
        keras.layers.Conv1D(3, 2, use_bias=False), data_init=False, name="wn"
    )
    config = layer.get_config()
    assert config["data_init"] is False
    assert config["layer"]["class_name"] == "Conv1D"
    restored = WeightNormalization.from_config(config)
    assert restored.get_config() == config
    assert "layer" in config  # from_config must not consume its argument


def test_activity_regularizer_of_wrapped_layer_is_kept(rng):
    x = rng.normal(size=(4, 3)).astype("float32")
    wrapped = keras.layers.Dense(2, activity_regularizer="l2")
    wrapped(x)
    expected = to_numpy(wrapped.losses[0])
    layer = WeightNormalization(wrapped, data_init=False)
    layer(x)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-5)
    assert expected > 0


ACTIVITY_L2 = 0.1


def _regularized_dense():
    return keras.layers.Dense(
        3, activity_regularizer=keras.regularizers.L2(ACTIVITY_L2)
    )


def _activity_loss(outputs):
    """Keras's L2 activity regularization of ``outputs``, per sample (summed
    over the batch before Keras 3.14)."""
    loss = ACTIVITY_L2 * np.sum(np.square(outputs))
    return loss / outputs.shape[0] if KERAS_VERSION >= (3, 14) else loss


def test_data_init_pass_adds_no_activity_loss(rng):
    # The data initialization runs the wrapped layer once more (linearly,
    # inside a cond): only the real forward pass may add its loss.
    x = rng.normal(2.0, 1.5, (8, 5)).astype("float32")
    layer = WeightNormalization(_regularized_dense())
    y = to_numpy(layer(x, training=True))
    assert float(to_numpy(layer.initialized)) == 1.0
    assert len(layer.losses) == 1
    np.testing.assert_allclose(
        to_numpy(layer.losses[0]), _activity_loss(y), rtol=1e-5
    )
    # The same in a model, and on a later call (no data initialization).
    model = keras.Sequential(
        [keras.Input((5,)), WeightNormalization(_regularized_dense())]
    )
    for _ in range(2):
        y = to_numpy(model(x, training=True))
        assert len(model.losses) == 1
        np.testing.assert_allclose(
            to_numpy(model.losses[0]), _activity_loss(y), rtol=1e-5
        )


@pytest.mark.parametrize("data_init", [True, False])
def test_activity_loss_counted_once_inside_fit(rng, data_init):
    x = rng.normal(2.0, 1.5, (8, 5)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((5,)),
            WeightNormalization(_regularized_dense(), data_init=data_init),
        ]
    )
    # Learning rate 0 and one full batch: the training loss is that of the
    # output the model computes afterwards (mse against zeros plus the
    # activity loss, once).
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    history = model.fit(
        x, np.zeros((8, 3)), batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    y = to_numpy(model(x, training=True))
    assert len(model.losses) == 1
    np.testing.assert_allclose(
        to_numpy(model.losses[0]), _activity_loss(y), rtol=1e-5
    )
    np.testing.assert_allclose(
        history.history["loss"][0],
        np.mean(np.square(y)) + _activity_loss(y),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "layout, output_axis, shape",
    [
        ("last", -1, (3, 3, 2, 4)),
        ("transpose", -2, (3, 3, 4, 2)),
        ("depthwise", (-2, -1), (3, 3, 2, 2)),
    ],
)
def test_ops_match_oracle(rng, layout, output_axis, shape):
    v = rng.normal(size=shape)
    g = rng.uniform(0.5, 2.0, 4)
    w = keras_norms.ops.weight_normalization(
        v.astype("float32"), g, output_axis=output_axis
    )
    np.testing.assert_allclose(
        to_numpy(w), reference_folding.weight_norm(v, g, layout), rtol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(keras_norms.ops.kernel_norm(v, output_axis)),
        reference_folding.kernel_norms(v, layout),
        rtol=1e-6,
    )


def test_zero_direction_gives_zero_kernel():
    v = np.zeros((3, 2), "float32")
    v[:, 1] = [1.0, 2.0, 2.0]
    w = to_numpy(keras_norms.ops.weight_normalization(v, np.array([5.0, 6.0])))
    np.testing.assert_allclose(w[:, 0], 0.0)
    np.testing.assert_allclose(w[:, 1], [2.0, 4.0, 4.0], rtol=1e-6)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="layer 're_lu_layer' of class ReLU"):
        WeightNormalization(keras.layers.ReLU(name="re_lu_layer"))
    with pytest.raises(ValueError, match="class Embedding"):
        WeightNormalization(keras.layers.Embedding(10, 3))
    with pytest.raises(TypeError, match=r"layer=<function"):
        WeightNormalization(lambda x: x)
    with pytest.raises(TypeError, match="layer='dense'"):
        WeightNormalization("dense")
    with pytest.raises(ValueError, match="'no_bias' has use_bias=False"):
        WeightNormalization(
            keras.layers.Dense(2, use_bias=False, name="no_bias")
        )
    with pytest.raises(ValueError, match="data_init='yes'"):
        WeightNormalization(keras.layers.Dense(2), data_init="yes")


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit specific")
def test_data_init_inside_jax_jit_is_returned_as_state(rng):
    import jax

    x = rng.normal(1.0, 2.0, (32, 3)).astype("float32")
    layer = WeightNormalization(keras.layers.Dense(2))
    layer.build(x.shape)

    @jax.jit
    def step(trainable, non_trainable, x):
        return layer.stateless_call(trainable, non_trainable, x, training=True)

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    y, new_non_trainable = step(trainable, non_trainable, x)
    y = to_numpy(y)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=0), 1.0, rtol=1e-4)
    names = [v.name for v in layer.non_trainable_variables]
    state = dict(zip(names, new_non_trainable, strict=True))
    assert float(state["initialized"]) == 1.0
    # The layer's own variables are untouched by a stateless call.
    assert float(to_numpy(layer.initialized)) == 0.0
