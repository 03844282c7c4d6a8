"""Train a small CNN with keras_norms layers on scikit-learn's 8x8 digits.

Runs on whatever Keras backend is active (KERAS_BACKEND; TensorFlow by
default). Prints what the network learned: test accuracy, what the
BatchNormalization layer's moving statistics converged to (compared with
the statistics of the data that reaches it), and that a saved and reloaded
model predicts the same.

    python examples/digits_demo.py
"""

import os
import tempfile

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_norms


def build_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras_norms.layers.BatchNormalization(name="batch_norm")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 3, padding="same")(x)
    x = keras_norms.layers.GroupNormalization(groups=8)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(32)(x)
    x = keras_norms.layers.LayerNormalization()(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def main():
    keras.utils.set_random_seed(0)
    digits = load_digits()
    # Raw pixels in 0..16: BatchNormalization deals with the scale.
    images = digits.images[..., None].astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=0
    )
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    print(f"Backend: {keras.backend.backend()}; {len(x_train)} training digits")
    history = model.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)
    losses = history.history["loss"]
    print(f"Training loss: {losses[0]:.3f} (epoch 1) -> {losses[-1]:.3f}")
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {accuracy:.3f} on {len(x_test)} held-out digits")

    # What BatchNormalization learned: its moving statistics should match
    # the statistics of the convolution outputs over the training set.
    batch_norm = model.get_layer("batch_norm")
    conv = keras.Model(model.input, batch_norm.input)
    features = keras.ops.convert_to_numpy(conv(x_train)).reshape(-1, 16)
    moving_mean = keras.ops.convert_to_numpy(batch_norm.moving_mean)
    moving_variance = keras.ops.convert_to_numpy(batch_norm.moving_variance)
    print(
        "BatchNormalization moving mean vs data mean (first 4 channels):\n"
        f"  moving {np.round(moving_mean[:4], 2)}\n"
        f"  data   {np.round(features.mean(axis=0)[:4], 2)}"
    )
    relative = np.abs(moving_variance - features.var(axis=0)) / features.var(
        axis=0
    )
    print(
        "Moving variance within "
        f"{100 * np.median(relative):.1f}% (median over channels) of the "
        "data variance"
    )

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "digits.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    same = np.allclose(
        keras.ops.convert_to_numpy(model.predict(x_test, verbose=0)),
        keras.ops.convert_to_numpy(reloaded.predict(x_test, verbose=0)),
        atol=1e-6,
    )
    print(f"Saved and reloaded model predicts the same: {same}")
    if accuracy < 0.9 or not same:
        raise SystemExit("The demo did not learn as expected.")


if __name__ == "__main__":
    main()
