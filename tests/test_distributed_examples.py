"""The multi-replica scripts the synchronized-BN page shows
(examples/distributed/), each launched as the page says, on the backend it
is written for; the multi-process ones as two processes on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers import BACKEND
from helpers import multi_process_unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "distributed")

# Backend -> (launcher arguments, script, what it prints when it worked).
LAUNCHES = {
    "tensorflow": [([], "tf_mirrored_fit.py", "trained on 2 replicas")],
    "torch": [
        (
            ["-m", "torch.distributed.run", "--nproc_per_node=2"],
            "torch_distributed_layer.py",
            "global statistics",
        )
    ],
    "jax": [
        ([], "jax_data_parallel_fit.py", "trained on 2 devices"),
        ([], "jax_pmap_core.py", "global statistics on 2 devices"),
    ],
}


@pytest.mark.parametrize(
    "launcher, script, expected",
    LAUNCHES[BACKEND],
    ids=[script for _, script, _ in LAUNCHES[BACKEND]],
)
def test_distributed_example_runs(launcher, script, expected):
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    environment.pop("XLA_FLAGS", None)  # the JAX scripts set their own
    result = subprocess.run(
        [sys.executable, *launcher, os.path.join(EXAMPLES, script)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert expected in result.stdout


# Backend -> (script, what each of its two processes prints when it worked).
MULTI_PROCESS = {
    "tensorflow": ("tf_multi_worker_step.py", "trained on 2 replicas"),
    "jax": ("jax_multi_process_fit.py", "trained on 2 devices in 2 processes"),
}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _process_launches():
    """(arguments, environment) of each process, as the page has them."""
    if BACKEND == "tensorflow":
        cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
        return [
            (
                [],
                {
                    "TF_CONFIG": json.dumps(
                        {
                            "cluster": cluster,
                            "task": {"type": "worker", "index": index},
                        }
                    )
                },
            )
            for index in range(2)
        ]
    coordinator = f"127.0.0.1:{_free_port()}"
    return [([coordinator, "2", str(index)], {}) for index in range(2)]


MULTI_PROCESS_UNAVAILABLE = multi_process_unavailable(
    MULTI_PROCESS,
    otherwise=f"no multi-process example for {BACKEND} besides the above",
)


@pytest.mark.skipif(
    MULTI_PROCESS_UNAVAILABLE is not None, reason=str(MULTI_PROCESS_UNAVAILABLE)
)
def test_multi_process_example_runs():
    script, expected = MULTI_PROCESS[BACKEND]
    processes = []
    for arguments, variables in _process_launches():
        environment = {**os.environ, "KERAS_BACKEND": BACKEND, **variables}
        environment.pop("XLA_FLAGS", None)  # one CPU device per process
        processes.append(
            subprocess.Popen(
                [sys.executable, os.path.join(EXAMPLES, script), *arguments],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment,
                cwd=ROOT,
            )
        )
    try:
        outputs = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
        assert expected in stdout
