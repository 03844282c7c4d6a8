"""Tutorial 5: group vs batch normalization as the batch shrinks (Wu & He,
2018, Figure 1).

The same small CNN on scikit-learn's digits, with BatchNormalization,
GroupNormalization, and GN's two ends, LayerNormalization (one group) and
instance normalization (one group per channel), trained at batch sizes 2,
4, 8 and 32 for the same number of epochs (so every run sees the same
samples), evaluated in inference mode. Then why BN breaks down: how far a
batch's statistics are from the population's at each batch size.

    KERAS_BACKEND=torch python \\
        examples/tutorials/05_group_vs_batch_normalization.py

Writes docs/img/tutorials/05_*.png and docs/tutorials/results/
05_group_vs_batch_normalization.json (KERAS_NORMS_SMOKE=1: tiny run).
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

BATCH_SIZES = size([2, 4, 8, 32], [2, 32])
EPOCHS = size(4, 1)
CHANNELS = (16, 32)


# --8<-- [start:model]
def normalization(kind, channels):
    """One normalization layer of the given kind, for ``channels``."""
    if kind == "batch":
        return keras_norms.layers.BatchNormalization()
    groups = {"group": 4, "layer": 1, "instance": channels}[kind]
    # GroupNormalization with 1 group is layer normalization over
    # (H, W, C); with one group per channel, instance normalization.
    return keras_norms.layers.GroupNormalization(groups=groups)


def build(kind):
    layers = [keras.Input((8, 8, 1))]
    for channels in CHANNELS:
        layers += [
            keras.layers.Conv2D(channels, 3, padding="same", use_bias=False),
            normalization(kind, channels),
            keras.layers.ReLU(),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ]
    return keras.Sequential(layers)


# --8<-- [end:model]

KINDS = ("batch", "group", "layer", "instance")
LABELS = {
    "batch": "BN",
    "group": "GN (4 groups)",
    "layer": "LN (GN, 1 group)",
    "instance": "IN (GN, 1 group per channel)",
}


def accuracy(kind, batch_size, data, seed=0):
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = build(kind)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=batch_size, epochs=EPOCHS, verbose=0)
    if kind == "batch":
        # BN's population statistics as Algorithm 2 defines them (with the
        # training batch size): after a few hundred steps, the moving
        # averages would still carry their initial values, which is a
        # different problem (tutorial 1).
        keras_norms.recompute_batch_statistics(
            model, x_train, batch_size=batch_size, verbose=0
        )
    return float(model.evaluate(x_test, y_test, verbose=0)[1]), model


# --8<-- [start:estimates]
def batch_estimate_errors(model, x_train, batch_sizes, draws=200, seed=0):
    """How far one batch's mean and variance are from the population's,
    for the first BN layer's input: the median over channels of the
    relative error, averaged over random batches."""
    bn = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras_norms.layers.BatchNormalization)
    )
    features = keras.Model(model.inputs, bn.input)
    values = features.predict(x_train, verbose=0).astype(np.float64)
    population_mean = values.mean(axis=(0, 1, 2))
    population_std = values.std(axis=(0, 1, 2))
    rng = np.random.default_rng(seed)
    errors = {}
    for batch_size in batch_sizes:
        mean_errors, std_errors = [], []
        for _ in range(draws):
            batch = values[rng.choice(len(values), batch_size, replace=False)]
            mean = batch.mean(axis=(0, 1, 2))
            std = batch.std(axis=(0, 1, 2))
            # The mean's error in units of the population's spread.
            mean_errors.append(
                np.median(np.abs(mean - population_mean) / population_std)
            )
            std_errors.append(
                np.median(np.abs(std - population_std) / population_std)
            )
        errors[batch_size] = {
            "mean": float(np.mean(mean_errors)),
            "standard deviation": float(np.mean(std_errors)),
        }
    return errors


# --8<-- [end:estimates]


def main():
    start = time.time()
    x_train, y_train, x_test, y_test = digits("image")
    samples = size(len(x_train), 256)  # a subset for the smoke run
    data = x_train[:samples], y_train[:samples], x_test, y_test
    results = {kind: {} for kind in KINDS}
    bn_model = None
    for kind in KINDS:
        for batch_size in BATCH_SIZES:
            score, model = accuracy(kind, batch_size, data)
            results[kind][batch_size] = score
            print(f"{LABELS[kind]}, batch {batch_size}: {score:.3f}")
            if kind == "batch" and batch_size == max(BATCH_SIZES):
                bn_model = model

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind in KINDS:
        axes[0].plot(
            BATCH_SIZES,
            [results[kind][b] for b in BATCH_SIZES],
            "o-",
            label=LABELS[kind],
        )
    axes[0].set(
        xscale="log",
        xticks=BATCH_SIZES,
        xticklabels=[str(b) for b in BATCH_SIZES],
        xlabel="batch size",
        ylabel="test accuracy",
        title=f"Test accuracy after {EPOCHS} epochs",
    )
    axes[0].legend(fontsize=8)

    errors = batch_estimate_errors(bn_model, data[0], BATCH_SIZES)
    for statistic in ("mean", "standard deviation"):
        axes[1].plot(
            BATCH_SIZES,
            [errors[b][statistic] for b in BATCH_SIZES],
            "o-",
            label=statistic,
        )
    axes[1].set(
        xscale="log",
        yscale="log",
        xticks=BATCH_SIZES,
        xticklabels=[str(b) for b in BATCH_SIZES],
        xlabel="batch size",
        ylabel="relative error of one batch",
        title="BN's batch statistics vs the population's",
    )
    axes[1].legend()
    for axis in axes:
        axis.minorticks_off()  # only the batch sizes on the log axis
    figure.tight_layout()
    save_figure(figure, "05_batch_size")
    plt.close(figure)

    save_results(
        "05_group_vs_batch_normalization",
        {
            "epochs": EPOCHS,
            "test accuracy": {
                LABELS[kind]: {str(b): v for b, v in scores.items()}
                for kind, scores in results.items()
            },
            "batch statistics error (first BN layer)": {
                str(b): value for b, value in errors.items()
            },
            "run time (s)": round(time.time() - start, 1),
        },
    )


if __name__ == "__main__":
    main()
