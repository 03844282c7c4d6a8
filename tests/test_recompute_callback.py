"""`keras_norms.callbacks.RecomputeBatchStatistics` during `fit`: the
statistics it leaves, and the validation metrics fit reports, against a
float64 NumPy forward pass of Algorithm 2 through the model's weights.
(Under tf.distribute: tests/distributed/tf_mirrored_callback.py.)"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.callbacks import RecomputeBatchStatistics
from keras_norms.layers import BatchNormalization

import reference
from helpers import BACKEND
from helpers import to_numpy

BATCH = 16
EPSILON = 1e-3


def callback_model():
    # momentum=0.99: after a few dozen steps the moving averages are still
    # far from the population statistics, so a missed recompute shows.
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, name="dense1"),
            BatchNormalization(momentum=0.99, epsilon=EPSILON, name="bn"),
            keras.layers.ReLU(),
            keras.layers.Dense(1, name="dense2"),
        ]
    )


def callback_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, (96, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    return x, y


def weights_of(model):
    return {
        v.path.split("/", 1)[-1]: to_numpy(v).astype(np.float64)
        for v in model.weights
    }


def expected_statistics(weights, x, batch_size):
    """Algorithm 2 through the Dense layer before the BN, in float64."""
    h = x.astype(np.float64) @ weights["dense1/kernel"] + weights["dense1/bias"]
    batches = [
        reference.batch_norm_train(h[i : i + batch_size])[1:]
        for i in range(0, len(h), batch_size)
    ]
    means, variances, counts = (np.stack(v) for v in zip(*batches, strict=True))
    return reference.population_statistics(means, variances, counts)


def expected_loss(weights, x, y, mean, variance):
    """Mean squared error of the model at inference with these
    statistics."""
    h = x.astype(np.float64) @ weights["dense1/kernel"] + weights["dense1/bias"]
    h = (h - mean) / np.sqrt(variance + EPSILON)
    h = np.maximum(h * weights["bn/gamma"] + weights["bn/beta"], 0.0)
    out = h @ weights["dense2/kernel"] + weights["dense2/bias"]
    return float(np.mean((out - y) ** 2))


class WeightRecorder(keras.callbacks.Callback):
    """Copies the weights at each validation pass (placed after the
    callback under test: what it sees is what the validation pass uses)."""

    def __init__(self):
        super().__init__()
        self.at_validation = []

    def on_test_begin(self, logs=None):
        self.at_validation.append(weights_of(self.model))


def _fit(when, epochs=3):
    x, y = callback_data()
    x_val, y_val = callback_data(seed=1)
    model = callback_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    recorder = WeightRecorder()
    callback = RecomputeBatchStatistics(
        x, batch_size=BATCH, when=when, verbose=0
    )
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        validation_data=(x_val, y_val),
        callbacks=[callback, recorder],
        verbose=0,
    )
    return model, history.history, recorder, (x, y, x_val, y_val)


def _check_recomputed(weights, x):
    mean, variance = expected_statistics(weights, x, BATCH)
    np.testing.assert_allclose(weights["bn/moving_mean"], mean, rtol=1e-4)
    np.testing.assert_allclose(
        weights["bn/moving_variance"], variance, rtol=1e-4
    )
    return mean, variance


@pytest.mark.parametrize("when", ["validation", "both"])
def test_validation_metrics_use_recomputed_statistics(when):
    model, history, recorder, (x, _, x_val, y_val) = _fit(when)
    assert len(recorder.at_validation) == 3
    for epoch, weights in enumerate(recorder.at_validation):
        mean, variance = _check_recomputed(weights, x)
        np.testing.assert_allclose(
            history["val_loss"][epoch],
            expected_loss(weights, x_val, y_val, mean, variance),
            rtol=1e-4,
        )
    # The model fit leaves behind: recomputed with its final weights.
    final = weights_of(model)
    _check_recomputed(final, x)
    # model.evaluate after an explicit recompute reports the last epoch's
    # validation loss.
    keras_norms.recompute_batch_statistics(model, x, BATCH, verbose=0)
    np.testing.assert_allclose(
        model.evaluate(x_val, y_val, batch_size=BATCH, verbose=0),
        history["val_loss"][-1],
        rtol=1e-5,
    )


def test_when_end_leaves_validation_to_the_moving_averages():
    model, history, recorder, (x, _, x_val, y_val) = _fit("end")
    for epoch, weights in enumerate(recorder.at_validation):
        moving = weights["bn/moving_mean"], weights["bn/moving_variance"]
        reported = history["val_loss"][epoch]
        np.testing.assert_allclose(
            reported, expected_loss(weights, x_val, y_val, *moving), rtol=1e-4
        )
        # The lag is real: the population statistics are elsewhere, and
        # give a loss the tolerance above tells apart.
        population = expected_statistics(weights, x, BATCH)
        assert not np.allclose(moving[0], population[0], rtol=0.05)
        recomputed = expected_loss(weights, x_val, y_val, *population)
        assert abs(recomputed - reported) > 1e-3 * reported
    # No training step after the last validation: it saw the final
    # weights with the moving averages; the end of training replaced them.
    final = weights_of(model)
    _check_recomputed(final, x)
    assert not np.allclose(
        recorder.at_validation[-1]["bn/moving_mean"], final["bn/moving_mean"]
    )


def test_when_end_runs_after_the_optimizer_final_weights():
    # With an EMA of the weights, fit swaps the averaged weights in before
    # on_train_end: the statistics must be those of the averaged weights.
    x, y = callback_data()
    model = callback_model()
    optimizer = keras.optimizers.SGD(0.01, use_ema=True, ema_momentum=0.9)
    model.compile(optimizer=optimizer, loss="mse")
    callback = RecomputeBatchStatistics(x, batch_size=BATCH, when="end")
    model.fit(x, y, batch_size=BATCH, epochs=2, callbacks=[callback], verbose=0)
    _check_recomputed(weights_of(model), x)


def test_no_validation_no_recompute_before_the_end():
    x, y = callback_data()
    model = callback_model()
    model.compile(optimizer="sgd", loss="mse")
    recorder = WeightRecorder()
    callback = RecomputeBatchStatistics(x, batch_size=BATCH, when="validation")
    model.fit(x, y, batch_size=BATCH, callbacks=[callback, recorder], verbose=0)
    assert recorder.at_validation == []
    # Nothing ran: the moving averages are those training left.
    mean, _ = expected_statistics(weights_of(model), x, BATCH)
    assert not np.allclose(weights_of(model)["bn/moving_mean"], mean, rtol=0.1)


def test_standalone_evaluate_does_not_recompute():
    x, y = callback_data()
    model = callback_model()
    model.compile(optimizer="sgd", loss="mse")
    before = to_numpy(model.get_layer("bn").moving_mean)
    callback = RecomputeBatchStatistics(x, batch_size=BATCH)
    model.evaluate(x, y, callbacks=[callback], verbose=0)
    np.testing.assert_array_equal(
        to_numpy(model.get_layer("bn").moving_mean), before
    )


def test_dataset_input():
    # x as a PyDataset of (inputs, targets): targets are ignored.
    x, y = callback_data()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(x) // BATCH

        def __getitem__(self, i):
            return x[i * BATCH : (i + 1) * BATCH], y[
                i * BATCH : (i + 1) * BATCH
            ]

    model = callback_model()
    model.compile(optimizer="sgd", loss="mse")
    callback = RecomputeBatchStatistics(Batches(), when="end", verbose=0)
    model.fit(x, y, batch_size=BATCH, callbacks=[callback], verbose=0)
    _check_recomputed(weights_of(model), x)


def test_model_without_batch_normalization_fails_before_training():
    x, y = callback_data()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    kernel = to_numpy(model.layers[0].kernel)
    callback = RecomputeBatchStatistics(x)
    with pytest.raises(ValueError, match="no keras_norms batch-normal"):
        model.fit(x, y, callbacks=[callback], verbose=0)
    np.testing.assert_array_equal(to_numpy(model.layers[0].kernel), kernel)


def test_verbose_prints_what_ran_and_its_time(capsys):
    x, y = callback_data()
    model = callback_model()
    model.compile(optimizer="sgd", loss="mse")
    callback = RecomputeBatchStatistics(x, batch_size=BATCH, verbose=2)
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        validation_data=(x, y),
        callbacks=[callback],
        verbose=0,
    )
    lines = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("RecomputeBatchStatistics")
    ]
    assert [line.split(":")[0] for line in lines] == [
        "RecomputeBatchStatistics (before validation, epoch 1)",
        "RecomputeBatchStatistics (before validation, epoch 2)",
        "RecomputeBatchStatistics (end of training)",
    ]
    assert all(line.endswith("s") and "6 batch(es)" in line for line in lines)


def test_verbose_auto_follows_a_silent_fit(capsys):
    x, y = callback_data()
    model = callback_model()
    model.compile(optimizer="sgd", loss="mse")
    callback = RecomputeBatchStatistics(x, batch_size=BATCH)
    model.fit(x, y, batch_size=BATCH, callbacks=[callback], verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": None}, "`x`.*x=None"),
        ({"when": "epoch"}, "`when`.*when='epoch'"),
        ({"batch_size": 0}, "`batch_size`.*batch_size=0"),
        ({"batch_size": 8.0}, "`batch_size`.*batch_size=8.0"),
        ({"steps": -1}, "`steps`.*steps=-1"),
        ({"steps": True}, "`steps`.*steps=True"),
        ({"verbose": 3}, "`verbose`.*verbose=3"),
        ({"verbose": "yes"}, "`verbose`.*verbose='yes'"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"x": np.zeros((4, 5)), **kwargs}
    with pytest.raises(ValueError, match=match):
        RecomputeBatchStatistics(**arguments)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute only")
def test_under_mirrored_strategy():
    script = os.path.join(
        os.path.dirname(__file__), "distributed", "tf_mirrored_callback.py"
    )
    result = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OK" in result.stdout
