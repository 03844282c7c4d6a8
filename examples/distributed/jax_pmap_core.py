"""The functional core inside your own jax.pmap, with global statistics.

Inside `jax.pmap` the layer cannot know the mapped axis name; the
functional core takes the collective explicitly:

    KERAS_BACKEND=jax python examples/distributed/jax_pmap_core.py
"""

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=2"
)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402


def normalize(x):
    y, mean, variance, count = keras_norms.ops.batch_normalization_training(
        x, all_gather=lambda t: jax.lax.all_gather(t, "devices")
    )
    return y, mean


devices = jax.local_device_count()
x = np.random.default_rng(0).normal(size=(devices, 8, 3)).astype("float32")
y, mean = jax.pmap(normalize, axis_name="devices")(x)
# Every device saw the mean of all devices' samples.
assert np.allclose(mean[0], x.reshape(-1, 3).mean(axis=0), atol=1e-5)
print(f"global statistics on {devices} devices")
