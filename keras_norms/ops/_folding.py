"""Inference batch normalization folded into the preceding kernel and bias.

At inference, batch normalization is an affine map per channel,
``y = gamma / sqrt(var + eps) * (x - mean) + beta``. When ``x`` is the
output of a linear layer, ``x = W * input + b``, the two compose into one
linear layer with ``W' = W * gamma / sqrt(var + eps)`` (per output channel)
and ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``.
"""

from keras import ops

from keras_norms.ops._normalization import broadcast_parameter
from keras_norms.ops._normalization import statistics_dtype


def kernel_output_axes(output_axis, ndim):
    """Sorted non-negative kernel axes of the output channels.

    ``output_axis`` is an int or a sequence of consecutive ints (for
    depthwise kernels ``(..., in, multiplier)`` the output channel is the
    row-major flattening of the last two axes).
    """
    axes = (output_axis,) if isinstance(output_axis, int) else output_axis
    resolved = sorted(axis % ndim for axis in axes)
    if not resolved or resolved != list(
        range(resolved[0], resolved[0] + len(resolved))
    ):
        raise ValueError(
            "Argument `output_axis` must be an int or a non-empty sequence "
            f"of consecutive kernel axes (kernel rank {ndim}). Received: "
            f"output_axis={output_axis!r}"
        )
    return tuple(resolved)


def per_output_channel(vector, kernel_shape, output_axis):
    """Reshape a vector over the output channels to broadcast to a kernel."""
    ndim = len(kernel_shape)
    axes = kernel_output_axes(output_axis, ndim)
    vector = ops.reshape(vector, [kernel_shape[axis] for axis in axes])
    return broadcast_parameter(vector, ndim, axes)


def fold_batch_normalization_weights(
    kernel,
    bias,
    gamma,
    beta,
    moving_mean,
    moving_variance,
    epsilon=1e-3,
    output_axis=-1,
):
    r"""Kernel and bias of a linear layer followed by inference-mode BN.

    $$W' = W \cdot \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}, \qquad
    b' = (b - \mu) \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta$$

    per output channel, where $\mu$ and $\sigma^2$ are BN's moving mean and
    variance. The linear layer with ``W'`` and ``b'`` computes, for every
    input, what the linear layer followed by the batch normalization
    computes at inference (Ioffe & Szegedy 2015, Section 3.2).

    Args:
        kernel (tensor): The linear layer's kernel.
        bias (tensor | None): Its bias (a vector over the output channels), or
            ``None`` for a layer without bias (taken as zeros).
        gamma (tensor | None): BN's scale, or ``None`` (``scale=False``: ones).
        beta (tensor | None): BN's offset, or ``None`` (``center=False``:
            zeros).
        moving_mean (tensor): BN's moving mean.
        moving_variance (tensor): BN's moving variance.
        epsilon (float): BN's epsilon.
        output_axis (int | Sequence[int]): The kernel axis of the output
            channels: ``-1`` for ``Dense`` and ``ConvND``, ``-2`` for
            ``ConvNDTranspose`` (kernel ``(*k, out, in)``), ``(-2, -1)`` for
            depthwise kernels ``(*k, in, depth_multiplier)``.

    Returns:
        kernel (tensor): The folded kernel, in the dtype of ``kernel``
            (computed in at least float32).
        bias (tensor): The folded bias, in the dtype of ``bias``, or of
            ``kernel`` when ``bias`` is ``None`` (computed in at least
            float32).

    Reference:
        Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
        Training by Reducing Internal Covariate Shift", ICML 2015.

    Examples:
        >>> import numpy as np, keras_norms
        >>> kernel, bias = keras_norms.ops.fold_batch_normalization_weights(
        ...     np.ones((3, 2)), None, gamma=np.array([2.0, 1.0]),
        ...     beta=np.array([0.5, 0.5]), moving_mean=np.array([1.0, 2.0]),
        ...     moving_variance=np.array([3.0, 0.0]), epsilon=1.0)
        >>> np.asarray(kernel)[0].tolist(), np.asarray(bias).tolist()
        ([1.0, 1.0], [-0.5, -1.5])
    """
    kernel = ops.convert_to_tensor(kernel)
    dtype = statistics_dtype(kernel.dtype)
    scale = ops.rsqrt(ops.cast(moving_variance, dtype) + epsilon)
    if gamma is not None:
        scale = scale * ops.cast(gamma, dtype)
    shifted = -ops.cast(moving_mean, dtype)
    bias_dtype = kernel.dtype
    if bias is not None:
        bias = ops.convert_to_tensor(bias)
        bias_dtype = bias.dtype
        shifted = shifted + ops.cast(bias, dtype)
    new_bias = shifted * scale
    if beta is not None:
        new_bias = new_bias + ops.cast(beta, dtype)
    new_kernel = ops.cast(kernel, dtype) * per_output_channel(
        scale, tuple(kernel.shape), output_axis
    )
    return ops.cast(new_kernel, kernel.dtype), ops.cast(new_bias, bias_dtype)
