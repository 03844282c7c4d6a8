"""keras_norms.layers.BatchNormalization against the NumPy oracle."""

import keras
import numpy as np
import pytest

from keras_norms.layers import BatchNormalization

import reference
from helpers import KERAS_VERSION
from helpers import to_numpy

CASES = [  # (input shape, axis)
    ((16, 5), -1),
    ((6, 5, 5, 3), -1),
    ((6, 3, 5, 5), 1),
    ((3, 4, 3, 3, 2), -1),
    ((8, 7, 4), 1),
]


def _random_affine(layer, rng):
    channels = layer.gamma.shape[0]
    gamma = rng.normal(1.0, 0.5, channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return gamma, beta


@pytest.mark.parametrize("shape, axis", CASES)
def test_training_step_matches_oracle(rng, shape, axis):
    x = rng.normal(3.0, 2.0, shape).astype("float32")
    layer = BatchNormalization(axis=axis, momentum=0.8, epsilon=1e-3)
    layer.build(shape)
    gamma, beta = _random_affine(layer, rng)
    y = layer(x, training=True)
    ref_y, mean, variance, _ = reference.batch_norm_train(
        x, axis, gamma, beta, 1e-3
    )
    np.testing.assert_allclose(to_numpy(y), ref_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean),
        reference.moving_average(0.0, mean, 0.8),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance),
        reference.moving_average(1.0, variance, 0.8),
        rtol=1e-5,
    )


@pytest.mark.parametrize("shape, axis", CASES)
def test_inference_uses_moving_statistics(rng, shape, axis):
    x = rng.normal(size=shape).astype("float32")
    layer = BatchNormalization(axis=axis)
    layer.build(shape)
    gamma, beta = _random_affine(layer, rng)
    channels = shape[axis]
    mean = rng.normal(size=channels).astype("float32")
    variance = rng.uniform(0.5, 3.0, channels).astype("float32")
    layer.moving_mean.assign(mean)
    layer.moving_variance.assign(variance)
    for training in (False, None):
        y = layer(x, training=training)
        ref = reference.batch_norm_inference(
            x, mean, variance, axis, gamma, beta, 1e-3
        )
        np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), mean)


@pytest.mark.parametrize("unbiased", [False, True])
def test_moving_statistics_over_several_steps(rng, unbiased):
    layer = BatchNormalization(
        momentum=0.7, unbiased_moving_variance=unbiased, center=False
    )
    moving_mean, moving_variance = np.zeros(4), np.ones(4)
    for step in range(5):
        x = rng.normal(step, 1.0 + step, (10, 3, 4)).astype("float32")
        layer(x, training=True)
        _, mean, variance, count = reference.batch_norm_train(x)
        if unbiased:
            variance = variance * count / (count - 1)
        moving_mean = reference.moving_average(moving_mean, mean, 0.7)
        moving_variance = reference.moving_average(
            moving_variance, variance, 0.7
        )
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), moving_mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), moving_variance, rtol=1e-5
    )


def test_unbiased_variance_does_not_change_the_training_output(rng):
    x = rng.normal(size=(5, 3)).astype("float32")
    biased = BatchNormalization()(x, training=True)
    unbiased = BatchNormalization(unbiased_moving_variance=True)(
        x, training=True
    )
    np.testing.assert_allclose(to_numpy(biased), to_numpy(unbiased), atol=1e-6)


def test_frozen_layer_runs_in_inference_mode(rng):
    x = rng.normal(5.0, 2.0, (8, 3)).astype("float32")
    layer = BatchNormalization()
    layer.build(x.shape)
    layer.trainable = False
    y = layer(x, training=True)
    ref = reference.batch_norm_inference(x, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-5)
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), np.zeros(3))


def test_mask_excludes_padded_steps_from_statistics(rng):
    x = rng.normal(2.0, 1.0, (5, 6, 3)).astype("float32")
    mask = rng.random((5, 6)) > 0.3
    x[~mask] = 1e3  # padding values that would dominate the statistics
    layer = BatchNormalization(momentum=0.0, epsilon=1e-3)
    y = layer(x, training=True, mask=mask)
    ref_y, mean, variance, _ = reference.batch_norm_train(
        x, -1, mask=mask[..., None]
    )
    np.testing.assert_allclose(to_numpy(layer.moving_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), variance, rtol=1e-5
    )
    np.testing.assert_allclose(to_numpy(y)[mask], ref_y[mask], rtol=1e-4)


def test_mask_from_an_embedding_in_a_model(rng):
    tokens = np.array([[3, 4, 0, 0], [5, 0, 0, 0], [1, 2, 3, 4]])
    inputs = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(6, 2, mask_zero=True)(inputs)
    outputs = BatchNormalization(momentum=0.0)(embedded, training=True)
    model = keras.Model(inputs, outputs)
    model(tokens)
    bn = model.layers[-1]
    table = to_numpy(model.layers[1].embeddings)
    _, mean, _, _ = reference.batch_norm_train(
        table[tokens], -1, mask=(tokens != 0)[..., None]
    )
    np.testing.assert_allclose(to_numpy(bn.moving_mean), mean, rtol=1e-5)


def test_moving_statistics_update_inside_fit(rng):
    # A repeated batch makes the moving mean follow momentum**steps exactly,
    # whatever the backend's training loop (JAX jit, tf.function, torch).
    x = rng.normal(3.0, 2.0, (32, 4)).astype("float32")
    model = keras.Sequential(
        [keras.Input((4,)), BatchNormalization(momentum=0.5)]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x, batch_size=32, epochs=3, verbose=0, shuffle=False)
    _, mean, variance, _ = reference.batch_norm_train(x)
    bn = model.layers[0]
    np.testing.assert_allclose(
        to_numpy(bn.moving_mean), (1 - 0.5**3) * mean, rtol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(bn.moving_variance),
        0.5**3 + (1 - 0.5**3) * variance,
        rtol=1e-5,
    )


@pytest.mark.parametrize("shape, axis", [((16, 5), -1), ((4, 3, 5, 5), 1)])
def test_drop_in_for_keras_batch_normalization(rng, shape, axis):
    config = keras.layers.BatchNormalization(
        axis=axis, momentum=0.9, epsilon=1e-2
    ).get_config()
    ours = BatchNormalization.from_config(config)
    theirs = keras.layers.BatchNormalization.from_config(config)
    ours.build(shape)
    theirs.build(shape)
    assert [w.path.split("/")[-1] for w in ours.weights] == [
        w.path.split("/")[-1] for w in theirs.weights
    ]
    weights = [rng.uniform(0.5, 2.0, w.shape) for w in theirs.weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = rng.normal(size=shape).astype("float32")
    for training in (False, True):
        np.testing.assert_allclose(
            to_numpy(ours(x, training=training)),
            to_numpy(theirs(x, training=training)),
            rtol=1e-4,
            atol=1e-4,
        )
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5)


def test_large_mean_data_matches_float64(rng):
    x = (1e4 + rng.normal(size=(256, 8))).astype("float32")
    y = BatchNormalization()(x, training=True)
    ref, *_ = reference.batch_norm_train(x)
    np.testing.assert_allclose(to_numpy(y), ref, atol=1e-3)


@pytest.mark.parametrize(
    "clipping", [None, {"rmax": 1.5, "rmin": 0.8, "dmax": 0.5}]
)
def test_batch_renormalization_matches_oracle_over_steps(rng, clipping):
    layer = BatchNormalization(
        renorm=True,
        renorm_clipping=clipping,
        renorm_momentum=0.6,
        momentum=0.7,
    )
    layer.build((None, 3))
    gamma, beta = _random_affine(layer, rng)
    renorm_mean, renorm_stddev = np.zeros(3), np.ones(3)
    moving_mean, moving_stddev = np.zeros(3), np.ones(3)
    for step in range(4):
        x = rng.normal(2.0 * step, 1.0 + step, (16, 3)).astype("float32")
        y = layer(x, training=True)
        ref, mean, variance = reference.batch_renorm_train(
            x, renorm_mean, renorm_stddev, gamma, beta, 1e-3, clipping
        )
        np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-4)
        stddev = np.sqrt(variance + 1e-3)
        renorm_mean = reference.moving_average(renorm_mean, mean, 0.6)
        renorm_stddev = reference.moving_average(renorm_stddev, stddev, 0.6)
        moving_mean = reference.moving_average(moving_mean, mean, 0.7)
        moving_stddev = reference.moving_average(moving_stddev, stddev, 0.7)
    for name, expected in (
        ("renorm_mean", renorm_mean),
        ("renorm_stddev", renorm_stddev),
        ("moving_mean", moving_mean),
        ("moving_stddev", moving_stddev),
        ("moving_variance", moving_stddev**2 - 1e-3),
    ):
        np.testing.assert_allclose(
            to_numpy(getattr(layer, name)),
            expected,
            rtol=1e-4,
            atol=1e-5,
            err_msg=name,
        )


def test_batch_renormalization_floors_a_tiny_renorm_stddev(rng):
    """Early in training the renorm stddev can be ~0: r and d divide by
    max(stddev, sqrt(epsilon)), not by the stddev (nor by epsilon)."""
    layer = BatchNormalization(renorm=True, epsilon=1e-3)
    layer.build((None, 3))
    gamma, beta = _random_affine(layer, rng)
    # Below the floor sqrt(1e-3) = 0.032, between it and epsilon, above.
    renorm_stddev = np.array([1e-5, 0.01, 0.5])
    renorm_mean = np.array([0.1, -0.2, 0.3])
    layer.renorm_stddev.assign(renorm_stddev.astype("float32"))
    layer.renorm_mean.assign(renorm_mean.astype("float32"))
    x = rng.normal(0.2, 0.05, (16, 3)).astype("float32")
    y = layer(x, training=True)
    expected, _, _ = reference.batch_renorm_train(
        x, renorm_mean, renorm_stddev, gamma, beta, 1e-3
    )
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    KERAS_VERSION < (3, 14),
    reason=f"Keras {keras.__version__} has no renorm (new in Keras 3.14)",
)
def test_batch_renormalization_drop_in_for_keras(rng):
    config = keras.layers.BatchNormalization(
        renorm=True, renorm_clipping={"rmax": 2.0, "dmax": 1.0}
    ).get_config()
    ours = BatchNormalization.from_config(config)
    theirs = keras.layers.BatchNormalization.from_config(config)
    for layer in (ours, theirs):
        layer.build((None, 4, 3))
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    for step in range(3):
        x = rng.normal(step, 2.0, (8, 4, 3)).astype("float32")
        np.testing.assert_allclose(
            to_numpy(ours(x, training=True)),
            to_numpy(theirs(x, training=True)),
            rtol=1e-4,
            atol=1e-4,
        )
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5)
