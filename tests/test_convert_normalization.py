"""keras_norms.convert_normalization: Keras's normalization layers to ours
and back.

The oracle is the original model: a converted model must compute what it
computes (inference outputs), from the same weights; a round trip must give
back the original configs.
"""

import time
import warnings

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms import layers as norm_layers

from helpers import save_and_load
from helpers import to_numpy

CLASS_NAMES = [
    name
    for name in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
    )
    if hasattr(keras.layers, name)
]
# name: (constructor arguments, input shape without batch)
ARGUMENTS = {
    "BatchNormalization": ({"epsilon": 0.01, "momentum": 0.9}, (5, 4)),
    "LayerNormalization": ({"axis": [-2, -1], "epsilon": 1e-4}, (5, 4)),
    "GroupNormalization": ({"groups": 2, "center": False}, (5, 4)),
    "RMSNormalization": ({"epsilon": 1e-5}, (5, 4)),
}


def _randomize(model, rng):
    """Random values in every weight (variances positive), so that equal
    outputs say the weights were carried over."""
    for weight in model.weights:
        values = rng.uniform(0.5, 2.0, size=weight.shape)
        if "variance" not in weight.name:
            values *= rng.choice([-1.0, 1.0], size=weight.shape)
        weight.assign(values.astype(weight.dtype))


def _weights(model):
    return [(w.path, to_numpy(w).copy()) for w in model.weights]


def _assert_same_outputs(expected_model, model, x):
    np.testing.assert_allclose(
        to_numpy(model(x, training=False)),
        to_numpy(expected_model(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )


def _assert_same_weights(expected_model, model):
    expected = [to_numpy(w) for w in expected_model.weights]
    actual = [to_numpy(w) for w in model.weights]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def _convert(model, **kwargs):
    """convert_normalization with its report, and no warning expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        return keras_norms.convert_normalization(
            model, return_report=True, **kwargs
        )


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_each_class_both_ways(rng, name):
    arguments, shape = ARGUMENTS[name]
    original = keras.Sequential(
        [keras.Input(shape), getattr(keras.layers, name)(**arguments)]
    )
    _randomize(original, rng)
    before = _weights(original)
    x = rng.normal(size=(3,) + shape).astype("float32")

    ours, report = _convert(original)
    layer = ours.layers[0]
    assert type(layer) is getattr(norm_layers, name)
    assert report["converted"][name] == [original.layers[0].name]
    assert report["kept"] == []
    assert isinstance(ours, keras.Sequential)
    _assert_same_outputs(original, ours, x)
    _assert_same_weights(original, ours)
    # Compiled calls too (on JAX they donate buffers: shared ones would be
    # deleted under the other model).
    np.testing.assert_allclose(
        original.predict(x, verbose=0),
        ours.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )

    back, report = _convert(ours, to="keras")
    assert type(back.layers[0]) is getattr(keras.layers, name)
    assert report["converted"][name] == [original.layers[0].name]
    assert back.layers[0].get_config() == original.layers[0].get_config()
    _assert_same_outputs(original, back, x)
    _assert_same_weights(original, back)

    # The original is untouched: same layer objects, classes and weights.
    assert type(original.layers[0]) is getattr(keras.layers, name)
    assert layer is not original.layers[0]
    for (path, value), (path_after, value_after) in zip(
        before, _weights(original), strict=True
    ):
        assert path == path_after
        np.testing.assert_array_equal(value, value_after)


def _nested_model():
    """Every class, in a functional model nested in a Sequential one, next
    to layers that stay as they are."""
    inputs = keras.Input((6, 6, 4), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    branch = keras.layers.LayerNormalization(name="ln")(x)
    x = keras.layers.GroupNormalization(groups=2, name="gn")(x)
    x = keras.layers.Add()([x, branch])
    if hasattr(keras.layers, "RMSNormalization"):
        x = keras.layers.RMSNormalization(name="rms")(x)
    x = keras.layers.Flatten()(x)
    inner = keras.Model(inputs, x, name="inner")
    return keras.Sequential(
        [
            keras.Input((6, 6, 4)),
            inner,
            keras.layers.Dense(3, name="head"),
            keras.layers.BatchNormalization(name="head_bn"),
        ],
        name="outer",
    )


def test_nested_functional_model_both_ways(rng):
    original = _nested_model()
    _randomize(original, rng)
    x = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    ours, report = _convert(original)
    expected = {
        "BatchNormalization": ["inner/bn", "head_bn"],
        "LayerNormalization": ["inner/ln"],
        "GroupNormalization": ["inner/gn"],
        "RMSNormalization": ["inner/rms"],
    }
    assert report == {
        "converted": {name: expected[name] for name in CLASS_NAMES},
        "kept": [],
    }
    inner = ours.get_layer("inner")
    assert isinstance(inner, keras.Model) and not isinstance(
        inner, keras.Sequential
    )
    for layer in inner.layers + ours.layers:
        if type(layer).__name__ in CLASS_NAMES:
            assert type(layer).__module__.startswith("keras_norms."), layer
    _assert_same_outputs(original, ours, x)
    _assert_same_weights(original, ours)

    back, report = _convert(ours, to="keras")
    assert report["converted"] == {name: expected[name] for name in CLASS_NAMES}
    _assert_same_outputs(original, back, x)
    original_inner = original.get_layer("inner")
    for layer in back.get_layer("inner").layers:
        assert (
            layer.get_config()
            == original_inner.get_layer(layer.name).get_config()
        )


def test_overrides_for_all_and_for_one_class(rng):
    original = _nested_model()
    ours, _ = _convert(
        original,
        epsilon=1e-5,
        unbiased_moving_variance=True,
        LayerNormalization={"epsilon": 0.1},
        BatchNormalization={"momentum": None, "virtual_batch_size": 2},
    )
    inner = ours.get_layer("inner")
    for bn in (inner.get_layer("bn"), ours.get_layer("head_bn")):
        config = bn.get_config()
        assert config["epsilon"] == 1e-5
        assert config["unbiased_moving_variance"] is True
        assert config["momentum"] is None
        assert config["virtual_batch_size"] == 2
    assert inner.get_layer("ln").get_config()["epsilon"] == 0.1  # class wins
    assert inner.get_layer("gn").get_config()["epsilon"] == 1e-5
    # momentum=None adds batch_count, from its initializer; the rest copied.
    bn = inner.get_layer("bn")
    assert float(to_numpy(bn.batch_count)) == 0.0
    np.testing.assert_array_equal(
        to_numpy(bn.moving_variance),
        to_numpy(original.get_layer("inner").get_layer("bn").moving_variance),
    )
    # The original keeps its configs.
    assert original.get_layer("head_bn").get_config()["epsilon"] == 1e-3


def test_synchronized_override(rng):
    original = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization()]
    )
    ours, _ = _convert(original, synchronized=True)
    assert ours.layers[0].get_config()["synchronized"] is True
    x = rng.normal(size=(4, 4)).astype("float32")
    _assert_same_outputs(original, ours, x)


def test_to_keras_keeps_what_keras_cannot_compute(rng):
    shape = (6, 6, 4)
    inputs = keras.Input(shape)
    x = norm_layers.BatchNormalization(momentum=None, name="cumulative")(inputs)
    x = norm_layers.BatchNormalization(
        unbiased_moving_variance=True, name="unbiased"
    )(x)
    x = norm_layers.BatchNormalization(virtual_batch_size=2, name="ghost")(x)
    x = norm_layers.RMSNormalization(unit_offset=True, name="offset")(x)
    x = norm_layers.LocalResponseNormalization(size=3, name="lrn")(x)
    x = norm_layers.InstanceNormalization(name="instance")(x)
    x = norm_layers.BatchNormalization(name="plain")(x)
    x = norm_layers.SpectralNormalization(
        keras.layers.Dense(2), name="spectral"
    )(x)
    model = keras.Model(inputs, x)
    _randomize(model, rng)
    with pytest.warns(UserWarning, match="kept 'cumulative'"):
        back, report = keras_norms.convert_normalization(
            model, to="keras", return_report=True
        )
    kept = dict(report["kept"])
    assert sorted(kept) == [
        "cumulative",
        "ghost",
        "instance",
        "lrn",
        "offset",
        "spectral",
        "unbiased",
    ]
    assert "momentum=None" in kept["cumulative"]
    assert "unbiased_moving_variance=True" in kept["unbiased"]
    assert "virtual_batch_size=2" in kept["ghost"]
    if hasattr(keras.layers, "RMSNormalization"):
        assert "unit_offset=True" in kept["offset"]
    else:  # Keras 3.8
        assert "no counterpart" in kept["offset"]
    assert "no counterpart" in kept["lrn"]
    assert "no counterpart" in kept["instance"]
    assert report["converted"]["BatchNormalization"] == ["plain"]
    for name in kept:
        assert type(back.get_layer(name)) is type(model.get_layer(name))
        assert (
            back.get_layer(name).get_config()
            == model.get_layer(name).get_config()
        )
    assert type(back.get_layer("plain")) is keras.layers.BatchNormalization
    _assert_same_outputs(model, back, rng.normal(size=(2,) + shape))
    _assert_same_weights(model, back)


def test_synchronized_to_keras():
    model = keras.Sequential(
        [keras.Input((4,)), norm_layers.BatchNormalization(synchronized=True)]
    )
    if keras.backend.backend() == "tensorflow":
        back, report = _convert(model, to="keras")
        assert back.layers[0].get_config()["synchronized"] is True
        assert type(back.layers[0]) is keras.layers.BatchNormalization
    else:
        with pytest.warns(UserWarning, match="kept"):
            back, report = keras_norms.convert_normalization(
                model, to="keras", return_report=True
            )
        (name, reason), *rest = report["kept"]
        assert not rest and "synchronized=True" in reason
        assert type(back.layers[0]) is norm_layers.BatchNormalization


def test_spectral_normalization_is_kept_both_ways(rng):
    # Same weights, different outputs: converting would change the model.
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.SpectralNormalization(
                keras.layers.Dense(3), name="spectral"
            ),
        ]
    )
    _randomize(model, rng)
    with pytest.warns(UserWarning, match="kept 'spectral'"):
        ours, report = keras_norms.convert_normalization(
            model, return_report=True
        )
    assert [name for name, _ in report["kept"]] == ["spectral"]
    assert type(ours.layers[0]) is keras.layers.SpectralNormalization
    _assert_same_outputs(model, ours, rng.normal(size=(2, 4)))


def test_compiled_model_stays_compiled(rng):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization()]
    )
    model.compile(optimizer="sgd", loss="mse")
    ours = keras_norms.convert_normalization(model)
    assert ours.compiled
    assert ours.get_compile_config() == model.get_compile_config()


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.bn = keras.layers.BatchNormalization()

    def call(self, inputs, training=None):
        return self.bn(inputs, training=training)


def test_bad_arguments(rng):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization()]
    )
    with pytest.raises(TypeError, match="class Dense"):
        keras_norms.convert_normalization(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="Received: to='torch'"):
        keras_norms.convert_normalization(model, to="torch")
    with pytest.raises(TypeError, match="`synchronised`.*synchronised=True"):
        keras_norms.convert_normalization(model, synchronised=True)
    # Keras's class has no such argument, so no override sets it.
    with pytest.raises(TypeError, match="`virtual_batch_size`"):
        keras_norms.convert_normalization(
            model, to="keras", virtual_batch_size=4
        )
    with pytest.raises(
        TypeError, match="LayerNormalization takes no .*`groups`"
    ):
        keras_norms.convert_normalization(
            model, LayerNormalization={"groups": 2}
        )
    with pytest.raises(TypeError, match="must be a dict"):
        keras_norms.convert_normalization(model, BatchNormalization=True)
    with pytest.raises(TypeError, match="`SpectralNormalization`"):
        keras_norms.convert_normalization(
            model, SpectralNormalization={"power_iterations": 2}
        )
    with pytest.raises(ValueError, match="no weight 'beta'"):
        keras_norms.convert_normalization(model, center=False)

    subclassed = _Subclassed()
    subclassed(rng.normal(size=(2, 4)))
    with pytest.raises(TypeError, match="subclassed model.*__init__"):
        keras_norms.convert_normalization(subclassed)
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, _Subclassed()(inputs))
    with pytest.raises(TypeError, match="_Subclassed"):
        keras_norms.convert_normalization(outer)


# Real architectures, built locally (weights=None: nothing is downloaded).
ARCHITECTURES = {
    "ResNet50": "resnet50",
    "MobileNetV2": "mobilenet_v2",
    "DenseNet121": "densenet121",
    "EfficientNetB0": "efficientnetb0",
}
BATCH = 2


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def architecture(request):
    """(name, model with random BN statistics, input batch), built once."""
    name = request.param
    rng = np.random.default_rng(1)
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(64, 64, 3), classes=10
    )
    for layer in model.layers:
        if type(layer) is keras.layers.BatchNormalization:
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
    x = rng.uniform(0, 255, size=(BATCH, 64, 64, 3)).astype("float32")
    return name, model, x


def _count(model, cls):
    return sum(type(layer) is cls for layer in model.layers)


@pytest.mark.slow
def test_architecture(architecture, tmp_path):
    name, original, x = architecture
    start = time.perf_counter()
    n_bn = _count(original, keras.layers.BatchNormalization)
    assert n_bn > 0
    ours, report = _convert(original)
    assert len(report["converted"]["BatchNormalization"]) == n_bn
    assert _count(ours, norm_layers.BatchNormalization) == n_bn
    assert _count(ours, keras.layers.BatchNormalization) == 0
    # Every other layer (EfficientNet's Rescaling, Normalization) stays.
    assert [
        type(layer)
        for layer in ours.layers
        if type(layer) is not norm_layers.BatchNormalization
    ] == [
        type(layer)
        for layer in original.layers
        if type(layer) is not keras.layers.BatchNormalization
    ]
    _assert_same_outputs(original, ours, x)

    back, report = _convert(ours, to="keras")
    assert len(report["converted"]["BatchNormalization"]) == n_bn
    assert _count(back, keras.layers.BatchNormalization) == n_bn
    _assert_same_outputs(original, back, x)

    loaded = save_and_load(ours, tmp_path)
    assert _count(loaded, norm_layers.BatchNormalization) == n_bn
    _assert_same_outputs(ours, loaded, x)

    folded, report = keras_norms.fold_batch_normalization(
        ours, return_report=True
    )
    assert len(report["folded"]) + len(report["not_folded"]) == n_bn
    assert len(folded.layers) == len(ours.layers) - len(report["folded"])
    if name == "DenseNet121":
        # Each dense block's BN normalizes a concatenation: nothing to fold
        # it into.
        reasons = [reason for _, reason in report["not_folded"]]
        assert any("Concatenate" in reason for reason in reasons)
        assert len(report["folded"]) > 0
    else:
        assert report["not_folded"] == []
    _assert_same_outputs(ours, folded, x)

    # Trains after conversion: two steps of batch 2 move the statistics.
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    bn = next(
        layer
        for layer in ours.layers
        if type(layer) is norm_layers.BatchNormalization
    )
    mean_before = to_numpy(bn.moving_mean).copy()
    history = ours.fit(
        x=np.concatenate([x, x[::-1]]),
        y=np.array([0, 1, 2, 3]),
        batch_size=BATCH,
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][-1])
    assert not np.array_equal(to_numpy(bn.moving_mean), mean_before)
    print(f"{name}: {time.perf_counter() - start:.1f} s")
