"""Tutorial 5: group vs batch normalization as the batch shrinks (Wu & He,
2018, Figure 1).

Wu & He's claim: BN's error grows as the batch shrinks from 32 to 2,
because it normalizes with statistics of the batch; GN normalizes each
sample by itself and stays flat. The experiment puts the normalization
where BN's statistics come from few independent samples: a small CNN on
scikit-learn's digits whose head is Dense -> normalization -> ReLU, after
max-pooling and flattening. There each feature's batch mean and variance
come from the batch's samples alone (two values at batch size 2), where a
convolution's come from every position of every sample's feature map.

1. BN, GN and LN (GN with one group) in the head, trained at batch sizes
   2, 4, 8 and 32, three seeds each, to convergence at each size; test
   accuracy in inference mode (BN with population statistics recomputed
   at the training batch size).
2. Why BN falls behind: how far one batch's mean and standard deviation
   are from the population's, at the head's BN and, for comparison, at
   the convolution's output, for each batch size.

    KERAS_BACKEND=torch python \\
        examples/tutorials/05_group_vs_batch_normalization.py

Writes docs/img/tutorials/05_*.png, docs/tutorials/results/
05_group_vs_batch_normalization.json and the page's tables,
docs/tutorials/results/05_tables.md (KERAS_NORMS_SMOKE=1: tiny run).
"""

import itertools
import math
import time

import keras
import matplotlib
import numpy as np

import keras_norms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402
from matplotlib.ticker import LogLocator  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from _common import digits  # noqa: E402
from _common import findings_table  # noqa: E402
from _common import run_time_text  # noqa: E402
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import save_sections  # noqa: E402
from _common import size  # noqa: E402
from _common import spread  # noqa: E402

# --8<-- [start:settings]
BATCH_SIZES = size((2, 4, 8, 32), (2, 32))
SEEDS = size((0, 1, 2), (0,))
FILTERS = 32
UNITS = 64
GROUPS = 8  # GN in the head: 8 groups of 8 features
# Training length: at least MIN_EPOCHS epochs and at least MIN_STEPS
# steps at every batch size: the small batches see every image several
# times, and the large batches take enough steps to converge.
MIN_EPOCHS = size(4, 1)
MIN_STEPS = size(800, 10)
# Adam's rate at batch size 4, scaled with the square root of the batch
# size for the others (the rule for Adam; SGD's is linear).
BASE_RATE, BASE_BATCH = 1e-3, 4
# --8<-- [end:settings]
KINDS = ("batch", "group", "layer")
LABELS = {"batch": "BN", "group": f"GN ({GROUPS} groups)", "layer": "LN"}


# --8<-- [start:model]
def normalization(kind):
    """The head's normalization layer: BN, GN, or LN (GN with one group:
    each sample's features normalized together)."""
    if kind == "batch":
        return keras_norms.layers.BatchNormalization()
    groups = GROUPS if kind == "group" else 1
    return keras_norms.layers.GroupNormalization(groups=groups)


def build(kind):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(FILTERS, 3, padding="same", name="conv"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            # The normalized layer: its statistics over a batch come from
            # the batch's samples only, one value per sample and feature.
            keras.layers.Dense(UNITS, use_bias=False, name="hidden"),
            normalization(kind),
            keras.layers.ReLU(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


# --8<-- [end:model]


# --8<-- [start:training]
def schedule(batch_size, samples):
    """Epochs and Adam's learning rate for one batch size."""
    steps_per_epoch = math.ceil(samples / batch_size)
    epochs = max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))
    rate = BASE_RATE * math.sqrt(batch_size / BASE_BATCH)
    return epochs, rate


def train(kind, batch_size, seed, x_train, y_train):
    epochs, rate = schedule(batch_size, len(x_train))
    keras.utils.set_random_seed(seed)
    model = build(kind)
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0)
    if kind == "batch":
        # Inference with the population statistics of Algorithm 2 at the
        # training batch size, not the moving averages, whose lag
        # (tutorial 1) would be a second handicap.
        keras_norms.recompute_batch_statistics(
            model, x_train, batch_size=batch_size, verbose=0
        )
    return model


# --8<-- [end:training]


# --8<-- [start:estimates]
DRAWS = size(300, 20)


def batch_estimate_errors(values, batch_sizes, rng, draws=DRAWS):
    """How far one batch's mean and standard deviation are from the
    population's, in units of the population's standard deviation.

    ``values`` is a layer's output over the training set, (samples, ...,
    channels); a BN layer there takes each channel's statistics over all
    axes but the last. Returns, per batch size, the median over channels
    of the error, averaged over ``draws`` random batches."""
    values = values.reshape(len(values), -1, values.shape[-1])
    population_mean = values.mean(axis=(0, 1))
    population_std = values.std(axis=(0, 1))
    # Channels that are constant carry no statistics to estimate.
    live = population_std > 1e-6 * population_std.max()
    errors = {}
    for batch_size in batch_sizes:
        mean_errors, std_errors = [], []
        for _ in range(draws):
            batch = values[rng.choice(len(values), batch_size, replace=False)]
            mean = batch.mean(axis=(0, 1))[live]
            std = batch.std(axis=(0, 1))[live]
            scale = population_std[live]
            mean_errors.append(
                np.median(np.abs(mean - population_mean[live]) / scale)
            )
            std_errors.append(np.median(np.abs(std - scale) / scale))
        errors[batch_size] = {
            "mean": float(np.mean(mean_errors)),
            "standard deviation": float(np.mean(std_errors)),
        }
    return errors


# --8<-- [end:estimates]

LAYERS = {"conv": "convolution (per channel)", "hidden": "head (per feature)"}


def statistics_errors(model, x_train, seed):
    """Batch-statistics errors at the convolution's output and at the
    head's BN input (the Dense layer's output) of a trained BN model."""
    rng = np.random.default_rng(seed)
    errors = {}
    for name in LAYERS:
        outputs = keras.Model(model.inputs, model.get_layer(name).output)
        values = outputs.predict(x_train, verbose=0).astype(np.float64)
        errors[name] = batch_estimate_errors(values, BATCH_SIZES, rng)
    return errors


def main():
    start = time.time()
    x_train, y_train, x_test, y_test = digits("image")
    samples = size(len(x_train), 64)  # a subset for the smoke run
    x_train, y_train = x_train[:samples], y_train[:samples]

    scores = {kind: {b: [] for b in BATCH_SIZES} for kind in KINDS}
    fits = {kind: {b: [] for b in BATCH_SIZES} for kind in KINDS}
    errors = []  # per seed, from the BN model at the largest batch size
    for seed in SEEDS:
        for kind in KINDS:
            for batch_size in BATCH_SIZES:
                model = train(kind, batch_size, seed, x_train, y_train)
                predictions = model.predict(x_test, batch_size=256, verbose=0)
                score = float(np.mean(predictions.argmax(axis=1) == y_test))
                scores[kind][batch_size].append(score)
                # How well the training set is fitted, in inference mode.
                predictions = model.predict(x_train, batch_size=256, verbose=0)
                fits[kind][batch_size].append(
                    float(np.mean(predictions.argmax(axis=1) == y_train))
                )
                print(
                    f"seed {seed}, {LABELS[kind]}, batch {batch_size}: "
                    f"{score:.3f} ({time.time() - start:.0f} s)",
                    flush=True,
                )
                if kind == "batch" and batch_size == max(BATCH_SIZES):
                    errors.append(statistics_errors(model, x_train, seed))

    results = {
        "seeds": list(SEEDS),
        "filters": FILTERS,
        "units": UNITS,
        "groups": GROUPS,
        "training samples": len(x_train),
        "test samples": len(x_test),
        "schedule (batch: epochs, learning rate)": {
            str(b): list(schedule(b, len(x_train))) for b in BATCH_SIZES
        },
        "test accuracy": {
            LABELS[kind]: {str(b): spread(v) for b, v in per_batch.items()}
            for kind, per_batch in scores.items()
        },
        "training accuracy": {
            LABELS[kind]: {str(b): spread(v) for b, v in per_batch.items()}
            for kind, per_batch in fits.items()
        },
        "batch statistics error (BN model at batch "
        f"{max(BATCH_SIZES)}, mean of seeds)": {
            LAYERS[name]: {
                statistic: {
                    str(b): float(
                        np.mean([e[name][b][statistic] for e in errors])
                    )
                    for b in BATCH_SIZES
                }
                for statistic in ("mean", "standard deviation")
            }
            for name in LAYERS
        },
    }
    results["findings"] = findings(results)
    plot(results)
    results["run time (s)"] = round(time.time() - start, 1)
    save_results("05_group_vs_batch_normalization", results)
    save_sections("05_tables.md", tables(results))


def statistics_error(results):
    key = next(k for k in results if k.startswith("batch statistics error"))
    return results[key]


def findings(results):
    """Wu & He's claims, each checked on this run. "Beats" means the seeds'
    ranges do not overlap (the worse method's best seed is below the better
    one's worst); "equal" means they overlap."""
    accuracy = {kind: results["test accuracy"][LABELS[kind]] for kind in KINDS}
    small, large = str(min(BATCH_SIZES)), str(max(BATCH_SIZES))
    batch, group = accuracy["batch"], accuracy["group"]

    def beats(a, b):
        return a["min"] > b["max"]

    def overlap(a, b):
        return a["min"] <= b["max"] and b["min"] <= a["max"]

    means = [batch[str(b)]["mean"] for b in BATCH_SIZES]
    errors = statistics_error(results)
    head, conv = errors[LAYERS["hidden"]], errors[LAYERS["conv"]]
    return {
        "gn_beats_bn_at_smallest_batch": {
            "claim": f"At batch size {small}, GN is more accurate than BN "
            "(every GN seed above every BN seed)",
            "holds": beats(group[small], batch[small]),
        },
        "bn_and_gn_equal_at_largest_batch": {
            "claim": f"At batch size {large}, BN and GN are equally "
            "accurate (their seeds' ranges overlap)",
            "holds": overlap(group[large], batch[large]),
        },
        "bn_degrades_at_smallest_batch": {
            "claim": f"BN is less accurate at batch size {small} than at "
            f"{large} (every seed)",
            "holds": beats(batch[large], batch[small]),
        },
        "bn_falls_with_each_smaller_batch": {
            "claim": "BN's mean accuracy falls with each smaller batch size",
            "holds": all(a < b for a, b in itertools.pairwise(means)),
        },
        "gn_stays_flat": {
            "claim": f"GN is as accurate at batch size {small} as at "
            f"{large} (their seeds' ranges overlap)",
            "holds": overlap(group[small], group[large]),
        },
        "ln_beats_bn_at_smallest_batch": {
            "claim": f"At batch size {small}, LN is more accurate than BN "
            "(every LN seed above every BN seed)",
            "holds": beats(accuracy["layer"][small], batch[small]),
        },
        "head_statistics_noisier": {
            "claim": "At every batch size, one batch's mean and standard "
            "deviation are further from the population's at the head than "
            "at the convolution",
            "holds": all(
                head[s][b] > conv[s][b] for s in head for b in head[s]
            ),
        },
    }


def plot(results):
    plt.rcParams.update({"font.size": 13})
    figure, axes = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"BN": "tab:blue", LABELS["group"]: "tab:orange"}
    colors["LN"] = "tab:green"
    for label, per_batch in results["test accuracy"].items():
        mean = np.array([per_batch[str(b)]["mean"] for b in BATCH_SIZES])
        low = mean - [per_batch[str(b)]["min"] for b in BATCH_SIZES]
        high = [per_batch[str(b)]["max"] for b in BATCH_SIZES] - mean
        axes[0].errorbar(
            BATCH_SIZES,
            mean,
            yerr=[low, high],
            fmt="o-",
            capsize=4,
            color=colors[label],
            label=label,
        )
    axes[0].set(
        ylabel="test accuracy",
        title="Test accuracy (mean, min–max of seeds)",
    )
    styles = {"mean": "-", "standard deviation": "--"}
    markers = {LAYERS["hidden"]: "o", LAYERS["conv"]: "s"}
    for layer, per_statistic in statistics_error(results).items():
        for statistic, per_batch in per_statistic.items():
            axes[1].plot(
                BATCH_SIZES,
                [per_batch[str(b)] for b in BATCH_SIZES],
                marker=markers[layer],
                linestyle=styles[statistic],
                color="k" if layer == LAYERS["hidden"] else "tab:gray",
                label=f"{statistic}, {layer.split(' (')[0]}",
            )
    axes[1].set(
        yscale="log",
        ylabel="error / population std",
        title="One batch's statistics vs the population's",
    )
    axes[1].yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axes[1].yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes[1].yaxis.set_minor_locator(NullLocator())
    for axis, columns in zip(axes, (3, 2), strict=True):
        axis.set(
            xscale="log",
            xticks=BATCH_SIZES,
            xticklabels=[str(b) for b in BATCH_SIZES],
            xlabel="batch size",
        )
        axis.xaxis.set_minor_locator(NullLocator())
        axis.grid(alpha=0.3)
        # Legends under the panels, clear of the curves.
        axis.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.17),
            ncol=columns,
            fontsize=11,
            frameon=False,
        )
    figure.tight_layout()
    save_figure(figure, "05_batch_size")
    plt.close(figure)


def tables(results):
    """The page's tables, in Markdown, from the numbers of this run, in
    sections (``accuracy``, ``training``, ``statistics``, ``findings``,
    ``run``) that the page includes one by one."""
    sections = {}
    batches = [str(b) for b in BATCH_SIZES]
    header = "| " + " | ".join(f"batch {b}" for b in batches) + " |"
    rule = "|---|" + "---|" * len(batches)

    def accuracy_table(per_label):
        lines = ["| normalization " + header, rule]
        for label, per_batch in per_label.items():
            cells = [
                "{mean:.3f} ({min:.3f}–{max:.3f})".format(**per_batch[b])
                for b in batches
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return lines

    sections["accuracy"] = accuracy_table(results["test accuracy"])
    sections["training"] = accuracy_table(results["training accuracy"])
    lines = ["| layer, statistic " + header, rule]
    for layer, per_statistic in statistics_error(results).items():
        for statistic, per_batch in per_statistic.items():
            cells = [f"{per_batch[b]:.1%}" for b in batches]
            lines.append(
                f"| {layer}, {statistic} | " + " | ".join(cells) + " |"
            )
    sections["statistics"] = lines
    sections["findings"] = findings_table(results["findings"])
    schedule_text = "; ".join(
        f"batch {b}: {epochs} epoch{'s' * (epochs > 1)} at rate {rate:.2g}"
        for b, (epochs, rate) in results[
            "schedule (batch: epochs, learning rate)"
        ].items()
    )
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend, seeds "
        f"{results['seeds']}; {results['training samples']} training and "
        f"{results['test samples']} test images (one test image is "
        f"{1 / results['test samples']:.2%} of accuracy); Adam, "
        f"{schedule_text}. The whole script took "
        f"{run_time_text(results['run time (s)'])} on a 2-core CPU.",
    ]
    return sections


if __name__ == "__main__":
    main()
