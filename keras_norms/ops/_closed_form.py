"""Standardization with its closed-form gradient, in keras.ops.

For backends without a fused normalization kernel (JAX; TensorFlow beyond
batch norm), where autodiff of the reference `keras_norms.ops.standardize`
keeps the deviations ``x - mean`` and several intermediates of the two-pass
moments alive for the backward pass and runs many more passes than needed.
The forward pass here is the same corrected two-pass computation (the same
numbers); the backward pass is the closed form of DESIGN.md section 4,
generalized to any reduction axes and to a scale that varies within the
reduced slices (layer and group normalization):

    g = dy * scale
    dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))

recomputing ``x_hat`` from the input and per-slice statistics, so nothing
of the input's size is stored between the passes. A half-precision input
(float16, bfloat16) is kept as it came and cast to float32 in each pass:
the stored input is half the size of its float32 copy. Gradients reaching the
returned mean and variance are honoured (``d mean / dx = 1/n``,
``d var / dx = 2 (x - mean) / n``).

The math is here, backend-neutral; attaching a gradient to a function is
not: `custom_gradient` dispatches to the backend's mechanism
(``jax.custom_vjp``, ``tf.custom_gradient``). Where a backend has none
(torch, whose fused kernels serve these cases) `standardize` here declines
and autodiff of the reference runs.
"""

from typing import NamedTuple

from keras import ops

from keras_norms.native import dispatch
from keras_norms.ops._moments import count_divisor
from keras_norms.ops._moments import static_count
from keras_norms.ops._moments import statistics_dtype
from keras_norms.ops._moments import sum_over
from keras_norms.ops._moments import two_pass_moments


class Residuals(NamedTuple):
    """What the backward pass keeps: the input (in its own dtype) and
    per-slice values only."""

    x: object
    scale: object
    offset: object
    rough_mean: object
    correction: object
    inverse_std: object
    count: object


@dispatch("custom_gradient")
def custom_gradient(forward, backward, inputs, static):
    """``forward(*inputs, *static)``'s result, differentiated by ``backward``.

    ``forward`` returns ``(result, residuals)``; ``backward(static,
    residuals, cotangents, kernel_per_op)`` returns the cotangents of
    ``inputs`` (a tuple of tensors or None, None for None), where
    ``cotangents`` are those of ``result`` (a tuple; None for a result no
    gradient reaches, where the backend knows it) and ``kernel_per_op``
    says that the backend runs one kernel per op (fold per-slice factors
    first). ``static`` holds hashable non-tensor arguments.

    The reference has no mechanism and declines (``NotImplemented``): the
    caller then differentiates its reference computation by autodiff.
    """
    return NotImplemented


def _cast_or_none(parameter, dtype):
    return None if parameter is None else ops.cast(parameter, dtype)


def _full_shape(parameter, ndim):
    """The static shape of ``parameter`` (broadcastable to a rank-``ndim``
    input) with the leading size-1 axes broadcasting adds.

    Parameters keep their own shape, not reshaped to full rank: inside a
    recurrent layer's time loop on TensorFlow a reshape is one more kernel
    at every step, and its result one more tensor the loop stacks for the
    backward pass.
    """
    return (1,) * (ndim - len(parameter.shape)) + tuple(parameter.shape)


def standardize(x, axes, offset, scale, epsilon):
    """`keras_norms.ops.standardize` without mask or gather, with the
    closed-form gradient: ``(outputs, mean, variance, count)``, or
    ``NotImplemented`` where the backend has no `custom_gradient`.

    ``x`` in any float dtype: the statistics are computed in
    `statistics_dtype`, the outputs are in ``x``'s dtype."""
    dtype = statistics_dtype(x.dtype)
    inputs = (x, _cast_or_none(scale, dtype), _cast_or_none(offset, dtype))
    return custom_gradient(
        _forward, _backward, inputs, (tuple(axes), float(epsilon))
    )


def _forward(x, scale, offset, axes, epsilon):
    """``((outputs, mean, variance, count), residuals)``."""
    moments = two_pass_moments(_computed(x), axes)
    inverse_std = ops.rsqrt(moments.variance + epsilon)
    # One per-slice coefficient: one small tensor to broadcast, not two.
    coefficient = inverse_std if scale is None else inverse_std * scale
    outputs = moments.deviation * coefficient
    if offset is not None:
        outputs = outputs + offset
    outputs = ops.cast(outputs, x.dtype)
    residuals = Residuals(
        x,
        scale,
        offset,
        moments.rough_mean,
        moments.correction,
        inverse_std,
        moments.count,
    )
    result = (outputs, moments.mean, moments.variance, moments.count)
    return result, residuals


def _computed(x):
    """``x`` in the dtype the statistics are computed in."""
    return ops.cast(x, statistics_dtype(x.dtype))


def _backward(static, residuals, cotangents, kernel_per_op):
    axes, _ = static
    d_outputs, d_mean, d_variance, _ = cotangents  # the count: constant
    if d_outputs is None:  # only the statistics are differentiated
        d_outputs = ops.zeros_like(residuals.x)
    d_x, d_scale, d_offset = backward(
        axes,
        residuals,
        _computed(d_outputs),
        d_mean,
        d_variance,
        kernel_per_op,
    )
    return ops.cast(d_x, residuals.x.dtype), d_scale, d_offset


def backward(
    axes,
    residuals,
    d_outputs,
    d_mean=None,
    d_variance=None,
    fold_factors=False,
):
    """Cotangents ``(d_x, d_scale, d_offset)`` (None for absent ones), in
    the statistics' dtype."""
    x, scale, offset = _computed(residuals.x), residuals.scale, residuals.offset
    inverse_std, count = residuals.inverse_std, residuals.count
    known = static_count(residuals.x.shape, axes)
    divisor = count_divisor(count if known is None else known)
    x_hat = ((x - residuals.rough_mean) - residuals.correction) * inverse_std
    # Two full-size reductions serve d_x, d_scale and d_offset: over the
    # reduced axes along which the parameters are constant (all of them in
    # batch norm, the spatial ones in group norm, none in layer norm) the
    # parameters factor out of the sums; the rest are small reductions.
    parameter = scale if scale is not None else offset
    parameter_shape = (
        None if parameter is None else _full_shape(parameter, len(x.shape))
    )
    constant = tuple(
        a for a in axes if parameter is None or parameter_shape[a] == 1
    )
    rest = tuple(a for a in axes if a not in constant)
    sum_dy = sum_over(d_outputs, constant)
    sum_dy_x_hat = sum_over(d_outputs * x_hat, constant)

    def sums_of_g():
        """The sums of ``g = dy * scale`` and ``g * x_hat`` per slice."""
        sum_g, sum_g_x_hat = sum_dy, sum_dy_x_hat
        if scale is not None:
            sum_g, sum_g_x_hat = sum_g * scale, sum_g_x_hat * scale
        return sum_over(sum_g, rest), sum_over(sum_g_x_hat, rest)

    # d_x = inv_std * (g - (sum_g + x_hat * sum_g_x_hat) / n), plus the
    # statistics' own cotangents when they are used: d_mean / n and
    # d_variance * 2 (x - mean) / n, an x_hat term.
    mean_term = None if d_mean is None else d_mean / divisor
    variance_term = (
        None
        if d_variance is None
        else d_variance * 2.0 / (inverse_std * divisor)
    )
    if fold_factors:
        # TensorFlow runs one kernel per op: multiply the per-slice
        # factors out first, leaving three full-size operations.
        dy_factor = inverse_std if scale is None else inverse_std * scale
        if rest:
            sum_g, sum_g_x_hat = sums_of_g()
            factor = inverse_std * (-1.0 / divisor)
        else:
            # The scale is constant in each slice (batch norm) and leaves
            # the sums: fewer small ops, which a recurrent layer's time
            # loop runs at every step.
            sum_g, sum_g_x_hat = sum_dy, sum_dy_x_hat
            factor = dy_factor * (-1.0 / divisor)
        x_hat_factor = factor * sum_g_x_hat
        constant = factor * sum_g
        if variance_term is not None:
            x_hat_factor = x_hat_factor + variance_term
        if mean_term is not None:
            constant = constant + mean_term
        d_x = d_outputs * dy_factor + (x_hat * x_hat_factor + constant)
    else:
        # XLA fuses either form; with this one it keeps less in memory.
        sum_g, sum_g_x_hat = sums_of_g()
        g = d_outputs if scale is None else d_outputs * scale
        d_x = inverse_std * (g - (sum_g + x_hat * sum_g_x_hat) / divisor)
        if variance_term is not None:
            d_x = d_x + x_hat * variance_term
        if mean_term is not None:
            d_x = d_x + mean_term
    d_scale = None if scale is None else _sum_to(sum_dy_x_hat, scale)
    d_offset = None
    if offset is not None:
        same_shape = scale is None or offset.shape == scale.shape
        d_offset = _sum_to(sum_dy if same_shape else d_outputs, offset)
    return d_x, d_scale, d_offset


def _sum_to(value, like):
    """Sum ``value`` over the axes that ``like`` (broadcastable to it)
    broadcasts along, in ``like``'s shape."""
    axes = tuple(
        i
        for i, size in enumerate(_full_shape(like, len(value.shape)))
        if size == 1 and value.shape[i] != 1
    )
    # ops.shape: sizes unknown when traced are read at run time.
    return ops.reshape(sum_over(value, axes), tuple(ops.shape(like)))
