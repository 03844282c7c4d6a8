"""Synchronized BatchNormalization with torch.distributed, on CPU (gloo).

Each process holds a different number of samples; the layer normalizes
with the statistics of all of them. Launch two processes with torchrun:

    KERAS_BACKEND=torch torchrun --nproc_per_node=2 \\
        examples/distributed/torch_distributed_layer.py
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import keras_norms  # noqa: E402

dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, ...
rank = dist.get_rank()
rng = np.random.default_rng(rank)
local_batch = rng.normal(rank, 1.0, (4 + 2 * rank, 8)).astype("float32")

layer = keras_norms.layers.BatchNormalization(synchronized=True)
y = layer(torch.tensor(local_batch), training=True)  # global statistics

# The moving mean moved towards the mean of *every* process's samples.
sizes = [4 + 2 * r for r in range(dist.get_world_size())]
everything = np.concatenate(
    [
        np.random.default_rng(r).normal(r, 1.0, (n, 8))
        for r, n in enumerate(sizes)
    ]
)
expected = 0.01 * everything.mean(axis=0)  # momentum 0.99 from 0
assert np.allclose(layer.moving_mean.numpy(), expected, atol=1e-5)
print(f"rank {rank}: {len(local_batch)} local samples, global statistics")
dist.destroy_process_group()
