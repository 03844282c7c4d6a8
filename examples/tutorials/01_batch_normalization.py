"""Tutorial 1: batch normalization (Ioffe & Szegedy, 2015, Figure 1).

An MLP with three hidden layers of 100 sigmoid units on scikit-learn's
digits, trained with plain SGD, with and without BatchNormalization before
each sigmoid. It records, over training:

- the validation accuracy (the paper's Fig. 1a);
- the 15th, 50th and 85th percentiles of one last-layer unit's input to
  its sigmoid over the validation set (Fig. 1b and 1c);

then trains the BN network at a 10x larger learning rate, compares what
the moving statistics converge to (with and without
``unbiased_moving_variance``) with the statistics of the data, and shows
how far the moving averages lag behind the final weights, compared with
`keras_norms.recompute_batch_statistics` (Algorithm 2).

    KERAS_BACKEND=torch python examples/tutorials/01_batch_normalization.py

Writes docs/img/tutorials/01_*.png and docs/tutorials/results/
01_batch_normalization.json (see _common.py; KERAS_NORMS_SMOKE=1 for a
tiny run).
"""

import time

import keras
import matplotlib
import numpy as np

import keras_norms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _common import digits  # noqa: E402
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import size  # noqa: E402

EPOCHS = size(30, 2)
RECORD_EVERY = size(20, 10)  # steps between two recordings
BATCH_SIZE = 32
LEARNING_RATE = 0.1
SEEDS = size(3, 1)


# --8<-- [start:model]
def build_mlp(batch_norm, unbiased=False):
    """3 x 100 sigmoid units; with BN, normalize each layer's ``Wx`` before
    its sigmoid (the bias is then redundant: BN's beta replaces it)."""
    inputs = keras.Input((64,))
    x = inputs
    for index in range(3):
        x = keras.layers.Dense(100, use_bias=not batch_norm)(x)
        if batch_norm:
            x = keras_norms.layers.BatchNormalization(
                unbiased_moving_variance=unbiased, name=f"bn{index}"
            )(x)
        # The sigmoid's input is what Figure 1 (b, c) tracks.
        x = keras.layers.Activation("sigmoid", name=f"sigmoid{index}")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


# --8<-- [end:model]


# --8<-- [start:record]
class Recorder(keras.callbacks.Callback):
    """Every few steps: validation accuracy, and percentiles of one unit's
    input to its sigmoid (last hidden layer) over the validation set.

    A BN network is evaluated as the paper prescribes (Algorithm 2): with
    population statistics of the current weights, recomputed over the
    training set. The moving averages would lag behind the weights early
    in training (see the last section). Training itself never uses them.
    """

    def __init__(self, x_train, x_val, y_val, unit=0):
        super().__init__()
        self.x_train, self.x_val, self.y_val = x_train, x_val, y_val
        self.unit = unit
        self.steps, self.accuracy, self.percentiles = [], [], []
        self.step = 0

    def on_train_begin(self, logs=None):
        # The sigmoid's input, at inference (moving statistics for BN).
        self.probe = keras.Model(
            self.model.inputs,
            self.model.get_layer("sigmoid2").input,
        )
        self.record()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % RECORD_EVERY == 0:
            self.record()

    def record(self):
        if any(layer.name.startswith("bn") for layer in self.model.layers):
            keras_norms.recompute_batch_statistics(
                self.model, self.x_train, batch_size=BATCH_SIZE, verbose=0
            )
        probabilities = self.model.predict(self.x_val, verbose=0)
        accuracy = np.mean(probabilities.argmax(axis=1) == self.y_val)
        inputs = self.probe.predict(self.x_val, verbose=0)[:, self.unit]
        self.steps.append(self.step)
        self.accuracy.append(float(accuracy))
        self.percentiles.append(np.percentile(inputs, [15, 50, 85]).tolist())


def train(batch_norm, learning_rate, seed, data, epochs=EPOCHS):
    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(seed)
    model = build_mlp(batch_norm)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    recorder = Recorder(x_train, x_val, y_val)
    model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        callbacks=[recorder],
        verbose=0,
    )
    return model, recorder


# --8<-- [end:record]


def figure_1(runs):
    """Validation accuracy, and the percentiles with and without BN."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for label, style in (
        ("without BN", "tab:gray"),
        ("with BN", "tab:blue"),
        ("with BN, learning rate x10", "tab:orange"),
    ):
        recorders = runs[label]
        steps = recorders[0].steps
        accuracy = np.mean([r.accuracy for r in recorders], axis=0)
        axes[0].plot(steps, accuracy, color=style, label=label)
    axes[0].set(
        xlabel="training step",
        ylabel="validation accuracy",
        title="(a) validation accuracy",
    )
    axes[0].legend()
    for axis, label, title in (
        (axes[1], "without BN", "(b) without BN"),
        (axes[2], "with BN", "(c) with BN"),
    ):
        recorder = runs[label][0]
        values = np.array(recorder.percentiles)
        for column, name in enumerate(("15th", "50th", "85th")):
            axis.plot(recorder.steps, values[:, column], label=name)
        axis.set(
            xlabel="training step",
            ylabel="input to the sigmoid (one unit)",
            title=title,
        )
        axis.legend(title="percentile")
    figure.tight_layout()
    save_figure(figure, "01_figure_1")
    plt.close(figure)


# --8<-- [start:moving]
def moving_statistics_check(data):
    """What the moving averages converge to, against the statistics of the
    data at the first BN layer (its input is ``x W``: no earlier BN, so
    the population is well defined once the weights are fixed)."""
    x_train, y_train, _, _ = data
    results = {}
    for unbiased in (False, True):
        keras.utils.set_random_seed(0)
        model = build_mlp(True, unbiased=unbiased)
        model.compile(
            optimizer=keras.optimizers.SGD(LEARNING_RATE),
            loss="sparse_categorical_crossentropy",
        )
        model.fit(
            x_train, y_train, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0
        )
        # Freeze the weights and keep training-mode BN on a learning rate
        # of 0 for 5 epochs: the moving averages settle on the weights.
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss="sparse_categorical_crossentropy",
        )
        model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=5, verbose=0)
        layer = model.get_layer("bn0")
        first = keras.Model(model.inputs, layer.input)
        values = first.predict(x_train, verbose=0).astype(np.float64)
        batches = [
            values[i : i + BATCH_SIZE]
            for i in range(0, len(values) - BATCH_SIZE + 1, BATCH_SIZE)
        ]
        moving_variance = keras.ops.convert_to_numpy(layer.moving_variance)
        results["unbiased" if unbiased else "biased"] = {
            "moving over population variance": float(
                np.median(moving_variance / values.var(axis=0))
            ),
            "mean batch variance over population variance": float(
                np.median(
                    np.mean([b.var(axis=0) for b in batches], axis=0)
                    / values.var(axis=0)
                )
            ),
        }
    results["m / (m - 1)"] = BATCH_SIZE / (BATCH_SIZE - 1)
    return results


# --8<-- [end:moving]


# --8<-- [start:recompute]
def recompute_check(data, learning_rate, epochs, seeds):
    """Accuracy at inference right after `fit` (moving averages) and after
    recomputing the population statistics with the final weights."""
    x_train, y_train, x_val, y_val = data
    moving, recomputed = [], []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        model = build_mlp(True)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(
            x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0
        )
        moving.append(model.evaluate(x_val, y_val, verbose=0)[1])
        keras_norms.recompute_batch_statistics(
            model, x_train, batch_size=BATCH_SIZE, verbose=0
        )
        recomputed.append(model.evaluate(x_val, y_val, verbose=0)[1])
    return float(np.mean(moving)), float(np.mean(recomputed))


# --8<-- [end:recompute]


def main():
    start = time.time()
    data = digits("flat")
    runs = {"without BN": [], "with BN": [], "with BN, learning rate x10": []}
    for seed in range(SEEDS):
        for label, batch_norm, rate in (
            ("without BN", False, LEARNING_RATE),
            ("with BN", True, LEARNING_RATE),
            ("with BN, learning rate x10", True, 10 * LEARNING_RATE),
        ):
            _, recorder = train(batch_norm, rate, seed, data)
            runs[label].append(recorder)
    figure_1(runs)

    def accuracy_at(label, fraction):
        recorders = runs[label]
        index = int(fraction * (len(recorders[0].steps) - 1))
        return {
            "step": recorders[0].steps[index],
            "accuracy": float(np.mean([r.accuracy[index] for r in recorders])),
        }

    def percentiles(label):
        first = runs[label][0].percentiles[0]
        last = runs[label][0].percentiles[-1]
        return {
            "15th-85th range, start": first[2] - first[0],
            "15th-85th range, end": last[2] - last[0],
            "median, start": first[1],
            "median, end": last[1],
        }

    spread = {label: percentiles(label) for label in ("without BN", "with BN")}
    results = {
        "epochs": EPOCHS,
        "steps per epoch": int(np.ceil(len(data[0]) / BATCH_SIZE)),
        "seeds": SEEDS,
        "learning rate": LEARNING_RATE,
        "accuracy": {
            label: {
                "a tenth in": accuracy_at(label, 0.1),
                "end": accuracy_at(label, 1.0),
            }
            for label in runs
        },
        "sigmoid input percentiles (seed 0)": spread,
        "moving statistics": moving_statistics_check(data),
        "recompute (SGD momentum 0.9, 3 seeds)": {
            f"learning rate {rate}, {epochs} epochs": dict(
                zip(
                    ("moving averages", "recomputed"),
                    recompute_check(data, rate, epochs, size(3, 1)),
                    strict=True,
                )
            )
            for rate, epochs in ((0.5, size(2, 1)), (0.5, size(20, 1)))
        },
    }
    results["run time (s)"] = round(time.time() - start, 1)
    save_results("01_batch_normalization", results)
    print(results)


if __name__ == "__main__":
    main()
