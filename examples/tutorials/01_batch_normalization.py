"""Tutorial 1: batch normalization (Ioffe & Szegedy, 2015, Figure 1).

An MLP with three hidden layers of 100 sigmoid units on scikit-learn's
digits, trained with plain SGD, with and without BatchNormalization before
each sigmoid. Each network first gets its own best learning rate from a
small grid (the paper compares against a baseline that trains), then
trains with three seeds while a callback records:

- the validation accuracy (the paper's Fig. 1a);
- the 15th, 50th and 85th percentiles of one last-layer unit's input to
  its sigmoid over the validation set (Fig. 1b and 1c).

Then: what the moving statistics converge to (with and without
``unbiased_moving_variance``) against the statistics of the data, and how
far the moving averages lag behind the final weights, compared with
`keras_norms.recompute_batch_statistics` (Algorithm 2). The paper's claims
are checked against this run's numbers ("findings" in the JSON).

    KERAS_BACKEND=torch python examples/tutorials/01_batch_normalization.py

Writes docs/img/tutorials/01_*.png, docs/tutorials/results/
01_batch_normalization.json and 01_tables.md (see _common.py;
KERAS_NORMS_SMOKE=1 for a tiny run).
"""

import time

import keras
import matplotlib
import numpy as np

import keras_norms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _common import digits  # noqa: E402
from _common import finding  # noqa: E402
from _common import findings_table  # noqa: E402
from _common import run_time_text  # noqa: E402
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import save_sections  # noqa: E402
from _common import size  # noqa: E402
from _common import spread  # noqa: E402

EPOCHS = size(30, 1)
RECORD_EVERY = size(20, 20)  # steps between two recordings
BATCH_SIZE = 32
# Each network trains at the rate of this grid that gives it the highest
# mean validation accuracy over its run (seed 0).
LEARNING_RATES = size((0.1, 0.3, 1.0, 3.0, 10.0), (1.0,))
SEEDS = size(3, 1)
# The moving-statistics check trains at a rate both networks handle.
LEARNING_RATE = 0.1
NETWORKS = {"without BN": False, "with BN": True}


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
    recorder.rate = learning_rate
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


def figure_1(runs, grid):
    """(a) validation accuracy, (b, c) the percentiles without and with
    BN on one scale, (d) final accuracy against the learning rate."""
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    colors = {"without BN": "tab:gray", "with BN": "tab:blue"}
    ax = axes[0][0]
    for label, recorders in runs.items():
        steps = recorders[0].steps
        accuracy = np.array([r.accuracy for r in recorders])
        ax.plot(
            steps,
            accuracy.mean(axis=0),
            color=colors[label],
            label=f"{label} (rate {recorders[0].rate:g})",
        )
        ax.fill_between(
            steps,
            accuracy.min(axis=0),
            accuracy.max(axis=0),
            color=colors[label],
            alpha=0.2,
        )
    ax.set(
        xlabel="training step",
        ylabel="validation accuracy",
        title="(a) validation accuracy (mean, min–max of seeds)",
        ylim=(0, 1),
    )
    ax.legend(loc="lower right")
    percentile_axes = (axes[0][1], axes[1][0])
    for ax, label, title in zip(
        percentile_axes, runs, ("(b) without BN", "(c) with BN"), strict=True
    ):
        recorder = runs[label][0]
        values = np.array(recorder.percentiles)
        for column, name in enumerate(("15th", "50th", "85th")):
            ax.plot(recorder.steps, values[:, column], label=name)
        ax.set(
            xlabel="training step",
            ylabel="input to the sigmoid (one unit)",
            title=title,
        )
        # Outside the axes: the curves fill every corner of (b).
        ax.legend(
            title="percentile", loc="upper left", bbox_to_anchor=(1.01, 1)
        )
    low = min(ax.get_ylim()[0] for ax in percentile_axes)
    high = max(ax.get_ylim()[1] for ax in percentile_axes)
    for ax in percentile_axes:
        ax.set_ylim(low, high)
    ax = axes[1][1]
    for label in NETWORKS:
        rates = sorted(grid[label], key=float)
        ax.plot(
            [float(r) for r in rates],
            [grid[label][r]["end"] for r in rates],
            "o-",
            color=colors[label],
            label=label,
        )
    ax.set(
        xscale="log",
        xlabel="learning rate (plain SGD)",
        ylabel="final validation accuracy",
        ylim=(0, 1),
        title="(d) final accuracy against the learning rate (seed 0)",
    )
    ax.legend(loc="lower left")
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
        # Batches as fit draws them: the data shuffled every epoch (the
        # digits are stored in order, so consecutive rows are not a
        # random sample). Averaged over 20 shuffles.
        rng = np.random.default_rng(0)
        batch_variances = [
            values[order[i : i + BATCH_SIZE]].var(axis=0)
            for order in (rng.permutation(len(values)) for _ in range(20))
            for i in range(0, len(values) - BATCH_SIZE + 1, BATCH_SIZE)
        ]
        moving_variance = keras.ops.convert_to_numpy(layer.moving_variance)
        results["unbiased" if unbiased else "biased"] = {
            "moving over population variance": float(
                np.median(moving_variance / values.var(axis=0))
            ),
            "mean batch variance over population variance": float(
                np.median(np.mean(batch_variances, axis=0) / values.var(axis=0))
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
    # Each network's best rate (seed 0): the highest mean validation
    # accuracy over the run rewards training fast and ending high.
    grid, best = {}, {}
    runs = {label: [] for label in NETWORKS}
    for label, batch_norm in NETWORKS.items():
        recorders = {}
        for rate in LEARNING_RATES:
            _, recorders[rate] = train(batch_norm, rate, 0, data)
        grid[label] = {
            f"{rate:g}": {
                "mean over the run": float(np.mean(r.accuracy)),
                "end": r.accuracy[-1],
            }
            for rate, r in recorders.items()
        }
        best[label] = max(
            LEARNING_RATES, key=lambda rate: np.mean(recorders[rate].accuracy)
        )
        runs[label].append(recorders[best[label]])
        for seed in range(1, SEEDS):
            runs[label].append(train(batch_norm, best[label], seed, data)[1])
    figure_1(runs, grid)

    def accuracy_at(label, fraction):
        recorders = runs[label]
        index = int(fraction * (len(recorders[0].steps) - 1))
        return {
            "step": recorders[0].steps[index],
            **spread([r.accuracy[index] for r in recorders]),
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

    results = {
        "epochs": EPOCHS,
        "steps per epoch": int(np.ceil(len(data[0]) / BATCH_SIZE)),
        "seeds": SEEDS,
        "learning rate grid (seed 0)": grid,
        "best learning rate": {k: float(v) for k, v in best.items()},
        "accuracy": {
            label: {
                "a tenth in": accuracy_at(label, 0.1),
                "end": accuracy_at(label, 1.0),
            }
            for label in runs
        },
        "sigmoid input percentiles (seed 0)": {
            label: percentiles(label) for label in runs
        },
        "moving statistics": moving_statistics_check(data),
        "recompute (SGD momentum 0.9, 3 seeds)": {
            f"{epochs} epochs": dict(
                zip(
                    ("moving averages", "recomputed"),
                    recompute_check(data, 0.5, epochs, size(3, 1)),
                    strict=True,
                )
            )
            for epochs in (size(2, 1), size(20, 1))
        },
    }
    results["run time (s)"] = round(time.time() - start, 1)
    results["findings"] = findings(results)
    save_results("01_batch_normalization", results)
    save_sections("01_tables.md", tables(results))
    print(results)


def drift(percentiles):
    """How far the median moved, in units of the 15th-85th range."""
    ranges = (
        percentiles["15th-85th range, start"]
        + percentiles["15th-85th range, end"]
    ) / 2
    return abs(percentiles["median, end"] - percentiles["median, start"]) / (
        ranges
    )


def findings(results):
    accuracy = results["accuracy"]
    without, with_ = accuracy["without BN"], accuracy["with BN"]
    grid = results["learning rate grid (seed 0)"]
    best_end = max(
        value["end"] for label in grid for value in grid[label].values()
    )

    def trains(label):
        """Rates at which the network ends within 0.05 of the best."""
        return sum(v["end"] >= best_end - 0.05 for v in grid[label].values())

    spread = results["sigmoid input percentiles (seed 0)"]
    moving = results["moving statistics"]
    m_ratio = 1 / moving["m / (m - 1)"]
    recompute = list(results["recompute (SGD momentum 0.9, 3 seeds)"].values())
    return {
        "faster": finding(
            "With BN, the validation accuracy a tenth of the way into "
            "training is higher (each network at its best rate; the worst "
            "BN seed above the best seed without BN)",
            with_["a tenth in"]["min"] > without["a tenth in"]["max"],
        ),
        "higher": finding(
            "With BN, the final validation accuracy is at least as high "
            "(mean of seeds)",
            with_["end"]["mean"] >= without["end"]["mean"],
        ),
        "rates": finding(
            "BN trains well (within 0.05 of the best final accuracy) at "
            "more of the grid's learning rates",
            trains("with BN") > trains("without BN"),
        ),
        "drift": finding(
            "Without BN the median of a sigmoid's input moves more, "
            "relative to its spread, than with BN",
            drift(spread["without BN"]) > drift(spread["with BN"]),
        ),
        "batch variance": finding(
            "A batch's variance is low by (m-1)/m on average (within 1%)",
            abs(
                moving["biased"]["mean batch variance over population variance"]
                / m_ratio
                - 1
            )
            < 0.01,
        ),
        "unbiased": finding(
            "unbiased_moving_variance=True lands closer to the population "
            "variance than Keras's biased moving variance",
            abs(moving["unbiased"]["moving over population variance"] - 1)
            < abs(moving["biased"]["moving over population variance"] - 1),
        ),
        "recompute": finding(
            "After a short run, recomputed statistics give a higher "
            "accuracy than the moving averages",
            recompute[0]["recomputed"] > recompute[0]["moving averages"],
        ),
    }


def tables(results):
    """The page's tables, from this run's numbers, by section."""
    sections = {}
    accuracy = results["accuracy"]
    best = results["best learning rate"]
    tenth = accuracy["with BN"]["a tenth in"]["step"]
    end = accuracy["with BN"]["end"]["step"]
    lines = [
        f"| network | learning rate | accuracy at step {tenth} | "
        f"accuracy at step {end} |",
        "|---|---|---|---|",
    ]
    for label, values in accuracy.items():
        cells = [
            "{mean:.3f} ({min:.3f}–{max:.3f})".format(**values[when])
            for when in ("a tenth in", "end")
        ]
        lines.append(
            f"| {label} | {best[label]:g} | " + " | ".join(cells) + " |"
        )
    sections["accuracy"] = lines
    grid = results["learning rate grid (seed 0)"]
    rates = list(grid["with BN"])
    lines = [
        "| final accuracy (seed 0) | "
        + " | ".join(f"rate {r}" for r in rates)
        + " |",
        "|---|" + "---|" * len(rates),
    ]
    for label in grid:
        cells = [f"{grid[label][r]['end']:.3f}" for r in rates]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sections["grid"] = lines
    spread = results["sigmoid input percentiles (seed 0)"]
    lines = [
        "| network | median, start → end | 15th–85th range, start → end | "
        "median's move / range |",
        "|---|---|---|---|",
    ]
    for label, values in spread.items():
        lines.append(
            f"| {label} | {values['median, start']:.2f} → "
            f"{values['median, end']:.2f} | "
            f"{values['15th-85th range, start']:.2f} → "
            f"{values['15th-85th range, end']:.2f} | {drift(values):.2f} |"
        )
    sections["percentiles"] = lines
    moving = results["moving statistics"]
    batch = moving["biased"]["mean batch variance over population variance"]
    lines = [
        "| | moving / population variance (median over units) |",
        "|---|---|",
        "| `unbiased_moving_variance=False` (Keras's default) | "
        f"{moving['biased']['moving over population variance']:.3f} |",
        "| `unbiased_moving_variance=True` | "
        f"{moving['unbiased']['moving over population variance']:.3f} |",
        f"| mean batch variance / population variance | {batch:.3f} |",
        f"| (m − 1) / m, m = {BATCH_SIZE} | {1 / moving['m / (m - 1)']:.3f} |",
    ]
    sections["moving"] = lines
    recompute = results["recompute (SGD momentum 0.9, 3 seeds)"]
    lines = [
        "| SGD, momentum 0.9, rate 0.5 | accuracy, moving averages | "
        "accuracy, recomputed |",
        "|---|---|---|",
    ]
    for when, values in recompute.items():
        lines.append(
            f"| {when} | {values['moving averages']:.3f} | "
            f"{values['recomputed']:.3f} |"
        )
    sections["recompute"] = lines
    sections["findings"] = findings_table(results["findings"])
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend, "
        f"{results['epochs']} epochs of {results['steps per epoch']} steps, "
        f"{results['seeds']} seeds (mean, and min–max in brackets); the "
        f"whole script took {run_time_text(results['run time (s)'])} on a "
        "2-core CPU.",
    ]
    return sections


if __name__ == "__main__":
    main()
