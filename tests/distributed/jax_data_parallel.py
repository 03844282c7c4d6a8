"""BatchNormalization under keras.distribution.DataParallel on 4 forced
host devices, trained with model.fit on replica-dependent data. The jit/SPMD
program sees the global batch, so the statistics are global: the moving
statistics must equal the full-batch ones. Exits non-zero on mismatch."""

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=4"
)

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402

import common  # noqa: E402

assert len(jax.devices()) == 4, jax.devices()
keras.distribution.set_distribution(
    keras.distribution.DataParallel(devices=jax.devices())
)
# One global batch of 16: each device's shard of 4 has its own mean/spread.
batches = common.replica_batches([4, 4, 4, 4])
x = np.concatenate(batches)
for synchronized in (True, False):
    model = keras.Sequential(
        [
            keras.Input((2, 2, common.CHANNELS)),
            keras_norms.layers.BatchNormalization(
                momentum=common.MOMENTUM,
                epsilon=common.EPSILON,
                synchronized=synchronized,
            ),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(x, x, batch_size=16, epochs=1, verbose=0, shuffle=False)
    layer = model.layers[0]
    assert len(layer.moving_mean.value.sharding.device_set) == 4
    want = common.expected(batches, common.upstream(batches), *common.affine())
    common.check(
        f"moving mean (synchronized={synchronized})",
        layer.moving_mean.numpy(),
        want["moving_mean"],
    )
    common.check(
        f"moving variance (synchronized={synchronized})",
        layer.moving_variance.numpy(),
        want["moving_variance"],
    )
# recompute_batch_statistics over global batches of 16 (two of them).
x = np.concatenate(common.replica_batches([8, 8, 16]))
model = keras.Sequential(
    [keras.Input(x.shape[1:]), keras_norms.layers.BatchNormalization()]
)
report = keras_norms.recompute_batch_statistics(
    model, x, batch_size=16, verbose=0
)
common.check_recomputed(model.layers[0], x, 16, report)
print("OK jax DataParallel: 4 devices, global statistics either way")
