"""NumPy float64 oracle for the tests. It never imports keras_norms.

Everything here is written straight from the formulas in the papers (see
docs/design.md), as plainly as possible, so that it is easy to check by eye.
"""

import numpy as np


def _axes(axes, ndim):
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted(a % ndim for a in axes))


def moments(x, axes, mask=None):
    """Mean, biased variance and count over ``axes`` (keepdims)."""
    x = np.asarray(x, np.float64)
    axes = _axes(axes, x.ndim)
    if mask is None:
        weights = np.ones_like(x)
    else:
        weights = np.broadcast_to(np.asarray(mask, np.float64), x.shape)
    count = weights.sum(axis=axes, keepdims=True)
    safe = np.maximum(count, 1.0)
    mean = (weights * x).sum(axis=axes, keepdims=True) / safe
    variance = (weights * (x - mean) ** 2).sum(axis=axes, keepdims=True) / safe
    return mean, variance, count


def _channel_shape(ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def batch_norm_train(
    x, axis=-1, gamma=None, beta=None, epsilon=1e-3, mask=None
):
    """Training-mode BN; returns (y, mean, variance, count) per channel."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    mean, variance, count = moments(x, reduce, mask)
    y = (x - mean) / np.sqrt(variance + epsilon)
    shape = _channel_shape(x.ndim, axis)
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    count = np.broadcast_to(count, mean.shape).reshape(-1)
    return y, mean.reshape(-1), variance.reshape(-1), count


def batch_norm_inference(
    x, mean, variance, axis=-1, gamma=None, beta=None, epsilon=1e-3
):
    """Inference BN in the paper's affine form y = a * x + b."""
    x = np.asarray(x, np.float64)
    gamma = np.ones_like(mean) if gamma is None else np.asarray(gamma)
    beta = np.zeros_like(mean) if beta is None else np.asarray(beta)
    a = gamma / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    b = beta - a * mean
    shape = _channel_shape(x.ndim, axis)
    return x * a.reshape(shape) + b.reshape(shape)


def moving_average(old, new, momentum):
    """Keras convention: momentum is the weight of the old value."""
    return momentum * np.asarray(old) + (1.0 - momentum) * np.asarray(new)


def layer_norm(x, axes=-1, gamma=None, beta=None, epsilon=1e-3):
    x = np.asarray(x, np.float64)
    axes = _axes(axes, x.ndim)
    mean, variance, _ = moments(x, axes)
    y = (x - mean) / np.sqrt(variance + epsilon)
    param_shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    if gamma is not None:
        y = y * np.reshape(gamma, param_shape)
    if beta is not None:
        y = y + np.reshape(beta, param_shape)
    return y


def group_norm(x, groups, axis=-1, gamma=None, beta=None, epsilon=1e-3):
    """Loop over samples and groups: the plainest statement of GN."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    per_group = channels // groups
    y = np.empty_like(x)
    moved = np.moveaxis(x, axis, -1)
    out = np.moveaxis(y, axis, -1)
    for n in range(x.shape[0]):
        for g in range(groups):
            block = moved[n, ..., g * per_group : (g + 1) * per_group]
            out[n, ..., g * per_group : (g + 1) * per_group] = (
                block - block.mean()
            ) / np.sqrt(block.var() + epsilon)
    shape = _channel_shape(x.ndim, axis)
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    return y


def batch_norm_backward(x, dy, gamma, epsilon=1e-3):
    """Analytic BN gradients of Ioffe & Szegedy (2015), Section 3.

    ``x`` and ``dy`` have shape (m, channels). Returns (dx, dgamma, dbeta).
    """
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    m = x.shape[0]
    mu = x.mean(axis=0)
    s2 = ((x - mu) ** 2).mean(axis=0)
    x_hat = (x - mu) / np.sqrt(s2 + epsilon)
    dx_hat = dy * gamma
    ds2 = np.sum(dx_hat * (x - mu) * -0.5 * (s2 + epsilon) ** -1.5, axis=0)
    dmu = np.sum(dx_hat * -1.0 / np.sqrt(s2 + epsilon), axis=0)
    dx = dx_hat / np.sqrt(s2 + epsilon) + ds2 * 2.0 * (x - mu) / m + dmu / m
    return dx, np.sum(dy * x_hat, axis=0), np.sum(dy, axis=0)


def numerical_gradient(f, x, step=1e-6):
    """Central finite differences of a scalar function ``f`` at ``x``."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    grad_flat = grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + step
        upper = f(x)
        flat[i] = saved - step
        lower = f(x)
        flat[i] = saved
        grad_flat[i] = (upper - lower) / (2 * step)
    return grad
