"""InstanceNormalization against the NumPy oracle, with masks, and the
TF-Addons configs it takes."""

import keras
import numpy as np
import pytest

from keras_norms.layers import GroupNormalization
from keras_norms.layers import InstanceNormalization

import reference
from helpers import float64_enabled
from helpers import to_numpy
from helpers import value_and_gradients


def _randomized(layer, rng):
    gamma = rng.normal(size=layer.gamma.shape)
    beta = rng.normal(size=layer.beta.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return gamma, beta


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((2, 5, 5, 3), -1),
        ((2, 3, 4, 5), 1),
        ((3, 7, 4), -1),
        ((2, 2, 3, 4, 2), 4),
    ],
)
def test_matches_oracle(rng, shape, axis):
    x = (rng.normal(size=shape) * 3 + 2).astype("float32")
    layer = InstanceNormalization(axis=axis)
    layer.build(shape)
    gamma, beta = _randomized(layer, rng)
    np.testing.assert_allclose(
        to_numpy(layer(x)),
        reference.instance_norm(x, axis, gamma, beta),
        atol=2e-5,
    )


def test_is_group_normalization_with_one_channel_per_group(rng):
    x = rng.normal(size=(2, 4, 4, 6)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(InstanceNormalization()(x)),
        to_numpy(GroupNormalization(groups=6)(x)),
        atol=1e-6,
    )


def test_masked_steps_do_not_enter_the_statistics(rng):
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    lengths = np.array([6, 2, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]
    # Padding with large values: they would dominate the statistics.
    x = np.where(mask[..., None], x, 50.0).astype("float32")
    layer = InstanceNormalization()
    layer.build(x.shape)
    gamma, beta = _randomized(layer, rng)
    outputs = to_numpy(layer(x, mask=mask))
    expected = reference.instance_norm(x, -1, gamma, beta, mask=mask[..., None])
    np.testing.assert_allclose(outputs, expected, atol=2e-5)
    unmasked = reference.instance_norm(x, -1, gamma, beta)
    assert np.abs(outputs - unmasked).max() > 0.1  # the mask matters here


def test_mask_from_an_embedding_in_a_model(rng):
    tokens = np.array([[3, 5, 2, 0, 0], [1, 4, 0, 0, 0]])
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(8, 4, mask_zero=True)(inputs)
    normalized = InstanceNormalization(center=False, scale=False)(embedded)
    model = keras.Model(inputs, [embedded, normalized])
    values, outputs = (to_numpy(t) for t in model(tokens))
    expected = reference.instance_norm(values, -1, mask=(tokens > 0)[..., None])
    np.testing.assert_allclose(outputs, expected, atol=2e-5)


def test_masked_gradient_by_finite_differences(rng):
    x = rng.normal(size=(2, 5, 3))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    weights = rng.normal(size=x.shape)
    with float64_enabled():
        layer = InstanceNormalization(dtype="float64")
        layer.build(x.shape)
        gamma, beta = _randomized(layer, rng)

        def loss(t):
            y = layer(t, mask=keras.ops.convert_to_tensor(mask))
            return keras.ops.sum(y * keras.ops.convert_to_tensor(weights))

        _, (gradient,) = value_and_gradients(loss, x)

    def oracle_loss(a):
        y = reference.instance_norm(a, -1, gamma, beta, mask=mask[..., None])
        return float(np.sum(y * weights))

    np.testing.assert_allclose(
        gradient,
        reference.numerical_gradient(oracle_loss, x),
        rtol=1e-5,
        atol=1e-7,
    )


def _tf_addons_config():
    """What ``tfa.layers.InstanceNormalization().get_config()`` wrote
    (TF-Addons 0.23, Keras 2 serialization of the initializers)."""
    return {
        "name": "instance_normalization",
        "trainable": True,
        "dtype": "float32",
        "groups": -1,
        "axis": -1,
        "epsilon": 0.001,
        "center": True,
        "scale": True,
        "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}},
        "beta_regularizer": None,
        "gamma_regularizer": None,
        "beta_constraint": None,
        "gamma_constraint": None,
    }


def test_tf_addons_config_builds_ours(rng):
    layer = InstanceNormalization.from_config(_tf_addons_config())
    assert (layer.groups, layer.axis, layer.epsilon) == (-1, -1, 1e-3)
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x)), reference.instance_norm(x), atol=2e-5
    )
    # A TF-Addons model file names the class "Addons>InstanceNormalization".
    restored = keras.saving.deserialize_keras_object(
        {
            "class_name": "Addons>InstanceNormalization",
            "config": _tf_addons_config(),
        },
        custom_objects={"Addons>InstanceNormalization": InstanceNormalization},
    )
    assert isinstance(restored, InstanceNormalization)


def test_tf_addons_config_of_a_built_layer_builds_ours(rng):
    # TF-Addons replaced groups=-1 by the number of channels at build, so
    # the configs in its saved models carry that number.
    config = {**_tf_addons_config(), "groups": 3}
    layer = InstanceNormalization.from_config(config)
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x)), reference.instance_norm(x), atol=2e-5
    )
    assert layer.get_config()["groups"] == -1


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_other_groups_are_rejected_at_build(groups):
    layer = InstanceNormalization(groups=groups)
    with pytest.raises(ValueError, match=f"groups={groups!r}"):
        layer.build((2, 4, 3))


def test_rank_two_input_is_rejected():
    with pytest.raises(ValueError, match=r"rank >= 3"):
        InstanceNormalization()(np.ones((2, 3), "float32"))


def test_large_mean_data(rng):
    x = (rng.normal(size=(2, 8, 8, 3)) + 1e4).astype("float32")
    np.testing.assert_allclose(
        to_numpy(InstanceNormalization()(x)),
        reference.instance_norm(x),
        atol=2e-3,
    )
