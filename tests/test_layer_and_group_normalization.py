"""LayerNormalization and GroupNormalization against the NumPy oracle."""

import keras
import numpy as np
import pytest

from keras_norms.layers import GroupNormalization
from keras_norms.layers import LayerNormalization

import reference
from helpers import to_numpy


def _randomize_weights(layer, rng):
    for weight in layer.weights:
        weight.assign(rng.normal(1.0, 0.5, weight.shape).astype("float32"))
    return [to_numpy(w) for w in layer.weights]


@pytest.mark.parametrize(
    "shape, axis",
    [((4, 6), -1), ((1, 6), -1), ((3, 4, 5), [1, 2]), ((2, 3, 4, 5), 1)],
)
def test_layer_normalization_matches_oracle(rng, shape, axis):
    x = rng.normal(4.0, 3.0, shape).astype("float32")
    layer = LayerNormalization(axis=axis, epsilon=1e-4)
    layer.build(shape)
    gamma, beta = _randomize_weights(layer, rng)
    for training in (True, False):
        y = layer(x, training=training)
        ref = reference.layer_norm(x, axis, gamma, beta, 1e-4)
        np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "shape, groups, axis",
    [((4, 6), 3, -1), ((2, 5, 5, 6), 2, -1), ((2, 6, 4, 4), 3, 1)],
)
def test_group_normalization_matches_oracle(rng, shape, groups, axis):
    x = rng.normal(-2.0, 3.0, shape).astype("float32")
    layer = GroupNormalization(groups=groups, axis=axis)
    layer.build(shape)
    gamma, beta = _randomize_weights(layer, rng)
    y = layer(x)
    ref = reference.group_norm(x, groups, axis, gamma, beta)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-4)


def test_one_group_equals_layer_normalization_over_all_axes(rng):
    x = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    group = GroupNormalization(groups=1, center=False, scale=False)(x)
    layer = LayerNormalization(axis=[1, 2, 3], center=False, scale=False)(x)
    np.testing.assert_allclose(to_numpy(group), to_numpy(layer), atol=1e-5)


def test_groups_minus_one_is_instance_normalization(rng):
    x = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    y = GroupNormalization(groups=-1, center=False, scale=False)(x)
    mean = x.astype("float64").mean(axis=(1, 2), keepdims=True)
    variance = x.astype("float64").var(axis=(1, 2), keepdims=True)
    ref = (x - mean) / np.sqrt(variance + 1e-3)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "ours, theirs, shape",
    [
        (LayerNormalization, keras.layers.LayerNormalization, (4, 3, 6)),
        (GroupNormalization, keras.layers.GroupNormalization, (2, 4, 4, 64)),
    ],
)
def test_drop_in_for_keras_layer(rng, ours, theirs, shape):
    reference_layer = theirs()
    ours_layer = ours.from_config(reference_layer.get_config())
    reference_layer.build(shape)
    ours_layer.build(shape)
    weights = [rng.normal(size=w.shape) for w in reference_layer.weights]
    reference_layer.set_weights(weights)
    ours_layer.set_weights(weights)
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(
        to_numpy(ours_layer(x)), to_numpy(reference_layer(x)), atol=1e-4
    )


def test_large_mean_data_matches_float64(rng):
    x = (1e4 + rng.normal(size=(4, 512))).astype("float32")
    np.testing.assert_allclose(
        to_numpy(LayerNormalization()(x)), reference.layer_norm(x), atol=1e-3
    )
    y = GroupNormalization(groups=4)(x)
    np.testing.assert_allclose(
        to_numpy(y), reference.group_norm(x, 4), atol=1e-3
    )
