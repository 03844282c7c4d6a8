"""`standardize` with its closed-form gradient as a JAX custom VJP.

JAX has no fused normalization kernel; XLA fuses what it is given, and the
closed-form backward of `keras_norms.backend.closed_form` gives it less to
store and fewer passes than autodiff of the reference (the temporary
memory of a batch-norm training step equals Keras core's).
"""

import functools

import jax

from keras_norms.backend import closed_form


def standardize(x, axes, offset, scale, epsilon):
    scale = closed_form.full_rank(scale, x)
    offset = closed_form.full_rank(offset, x)
    outputs, mean, variance, count = _standardize(
        x, scale, offset, tuple(axes), float(epsilon)
    )
    return outputs, mean, variance, count


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _standardize(x, scale, offset, axes, epsilon):
    outputs, statistics, _ = closed_form.forward(
        x, scale, offset, axes, epsilon
    )
    return (outputs, *statistics)


def _forward_rule(x, scale, offset, axes, epsilon):
    outputs, statistics, residuals = closed_form.forward(
        x, scale, offset, axes, epsilon
    )
    return (outputs, *statistics), residuals


def _backward_rule(axes, epsilon, residuals, cotangents):
    d_outputs, d_mean, d_variance, _ = cotangents  # the count: constant
    return closed_form.backward(axes, residuals, d_outputs, d_mean, d_variance)


_standardize.defvjp(_forward_rule, _backward_rule)
