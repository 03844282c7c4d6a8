"""Tutorial 7: the layer-normalized LSTM (Ba, Kiros & Hinton, 2016).

Sequential digits as in tutorial 3: each 8x8 digit of scikit-learn read
one pixel per time step (64 steps), classified from the last hidden state.
Ba et al.'s point: layer normalization takes its statistics from each
sample at each step, so it needs neither a batch nor statistics kept per
time step, where the batch-normalized LSTM needs both.

1. LSTM, BNLSTM and LayerNormLSTM trained at batch sizes 64 and 4, three
   seeds each: test accuracy (the BNLSTM with population statistics
   recomputed after training, its best case).
2. Test sequences longer than any in training: the same test digits on a
   taller canvas, with blank rows above (every pixel arrives later than in
   training) or below (more steps after the digit).

    KERAS_BACKEND=torch python examples/tutorials/07_layer_normalized_lstm.py

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
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import save_text  # noqa: E402
from _common import size  # noqa: E402

UNITS = size(48, 8)
SEEDS = size((0, 1, 2), (0,))
# Batch size -> (epochs, Adam learning rate). The same number of passes
# over the data at both sizes; the smaller batch takes 16 times as many
# steps, with a smaller rate as usual for Adam with noisy gradients.
SETTINGS = {64: (size(12, 1), 3e-3), 4: (size(4, 1), 1e-3)}
MODELS = ("LSTM", "BNLSTM", "LayerNormLSTM")
# Blank rows of 8 pixels added to the test digits (0: as in training).
EXTRA_ROWS = size((0, 1, 2, 4, 8), (0, 2))


# --8<-- [start:models]
def build(name):
    """One recurrent layer of UNITS units, then a softmax over 10 digits."""
    if name == "BNLSTM":
        # Statistics for each of the 64 training steps; later steps
        # reuse the last step's.
        recurrent = keras_norms.layers.BNLSTM(UNITS, max_timesteps=64)
    elif name == "LayerNormLSTM":
        recurrent = keras_norms.layers.LayerNormLSTM(UNITS)
    else:
        recurrent = keras.layers.LSTM(UNITS)
    return keras.Sequential(
        [
            # Any length: the test sequences are longer than the training.
            keras.Input((None, 1)),
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
def taller_canvas(x, rows, where):
    """Sequences of ``64 + 8 * rows`` steps: each digit with ``rows``
    blank rows of 8 pixels above it (``where="above"``: every pixel comes
    later than in training) or below it (more steps after the digit)."""
    blank = np.zeros((len(x), 8 * rows, 1), x.dtype)
    parts = [blank, x] if where == "above" else [x, blank]
    return np.concatenate(parts, axis=1)


# --8<-- [end:longer]


def accuracy(model, x, y):
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(predictions.argmax(axis=1) == y))


def spread(values):
    """Mean, min and max over the seeds."""
    return {
        "mean": float(np.mean(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def main():
    start = time.time()
    x_train, y_train, x_test, y_test = digits("sequence")
    # Subsets for the smoke run.
    samples, tests = size(len(x_train), 64), size(len(x_test), 64)
    x_test, y_test = x_test[:tests], y_test[:tests]
    data = x_train[:samples], y_train[:samples], x_test, y_test

    # accuracy[batch][model][where][rows] -> one value per seed
    scores = {
        batch: {name: {"above": {}, "below": {}} for name in MODELS}
        for batch in SETTINGS
    }
    for batch in SETTINGS:
        for name in MODELS:
            for seed in SEEDS:
                model = train(name, data, batch, seed)
                for where in ("above", "below"):
                    for rows in EXTRA_ROWS:
                        x = taller_canvas(x_test, rows, where)
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
    for axis, where in zip(axes[1:], ("above", "below"), strict=True):
        for name in MODELS:
            means = [
                np.mean(scores[64][name][where][rows]) for rows in EXTRA_ROWS
            ]
            axis.plot(
                [64 + 8 * rows for rows in EXTRA_ROWS],
                means,
                "o-",
                color=colors[name],
                label=name,
            )
        axis.axvline(64, color="k", lw=0.5, ls=":")
        axis.set(
            xlabel="test sequence length (training: 64)",
            ylabel="test accuracy",
            ylim=(0, 1),
            title=f"({'b' if where == 'above' else 'c'}) blank rows {where}",
        )
        axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    save_figure(figure, "07_layer_normalized_lstm")
    plt.close(figure)

    results = {
        "units": UNITS,
        "seeds": list(SEEDS),
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
                    str(64 + 8 * rows): float(
                        np.mean(scores[64][name][where][rows])
                    )
                    for rows in EXTRA_ROWS
                }
                for name in MODELS
            }
            for where in ("above", "below")
        },
        "run time (s)": round(time.time() - start, 1),
    }
    results["findings"] = findings(results)
    save_results("07_layer_normalized_lstm", results)
    save_text("07_tables.md", tables(results))
    print(results)


def findings(results):
    """Ba et al.'s claims, each checked on this run's means over seeds."""
    accuracy = results["test accuracy"]
    mean = {b: {n: accuracy[b][n]["mean"] for n in MODELS} for b in accuracy}
    longer = results[
        "test accuracy on longer sequences (batch 64, mean of seeds)"
    ]

    def drop(name, where):
        """Accuracy lost from 64 steps to the longest test sequences."""
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
    lines = ["| claim | holds in this run |", "|---|---|"]
    for finding in results["findings"].values():
        holds = "yes" if finding["holds"] else "**no**"
        lines.append(f"| {finding['claim']} | {holds} |")
    sections["findings"] = lines
    minutes, seconds = divmod(round(results["run time (s)"]), 60)
    settings = results["settings (batch: epochs, learning rate)"]
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend, "
        f"{results['units']} units, seeds {results['seeds']}; Adam, "
        + "; ".join(
            f"batch {batch}: {epochs} epochs at learning rate {rate:g}"
            for batch, (epochs, rate) in settings.items()
        )
        + f". The whole script took {minutes} min {seconds} s on a 2-core "
        "CPU.",
    ]
    text = []
    for name, lines in sections.items():
        text += [f"--8<-- [start:{name}]", *lines, f"--8<-- [end:{name}]", ""]
    return "\n".join(text)


if __name__ == "__main__":
    main()
