"""Data and oracle shared by the multi-replica scripts (run as
subprocesses by tests/test_synchronized_batch_normalization.py)."""

import os
import socket
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

import reference  # noqa: E402

CHANNELS = 3
MOMENTUM = 0.5
EPSILON = 1e-3


def replica_batches(sizes, seed=0):
    """Different data on every replica: its own mean and spread, and its
    own number of samples (possibly zero). Shape (n, 2, 2, CHANNELS)."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(10.0 * r, 1.0 + r, (n, 2, 2, CHANNELS)).astype("float32")
        for r, n in enumerate(sizes)
    ]


def affine(seed=1):
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 1.5, CHANNELS).astype("float32")
    beta = rng.normal(size=CHANNELS).astype("float32")
    return gamma, beta


def upstream(batches, seed=2):
    """A fixed upstream gradient per replica (the loss is sum(y * w))."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=b.shape).astype("float32") for b in batches]


def expected(batches, weights, gamma, beta):
    """Full-batch oracle: outputs, moving statistics and gradients."""
    full = np.concatenate(batches)
    full_weights = np.concatenate(weights)
    y, mean, variance, _ = reference.batch_norm_train(
        full, -1, gamma, beta, EPSILON
    )
    flat = full.reshape(-1, CHANNELS)
    dx, dgamma, dbeta = reference.batch_norm_backward(
        flat, full_weights.reshape(-1, CHANNELS), gamma, EPSILON
    )
    splits = np.cumsum([len(b) for b in batches])[:-1]
    return {
        "outputs": np.split(y, splits),
        "moving_mean": reference.moving_average(0.0, mean, MOMENTUM),
        "moving_variance": reference.moving_average(1.0, variance, MOMENTUM),
        "input_gradients": np.split(dx.reshape(full.shape), splits),
        "gamma_gradient": dgamma,
        "beta_gradient": dbeta,
    }


def local_expected(batch, gamma, beta):
    """What an unsynchronized replica computes: its own statistics."""
    y, mean, variance, _ = reference.batch_norm_train(
        batch, -1, gamma, beta, EPSILON
    )
    return y, reference.moving_average(0.0, mean, MOMENTUM)


def check(name, got, want, tolerance=1e-4):
    np.testing.assert_allclose(
        np.asarray(got, np.float64),
        want,
        rtol=tolerance,
        atol=tolerance,
        err_msg=name,
    )


def population_expected(x, batch_size):
    """Algorithm 2's statistics over the global batches of ``x``."""
    statistics = [
        reference.batch_norm_train(x[i : i + batch_size], -1)[1:]
        for i in range(0, len(x), batch_size)
    ]
    means, variances, counts = (
        np.stack([s[i] for s in statistics]) for i in range(3)
    )
    return reference.population_statistics(means, variances, counts)


def check_recomputed(layer, x, batch_size, report):
    """`recompute_batch_statistics` saw global batches: one report entry
    with every global batch, and the global batches' statistics."""
    batches = -(-len(x) // batch_size)
    assert list(report.values()) == [batches], report
    mean, variance = population_expected(x, batch_size)
    check("recomputed mean", np.asarray(layer.moving_mean), mean)
    check("recomputed variance", np.asarray(layer.moving_variance), variance)


def free_ports(count):
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def run_workers(script, environments, timeout=240):
    """Run ``script --worker`` once per environment (all at once), each
    with ``os.environ`` updated by it. Prints each worker's last line,
    or its output if it failed. Returns True if every worker succeeded;
    on a timeout the workers are killed."""
    workers = [
        subprocess.Popen(
            [sys.executable, script, "--worker"],
            env={**os.environ, **environment},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for environment in environments
    ]
    succeeded = True
    for index, worker in enumerate(workers):
        try:
            output, _ = worker.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            output, _ = worker.communicate()
            output += f"\n(killed after {timeout} s)"
        if worker.returncode == 0:
            print(output.strip().splitlines()[-1])
        else:
            succeeded = False
            print(f"--- worker {index} exited {worker.returncode}:")
            print(output[-6000:])
    return succeeded


def converted_batch_normalization(gamma, beta, synchronized):
    """A Keras core BatchNormalization model with the oracle's settings
    and weights, converted to keras-norms' with ``synchronized``: what a
    user scaling out an existing model runs."""
    import keras

    import keras_norms

    original = keras.Sequential(
        [
            keras.Input((2, 2, CHANNELS)),
            keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON),
        ]
    )
    original.layers[0].gamma.assign(gamma)
    original.layers[0].beta.assign(beta)
    model = keras_norms.convert_normalization(
        original, synchronized=synchronized
    )
    layer = model.layers[0]
    assert type(layer) is keras_norms.layers.BatchNormalization
    assert layer.synchronized is synchronized
    return model
