"""The multi-replica scripts the synchronized-BN page shows
(examples/distributed/), each launched as the page says, on the backend it
is written for."""

import os
import subprocess
import sys

import pytest

from helpers import BACKEND

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
