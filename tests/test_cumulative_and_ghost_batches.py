"""`BatchNormalization(momentum=None)` (the cumulative average of the
batch statistics) and ghost batch normalization (``virtual_batch_size``),
against the float64 NumPy oracles."""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import BNLSTM
from keras_norms.layers import BatchNormalization
from keras_norms.layers import TimestepBatchNormalization

import reference
from helpers import save_and_load
from helpers import sequences_with_step_statistics
from helpers import to_numpy

# momentum=None: the cumulative average ------------------------------------


@pytest.mark.parametrize("unbiased", [False, True])
def test_cumulative_average_is_the_mean_of_batch_statistics(
    rng, tmp_path, unbiased
):
    layer = BatchNormalization(momentum=None, unbiased_moving_variance=unbiased)
    batches = [
        rng.normal(i, 1.0 + i, (8, 4)).astype("float32") for i in range(5)
    ]
    model = keras.Sequential([keras.Input((4,)), layer])
    for batch in batches[:3]:
        layer(batch, training=True)
    factor = 8 / 7 if unbiased else 1.0

    def expected(k):
        return (
            np.mean([b.astype(np.float64).mean(0) for b in batches[:k]], 0),
            factor
            * np.mean([b.astype(np.float64).var(0) for b in batches[:k]], 0),
        )

    for got, value in zip(
        (layer.moving_mean, layer.moving_variance), expected(3), strict=True
    ):
        np.testing.assert_allclose(to_numpy(got), value, rtol=1e-5, atol=1e-6)
    assert float(to_numpy(layer.batch_count)) == 3.0
    # The counter is saved: after loading, the average goes on.
    loaded = save_and_load(model, tmp_path).layers[0]
    assert float(to_numpy(loaded.batch_count)) == 3.0
    for batch in batches[3:]:
        loaded(batch, training=True)
    for got, value in zip(
        (loaded.moving_mean, loaded.moving_variance), expected(5), strict=True
    ):
        np.testing.assert_allclose(to_numpy(got), value, rtol=1e-5, atol=1e-6)


def test_cumulative_average_under_fit_per_step(rng):
    # Learning rate 0: every step sees the same weights; the per-step
    # tables must be the plain mean over the 4 batches of each step's
    # statistics.
    x = sequences_with_step_statistics(rng, 32, time=4)
    layer = TimestepBatchNormalization(momentum=None)
    model = keras.Sequential([keras.Input((4, 3)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(x, x, batch_size=8, shuffle=False, epochs=1, verbose=0)
    batches = x.astype(np.float64).reshape(4, 8, 4, 3)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean),
        batches.mean(1).mean(0),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), batches.var(1).mean(0), rtol=1e-5
    )
    np.testing.assert_array_equal(to_numpy(layer.batch_count), [4.0] * 4)


def test_bnlstm_cumulative_average_trains(rng, tmp_path):
    x = sequences_with_step_statistics(rng, 16, time=5)
    model = keras.Sequential(
        [keras.Input((5, 3)), BNLSTM(4, momentum=None), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.ones((16, 1)), batch_size=8, epochs=2, verbose=0)
    cell = model.layers[0].cell
    for norm in (
        cell.input_normalization,
        cell.recurrent_normalization,
        cell.cell_normalization,
    ):
        np.testing.assert_array_equal(to_numpy(norm.batch_count), [4.0] * 5)
    loaded = save_and_load(model, tmp_path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_momentum_none_with_renorm_is_an_error():
    with pytest.raises(ValueError, match="momentum=None"):
        BatchNormalization(renorm=True, momentum=None)


# virtual_batch_size: ghost batch normalization ----------------------------


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_ghost_batches_match_the_oracle(rng, masked, unbiased):
    x = rng.normal(2.0, 3.0, (32, 5)).astype("float32")
    gamma = rng.uniform(0.5, 1.5, 5)
    beta = rng.normal(size=5)
    mask = rng.uniform(size=32) < 0.7 if masked else None
    layer = BatchNormalization(
        virtual_batch_size=8, momentum=0.6, unbiased_moving_variance=unbiased
    )
    layer.build((None, 5))
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    y = layer(x, training=True, mask=mask)
    expected, means, variances, counts = reference.ghost_batch_norm_train(
        x,
        8,
        gamma=gamma,
        beta=beta,
        mask=None if mask is None else mask[:, None],
    )
    # (Masked positions are normalized too, with their ghost's statistics.)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-4, atol=1e-4)
    # The moving statistics follow the (count-weighted) ghost average, of
    # each ghost's m / (m - 1) corrected variance with unbiased=True.
    if unbiased:
        variances = variances * counts / (counts - 1)
    mean = (counts * means).sum(0) / counts.sum(0)
    variance = (counts * variances).sum(0) / counts.sum(0)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), 0.4 * mean, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance),
        0.6 + 0.4 * variance,
        rtol=1e-4,
        atol=1e-5,
    )


def test_ghost_batches_in_images_and_inference(rng):
    # Channels-first 4-D data: statistics per ghost over (samples, H, W).
    x = rng.normal(1.0, 2.0, (12, 3, 4, 4)).astype("float32")
    layer = BatchNormalization(axis=1, virtual_batch_size=4)
    y = to_numpy(layer(x, training=True))
    for start in range(0, 12, 4):
        chunk = x[start : start + 4].astype(np.float64)
        mean = chunk.mean((0, 2, 3), keepdims=True)
        variance = chunk.var((0, 2, 3), keepdims=True)
        np.testing.assert_allclose(
            y[start : start + 4],
            (chunk - mean) / np.sqrt(variance + 1e-3),
            rtol=1e-4,
            atol=1e-4,
        )
    # Inference ignores the ghost batches: any batch size, and each
    # sample's output does not depend on the rest of its batch.
    alone = to_numpy(layer(x[:1], training=False))
    together = to_numpy(layer(x[:7], training=False))
    np.testing.assert_allclose(alone, together[:1], rtol=1e-6, atol=1e-6)


def test_ghost_batch_size_must_divide_the_batch(rng):
    layer = BatchNormalization(virtual_batch_size=8)
    with pytest.raises(ValueError, match="multiple of virtual_batch_size=8"):
        layer(np.ones((12, 3), "float32"), training=True)


def test_ghost_batch_size_is_checked_inside_fit(rng):
    # 100 samples in batches of 32: the last batch of 4 is no multiple of
    # 8. TensorFlow traces `fit` with an unknown batch size, so it checks
    # at run time (except under XLA, which drops assertions: documented).
    x = rng.normal(size=(100, 4)).astype("float32")
    model = keras.Sequential(
        [keras.Input((4,)), BatchNormalization(virtual_batch_size=8)]
    )
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    with pytest.raises(Exception, match="multiple of virtual_batch_size=8"):
        model.fit(x, x, batch_size=32, epochs=1, verbose=0)


def test_ghost_batches_fit_save_fold_and_sync(rng, tmp_path):
    x = rng.normal(size=(64, 6)).astype("float32")
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5)(inputs)
    hidden = BatchNormalization(virtual_batch_size=4, synchronized=True)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.ones((64, 2)), batch_size=16, epochs=2, verbose=0)
    expected = model.predict(x, verbose=0)
    loaded = save_and_load(model, tmp_path)
    assert loaded.layers[2].virtual_batch_size == 4
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5
    )
    folded = keras_norms.fold_batch_normalization(model)
    assert len(folded.layers) == len(model.layers) - 1
    np.testing.assert_allclose(
        folded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4
    )
    # recompute_batch_statistics ignores the ghost batches: whole-batch
    # statistics.
    layer = model.layers[2]
    keras_norms.recompute_batch_statistics(model, x, batch_size=64, verbose=0)
    dense = model.layers[1]
    h = x.astype(np.float64) @ to_numpy(dense.kernel) + to_numpy(dense.bias)
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), h.var(0) * 64 / 63, rtol=1e-4
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: TimestepBatchNormalization(virtual_batch_size=4),
        lambda: BatchNormalization(renorm=True, virtual_batch_size=4),
    ],
)
def test_ghost_batches_unsupported_combinations(make):
    with pytest.raises(ValueError, match="virtual_batch_size=4"):
        make()
