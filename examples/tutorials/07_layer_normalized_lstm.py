"""Tutorial 7: the layer-normalized LSTM (Ba, Kiros & Hinton, 2016).

Sequential digits: each 8x8 digit of scikit-learn read one row of 8
pixels per time step, classified from the last hidden state. Each training
sequence ends with two blank rows (10 steps), so every model learns to
keep its answer through blank steps.
Ba et al.'s point: layer normalization takes its statistics from each
sample at each step, so it needs neither a batch nor statistics kept per
time step, where the batch-normalized LSTM needs both.

1. LSTM, BNLSTM and LayerNormLSTM trained at batch sizes 64 and 4, three
   seeds each: test accuracy (the BNLSTM with population statistics
   recomputed after training, its best case).
2. Test sequences longer than any in training: the same test digits on a
   taller canvas, with more blank rows above (every pixel arrives later
   than in training) or below (more blank steps after the digit).

    KERAS_BACKEND=jax python examples/tutorials/07_layer_normalized_lstm.py

Writes docs/img/tutorials/07_*.png, docs/tutorials/results/
07_layer_normalized_lstm.json and the page's tables,
docs/tutorials/results/07_tables.md (KERAS_NORMS_SMOKE=1: tiny run).
"""

import time

import keras
import matplotlib
import numpy as np

import keras_norms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _common import digits  # noqa: E402
from _common import findings_table  # noqa: E402
from _common import run_time_text  # noqa: E402
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import save_sections  # noqa: E402
from _common import size  # noqa: E402
from _common import spread  # noqa: E402

UNITS = size(48, 8)
SEEDS = size((0, 1, 2, 3, 4), (0,))
# Batch size -> (epochs, Adam learning rate). The smaller batch takes 16
# times as many steps per epoch, with a smaller rate as usual for Adam
# with noisy gradients.
SETTINGS = {64: (size(40, 1), 3e-3), 4: (size(10, 1), 1e-3)}
MODELS = ("LSTM", "BNLSTM", "LayerNormLSTM")
# Blank rows after each training digit: 8 + 2 = 10 steps.
TRAIN_ROWS_BELOW = 2
TRAIN_STEPS = 8 + TRAIN_ROWS_BELOW
# The test canvases: blank rows above the digit (with TRAIN_ROWS_BELOW
# below it, as in training), or blank rows below it (none above). The
# first entry of each is the training layout.
TEST_ROWS = {
    "above": size((0, 1, 2, 4, 8), (0, 2)),
    "below": size((2, 4, 8, 16), (2, 4)),
}


# --8<-- [start:models]
def build(name):
    """One recurrent layer of UNITS units, then a softmax over 10 digits."""
    if name == "BNLSTM":
        # Statistics for each of the 10 training steps; later steps
        # reuse the last step's.
        recurrent = keras_norms.layers.BNLSTM(UNITS, max_timesteps=TRAIN_STEPS)
    elif name == "LayerNormLSTM":
        recurrent = keras_norms.layers.LayerNormLSTM(UNITS)
    else:
        recurrent = keras.layers.LSTM(UNITS)
    return keras.Sequential(
        [
            # Any length: the test sequences are longer than the training.
            keras.Input((None, 8)),
            recurrent,
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


# --8<-- [end:models]


def train(name, data, batch_size, seed):
    x_train, y_train, _, _ = data
    epochs, learning_rate = SETTINGS[batch_size]
    keras.utils.set_random_seed(seed)
    model = build(name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0)
    if name == "BNLSTM":
        # The moving averages lag the weights (tutorial 3): give the BNLSTM
        # the population statistics of its final weights.
        keras_norms.recompute_batch_statistics(
            model, x_train, batch_size=64, verbose=0
        )
    return model


# --8<-- [start:longer]
def canvas(x, above, below):
    """Each digit (8 steps, one row each) with ``above`` blank rows before
    it and ``below`` after it: ``8 + above + below`` steps."""

    def blank(rows):
        return np.zeros((len(x), rows, 8), x.dtype)

    return np.concatenate([blank(above), x, blank(below)], axis=1)


def test_canvas(x, where, rows):
    """A test layout: ``rows`` blank rows above the digit (and the
    training's rows below it), or ``rows`` blank rows below it."""
    if where == "above":
        return canvas(x, rows, TRAIN_ROWS_BELOW)
    return canvas(x, 0, rows)


# --8<-- [end:longer]


def accuracy(model, x, y):
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(predictions.argmax(axis=1) == y))


def main():
    start = time.time()
    x_train, y_train, x_test, y_test = digits("image")
    # (n, 8, 8, 1) images -> (n, 8, 8) sequences of 8 rows of 8 pixels.
    x_train, x_test = x_train[..., 0], x_test[..., 0]
    # Subsets for the smoke run.
    samples, tests = size(len(x_train), 64), size(len(x_test), 64)
    x_test, y_test = x_test[:tests], y_test[:tests]
    x_train = canvas(x_train[:samples], 0, TRAIN_ROWS_BELOW)
    data = x_train, y_train[:samples], x_test, y_test

    # accuracy[batch][model][where][rows] -> one value per seed
    scores = {
        batch: {name: {"above": {}, "below": {}} for name in MODELS}
        for batch in SETTINGS
    }
    for batch in SETTINGS:
        for name in MODELS:
            for seed in SEEDS:
                model = train(name, data, batch, seed)
                for where, test_rows in TEST_ROWS.items():
                    for rows in test_rows:
                        x = test_canvas(x_test, where, rows)
                        scores[batch][name][where].setdefault(rows, []).append(
                            accuracy(model, x, y_test)
                        )
                print(
                    f"batch {batch}, {name}, seed {seed}: "
                    f"{scores[batch][name]['above'][0][-1]:.3f}",
                    flush=True,
                )

    # Figure: (a) accuracy per batch size, every seed as a dot; (b, c)
    # accuracy on longer test sequences, at batch size 64.
    def length(where, rows):
        extra = rows + TRAIN_ROWS_BELOW if where == "above" else rows
        return 8 + extra

    colors = {"LSTM": "tab:gray", "BNLSTM": "tab:blue"}
    colors["LayerNormLSTM"] = "tab:orange"
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, batch in enumerate(SETTINGS):
        for j, name in enumerate(MODELS):
            values = scores[batch][name]["above"][0]
            position = i * (len(MODELS) + 1) + j
            axes[0].bar(
                position,
                np.mean(values),
                color=colors[name],
                label=name if i == 0 else None,
            )
            axes[0].plot([position] * len(values), values, "k.")
    axes[0].set_xticks(
        [i * (len(MODELS) + 1) + 1 for i in range(len(SETTINGS))],
        [f"batch {batch}" for batch in SETTINGS],
    )
    axes[0].set(ylabel="test accuracy", title="(a) batch size", ylim=(0, 1))
    axes[0].legend(fontsize=8, loc="lower left")
    for axis, (where, test_rows) in zip(
        axes[1:], TEST_ROWS.items(), strict=True
    ):
        for name in MODELS:
            means = [
                np.mean(scores[64][name][where][rows]) for rows in test_rows
            ]
            axis.plot(
                [length(where, rows) for rows in test_rows],
                means,
                "o-",
                color=colors[name],
                label=name,
            )
        axis.axvline(TRAIN_STEPS, color="k", lw=0.5, ls=":")
        axis.set(
            xlabel=f"test sequence length (training: {TRAIN_STEPS})",
            ylabel="test accuracy",
            ylim=(0, 1),
            title=f"({'b' if where == 'above' else 'c'}) blank rows {where}",
        )
        axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    save_figure(figure, "07_layer_normalized_lstm")
    plt.close(figure)

    results = {
        "units": UNITS,
        "seeds": list(SEEDS),
        "training sequence length": TRAIN_STEPS,
        "settings (batch: epochs, learning rate)": {
            str(batch): list(setting) for batch, setting in SETTINGS.items()
        },
        "test accuracy": {
            str(batch): {
                name: spread(scores[batch][name]["above"][0]) for name in MODELS
            }
            for batch in SETTINGS
        },
        "test accuracy on longer sequences (batch 64, mean of seeds)": {
            where: {
                name: {
                    str(length(where, rows)): float(
                        np.mean(scores[64][name][where][rows])
                    )
                    for rows in test_rows
                }
                for name in MODELS
            }
            for where, test_rows in TEST_ROWS.items()
        },
        "run time (s)": round(time.time() - start, 1),
    }
    results["findings"] = findings(results)
    save_results("07_layer_normalized_lstm", results)
    save_sections("07_tables.md", tables(results))
    print(results)


def findings(results):
    """Ba et al.'s claims, each checked on this run's means over seeds."""
    accuracy = results["test accuracy"]
    mean = {b: {n: accuracy[b][n]["mean"] for n in MODELS} for b in accuracy}
    longer = results[
        "test accuracy on longer sequences (batch 64, mean of seeds)"
    ]

    def drop(name, where):
        """Accuracy lost from the training layout to the longest test
        sequences."""
        values = list(longer[where][name].values())
        return values[0] - values[-1]

    return {
        "layer_norm_beats_lstm": {
            "claim": "LayerNormLSTM is more accurate than the LSTM at both "
            "batch sizes",
            "holds": all(m["LayerNormLSTM"] > m["LSTM"] for m in mean.values()),
        },
        "layer_norm_beats_batch_norm_at_batch_4": {
            "claim": "At batch size 4, LayerNormLSTM is more accurate than "
            "the BNLSTM",
            "holds": mean["4"]["LayerNormLSTM"] > mean["4"]["BNLSTM"],
        },
        "batch_norm_loses_more_at_batch_4": {
            "claim": "Going from batch size 64 to 4, the BNLSTM loses more "
            "accuracy than LayerNormLSTM",
            "holds": mean["64"]["BNLSTM"] - mean["4"]["BNLSTM"]
            > mean["64"]["LayerNormLSTM"] - mean["4"]["LayerNormLSTM"],
        },
        "layer_norm_keeps_accuracy_when_shifted": {
            "claim": "With blank rows above the digit (every pixel later "
            "than in training), LayerNormLSTM loses less accuracy than the "
            "BNLSTM",
            "holds": drop("LayerNormLSTM", "above") < drop("BNLSTM", "above"),
        },
        "layer_norm_keeps_accuracy_when_longer": {
            "claim": "With blank rows below the digit (more steps after it), "
            "LayerNormLSTM loses less accuracy than the BNLSTM",
            "holds": drop("LayerNormLSTM", "below") < drop("BNLSTM", "below"),
        },
    }


def tables(results):
    """The page's tables, in Markdown, from the numbers of this run, in
    sections (``batch``, ``above``, ``below``, ``findings``, ``run``) that
    the page includes one by one."""
    sections = {}
    accuracy = results["test accuracy"]
    lines = [
        "| model | " + " | ".join(f"batch {b}" for b in accuracy) + " |",
        "|---|" + "---|" * len(accuracy),
    ]
    for name in MODELS:
        cells = [
            "{mean:.3f} ({min:.3f}–{max:.3f})".format(**accuracy[b][name])
            for b in accuracy
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sections["batch"] = lines
    longer = results[
        "test accuracy on longer sequences (batch 64, mean of seeds)"
    ]
    for where in ("above", "below"):
        lengths = list(longer[where]["LSTM"])
        lines = [
            "| model | " + " | ".join(f"{n} steps" for n in lengths) + " |",
            "|---|" + "---|" * len(lengths),
        ]
        for name in MODELS:
            cells = [f"{longer[where][name][n]:.3f}" for n in lengths]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        sections[where] = lines
    sections["findings"] = findings_table(results["findings"])
    settings = results["settings (batch: epochs, learning rate)"]
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend, "
        f"{results['units']} units, seeds {results['seeds']}; Adam, "
        + "; ".join(
            f"batch {batch}: {epochs} epochs at learning rate {rate:g}"
            for batch, (epochs, rate) in settings.items()
        )
        + ". The whole script took "
        + f"{run_time_text(results['run time (s)'])} on a 2-core CPU.",
    ]
    return sections


if __name__ == "__main__":
    main()
