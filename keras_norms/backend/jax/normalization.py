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


def _affine(x_hat, scale, offset):
    outputs = x_hat if scale is None else x_hat * scale
    return outputs if offset is None else outputs + offset


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _standardize(x, scale, offset, axes, epsilon):
    outputs, statistics, _ = _forward(x, scale, offset, axes, epsilon)
    return (outputs, *statistics)


def _forward(x, scale, offset, axes, epsilon):
    rough_mean, correction, variance, _ = _moments(x, axes)
    inverse_std = jax.lax.rsqrt(variance + epsilon)
    x_hat = _normalized(x, rough_mean, correction, inverse_std)
    outputs = _affine(x_hat, scale, offset)
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
    sum_dy = jnp.sum(d_outputs, axes, keepdims=True)
    sum_dy_x_hat = jnp.sum(d_outputs * x_hat, axes, keepdims=True)
    if scale is None:
        g, mean_g, mean_g_x_hat = d_outputs, sum_dy, sum_dy_x_hat
    elif all(scale.shape[a] == 1 for a in axes):
        # A scale constant over the reduced axes (batch norm) factors out
        # of the sums: the same two reductions serve d_x and d_scale.
        g, mean_g, mean_g_x_hat = (
            d_outputs * scale,
            sum_dy * scale,
            sum_dy_x_hat * scale,
        )
    else:
        g = d_outputs * scale
        mean_g = jnp.sum(g, axes, keepdims=True)
        mean_g_x_hat = jnp.sum(g * x_hat, axes, keepdims=True)
    d_x = inverse_std * (g - (mean_g + x_hat * mean_g_x_hat) / count)
    # The statistics' own cotangents (zero when only the output is used).
    d_x = (
        d_x
        + d_mean / count
        + d_variance * (2.0 / count) * x_hat / (inverse_std)
    )
    d_scale = d_offset = None
    if scale is not None:
        # Batch norm: the sum over the reduced axes is already there.
        reduced = all(scale.shape[a] == 1 for a in axes)
        d_scale = _sum_to(sum_dy_x_hat if reduced else d_outputs * x_hat, scale)
    if offset is not None:
        reduced = all(offset.shape[a] == 1 for a in axes)
        d_offset = _sum_to(sum_dy if reduced else d_outputs, offset)
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
