"""Synchronized BatchNormalization under tf.distribute.MirroredStrategy on
3 logical CPU devices, with different (and unequal, one empty) data per
replica. Exits non-zero on any mismatch with the full-batch oracle."""

import os
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 3
)


import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402

import common  # noqa: E402

SIZES = [5, 3, 0]


def run(synchronized):
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]
    )
    assert strategy.num_replicas_in_sync == 3
    batches = common.replica_batches(SIZES)
    weights = common.upstream(batches)
    gamma, beta = common.affine()
    with strategy.scope():
        layer = keras_norms.layers.BatchNormalization(
            momentum=common.MOMENTUM,
            epsilon=common.EPSILON,
            synchronized=synchronized,
        )
        layer.build((None, 2, 2, common.CHANNELS))
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)

    def values(data):
        return strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(data[context.replica_id_in_sync_group])
        )

    @tf.function
    def step(x, w):
        def replica_step(x, w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * w)
            dx, dgamma, dbeta = tape.gradient(
                loss, [x, layer.gamma.value, layer.beta.value]
            )
            return y, dx, dgamma, dbeta

        return strategy.run(replica_step, args=(x, w))

    y, dx, dgamma, dbeta = step(values(batches), values(weights))
    outputs = [t.numpy() for t in strategy.experimental_local_results(y)]
    input_gradients = [
        t.numpy() for t in strategy.experimental_local_results(dx)
    ]
    gamma_gradient = sum(
        t.numpy() for t in strategy.experimental_local_results(dgamma)
    )
    beta_gradient = sum(
        t.numpy() for t in strategy.experimental_local_results(dbeta)
    )
    # Every replica's copy of the moving statistics.
    moving_means = [
        v.numpy()
        for v in strategy.experimental_local_results(layer.moving_mean.value)
    ]
    return outputs, input_gradients, gamma_gradient, beta_gradient, moving_means


def recompute():
    """recompute_batch_statistics under the strategy: the statistics of
    each global batch (each replica holds a differently distributed
    part of it), whatever `synchronized` says."""
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]
    )
    x = np.concatenate(common.replica_batches([8, 8, 16]))
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                keras_norms.layers.BatchNormalization(),
            ]
        )
    report = keras_norms.recompute_batch_statistics(
        model, x, batch_size=16, verbose=0
    )
    common.check_recomputed(model.layers[0], x, 16, report)


if sys.argv[1:] == ["--recompute"]:
    recompute()
    print("OK tensorflow MirroredStrategy: recomputed global statistics")
    sys.exit(0)
# Keras's predict and our own strategy.run in one process make TF's
# collective instance keys collide: the recompute check runs in its own.
subprocess.run([sys.executable, __file__, "--recompute"], check=True)
outputs, dx, dgamma, dbeta, means = run(synchronized=True)
want = common.expected(
    common.replica_batches(SIZES),
    common.upstream(common.replica_batches(SIZES)),
    *common.affine(),
)
for r in range(3):
    common.check(f"outputs[{r}]", outputs[r], want["outputs"][r])
    common.check(f"dx[{r}]", dx[r], want["input_gradients"][r])
    common.check(f"moving_mean[{r}]", means[r], want["moving_mean"])
common.check("dgamma", dgamma, want["gamma_gradient"])
common.check("dbeta", dbeta, want["beta_gradient"])

outputs, _, _, _, _ = run(synchronized=False)
for r in (0, 1):
    local_y, _ = common.local_expected(
        common.replica_batches(SIZES)[r], *common.affine()
    )
    common.check(f"local outputs[{r}]", outputs[r], local_y)

print("OK tensorflow MirroredStrategy: 3 replicas, sizes", SIZES)
