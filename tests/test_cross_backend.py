"""Models saved under this backend load and predict the same under every
backend, this one included (each in a subprocess: Keras picks its backend
once per process). Run under each backend, that is all 9 pairs."""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import to_numpy
from layer_cases import LAYER_CASES

BACKENDS = ["jax", "tensorflow", "torch"]


@pytest.mark.parametrize("other", BACKENDS)
def test_saved_model_loads_under_other_backend(other, tmp_path, rng):
    if importlib.util.find_spec(other) is None:
        pytest.skip(f"{other} is not installed")
    inputs, expected = {}, {}
    for name, (factory, shape) in LAYER_CASES.items():
        model_input = keras.Input(shape[1:])
        model = keras.Model(model_input, factory()(model_input))
        # Random weights and moving statistics (positive: they include
        # variances), so a load that re-initializes anything is caught.
        for weight in model.weights:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
        inputs[name] = rng.normal(size=shape).astype("float32")
        expected[name] = to_numpy(model(inputs[name], training=False))
        model.save(str(tmp_path / f"{name}.keras"))
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = os.path.join(os.path.dirname(__file__), "load_and_predict.py")
    env = {**os.environ, "KERAS_BACKEND": other}
    subprocess.run(
        [sys.executable, script, str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    outputs = np.load(tmp_path / f"outputs_{other}.npz")
    for name in LAYER_CASES:
        np.testing.assert_allclose(
            outputs[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name
        )


def test_layer_cases_cover_every_public_layer():
    import keras_norms

    public = {
        name
        for name in dir(keras_norms.layers)
        if isinstance(getattr(keras_norms.layers, name), type)
    }
    # The cells are saved and loaded as their layers' cells (BNLSTM's,
    # LayerNormLSTM's).
    public -= {"BNLSTMCell", "LayerNormLSTMCell"}
    covered = {type(factory()).__name__ for factory, _ in LAYER_CASES.values()}
    assert public <= covered, sorted(public - covered)
