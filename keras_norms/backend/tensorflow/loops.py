"""A time loop that XLA compiles: `keras.ops.scan` with a bounded loop.

Keras's TensorFlow `scan` runs a `tf.while_loop` without
``maximum_iterations``; its gradient then accumulates the loop's
intermediates in lists of unbounded size, which XLA (``jit_compile=True``)
refuses ("XLA compilation requires a fixed tensor list size"). This one
bounds the loop by the sequence length. As Keras's, the per-step outputs
must have the structure of the carry.
"""

import tensorflow as tf
from keras import tree


def scan(f, init, xs, length=None):
    """``(final carry, stacked per-step outputs)`` of ``f(carry, x)``."""
    init_flat = [tf.convert_to_tensor(value) for value in tree.flatten(init)]
    xs_flat = [tf.convert_to_tensor(value) for value in tree.flatten(xs)]
    steps = length if length is not None else tf.shape(xs_flat[0])[0]
    inputs = [
        tf.TensorArray(x.dtype, size=steps, element_shape=x.shape[1:]).unstack(
            x
        )
        for x in xs_flat
    ]
    outputs = [
        tf.TensorArray(value.dtype, size=steps, element_shape=value.shape)
        for value in init_flat
    ]

    def body(step, carry, outputs):
        x = tree.pack_sequence_as(xs, [array.read(step) for array in inputs])
        carry, y = f(tree.pack_sequence_as(init, carry), x)
        outputs = [
            array.write(step, value)
            for array, value in zip(outputs, tree.flatten(y), strict=True)
        ]
        return step + 1, tree.flatten(carry), outputs

    _, carry, outputs = tf.while_loop(
        lambda step, *_: step < steps,
        body,
        (0, init_flat, outputs),
        maximum_iterations=steps,
    )
    stacked = [array.stack() for array in outputs]
    return (
        tree.pack_sequence_as(init, carry),
        tree.pack_sequence_as(init, stacked),
    )
