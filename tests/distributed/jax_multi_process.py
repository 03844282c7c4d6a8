"""BatchNormalization under keras.distribution.DataParallel across two JAX
processes on this machine (``jax.distributed.initialize``, CPU, two local
devices each: four devices in all, gloo collectives between the
processes).

Each process feeds ``model.fit`` its own shard of 4 samples (its own mean
and spread); Keras assembles the global batch of 8 from the processes'
shards (``jax.make_array_from_process_local_data``). The model is
converted from Keras core's BatchNormalization by
``keras_norms.convert_normalization``. After the one step, in every
process, the moving statistics must be those of the global batch (the
NumPy float64 oracle).

That holds for ``synchronized=False`` too, and is expected: under
DataParallel the model is one SPMD program over the global batch, so the
batch statistics are always global (as for Keras core's layer; see
docs/synchronized_batch_normalization.md). Per-process statistics are not
available there.

Run without arguments: it starts the processes itself. Exits non-zero on
any mismatch."""

import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

PROCESSES = 2
LOCAL_DEVICES = 2
SHARD = 4  # samples per process (equal: the global batch is assembled
# from equal per-process shards)
TIMEOUT = 240


def worker():
    import jax

    # The CPU backend's cross-process collectives (gloo, the default in
    # recent jax) must be chosen before the backend starts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    process_id = int(os.environ["PROCESS_ID"])
    jax.distributed.initialize(
        coordinator_address=os.environ["COORDINATOR"],
        num_processes=PROCESSES,
        process_id=process_id,
    )

    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common

    assert jax.process_count() == PROCESSES
    assert len(jax.local_devices()) == LOCAL_DEVICES, jax.local_devices()
    assert len(jax.devices()) == PROCESSES * LOCAL_DEVICES, jax.devices()
    # Same seed everywhere: the processes must agree on initial weights.
    keras.utils.set_random_seed(0)
    # Every process passes its own shard: no sharding of the data by Keras.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(
            devices=jax.devices(), auto_shard_dataset=False
        )
    )
    batches = common.replica_batches([SHARD] * PROCESSES)
    gamma, beta = common.affine()
    want = common.expected(batches, common.upstream(batches), gamma, beta)
    mine = batches[process_id]
    for synchronized in (True, False):
        model = common.converted_batch_normalization(gamma, beta, synchronized)
        layer = model.layers[0]
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        # batch_size is per process: the global batch is 2 x 4 samples.
        model.fit(mine, mine, batch_size=SHARD, epochs=1, verbose=0)
        for name in ("moving_mean", "moving_variance"):
            value = getattr(layer, name).value
            assert len(value.sharding.device_set) == len(jax.devices())
            assert value.is_fully_replicated
            common.check(
                f"{name} (synchronized={synchronized})",
                np.asarray(value.addressable_data(0)),
                want[name],
            )
    local_mean = common.local_expected(mine, gamma, beta)[1]
    assert not np.allclose(local_mean, want["moving_mean"], atol=1e-2)
    print(f"process {process_id}: global statistics")
    jax.distributed.shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
        sys.exit(0)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common

    (port,) = common.free_ports(1)
    environments = [
        {
            "KERAS_BACKEND": "jax",
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": "--xla_force_host_platform_device_count="
            f"{LOCAL_DEVICES}",
            "COORDINATOR": f"127.0.0.1:{port}",
            "PROCESS_ID": str(i),
        }
        for i in range(PROCESSES)
    ]
    if not common.run_workers(__file__, environments, TIMEOUT):
        sys.exit(1)
    print(
        f"OK jax multi-process DataParallel: {PROCESSES} processes x "
        f"{LOCAL_DEVICES} CPU devices, global statistics"
    )
