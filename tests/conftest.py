import os
import sys

# Tests import the oracle and helpers as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with the default dtype policy, fresh names and the
    same random seed (unseeded initializers and dropout are reproducible:
    a test cannot pass or fail by the luck of the draw)."""
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    # free_memory=False: a full garbage collection per test costs ~0.3 s.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def fast_calls(monkeypatch):
    """Names of the backend overrides (fast paths) that ran and did not
    decline, in call order."""
    from keras_norms import native

    calls = []
    original = native.override

    def spy(name):
        function = original(name)
        if function is None:
            return None

        def recorded(*args, **kwargs):
            result = function(*args, **kwargs)
            if result is not NotImplemented:
                calls.append(name)
            return result

        return recorded

    monkeypatch.setattr(native, "override", spy)
    return calls
