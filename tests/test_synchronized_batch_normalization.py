"""Synchronized batch normalization.

In-process: the cross-replica combination against the full-batch oracle,
with a simulated gather. Multi-replica, on the real engines (each in a
subprocess, on the backend it concerns): tf.distribute MirroredStrategy,
torch.distributed with gloo, keras.distribution.DataParallel on JAX.
Across processes (each script starts its own processes on 127.0.0.1):
MultiWorkerMirroredStrategy with two TF_CONFIG workers, and DataParallel
over two ``jax.distributed`` processes (torch's script already runs in
three processes).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_norms import ops as norm_ops
from keras_norms.layers import BatchNormalization

import reference
from helpers import BACKEND
from helpers import multi_process_unavailable
from helpers import to_numpy

SCRIPTS = {
    "tensorflow": "tf_mirrored.py",
    "torch": "torch_gloo.py",
    "jax": "jax_data_parallel.py",
}


# Scripts that start several processes themselves (torch's above does).
MULTI_PROCESS_SCRIPTS = {
    "tensorflow": "tf_multi_worker.py",
    "jax": "jax_multi_process.py",
}


def _run_script(name, timeout):
    script = os.path.join(os.path.dirname(__file__), "distributed", name)
    result = subprocess.run(
        [sys.executable, script],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OK" in result.stdout


def test_multi_replica_engine_matches_full_batch():
    _run_script(SCRIPTS[BACKEND], timeout=600)


MULTI_PROCESS_UNAVAILABLE = multi_process_unavailable(
    MULTI_PROCESS_SCRIPTS,
    otherwise=f"{SCRIPTS[BACKEND]} already runs in several processes",
)


@pytest.mark.skipif(
    MULTI_PROCESS_UNAVAILABLE is not None, reason=str(MULTI_PROCESS_UNAVAILABLE)
)
def test_multi_process_engine_matches_full_batch():
    # Each worker's own timeout is 240 s; this one is the backstop.
    _run_script(MULTI_PROCESS_SCRIPTS[BACKEND], timeout=300)


# (Unequal counts in every case: with equal ones a missing count weight
# gives the same result. Single-sample replicas have no local variance.)
@pytest.mark.parametrize("sizes", [(5, 3), (4, 0, 7), (1, 3, 1, 2)])
def test_combination_is_exact_for_unequal_replicas(rng, sizes):
    # Replicas hold data with very different (and large) means: averaging
    # per-replica statistics, or E[x^2] - E[x]^2, would be visibly wrong.
    chunks = [
        (1e4 * (r + 1) + rng.normal(size=(n, 4))).astype("float32")
        for r, n in enumerate(sizes)
    ]
    locals_ = []
    for chunk in chunks:
        mean, variance, count = norm_ops.moments_and_count(
            chunk, 0, keepdims=True
        )
        count = keras.ops.broadcast_to(count, keras.ops.shape(mean))
        locals_.append(
            to_numpy(keras.ops.stack([count, mean, variance * count]))
        )
    gathered = keras.ops.convert_to_tensor(np.stack(locals_))
    full = np.concatenate(chunks)
    ref_y, ref_mean, ref_variance, _ = reference.batch_norm_train(full)
    start = 0
    for r, chunk in enumerate(chunks):

        def all_gather(local, r=r):
            np.testing.assert_allclose(to_numpy(local), locals_[r], rtol=1e-6)
            return gathered

        y, mean, variance, count = norm_ops.batch_normalization_training(
            chunk, all_gather=all_gather
        )
        np.testing.assert_allclose(
            to_numpy(y), ref_y[start : start + len(chunk)], atol=1e-3
        )
        np.testing.assert_allclose(to_numpy(mean), ref_mean, rtol=1e-6)
        np.testing.assert_allclose(to_numpy(variance), ref_variance, rtol=1e-3)
        np.testing.assert_array_equal(to_numpy(count), len(full))
        start += len(chunk)


def test_synchronized_without_distribution_is_the_local_path(rng):
    x = rng.normal(size=(6, 4)).astype("float32")
    synced = BatchNormalization(synchronized=True)
    local = BatchNormalization()
    np.testing.assert_array_equal(
        to_numpy(synced(x, training=True)), to_numpy(local(x, training=True))
    )
    np.testing.assert_array_equal(
        to_numpy(synced.moving_variance), to_numpy(local.moving_variance)
    )
