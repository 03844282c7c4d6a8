"""The recurrent layers' time loop (`keras_norms.ops._loops.scan`, with
each backend's override) against a NumPy loop: the stacked per-step
outputs of any structure, the final carry, and the gradients (through
the per-step inputs and a weight) against finite differences."""

import keras
import numpy as np
import pytest

from keras_norms.ops._loops import scan

import reference
from helpers import BACKEND
from helpers import value_and_gradients


def numpy_loop(x, w):
    """Carry c_t = tanh(w * c_{t-1} + x_t); per-step outputs (c_t, c_t^2)
    and the step index."""
    carry = np.zeros(x.shape[1:])
    outputs = []
    for t in range(x.shape[0]):
        carry = np.tanh(w * carry + x[t])
        outputs.append((carry, carry**2))
    return carry, outputs


def loop(x, w):
    steps = keras.ops.arange(x.shape[0], dtype="int32")

    def step(carry, elements):
        (c,) = carry
        x_t, t = elements
        c = keras.ops.tanh(w * c + x_t)
        return (c,), (c, keras.ops.square(c), t)

    init = (keras.ops.zeros(x.shape[1:], dtype=x.dtype),)
    return scan(step, init, (x, steps), length=x.shape[0])


def test_scan_matches_a_numpy_loop(rng):
    x = rng.normal(size=(7, 3, 2)).astype("float32")
    w = np.float32(0.8)
    (final,), (c, squares, steps) = loop(keras.ops.convert_to_tensor(x), w)
    want_final, want = numpy_loop(x.astype("float64"), 0.8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(final), want_final, atol=1e-5
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(c), np.stack([o[0] for o in want]), atol=1e-5
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(squares),
        np.stack([o[1] for o in want]),
        atol=1e-5,
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(steps), np.arange(7)
    )


def test_scan_gradients_match_finite_differences(rng):
    x = rng.normal(size=(6, 2, 3)).astype("float32")
    w = np.array(0.7, "float32")
    up_c = rng.normal(size=x.shape).astype("float32")
    up_s = rng.normal(size=x.shape).astype("float32")

    def loss(x, w):
        (final,), (c, squares, _) = loop(x, w)
        return (
            keras.ops.sum(c * keras.ops.convert_to_tensor(up_c))
            + keras.ops.sum(squares * keras.ops.convert_to_tensor(up_s))
            + keras.ops.sum(final)
        )

    _, (dx, dw) = value_and_gradients(loss, x, w)

    def numpy_loss(x64, w64=0.7):
        final, outputs = numpy_loop(x64, w64)
        c = np.stack([o[0] for o in outputs])
        s = np.stack([o[1] for o in outputs])
        return np.sum(c * up_c) + np.sum(s * up_s) + np.sum(final)

    x64 = x.astype("float64")
    np.testing.assert_allclose(
        dx, reference.numerical_gradient(numpy_loss, x64), rtol=1e-3, atol=1e-4
    )
    step = 1e-6
    numerical_dw = (
        numpy_loss(x64, 0.7 + step) - numpy_loss(x64, 0.7 - step)
    ) / (2 * step)
    np.testing.assert_allclose(dw, numerical_dw, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs only")
@pytest.mark.parametrize("layer_name", ["BNLSTM", "LayerNormLSTM"])
def test_time_loop_reads_no_weight_at_each_step(layer_name):
    # TensorFlow runs the loop body kernel by kernel. A weight read (or a
    # parameter reshaped) inside it is one more kernel at every step, and
    # one more value the loop stacks for the backward pass: the layers
    # read their weights once, before the loop.
    import tensorflow as tf

    import keras_norms

    layer = getattr(keras_norms.layers, layer_name)(8, return_sequences=True)
    x = tf.zeros((4, 5, 3))
    layer.build(x.shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, layer.trainable_variables)

    graph = step.get_concrete_function(x).graph
    bodies = [
        function
        for function in graph.as_graph_def().library.function
        if "while_body" in function.signature.name
    ]
    assert len(bodies) >= 2  # the forward loop and its gradient
    for body in bodies:
        nodes = {node.name: node for node in body.node_def}
        assert "ReadVariableOp" not in {node.op for node in body.node_def}
        stacked = [
            nodes[node.input[1].split(":")[0]].op
            for node in body.node_def
            if node.op == "TensorListPushBack"
            and node.input[1].split(":")[0] in nodes
        ]
        assert "Reshape" not in stacked, (body.signature.name, stacked)
