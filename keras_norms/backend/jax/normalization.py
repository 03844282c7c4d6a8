"""Standardization with its closed-form gradient, for XLA.

JAX has no fused normalization kernel; XLA fuses what it is given. The
reference `keras_norms.ops.standardize` is differentiated by autodiff,
which keeps the deviations ``x - mean`` and several intermediates of the
two-pass moments alive for the backward pass. Here the forward pass is the
same corrected two-pass computation (same numbers), and the backward pass
is the closed form of DESIGN.md section 4, generalized to any reduction
axes:

    g = dy * scale
    dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))

recomputing ``x_hat`` from the input and two per-slice statistics, so
nothing of the input's size is stored between the passes. Gradients
reaching the returned mean and variance are honoured too
(``d mean / dx = 1/n``, ``d var / dx = 2 (x - mean) / n``).
"""

import functools
import math

import jax
import jax.numpy as jnp


def standardize(x, axes, offset, scale, epsilon):
    """``(outputs, mean, variance, count)`` of ``x`` (statistics dtype);
    ``offset`` / ``scale`` broadcast against ``x`` or are None."""
    dtype = x.dtype

    def full_rank(parameter):
        if parameter is None:
            return None
        parameter = jnp.asarray(parameter).astype(dtype)
        lead = (1,) * (x.ndim - parameter.ndim)
        return jnp.reshape(parameter, lead + parameter.shape)

    scale, offset = full_rank(scale), full_rank(offset)
    outputs, mean, variance = _standardize(
        x, scale, offset, tuple(axes), float(epsilon)
    )
    count = math.prod(x.shape[a] for a in axes)
    return outputs, mean, variance, jnp.asarray(count, dtype)


def _moments(x, axes):
    """Corrected two-pass moments, as in `keras_norms.ops`: the mean as a
    rough mean plus a small correction, kept apart for precision."""
    count = math.prod(x.shape[a] for a in axes)
    divisor = max(count, 1)
    rough_mean = jnp.sum(x, axes, keepdims=True) / divisor
    shifted = x - rough_mean
    correction = jnp.sum(shifted, axes, keepdims=True) / divisor
    mean_square = jnp.sum(shifted * shifted, axes, keepdims=True) / divisor
    variance = jnp.maximum(mean_square - correction * correction, 0.0)
    return rough_mean, correction, variance, count


def _normalized(x, rough_mean, correction, inverse_std):
    return ((x - rough_mean) - correction) * inverse_std


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _standardize(x, scale, offset, axes, epsilon):
    outputs, statistics, _ = _forward(x, scale, offset, axes, epsilon)
    return (outputs, *statistics)


def _forward(x, scale, offset, axes, epsilon):
    rough_mean, correction, variance, _ = _moments(x, axes)
    inverse_std = jax.lax.rsqrt(variance + epsilon)
    # One per-slice coefficient: XLA then broadcasts one small tensor
    # rather than two.
    coefficient = inverse_std if scale is None else inverse_std * scale
    outputs = _normalized(x, rough_mean, correction, coefficient)
    if offset is not None:
        outputs = outputs + offset
    residuals = (x, scale, offset, rough_mean, correction, inverse_std)
    return outputs, (rough_mean + correction, variance), residuals


def _forward_rule(x, scale, offset, axes, epsilon):
    outputs, statistics, residuals = _forward(x, scale, offset, axes, epsilon)
    return (outputs, *statistics), residuals


def _backward_rule(axes, epsilon, residuals, cotangents):
    x, scale, offset, rough_mean, correction, inverse_std = residuals
    d_outputs, d_mean, d_variance = cotangents
    count = max(math.prod(x.shape[a] for a in axes), 1)
    x_hat = _normalized(x, rough_mean, correction, inverse_std)
    # Two full-size reductions serve d_x, d_scale and d_offset: over the
    # reduced axes along which the parameters are constant (all of them in
    # batch norm, the spatial ones in group norm, none in layer norm), the
    # parameters factor out of the sums; the rest are small reductions.
    parameter = scale if scale is not None else offset
    constant = tuple(
        a for a in axes if parameter is None or parameter.shape[a] == 1
    )
    rest = tuple(a for a in axes if a not in constant)
    sum_dy = jnp.sum(d_outputs, constant, keepdims=True)
    sum_dy_x_hat = jnp.sum(d_outputs * x_hat, constant, keepdims=True)
    g = d_outputs if scale is None else d_outputs * scale
    sum_g, sum_g_x_hat = (
        (sum_dy, sum_dy_x_hat)
        if scale is None
        else (sum_dy * scale, sum_dy_x_hat * scale)
    )
    sum_g = jnp.sum(sum_g, rest, keepdims=True)
    sum_g_x_hat = jnp.sum(sum_g_x_hat, rest, keepdims=True)
    d_x = inverse_std * (g - (sum_g + x_hat * sum_g_x_hat) / count)
    # The statistics' own cotangents (zero when only the output is used).
    d_x = d_x + (d_mean + d_variance * 2.0 * x_hat / inverse_std) / count
    d_scale = None if scale is None else _sum_to(sum_dy_x_hat, scale)
    d_offset = None
    if offset is not None:
        same_shape = scale is None or offset.shape == scale.shape
        d_offset = _sum_to(sum_dy if same_shape else d_outputs, offset)
    return d_x, d_scale, d_offset


def _sum_to(value, like):
    """Sum ``value`` over the axes that ``like`` (same rank) broadcasts
    along."""
    axes = tuple(
        i
        for i, size in enumerate(like.shape)
        if size == 1 and value.shape[i] != 1
    )
    return jnp.sum(value, axis=axes, keepdims=True).reshape(like.shape)


_standardize.defvjp(_forward_rule, _backward_rule)
