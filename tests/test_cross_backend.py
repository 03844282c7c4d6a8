"""Models saved under this backend load and predict the same under the
other two (each in a subprocess: Keras picks its backend once per process)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import to_numpy
from layer_cases import LAYER_CASES

BACKENDS = ["jax", "tensorflow", "torch"]


@pytest.mark.parametrize(
    "other", [b for b in BACKENDS if b != keras.backend.backend()]
)
def test_saved_model_loads_under_other_backend(other, tmp_path, rng):
    inputs, expected = {}, {}
    for name, (factory, shape) in LAYER_CASES.items():
        model_input = keras.Input(shape[1:])
        model = keras.Model(model_input, factory()(model_input))
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
