"""Accuracy of training-mode batch normalization on large-mean float32 data.

Compares keras_norms.layers.BatchNormalization and
keras.layers.BatchNormalization against a float64 NumPy computation on the
same float32 inputs (mean `center` + N(0, 1)). Run once per backend:

    KERAS_BACKEND=torch python benchmarks/large_mean_accuracy.py
"""

import keras
import numpy as np

import keras_norms


def max_error(layer_class, x):
    y = keras.ops.convert_to_numpy(layer_class()(x, training=True))
    x64 = x.astype("float64")
    expected = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0) + 1e-3)
    return float(np.max(np.abs(y - expected)))


def main():
    rng = np.random.default_rng(0)
    print(f"backend: {keras.backend.backend()}")
    print(f"{'mean':>8} {'keras_norms':>12} {'keras core':>12}")
    for center in (1e2, 1e3, 1e4, 1e5):
        x = (center + rng.normal(size=(1024, 16))).astype("float32")
        ours = max_error(keras_norms.layers.BatchNormalization, x)
        theirs = max_error(keras.layers.BatchNormalization, x)
        print(f"{center:>8.0e} {ours:>12.2e} {theirs:>12.2e}")


if __name__ == "__main__":
    main()
