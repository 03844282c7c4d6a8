"""BatchNormalization under keras.distribution.DataParallel on JAX.

Forces two host devices out of one CPU, so it runs on a laptop:

    KERAS_BACKEND=jax python examples/distributed/jax_data_parallel_fit.py
"""

import os

os.environ["KERAS_BACKEND"] = "jax"
# Two CPU devices (must be set before JAX is imported).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=2"
)

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402

# The distribution first, then the model: its variables are created on the
# devices of the distribution.
keras.distribution.set_distribution(
    keras.distribution.DataParallel(devices=jax.devices())
)
model = keras.Sequential(
    [
        keras.Input((16,)),
        keras.layers.Dense(32, use_bias=False),
        keras_norms.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer="sgd", loss="mse")
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 16)).astype("float32")
y = rng.normal(size=(256, 1)).astype("float32")
# Each batch of 64 is split over the devices; the statistics are those of
# all 64 samples (one SPMD program over the global batch).
model.fit(x, y, batch_size=64, epochs=1, verbose=0)
print(f"trained on {len(jax.devices())} devices")
