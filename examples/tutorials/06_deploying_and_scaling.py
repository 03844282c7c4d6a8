"""Tutorial 6: deploying (BN folding) and scaling (synchronized BN).

1. Train a small CNN with BatchNormalization on scikit-learn's digits, fold
   every BN layer into the convolution or Dense before it with
   `keras_norms.fold_batch_normalization`, and compare: outputs, layer
   count, inference latency.
2. Two replicas on one CPU, each holding different digits: the batch
   statistics each replica's BN uses with ``synchronized=False`` (its own
   half) and ``synchronized=True`` (the global batch), against NumPy.

    KERAS_BACKEND=torch python examples/tutorials/06_deploying_and_scaling.py

Writes docs/img/tutorials/06_*.png and docs/tutorials/results/
06_deploying_and_scaling.json (KERAS_NORMS_SMOKE=1 for a tiny run).
"""

import json
import os
import subprocess
import sys
import tempfile
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

HERE = os.path.dirname(os.path.abspath(__file__))


# --8<-- [start:fold]
def build_cnn():
    """Conv -> BN -> ReLU twice, then Dense -> BN -> ReLU: every BN follows
    a linear layer, so every one folds."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
            keras_norms.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(64, 3, padding="same"),
            keras_norms.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(64),
            keras_norms.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def fold_and_compare(model, x):
    folded = keras_norms.fold_batch_normalization(model)
    before = model.predict(x, verbose=0)
    after = folded.predict(x, verbose=0)
    return folded, float(np.max(np.abs(before - after)))


# --8<-- [end:fold]


def latency(models, x, repeats):
    """Median seconds per inference call of each model, interleaved so that
    a noisy machine slows all of them alike."""
    times = {name: [] for name in models}
    for model in models.values():
        model(x, training=False)  # warm-up (tracing, allocation)
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            keras.ops.convert_to_numpy(model(x, training=False))
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


# --8<-- [start:replicas]
def replica_statistics(x_train, y_train):
    """Replica 0 holds the digits 0-4, replica 1 the digits 5-9: their
    batches differ, as the local batches of real replicas can."""
    shards = [x_train[y_train < 5][:64], x_train[y_train >= 5][:64]]
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "shards.npz")
        target = os.path.join(folder, "means.json")
        np.savez(source, replica0=shards[0], replica1=shards[1])
        # A subprocess: the devices must be set up before the backend starts.
        subprocess.run(
            [
                sys.executable,
                os.path.join(HERE, "_sync_bn_worker.py"),
                source,
                target,
            ],
            check=True,
            env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        )
        with open(target) as file:
            means = json.load(file)
    global_mean = np.concatenate(shards).astype(np.float64).mean(axis=0)
    local_means = [shard.astype(np.float64).mean(axis=0) for shard in shards]
    return means, global_mean, local_means


# --8<-- [end:replicas]


def main():
    start = time.time()
    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = digits("image")
    model = build_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=32, epochs=size(10, 1), verbose=0)
    folded, difference = fold_and_compare(model, x_test)
    accuracy = {
        "original": model.evaluate(x_test, y_test, verbose=0)[1],
        "folded": folded.evaluate(x_test, y_test, verbose=0)[1],
    }
    batch = x_test[:256]
    seconds = latency({"original": model, "folded": folded}, batch, size(50, 3))

    flat = x_train.reshape(len(x_train), -1)
    means, global_mean, local_means = replica_statistics(flat, y_train)
    figure, axis = plt.subplots(figsize=(10, 3.5))
    pixels = np.arange(flat.shape[1])
    axis.plot(pixels, global_mean, "k-", lw=3, alpha=0.4, label="global batch")
    for replica in range(2):
        axis.plot(
            pixels,
            means["local"][replica],
            "--",
            label=f"replica {replica}, synchronized=False",
        )
        axis.plot(
            pixels,
            means["synchronized"][replica],
            ":",
            lw=2,
            label=f"replica {replica}, synchronized=True",
        )
    axis.set(
        xlabel="pixel (channel)",
        ylabel="batch mean used by BN",
        title="Replica 0: digits 0-4, replica 1: digits 5-9",
    )
    # Below the axes: the lines span the whole width.
    axis.legend(
        fontsize=9, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.22)
    )
    save_figure(figure, "06_synchronized_statistics")
    plt.close(figure)

    def error(values, reference):
        return float(np.max(np.abs(np.asarray(values) - reference)))

    results = {
        "folding": {
            "layers before": len(model.layers),
            "layers after": len(folded.layers),
            "max |original - folded| (softmax outputs)": difference,
            "test accuracy": accuracy,
            "median latency, batch of 256 (ms)": {
                name: round(1e3 * value, 3) for name, value in seconds.items()
            },
            "folded / original latency": seconds["folded"]
            / seconds["original"],
        },
        "synchronized statistics": {
            "max |synchronized - global| per replica": [
                error(m, global_mean) for m in means["synchronized"]
            ],
            "max |local - own half| per replica": [
                error(m, local)
                for m, local in zip(means["local"], local_means, strict=True)
            ],
            "max |local - global| per replica": [
                error(m, global_mean) for m in means["local"]
            ],
        },
        "run time (s)": round(time.time() - start, 1),
    }
    results["findings"] = findings(results)
    save_results("06_deploying_and_scaling", results)
    save_sections("06_tables.md", tables(results))
    print(json.dumps(results, indent=2))


def findings(results):
    folding = results["folding"]
    synchronized = results["synchronized statistics"]
    return {
        "fold_exact": finding(
            "Folding changes the outputs only by float32 rounding (at most "
            "1e-5) and leaves the test accuracy as it was",
            folding["max |original - folded| (softmax outputs)"] <= 1e-5
            and folding["test accuracy"]["original"]
            == folding["test accuracy"]["folded"],
        ),
        "fold_faster": finding(
            "The folded model is faster (median latency)",
            folding["folded / original latency"] < 1,
        ),
        "synchronized_global": finding(
            "With synchronized=True every replica normalizes with the "
            "global batch's mean (to 1e-6)",
            max(synchronized["max |synchronized - global| per replica"])
            <= 1e-6,
        ),
        "local_own_half": finding(
            "With synchronized=False each replica normalizes with its own "
            "half's mean (to 1e-6), not the global one",
            max(synchronized["max |local - own half| per replica"]) <= 1e-6
            and min(synchronized["max |local - global| per replica"]) > 1e-3,
        ),
    }


def tables(results):
    """The page's tables, from this run's numbers, by section."""
    folding = results["folding"]
    latency = folding["median latency, batch of 256 (ms)"]
    accuracy = folding["test accuracy"]
    sections = {
        "fold": [
            "| | original | folded |",
            "|---|---|---|",
            f"| layers | {folding['layers before']} | "
            f"{folding['layers after']} |",
            f"| test accuracy | {accuracy['original']:.4f} | "
            f"{accuracy['folded']:.4f} |",
            f"| median latency, 256 digits, `model(x)` | "
            f"{latency['original']:.1f} ms | {latency['folded']:.1f} ms |",
            "",
            "Largest difference of the outputs (softmax probabilities): "
            f"{folding['max |original - folded| (softmax outputs)']:.1e}; "
            "folded / original latency: "
            f"{folding['folded / original latency']:.2f}.",
        ],
    }
    synchronized = results["synchronized statistics"]
    rows = {
        "max \\|synchronized mean − global mean (NumPy)\\|": (
            "max |synchronized - global| per replica"
        ),
        "max \\|local mean − its own half's mean\\|": (
            "max |local - own half| per replica"
        ),
        "max \\|local mean − global mean\\|": (
            "max |local - global| per replica"
        ),
    }
    lines = ["| | replica 0 | replica 1 |", "|---|---|---|"]
    for label, key in rows.items():
        lines.append(
            f"| {label} | "
            + " | ".join(f"{value:.3g}" for value in synchronized[key])
            + " |"
        )
    sections["synchronized"] = lines
    sections["findings"] = findings_table(results["findings"])
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend; the "
        f"whole script took {run_time_text(results['run time (s)'])} on a "
        "2-core CPU.",
    ]
    return sections


if __name__ == "__main__":
    main()
