"""NumPy float64 oracle for BN folding and weight normalization.

Like tests/reference.py it never imports keras_norms (nor keras): every
function is written from the formulas, with explicit loops over the output
channels of each kernel layout so it does not share the library's axis
logic. Kernel layouts (``layout`` argument):

- ``"last"``: Dense ``(in, out)`` and ConvND ``(*k, in, out)``;
- ``"transpose"``: ConvNDTranspose ``(*k, out, in)``;
- ``"depthwise"``: DepthwiseConvND ``(*k, in, multiplier)``, output channel
  ``c = i * multiplier + m``.
"""

import numpy as np


def output_slices(kernel_shape, layout):
    """Index tuples selecting each output channel's part of a kernel."""
    if layout == "last":
        return [(..., c) for c in range(kernel_shape[-1])]
    if layout == "transpose":
        return [(..., c, slice(None)) for c in range(kernel_shape[-2])]
    if layout == "depthwise":
        multiplier = kernel_shape[-1]
        return [
            (..., c // multiplier, c % multiplier)
            for c in range(kernel_shape[-2] * multiplier)
        ]
    raise ValueError(f"unknown layout {layout!r}")


def fold(kernel, bias, gamma, beta, mean, variance, epsilon, layout):
    """Ioffe & Szegedy's inference BN merged into the preceding layer.

    ``W' = W * gamma / sqrt(var + eps)`` per output channel and
    ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``; ``None`` stands
    for a missing bias / beta (zeros) or gamma (ones).
    """
    kernel = np.array(kernel, np.float64)
    mean = np.asarray(mean, np.float64)
    channels = mean.shape[0]
    gamma = np.ones(channels) if gamma is None else np.asarray(gamma)
    beta = np.zeros(channels) if beta is None else np.asarray(beta)
    bias = np.zeros(channels) if bias is None else np.asarray(bias)
    scale = gamma / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    for c, index in enumerate(output_slices(kernel.shape, layout)):
        kernel[index] = kernel[index] * scale[c]
    return kernel, (bias - mean) * scale + beta


def kernel_norms(v, layout):
    """Euclidean norm of each output channel's part of ``v``."""
    v = np.asarray(v, np.float64)
    return np.array(
        [
            np.sqrt(np.sum(v[index] ** 2))
            for index in output_slices(v.shape, layout)
        ]
    )


def weight_norm(v, g, layout):
    """Salimans & Kingma: w_c = g_c * v_c / ||v_c|| for each channel c."""
    v = np.asarray(v, np.float64)
    w = np.zeros_like(v)
    for c, index in enumerate(output_slices(v.shape, layout)):
        w[index] = g[c] * v[index] / np.sqrt(np.sum(v[index] ** 2))
    return w


def weight_norm_gradients(v, g, grad_w):
    """Gradients of a loss w.r.t. g and v of a Dense kernel (in, out).

    Salimans & Kingma (2016), equation (3):
    ``dL/dg = dL/dw . v / ||v||`` and
    ``dL/dv = g / ||v|| * dL/dw - g * dL/dg / ||v||^2 * v``.
    """
    v = np.asarray(v, np.float64)
    norm = np.sqrt(np.sum(v**2, axis=0))
    grad_g = np.sum(grad_w * v, axis=0) / norm
    grad_v = g / norm * grad_w - g * grad_g / norm**2 * v
    return grad_g, grad_v


def dense(x, kernel, bias=None):
    y = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    return y if bias is None else y + bias


def conv2d(x, kernel, bias=None):
    """'valid' 2-D convolution, stride 1, channels_last: a loop over the
    output positions of sum(window * kernel) (cross-correlation, as in
    every deep-learning library)."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    batch, height, width, _ = x.shape
    kh, kw, _, out = kernel.shape
    y = np.zeros((batch, height - kh + 1, width - kw + 1, out))
    for i in range(height - kh + 1):
        for j in range(width - kw + 1):
            window = x[:, i : i + kh, j : j + kw, :]
            y[:, i, j, :] = np.tensordot(window, kernel, axes=3)
    return y if bias is None else y + bias


def data_init(pre_activations, epsilon, channel_axis=-1):
    """Data-dependent init of Salimans & Kingma: per channel of t = v.x /
    ||v|| * g (zero bias), the factor 1 / sqrt(var + eps) for g and the
    bias -mean / sqrt(var + eps)."""
    t = np.moveaxis(np.asarray(pre_activations, np.float64), channel_axis, -1)
    t = t.reshape(-1, t.shape[-1])
    inverse_std = 1.0 / np.sqrt(t.var(axis=0) + epsilon)
    return inverse_std, -t.mean(axis=0) * inverse_std
