"""TimestepBatchNormalization / RecurrentBatchNormalization vs the oracle."""

import keras
import numpy as np
import pytest

from keras_norms.layers import RecurrentBatchNormalization
from keras_norms.layers import TimestepBatchNormalization

import reference_recurrent as reference
from helpers import save_and_load
from helpers import to_numpy


def _drifting_sequences(rng, shape):
    """Data whose mean and spread change with the time step."""
    steps = np.arange(shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
    return (rng.normal(size=shape) * (1 + steps) + 3.0 * steps).astype(
        "float32"
    )


@pytest.mark.parametrize("shape", [(8, 5, 3), (6, 4, 2, 3)])
def test_training_step_matches_oracle(rng, shape):
    x = _drifting_sequences(rng, shape)
    layer = TimestepBatchNormalization(momentum=0.6)
    layer.build(shape)
    gamma = rng.normal(size=3).astype("float32")
    beta = rng.normal(size=3).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    y = layer(x, training=True)
    ref, means, variances, _ = reference.timestep_batch_norm_train(
        x, gamma, beta
    )
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), 0.4 * means, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), 0.6 + 0.4 * variances, rtol=1e-5
    )


def test_shorter_sequences_and_masks_update_only_their_steps(rng):
    layer = TimestepBatchNormalization(
        max_timesteps=6, momentum=0.5, unbiased_moving_variance=True
    )
    mean_table, variance_table = np.zeros((6, 2)), np.ones((6, 2))
    for length in (6, 4, 5):
        x = _drifting_sequences(rng, (7, length, 2))
        mask = rng.random((7, length)) > 0.3
        mask[:, -1] = False  # a step padded in every sample
        layer(x, training=True, mask=mask)
        _, means, variances, counts = reference.timestep_batch_norm_train(
            x, mask=mask
        )
        unbiased = variances * (counts / np.maximum(counts - 1, 1))[:, None]
        mean_table = reference.update_tables(mean_table, means, counts, 0.5)
        variance_table = reference.update_tables(
            variance_table, unbiased, counts, 0.5
        )
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), mean_table, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), variance_table, rtol=1e-5
    )


def test_inference_beyond_max_timesteps_uses_last_step(rng):
    layer = TimestepBatchNormalization()
    layer.build((None, 4, 3))
    means = rng.normal(size=(4, 3)).astype("float32")
    variances = rng.uniform(0.5, 2.0, (4, 3)).astype("float32")
    layer.moving_mean.assign(means)
    layer.moving_variance.assign(variances)
    x = rng.normal(size=(2, 9, 3)).astype("float32")
    y = layer(x, training=False)
    ref = reference.timestep_batch_norm_inference(x, means, variances)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-5, atol=1e-5)


def test_training_on_longer_sequences_is_an_error(rng):
    layer = TimestepBatchNormalization(max_timesteps=3)
    with pytest.raises(ValueError, match="Received: 5 steps"):
        layer(np.ones((2, 5, 1), "float32"), training=True)


def test_recurrent_defaults():
    layer = RecurrentBatchNormalization()
    layer.build((None, 3, 4))
    assert layer.beta is None
    np.testing.assert_allclose(
        to_numpy(layer.gamma), np.full(4, 0.1), rtol=1e-7
    )
    assert layer.moving_mean.shape == (3, 4)


def test_statistics_really_update_inside_fit(rng):
    # Per-step statistics differ by step: shared statistics would fail.
    x = _drifting_sequences(rng, (16, 5, 2))
    model = keras.Sequential(
        [keras.Input((5, 2)), TimestepBatchNormalization(momentum=0.5)]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x, batch_size=16, epochs=3, verbose=0, shuffle=False)
    _, means, variances, _ = reference.timestep_batch_norm_train(x)
    layer = model.layers[0]
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), (1 - 0.5**3) * means, rtol=1e-4
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance),
        0.5**3 + (1 - 0.5**3) * variances,
        rtol=1e-4,
    )


def test_masking_layer_in_a_model(rng, tmp_path):
    x = _drifting_sequences(rng, (6, 5, 2))
    x[:3, 3:] = 0.0  # padding
    inputs = keras.Input((5, 2))
    masked = keras.layers.Masking(0.0)(inputs)
    outputs = TimestepBatchNormalization(momentum=0.0)(masked, training=True)
    model = keras.Model(inputs, outputs)
    model(x)
    _, means, _, _ = reference.timestep_batch_norm_train(
        x, mask=np.any(x != 0, axis=-1)
    )
    layer = model.layers[-1]
    np.testing.assert_allclose(to_numpy(layer.moving_mean), means, rtol=1e-5)
    loaded = save_and_load(model, tmp_path)
    np.testing.assert_array_equal(
        to_numpy(loaded.layers[-1].moving_mean), to_numpy(layer.moving_mean)
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: TimestepBatchNormalization(max_timesteps=0),
            "max_timesteps=0",
        ),
        (lambda: TimestepBatchNormalization(max_timesteps=2.5), "2.5"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (TimestepBatchNormalization(), (4, 3), "rank >= 3"),
        (TimestepBatchNormalization(axis=1), (4, 3, 2), "time axis"),
        (TimestepBatchNormalization(), (4, None, 2), "max_timesteps"),
    ],
)
def test_bad_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.build(shape)


def test_step_masked_in_every_sample_uses_its_moving_statistics(rng):
    # Issue 11, defect 5: such a step has no batch statistics; it used to
    # be normalized with (0, 0), i.e. scaled by 1 / sqrt(epsilon).
    x = _drifting_sequences(rng, (6, 4, 3))
    mask = np.ones((6, 4), bool)
    mask[:, 2] = False  # step 2: padding in every sample
    mask[0, 1] = False
    layer = TimestepBatchNormalization(momentum=0.5)
    layer.build(x.shape)
    mean_table = rng.normal(size=(4, 3))
    variance_table = rng.uniform(0.5, 2.0, (4, 3))
    layer.moving_mean.assign(mean_table)
    layer.moving_variance.assign(variance_table)
    y = layer(x, training=True, mask=mask)
    expected, *_ = reference.timestep_batch_norm_train(
        x,
        np.ones(3),
        np.zeros(3),
        mask=mask,
        mean_table=mean_table,
        variance_table=variance_table,
    )
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-4, atol=1e-4)
    # Its moving statistics stay; the others move.
    np.testing.assert_allclose(to_numpy(layer.moving_mean)[2], mean_table[2])
    assert not np.allclose(to_numpy(layer.moving_mean)[1], mean_table[1])


def test_time_major_sequences_match_oracle(rng):
    # The recurrent layers' time loops hand their input terms time-major
    # (time, batch, features), with the mask (time, batch).
    x = _drifting_sequences(rng, (6, 4, 3))
    mask = rng.random((6, 4)) > 0.3
    mask[:, 2] = False  # step 2: padding in every sample
    layer = TimestepBatchNormalization(momentum=0.5)
    layer.build(x.shape)
    gamma = rng.normal(size=3).astype("float32")
    beta = rng.normal(size=3).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    mean_table = rng.normal(size=(4, 3))
    variance_table = rng.uniform(0.5, 2.0, (4, 3))
    layer.moving_mean.assign(mean_table)
    layer.moving_variance.assign(variance_table)
    y = layer.normalize_sequence(
        np.transpose(x, (1, 0, 2)), True, mask.T, time_axis=0
    )
    expected, means, _, counts = reference.timestep_batch_norm_train(
        x,
        gamma,
        beta,
        mask=mask,
        mean_table=mean_table,
        variance_table=variance_table,
    )
    np.testing.assert_allclose(
        np.transpose(to_numpy(y), (1, 0, 2)), expected, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean),
        reference.update_tables(mean_table, means, counts, 0.5),
        rtol=1e-5,
        atol=1e-5,
    )
    y = layer.normalize_sequence(np.transpose(x, (1, 0, 2)), False, time_axis=0)
    expected = reference.timestep_batch_norm_inference(
        x,
        to_numpy(layer.moving_mean),
        to_numpy(layer.moving_variance),
        gamma,
        beta,
    )
    np.testing.assert_allclose(
        np.transpose(to_numpy(y), (1, 0, 2)), expected, rtol=1e-5, atol=1e-5
    )
