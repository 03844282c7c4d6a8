"""Two replicas on one CPU, for tutorial 6: the batch statistics each
replica's BatchNormalization computes in one training step, with and
without ``synchronized=True``. Run by 06_deploying_and_scaling.py in a
subprocess (the devices must be set up before the backend starts):

    KERAS_BACKEND=<backend> python examples/tutorials/_sync_bn_worker.py IN OUT

IN is an .npz with one array per replica (``replica0``, ``replica1``);
OUT receives the JSON ``{"synchronized": [...], "local": [...]}``: per
replica, the batch mean per channel (read from the moving mean, updated
with momentum 0).
"""

import json
import os
import sys

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_force_host_platform_device_count=2"
    )

import numpy as np  # noqa: E402


def tensorflow_means(shards):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras_norms

    strategy = tf.distribute.MirroredStrategy(
        [device.name for device in tf.config.list_logical_devices("CPU")]
    )
    results = {}
    for synchronized in (True, False):
        with strategy.scope():
            layer = keras_norms.layers.BatchNormalization(
                momentum=0.0, synchronized=synchronized
            )
            layer.build((None, shards[0].shape[1]))

        def shard(context):
            return tf.constant(shards[context.replica_id_in_sync_group])

        def step(x, layer=layer):
            return layer(x, training=True)

        values = strategy.experimental_distribute_values_from_function(shard)
        strategy.run(tf.function(step), (values,))
        copies = strategy.experimental_local_results(layer.moving_mean.value)
        key = "synchronized" if synchronized else "local"
        results[key] = [np.asarray(copy).tolist() for copy in copies]
    return results


def jax_means(shards):
    # Under keras.distribution.DataParallel the layer sees the global batch
    # anyway; per-device statistics exist inside jax.pmap, where the
    # functional core takes the collective explicitly.
    import jax

    import keras_norms

    def batch_mean(x, synchronized):
        gather = None
        if synchronized:

            def gather(t):
                return jax.lax.all_gather(t, "replicas")

        _, mean, _, _ = keras_norms.ops.batch_normalization_training(
            x, all_gather=gather
        )
        return mean

    stacked = np.stack(shards)
    return {
        key: np.asarray(
            jax.pmap(
                lambda x, s=synchronized: batch_mean(x, s),
                axis_name="replicas",
            )(stacked)
        ).tolist()
        for key, synchronized in (("synchronized", True), ("local", False))
    }


def torch_worker(rank, shards, port, queue):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=len(shards))
    import keras_norms

    results = {}
    for synchronized in (True, False):
        layer = keras_norms.layers.BatchNormalization(
            momentum=0.0, synchronized=synchronized
        )
        layer(shards[rank], training=True)
        key = "synchronized" if synchronized else "local"
        results[key] = layer.moving_mean.numpy().tolist()
    queue.put((rank, results))
    dist.destroy_process_group()


def torch_means(shards):
    import socket

    import torch.multiprocessing as multiprocessing

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    multiprocessing.spawn(
        torch_worker, args=(shards, port, queue), nprocs=len(shards)
    )
    per_rank = dict(queue.get() for _ in shards)
    return {
        key: [per_rank[rank][key] for rank in range(len(shards))]
        for key in ("synchronized", "local")
    }


def main(source, target):
    data = np.load(source)
    shards = [data[f"replica{r}"] for r in range(2)]
    means = {
        "tensorflow": tensorflow_means,
        "jax": jax_means,
        "torch": torch_means,
    }[BACKEND](shards)
    with open(target, "w") as file:
        json.dump(means, file)


if __name__ == "__main__":
    main(*sys.argv[1:3])
