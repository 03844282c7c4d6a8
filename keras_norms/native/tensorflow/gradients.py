"""`custom_gradient` with ``tf.custom_gradient``.

TensorFlow runs one kernel per op, so a closed-form backward with its
per-slice factors folded first needs far fewer passes than autodiff of the
reference (layer, group and per-step normalization; batch norm takes the
fused kernel).
"""

import tensorflow as tf


def custom_gradient(forward, backward, inputs, static):
    present = [value for value in inputs if value is not None]

    @tf.custom_gradient
    def run(*tensors):
        tensors = iter(tensors)
        full = tuple(
            None if value is None else next(tensors) for value in inputs
        )
        result, residuals = forward(*full, *static)

        def gradient(*cotangents):
            cotangents = tuple(_none_if_zeros(c) for c in cotangents)
            gradients = backward(static, residuals, cotangents, True)
            return [g for g in gradients if g is not None]

        return result, gradient

    return run(*present)


def _none_if_zeros(cotangent):
    """None for a cotangent that is a zeros constant when traced.

    TensorFlow hands such a constant to the results no gradient reaches
    (the statistics, which the layers use without gradient); the backward
    pass would spend kernels on terms that are zero, six per call, at
    every step of a recurrent layer's time loop. (Eager tensors are left
    as they are: their values are not known when the graph is built.)
    """
    if cotangent is None or not tf.is_symbolic_tensor(cotangent):
        return cotangent
    value = tf.get_static_value(cotangent)
    return None if value is not None and not value.any() else cotangent
