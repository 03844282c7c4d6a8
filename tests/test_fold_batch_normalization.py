"""keras_norms.fold_batch_normalization and its op, against the oracle.

Two oracles: the folded kernel and bias against the NumPy formula
(tests/reference_folding.py), and the folded model's outputs against the
original model's inference outputs (folding must not change them).
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import BatchNormalization

import reference_folding
from helpers import skip_unless_channels_first_convolutions_run
from helpers import to_numpy

BN_CLASSES = {
    "keras_norms": BatchNormalization,
    "keras": keras.layers.BatchNormalization,
}

# name: (layer factory, input shape without batch, BN axis, kernel layout)
LAYERS = {
    "dense": (lambda **kw: keras.layers.Dense(5, **kw), (6,), -1, "last"),
    "dense_sequence": (
        lambda **kw: keras.layers.Dense(4, **kw),
        (3, 6),
        -1,
        "last",
    ),
    "conv1d": (
        lambda **kw: keras.layers.Conv1D(4, 3, **kw),
        (9, 3),
        -1,
        "last",
    ),
    "conv2d": (
        lambda **kw: keras.layers.Conv2D(4, 3, strides=2, **kw),
        (9, 9, 3),
        -1,
        "last",
    ),
    "conv2d_channels_first": (
        lambda **kw: keras.layers.Conv2D(
            4, 3, data_format="channels_first", **kw
        ),
        (3, 7, 7),
        1,
        "last",
    ),
    "conv2d_groups": (
        lambda **kw: keras.layers.Conv2D(6, 3, groups=2, **kw),
        (7, 7, 4),
        -1,
        "last",
    ),
    "conv3d": (
        lambda **kw: keras.layers.Conv3D(3, 2, **kw),
        (4, 5, 4, 2),
        -1,
        "last",
    ),
    "depthwise_conv2d": (
        lambda **kw: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, **kw),
        (7, 7, 3),
        -1,
        "depthwise",
    ),
    "depthwise_conv1d": (
        lambda **kw: keras.layers.DepthwiseConv1D(3, depth_multiplier=3, **kw),
        (8, 2),
        -1,
        "depthwise",
    ),
    "conv2d_transpose": (
        lambda **kw: keras.layers.Conv2DTranspose(5, 3, strides=2, **kw),
        (4, 4, 3),
        -1,
        "transpose",
    ),
    "conv2d_transpose_channels_first": (
        lambda **kw: keras.layers.Conv2DTranspose(
            5, 3, data_format="channels_first", **kw
        ),
        (3, 4, 4),
        1,
        "transpose",
    ),
    "conv1d_transpose": (
        lambda **kw: keras.layers.Conv1DTranspose(4, 3, **kw),
        (5, 2),
        -1,
        "transpose",
    ),
}


def _randomize(model, rng):
    """Non-trivial BN statistics and affine weights, and random biases."""
    for layer in model.layers:
        if type(layer) in BN_CLASSES.values():
            channels = layer.moving_mean.shape[0]
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 2.0, channels))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(size=channels))
            layer.moving_mean.assign(rng.normal(size=channels))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, channels))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(size=layer.bias.shape))


def _weights(model):
    return [to_numpy(w).copy() for w in model.weights]


def _assert_same_outputs(original, folded, x):
    np.testing.assert_allclose(
        to_numpy(folded(x, training=False)),
        to_numpy(original(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("bn_name", sorted(BN_CLASSES))
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("use_bias", [True, False])
def test_folds_each_layer_type(rng, name, bn_name, use_bias):
    factory, shape, axis, layout = LAYERS[name]
    if "channels_first" in name:
        skip_unless_channels_first_convolutions_run()
    layer = factory(use_bias=use_bias)
    bn = BN_CLASSES[bn_name](axis=axis, epsilon=0.01)
    model = keras.Sequential([keras.Input(shape), layer, bn])
    _randomize(model, rng)
    x = rng.normal(size=(3,) + shape).astype("float32")
    folded, report = keras_norms.fold_batch_normalization(
        model, return_report=True
    )
    assert report == {"folded": [(layer.name, bn.name)], "not_folded": []}
    assert isinstance(folded, keras.Sequential)
    assert len(folded.layers) == 1 == len(model.layers) - 1
    new_layer = folded.layers[0]
    assert type(new_layer) is type(layer) and new_layer.use_bias
    _assert_same_outputs(model, folded, x)

    expected_kernel, expected_bias = reference_folding.fold(
        to_numpy(layer.kernel),
        to_numpy(layer.bias) if use_bias else None,
        to_numpy(bn.gamma),
        to_numpy(bn.beta),
        to_numpy(bn.moving_mean),
        to_numpy(bn.moving_variance),
        0.01,
        layout,
    )
    np.testing.assert_allclose(
        to_numpy(new_layer.kernel), expected_kernel, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        to_numpy(new_layer.bias), expected_bias, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("center, scale", [(False, True), (True, False)])
@pytest.mark.parametrize("bn_name", sorted(BN_CLASSES))
def test_center_and_scale_off(rng, bn_name, center, scale):
    conv = keras.layers.Conv2D(4, 3, use_bias=False)
    bn = BN_CLASSES[bn_name](center=center, scale=scale)
    model = keras.Sequential([keras.Input((6, 6, 2)), conv, bn])
    _randomize(model, rng)
    folded = keras_norms.fold_batch_normalization(model)
    _assert_same_outputs(model, folded, rng.normal(size=(2, 6, 6, 2)))
    expected_kernel, expected_bias = reference_folding.fold(
        to_numpy(conv.kernel),
        None,
        to_numpy(bn.gamma) if scale else None,
        to_numpy(bn.beta) if center else None,
        to_numpy(bn.moving_mean),
        to_numpy(bn.moving_variance),
        1e-3,
        "last",
    )
    np.testing.assert_allclose(
        to_numpy(folded.layers[0].kernel), expected_kernel, rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(folded.layers[0].bias), expected_bias, rtol=1e-6, atol=1e-6
    )


def _branchy_model():
    """Foldable and non-foldable BN layers in one functional model."""
    inputs = keras.Input((8, 8, 3), name="image")
    first = keras.layers.BatchNormalization(name="bn_on_input")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(first)
    x = BatchNormalization(name="bn_a")(x)  # foldable
    x = keras.layers.ReLU()(x)
    # A skip connection: conv_b's output is used by bn_b and by the Add.
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    skip = keras.layers.Add()([BatchNormalization(name="bn_b")(y), y])
    # An activation between the convolution and BN.
    z = keras.layers.Conv2D(4, 1, activation="relu", name="conv_c")(skip)
    z = keras.layers.BatchNormalization(name="bn_c")(z)
    # A ReLU layer between the convolution and BN.
    r = keras.layers.Conv2D(4, 1, name="conv_d")(z)
    r = keras.layers.BatchNormalization(name="bn_d")(keras.layers.ReLU()(r))
    # BN over a non-channel axis after a convolution.
    w = keras.layers.Conv2D(8, 1, name="conv_e")(r)
    w = BatchNormalization(axis=1, name="bn_e")(w)
    # A convolution output that is also a model output.
    d = keras.layers.Conv2D(2, 1, name="conv_f")(w)
    d_bn = keras.layers.BatchNormalization(name="bn_f")(d)
    pooled = keras.layers.GlobalAveragePooling2D()(d_bn)
    head = keras.layers.Dense(5, name="dense")(pooled)
    head = BatchNormalization(name="bn_dense")(head)  # foldable
    return keras.Model(inputs, [head, d], name="branchy")


def test_functional_model_with_branches(rng):
    model = _branchy_model()
    _randomize(model, rng)
    folded, report = keras_norms.fold_batch_normalization(
        model, return_report=True
    )
    assert report["folded"] == [("conv_a", "bn_a"), ("dense", "bn_dense")]
    reasons = dict(report["not_folded"])
    assert sorted(reasons) == [
        "bn_b",
        "bn_c",
        "bn_d",
        "bn_e",
        "bn_f",
        "bn_on_input",
    ]
    assert "model input" in reasons["bn_on_input"]
    assert "'conv_b' is also used elsewhere" in reasons["bn_b"]
    assert "activation 'relu'" in reasons["bn_c"]
    assert "ReLU" in reasons["bn_d"]
    assert "axis=1" in reasons["bn_e"]
    assert "'conv_f' is also used elsewhere" in reasons["bn_f"]
    assert len(folded.layers) == len(model.layers) - 2
    names = [layer.name for layer in folded.layers]
    assert "bn_a" not in names and "bn_dense" not in names and "bn_b" in names
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    for got, expected in zip(
        folded(x, training=False), model(x, training=False), strict=True
    ):
        # (TensorFlow's CPU kernels without oneDNN: one output in 512 was
        # off by 6.3e-5 here, float32 rounding of the folded convolution.)
        np.testing.assert_allclose(
            to_numpy(got), to_numpy(expected), rtol=1e-5, atol=1e-4
        )


def test_original_model_is_not_modified(rng):
    model = _branchy_model()
    _randomize(model, rng)
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    config, weights = model.get_config(), _weights(model)
    layers = list(model.layers)
    outputs = [to_numpy(y) for y in model(x, training=False)]
    folded = keras_norms.fold_batch_normalization(model)
    assert model.get_config() == config
    assert list(model.layers) == layers
    for before, after in zip(weights, _weights(model), strict=True):
        np.testing.assert_array_equal(before, after)
    # The copy shares no layer or variable with the original.
    assert not {id(layer) for layer in folded.layers} & {
        id(layer) for layer in model.layers
    }
    assert not {id(w) for w in folded.weights} & {id(w) for w in model.weights}
    assert folded.compiled
    for weight in folded.weights:
        weight.assign(np.zeros(weight.shape))
    for before, after in zip(outputs, model(x, training=False), strict=True):
        np.testing.assert_array_equal(before, to_numpy(after))


def test_shared_layers_are_not_folded(rng):
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(4, name="shared_dense")
    bn = BatchNormalization(name="bn_shared_input")
    first = bn(dense(inputs))
    second = BatchNormalization(name="bn_second")(dense(first))
    shared_bn = BatchNormalization(name="shared_bn")
    a = shared_bn(keras.layers.Dense(4, name="dense_a")(second))
    b = shared_bn(keras.layers.Dense(4, name="dense_b")(second))
    model = keras.Model(inputs, keras.layers.Add()([a, b]))
    _randomize(model, rng)
    folded, report = keras_norms.fold_batch_normalization(
        model, return_report=True
    )
    assert report["folded"] == []
    reasons = dict(report["not_folded"])
    assert "'shared_dense' is called more than once" in reasons["bn_second"]
    assert "called more than once" in reasons["shared_bn"]
    _assert_same_outputs(model, folded, rng.normal(size=(3, 4)))


def test_training_true_call_is_not_folded(rng):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3)(inputs)
    outputs = BatchNormalization(name="always_training")(x, training=True)
    model = keras.Model(inputs, outputs)
    _, report = keras_norms.fold_batch_normalization(model, return_report=True)
    assert report["folded"] == []
    assert "training=True" in dict(report["not_folded"])["always_training"]


def test_sequential_with_bn_first_and_after_activation(rng):
    model = keras.Sequential(
        [
            keras.Input((5,)),
            BatchNormalization(name="bn_first"),
            keras.layers.Dense(4, activation="tanh", name="tanh_dense"),
            keras.layers.BatchNormalization(name="bn_after_tanh"),
            keras.layers.Dense(3, name="linear_dense"),
            BatchNormalization(name="bn_last"),
        ]
    )
    _randomize(model, rng)
    folded, report = keras_norms.fold_batch_normalization(
        model, return_report=True
    )
    assert report["folded"] == [("linear_dense", "bn_last")]
    assert [name for name, _ in report["not_folded"]] == [
        "bn_first",
        "bn_after_tanh",
    ]
    assert [layer.name for layer in folded.layers] == [
        "bn_first",
        "tanh_dense",
        "bn_after_tanh",
        "linear_dense",
    ]
    _assert_same_outputs(model, folded, rng.normal(size=(4, 5)))


def test_nested_models_are_folded_recursively(rng):
    block = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3, name="inner_conv"),
            BatchNormalization(name="inner_bn"),
        ],
        name="block",
    )
    inputs = keras.Input((6, 6, 2))
    x = block(inputs)
    x = keras.layers.Conv2D(2, 1, name="outer_conv")(x)
    x = keras.layers.BatchNormalization(name="outer_bn")(x)
    model = keras.Model(inputs, x)
    _randomize(model, rng)
    _randomize(block, rng)
    folded, report = keras_norms.fold_batch_normalization(
        model, return_report=True
    )
    assert sorted(report["folded"]) == [
        ("block/inner_conv", "block/inner_bn"),
        ("outer_conv", "outer_bn"),
    ]
    assert len(folded.layers[1].layers) == 1
    _assert_same_outputs(model, folded, rng.normal(size=(2, 6, 6, 2)))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.bn = BatchNormalization()

    def call(self, inputs, training=None):
        return self.bn(self.dense(inputs), training=training)


def test_subclassed_model_is_rejected(rng):
    model = _Subclassed()
    model(rng.normal(size=(2, 4)))
    with pytest.raises(TypeError, match="subclassed model of class _Sub"):
        keras_norms.fold_batch_normalization(model)
    # Also when nested inside a functional model.
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, _Subclassed()(inputs))
    with pytest.raises(TypeError, match="_Subclassed"):
        keras_norms.fold_batch_normalization(outer)


def test_non_model_and_unbuilt_model_are_rejected():
    with pytest.raises(TypeError, match="class Dense"):
        keras_norms.fold_batch_normalization(keras.layers.Dense(2))
    unbuilt = keras.Sequential(
        [keras.layers.Dense(2), BatchNormalization()], name="unbuilt"
    )
    with pytest.raises(ValueError, match="'unbuilt' is not built"):
        keras_norms.fold_batch_normalization(unbuilt)


@pytest.mark.parametrize(
    "layout, output_axis, shape",
    [
        ("last", -1, (3, 3, 2, 4)),
        ("transpose", -2, (3, 3, 4, 2)),
        ("depthwise", (-2, -1), (3, 3, 2, 2)),
    ],
)
def test_op_matches_oracle(rng, layout, output_axis, shape):
    kernel = rng.normal(size=shape)
    channels = 4
    bias, gamma, beta, mean = rng.normal(size=(4, channels))
    variance = rng.uniform(0.1, 2.0, channels)
    got_kernel, got_bias = keras_norms.ops.fold_batch_normalization_weights(
        kernel.astype("float32"),
        bias.astype("float32"),
        gamma,
        beta,
        mean,
        variance,
        epsilon=0.05,
        output_axis=output_axis,
    )
    expected_kernel, expected_bias = reference_folding.fold(
        kernel, bias, gamma, beta, mean, variance, 0.05, layout
    )
    assert keras.backend.standardize_dtype(got_kernel.dtype) == "float32"
    np.testing.assert_allclose(to_numpy(got_kernel), expected_kernel, rtol=1e-5)
    np.testing.assert_allclose(
        to_numpy(got_bias), expected_bias, rtol=1e-5, atol=1e-6
    )


def test_op_rejects_non_consecutive_output_axes():
    with pytest.raises(ValueError, match=r"output_axis=\(0, 2\)"):
        keras_norms.ops.fold_batch_normalization_weights(
            np.ones((2, 3, 2)),
            None,
            None,
            None,
            np.zeros(4),
            np.ones(4),
            output_axis=(0, 2),
        )


def test_trained_digits_cnn_folds_exactly(rng):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(16, 3, strides=2, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    initial_weights = _weights(model)
    model.fit(x[:1024], y[:1024], batch_size=128, epochs=2, verbose=0)
    # Training moved the moving statistics away from their (0, 1) start.
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(initial_weights, _weights(model), strict=True)
    )
    folded = keras_norms.fold_batch_normalization(model)
    assert len(folded.layers) == len(model.layers) - 2
    test = x[1024:]
    expected = to_numpy(model.predict(test, verbose=0))
    got = to_numpy(folded.predict(test, verbose=0))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert folded.compiled
    _, accuracy = model.evaluate(test, y[1024:], verbose=0)
    _, folded_accuracy = folded.evaluate(test, y[1024:], verbose=0)
    assert folded_accuracy == pytest.approx(accuracy, abs=2e-3)
