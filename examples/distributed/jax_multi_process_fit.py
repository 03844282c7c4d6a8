"""BatchNormalization under keras.distribution.DataParallel across JAX
processes (``jax.distributed.initialize``).

Run one copy per process, each with the coordinator's address, the number
of processes and its own index. Two processes on this machine:

    export KERAS_BACKEND=jax
    python examples/distributed/jax_multi_process_fit.py 127.0.0.1:12355 2 0 &
    python examples/distributed/jax_multi_process_fit.py 127.0.0.1:12355 2 1

Each process feeds model.fit its own shard of the data; the batch
statistics are those of the global batch.
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402

coordinator, num_processes, process_id = sys.argv[1:4]
# Collectives between CPU processes (GPUs and TPUs have their own).
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=coordinator,
    num_processes=int(num_processes),
    process_id=int(process_id),
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_norms  # noqa: E402

# The same initial weights in every process.
keras.utils.set_random_seed(0)
# The distribution first, then the model. All processes' devices; each
# process passes its own shard to fit (Keras does not shard it again).
keras.distribution.set_distribution(
    keras.distribution.DataParallel(
        devices=jax.devices(), auto_shard_dataset=False
    )
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
# This process's shard; batch_size is per process (the global batch is
# batch_size * jax.process_count() samples).
shard = slice(jax.process_index(), None, jax.process_count())
model.fit(x[shard], y[shard], batch_size=32, epochs=1, verbose=0)
print(
    f"process {jax.process_index()}: trained on {len(jax.devices())} "
    f"devices in {jax.process_count()} processes"
)
jax.distributed.shutdown()
