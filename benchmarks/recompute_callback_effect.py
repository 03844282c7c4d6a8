"""What RecomputeBatchStatistics changes on the getting-started model.

The digits model of docs/getting_started.md (Adam 3e-3, batch 32, 3
epochs; BatchNormalization with the default momentum 0.99) is trained
twice from the same seed: once as it is, once with
`RecomputeBatchStatistics(x_train, batch_size=32, when="end")`, which does
not touch training, so both runs end with the same weights (checked). The
test accuracy of the first uses the moving averages, of the second the
recomputed population statistics. Run once per backend:

    KERAS_BACKEND=jax python benchmarks/recompute_callback_effect.py

The figures go to recompute_callback_effect.json next to this script, one
entry per backend.
"""

import json
import os
import time

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_norms

SEED = 0
EPOCHS = 3
RESULTS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "recompute_callback_effect.json"
)


def digits():
    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    y = data.target
    return x[:1400], y[:1400], x[1400:], y[1400:]


def getting_started_model():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
            keras_norms.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(32, 3, padding="same"),
            keras_norms.layers.GroupNormalization(groups=8),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def train(callbacks):
    """Fit from the seed; returns (model, seconds fit took)."""
    x_train, y_train, _, _ = digits()
    keras.utils.set_random_seed(SEED)
    model = getting_started_model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=32,
        epochs=EPOCHS,
        callbacks=callbacks,
        verbose=0,
    )
    return model, time.perf_counter() - start


def main():
    x_train, _, x_test, y_test = digits()
    moving, moving_seconds = train([])
    callback = keras_norms.callbacks.RecomputeBatchStatistics(
        x_train, batch_size=32, when="end", verbose=0
    )
    recomputed, recomputed_seconds = train([callback])
    # Same training, so the accuracies differ by the statistics alone.
    weight_difference = max(
        float(np.max(np.abs(keras.ops.convert_to_numpy(a) - b)))
        for a, b in zip(
            moving.trainable_weights,
            (
                keras.ops.convert_to_numpy(w)
                for w in recomputed.trainable_weights
            ),
            strict=True,
        )
    )
    result = {
        "keras": keras.__version__,
        "epochs": EPOCHS,
        "seed": SEED,
        "test_accuracy_moving_averages": float(
            moving.evaluate(x_test, y_test, verbose=0)[1]
        ),
        "test_accuracy_recomputed": float(
            recomputed.evaluate(x_test, y_test, verbose=0)[1]
        ),
        "fit_seconds": round(moving_seconds, 2),
        "fit_with_callback_seconds": round(recomputed_seconds, 2),
        "max_trainable_weight_difference": weight_difference,
    }
    backend = keras.backend.backend()
    print(f"backend: {backend}")
    for name, value in result.items():
        print(f"  {name}: {value}")
    everything = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as file:
            everything = json.load(file)
    everything[backend] = result
    with open(RESULTS, "w") as file:
        json.dump(everything, file, indent=2, sort_keys=True)
        file.write("\n")


if __name__ == "__main__":
    main()
