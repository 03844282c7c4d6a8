"""Inference time of a small CNN before and after fold_batch_normalization.

Three Conv2D + BatchNormalization + ReLU blocks on a (64, 32, 32, 3) batch,
with non-trivial BN statistics; the folded model drops the three BN layers.
Times `model.predict_on_batch` (compiled by each backend's predict function)
after a warm-up, taking the median of several runs of each model, the runs
of the two models alternating. Run once per backend:

    KERAS_BACKEND=torch python benchmarks/bench_fold_batch_normalization.py
"""

import argparse
import statistics
import time

import keras
import numpy as np

import keras_norms


def small_cnn(rng):
    layers = [keras.Input((32, 32, 3))]
    for filters in (32, 64, 64):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
            keras_norms.layers.BatchNormalization(),
            keras.layers.ReLU(),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    for layer in model.layers:
        if isinstance(layer, keras_norms.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
            layer.beta.assign(rng.normal(size=channels))
            layer.moving_mean.assign(rng.normal(size=channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
    return model


def median_seconds(models, x, repeats):
    """Median time of each model; runs alternate between the models so a
    change in machine load during the benchmark hits all of them alike."""
    for model in models:  # warm-up: tracing / compilation
        for _ in range(3):
            keras.ops.convert_to_numpy(model.predict_on_batch(x))
    times = [[] for _ in models]
    for _ in range(repeats):
        for model, model_times in zip(models, times, strict=True):
            start = time.perf_counter()
            keras.ops.convert_to_numpy(model.predict_on_batch(x))
            model_times.append(time.perf_counter() - start)
    return [statistics.median(model_times) for model_times in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = small_cnn(rng)
    folded = keras_norms.fold_batch_normalization(model)
    x = rng.normal(size=(64, 32, 32, 3)).astype("float32")
    difference = np.max(
        np.abs(
            keras.ops.convert_to_numpy(model.predict_on_batch(x))
            - keras.ops.convert_to_numpy(folded.predict_on_batch(x))
        )
    )
    original_time, folded_time = median_seconds(
        [model, folded], x, args.repeats
    )
    print(f"backend: {keras.backend.backend()}")
    print(f"layers: original {len(model.layers)}, folded {len(folded.layers)}")
    print(
        f"median predict_on_batch time over {args.repeats} runs: "
        f"original {original_time * 1e3:.2f} ms, "
        f"folded {folded_time * 1e3:.2f} ms"
    )
    print(f"speed-up (original / folded): {original_time / folded_time:.2f}x")
    print(f"max |original - folded| output difference: {difference:.2e}")


if __name__ == "__main__":
    main()
