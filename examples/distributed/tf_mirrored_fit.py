"""Synchronized BatchNormalization under tf.distribute.MirroredStrategy.

Splits the one CPU into two logical devices, so it runs on a laptop:

    KERAS_BACKEND=tensorflow python examples/distributed/tf_mirrored_fit.py
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

# Two replicas on one CPU (must happen before TensorFlow uses the device).
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402

rng = np.random.default_rng(0)
images = rng.normal(size=(64, 32, 32, 3)).astype("float32")
labels = rng.normal(size=(64, 10)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)

strategy = tf.distribute.MirroredStrategy(
    [device.name for device in tf.config.list_logical_devices("CPU")]
)
with strategy.scope():
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, use_bias=False),
            # Statistics of the global batch of 16, not of each replica's 8.
            keras_norms.layers.BatchNormalization(synchronized=True),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
model.fit(dataset, epochs=1, verbose=0)
print(f"trained on {strategy.num_replicas_in_sync} replicas")
