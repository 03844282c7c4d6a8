"""Subprocess half of test_cross_backend: load models saved under another
backend and write their inference outputs. Usage: load_and_predict.py DIR"""

import os
import sys

import keras
import numpy as np

import keras_norms  # noqa: F401  (registers the layers)

directory = sys.argv[1]
inputs = np.load(os.path.join(directory, "inputs.npz"))
outputs = {}
for name in inputs.files:
    model = keras.saving.load_model(os.path.join(directory, f"{name}.keras"))
    outputs[name] = keras.ops.convert_to_numpy(
        model(inputs[name], training=False)
    )
backend = keras.backend.backend()
np.savez(os.path.join(directory, f"outputs_{backend}.npz"), **outputs)
