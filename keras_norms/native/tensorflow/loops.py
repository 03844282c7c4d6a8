"""`scan` on TensorFlow: any per-step outputs, a loop that XLA compiles.

Keras's TensorFlow `scan` requires the per-step outputs to have the
structure of the carry, and runs a `tf.while_loop` without
``maximum_iterations``, whose gradient then accumulates the loop's
intermediates in lists of unbounded size, which XLA (``jit_compile=True``)
refuses ("XLA compilation requires a fixed tensor list size"). This one
has `jax.lax.scan`'s contract (per-step outputs of any structure) and
bounds the loop by the sequence length.
"""

import tensorflow as tf
from keras import tree


def scan(f, init, xs, length=None):
    """``(final carry, stacked per-step outputs)`` of ``f(carry, x)``.

    The first step runs before the loop (as in Keras's own TensorFlow
    RNN): its outputs give the structure and dtypes of the stacked ones.
    The sequence must have at least one step.
    """
    xs_flat = [tf.convert_to_tensor(value) for value in tree.flatten(xs)]
    steps = length if length is not None else tf.shape(xs_flat[0])[0]
    inputs = [
        tf.TensorArray(x.dtype, size=steps, element_shape=x.shape[1:]).unstack(
            x
        )
        for x in xs_flat
    ]

    def element(step):
        return tree.pack_sequence_as(xs, [array.read(step) for array in inputs])

    carry, first = f(init, element(0))
    first_flat = [tf.convert_to_tensor(value) for value in tree.flatten(first)]
    outputs = [
        tf.TensorArray(
            value.dtype, size=steps, element_shape=value.shape
        ).write(0, value)
        for value in first_flat
    ]
    carry_flat = [tf.convert_to_tensor(value) for value in tree.flatten(carry)]

    def body(step, carry, outputs):
        carry, y = f(tree.pack_sequence_as(init, carry), element(step))
        outputs = [
            array.write(step, value)
            for array, value in zip(outputs, tree.flatten(y), strict=True)
        ]
        return step + 1, tree.flatten(carry), outputs

    _, carry_flat, outputs = tf.while_loop(
        lambda step, *_: step < steps,
        body,
        (1, carry_flat, outputs),
        maximum_iterations=steps - 1,
    )
    stacked = [array.stack() for array in outputs]
    return (
        tree.pack_sequence_as(init, carry_flat),
        tree.pack_sequence_as(first, stacked),
    )


def read_before_loop(value):
    # (A Keras variable converts through its ``value``: cast to the
    # compute dtype under mixed precision, as when read inside the loop.)
    return None if value is None else tf.convert_to_tensor(value)
