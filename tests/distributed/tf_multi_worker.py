"""Synchronized BatchNormalization under
tf.distribute.MultiWorkerMirroredStrategy: two worker processes on this
machine (CPU only, one device each), each with its own TF_CONFIG and its
own shard of data (different mean, spread and number of samples: 5 and 3).

Each worker takes a model converted from Keras core's BatchNormalization by
``keras_norms.convert_normalization`` and runs one training step on its own
shard. With ``synchronized=True`` the outputs, the input and gamma/beta
gradients and the moving statistics must be those of the global batch of 8
(the NumPy float64 oracle); with ``synchronized=False`` the outputs and
moving mean must be those of the worker's own shard.

The step is a custom one (``strategy.run`` calling the model with
``training=True``), not ``model.fit``: Keras 3's fit fails under
MultiWorkerMirroredStrategy with more than one worker (before the first
step it calls ``strategy.reduce`` on the (x, y) batch, which this strategy
does not support for nested values; keras-team/keras#20585, still so in
Keras 3.15 / TensorFlow 2.21).

Run without arguments: it starts the workers itself. Exits non-zero on any
mismatch."""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

SIZES = [5, 3]  # samples per worker (one replica each)
TIMEOUT = 240


def training_step(strategy, model):
    """One step of the model (on every replica, with training=True): the
    outputs and input gradients of this worker's replica, and the gamma
    and beta gradients summed over the replicas. The loss is sum(y * w)."""
    import tensorflow as tf

    layer = model.layers[0]

    @tf.function
    def step(x, w):
        def replica_step(x, w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = model(x, training=True)
                loss = tf.reduce_sum(y * w)
            dx, dgamma, dbeta = tape.gradient(
                loss, [x, layer.gamma.value, layer.beta.value]
            )
            return y, dx, dgamma, dbeta

        y, dx, dgamma, dbeta = strategy.run(replica_step, args=(x, w))
        return (
            y,
            dx,
            strategy.reduce("SUM", dgamma, axis=None),
            strategy.reduce("SUM", dbeta, axis=None),
        )

    return step


def worker():
    import tensorflow as tf

    # Before anything else touches TensorFlow's runtime.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common

    index = strategy.cluster_resolver.task_id
    assert strategy.num_replicas_in_sync == len(SIZES), strategy
    batches = common.replica_batches(SIZES)
    weights = common.upstream(batches)
    gamma, beta = common.affine()
    want = common.expected(batches, weights, gamma, beta)

    def values(data):
        # Each replica (here: each worker) gets its own shard only.
        return strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(data[context.replica_id_in_sync_group])
        )

    for synchronized in (True, False):
        with strategy.scope():
            model = common.converted_batch_normalization(
                gamma, beta, synchronized
            )
        layer = model.layers[0]

        step = training_step(strategy, model)
        y, dx, dgamma, dbeta = step(values(batches), values(weights))
        (y,) = strategy.experimental_local_results(y)
        (dx,) = strategy.experimental_local_results(dx)
        # The moving statistics of this worker's (only) replica.
        (mean,) = strategy.experimental_local_results(layer.moving_mean.value)
        (variance,) = strategy.experimental_local_results(
            layer.moving_variance.value
        )
        if synchronized:
            common.check("outputs", y, want["outputs"][index])
            common.check("dx", dx, want["input_gradients"][index])
            common.check("dgamma", dgamma, want["gamma_gradient"])
            common.check("dbeta", dbeta, want["beta_gradient"])
            common.check("moving mean", mean, want["moving_mean"])
            common.check("moving variance", variance, want["moving_variance"])
        else:
            local_y, local_mean = common.local_expected(
                batches[index], gamma, beta
            )
            common.check("local outputs", y, local_y)
            common.check("local moving mean", np.asarray(mean), local_mean)
    print(f"worker {index}: global statistics synchronized, local otherwise")


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
        sys.exit(0)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common

    ports = common.free_ports(len(SIZES))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    environments = [
        {
            "KERAS_BACKEND": "tensorflow",
            "CUDA_VISIBLE_DEVICES": "",  # CPU only: one device per worker
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            ),
        }
        for i in range(len(SIZES))
    ]
    if not common.run_workers(__file__, environments, TIMEOUT):
        sys.exit(1)
    print(
        "OK tensorflow MultiWorkerMirroredStrategy: 2 worker processes, sizes",
        SIZES,
    )
