"""Synchronized BatchNormalization with torch.distributed (gloo, CPU) in
3 processes with unequal local batches (one empty). Run without arguments:
it starts the processes itself. Exits non-zero on any mismatch with the
single-process full-batch oracle."""

import os
import socket
import sys

os.environ["KERAS_BACKEND"] = "torch"

import torch.multiprocessing as multiprocessing  # noqa: E402

SIZES = [5, 3, 0]


def worker(rank, world_size, port):
    import torch
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        import keras_norms

        import common

        batches = common.replica_batches(SIZES)
        weights = common.upstream(batches)
        gamma, beta = common.affine()
        want = common.expected(batches, weights, gamma, beta)
        for synchronized in (True, False):
            layer = keras_norms.layers.BatchNormalization(
                momentum=common.MOMENTUM,
                epsilon=common.EPSILON,
                synchronized=synchronized,
            )
            layer.build((None, 2, 2, common.CHANNELS))
            layer.gamma.assign(gamma)
            layer.beta.assign(beta)
            x = torch.tensor(batches[rank], requires_grad=True)
            y = layer(x, training=True)
            if not synchronized:
                if SIZES[rank]:
                    local_y, local_mean = common.local_expected(
                        batches[rank], gamma, beta
                    )
                    common.check("local outputs", y.detach(), local_y)
                    common.check(
                        "local moving mean",
                        layer.moving_mean.numpy(),
                        local_mean,
                    )
                continue
            loss = (y * torch.tensor(weights[rank])).sum()
            loss.backward()
            common.check("outputs", y.detach(), want["outputs"][rank])
            common.check("dx", x.grad, want["input_gradients"][rank])
            # DDP would all-reduce parameter gradients; do it by hand.
            gamma_grad = layer.gamma.value.grad.clone()
            dist.all_reduce(gamma_grad)
            common.check("dgamma", gamma_grad, want["gamma_gradient"])
            common.check(
                "moving mean", layer.moving_mean.numpy(), want["moving_mean"]
            )
            common.check(
                "moving variance",
                layer.moving_variance.numpy(),
                want["moving_variance"],
            )
        check_timestep_batch_normalization(rank)
        check_recompute(rank)
    finally:
        dist.destroy_process_group()


def check_timestep_batch_normalization(rank):
    """Per-time-step statistics are global too."""
    import numpy as np

    import keras_norms

    import common
    import reference_recurrent

    rng = np.random.default_rng(5)
    sequences = [
        rng.normal(3.0 * r, 1.0 + r, (n, 4, 2)).astype("float32")
        for r, n in enumerate(SIZES)
    ]
    layer = keras_norms.layers.TimestepBatchNormalization(
        momentum=0.0, synchronized=True
    )
    y = layer(sequences[rank], training=True)
    full_y, means, variances, _ = reference_recurrent.timestep_batch_norm_train(
        np.concatenate(sequences)
    )
    start = sum(SIZES[:rank])
    common.check(
        "timestep outputs", y.detach(), full_y[start : start + SIZES[rank]]
    )
    common.check("timestep moving mean", layer.moving_mean.numpy(), means)
    common.check(
        "timestep moving variance", layer.moving_variance.numpy(), variances
    )


def check_recompute(rank):
    """recompute_batch_statistics in every process over its own share of
    each batch (two batches, 8 + 8 + 16 samples each time): the
    statistics of the global batches."""
    import keras
    import numpy as np

    import keras_norms

    import common

    shares = common.replica_batches([8, 8, 16])
    model = keras.Sequential(
        [
            keras.Input(shares[0].shape[1:]),
            keras_norms.layers.BatchNormalization(),
        ]
    )
    mine = shares[rank]
    report = keras_norms.recompute_batch_statistics(
        model, mine, batch_size=len(mine) // 2, verbose=0
    )
    halves = [np.split(share, 2) for share in shares]
    global_x = np.concatenate(
        [np.concatenate([h[i] for h in halves]) for i in range(2)]
    )
    common.check_recomputed(model.layers[0], global_x, 16, report)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    # A failing worker makes spawn raise, so the script exits non-zero.
    multiprocessing.spawn(
        worker,
        args=(len(SIZES), free_port()),
        nprocs=len(SIZES),
        join=True,
    )
    print("OK torch.distributed gloo: 3 processes, sizes", SIZES)
