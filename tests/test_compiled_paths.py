"""Compiled training and inference equal eager, for every public layer.

JAX and TensorFlow: `model.compile(jit_compile=True)` (XLA) against
`jit_compile=False`, from the same initial weights: two training steps
give the same weights and moving statistics, and `predict` the same
outputs. torch: `torch.compile` of a layer's forward pass equals eager.
"""

import keras
import numpy as np
import pytest

import keras_norms

from helpers import BACKEND
from helpers import to_numpy
from layer_cases import LAYER_CASES


def build(name, rng):
    factory, shape = LAYER_CASES[name]
    inputs = keras.Input(shape[1:])
    outputs = factory()(inputs)
    # A trainable head, so that the loss reaches every layer's weights.
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(outputs))
    model = keras.Model(inputs, outputs)
    weights = [
        rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in model.weights
    ]
    return model, weights, shape


@pytest.mark.skipif(BACKEND == "torch", reason="XLA: JAX and TensorFlow")
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_jit_compile_fit_and_predict_equal_eager(name, rng):
    shape = LAYER_CASES[name][1]
    x = rng.normal(size=(8,) + shape[1:]).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    results = []
    for jit_compile in (False, True):
        model, weights, _ = build(name, np.random.default_rng(7))
        model.set_weights(weights)
        model.compile("sgd", "mse", jit_compile=jit_compile)
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        predicted = model.predict(x, batch_size=8, verbose=0)
        results.append(([to_numpy(w) for w in model.weights], predicted))
    (eager_weights, eager_out), (xla_weights, xla_out) = results
    for eager, compiled in zip(eager_weights, xla_weights, strict=True):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)
    # Float32 rounding differs between XLA and eager kernels; absolute
    # differences scale with the outputs (of order 1 to 5 here).
    scale = max(1.0, float(np.abs(eager_out).max()))
    np.testing.assert_allclose(xla_out, eager_out, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile")
def test_torch_compile_equals_eager(rng):
    import torch

    layer = keras_norms.layers.BatchNormalization(momentum=0.5)
    x = rng.normal(3.0, 2.0, (8, 4, 4, 3)).astype("float32")
    layer.build(x.shape)
    eager = to_numpy(layer(x, training=True))
    eager_mean = to_numpy(layer.moving_mean)
    layer.moving_mean.assign(np.zeros(3))
    layer.moving_variance.assign(np.ones(3))
    try:  # torch.compile itself may be unusable (no C++ compiler)
        torch.compile(lambda t: t + 1)(torch.ones(2))
    except Exception as error:
        pytest.skip(f"torch.compile unavailable here: {error!r}"[:200])
    compiled = torch.compile(lambda t: layer(t, training=True))
    result = to_numpy(compiled(torch.tensor(x)))
    np.testing.assert_allclose(result, eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), eager_mean, rtol=1e-6
    )
