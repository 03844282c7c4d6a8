"""Weight normalization of a kernel: w = g * v / ||v|| per output channel."""

from keras import ops

from keras_norms.ops._folding import kernel_output_axes
from keras_norms.ops._folding import per_output_channel
from keras_norms.ops._normalization import statistics_dtype


def _squared_norm(kernel, output_axis):
    """Sum of squares of each output channel's slice (keepdims)."""
    ndim = len(kernel.shape)
    output_axes = kernel_output_axes(output_axis, ndim)
    other_axes = tuple(i for i in range(ndim) if i not in output_axes)
    return ops.sum(ops.square(kernel), axis=other_axes, keepdims=True)


def kernel_norm(kernel, output_axis=-1):
    """Euclidean norm of each output channel's slice of ``kernel``.

    The norm of output channel ``c`` is taken over all kernel axes but
    ``output_axis`` (for a ``Dense`` kernel ``(in, out)``: over ``in``; for a
    ``Conv2D`` kernel ``(kh, kw, in, out)``: over ``kh, kw, in``).

    Args:
        kernel (tensor): A kernel tensor.
        output_axis (int | Sequence[int]): The kernel axis (or consecutive axes)
            of the output channels; see `fold_batch_normalization_weights`.

    Returns:
        (tensor): A vector over the output channels, in at least float32.
    """
    kernel = ops.convert_to_tensor(kernel)
    kernel = ops.cast(kernel, statistics_dtype(kernel.dtype))
    return ops.reshape(ops.sqrt(_squared_norm(kernel, output_axis)), (-1,))


def weight_normalization(v, g, output_axis=-1):
    r"""The weight-normalized kernel $w = g \, v / \lVert v \rVert$.

    Each output channel's slice of the direction ``v`` is divided by its
    Euclidean norm (see `kernel_norm`) and multiplied by that channel's
    scale ``g``, so ``||w_c|| = |g_c|`` whatever ``v`` is (Salimans &
    Kingma 2016). A slice of ``v`` that is all zeros gives zeros.

    Args:
        v (tensor): The direction, a kernel tensor.
        g (tensor): The scales, a vector over the output channels.
        output_axis (int | Sequence[int]): The kernel axis (or consecutive axes)
            of the output channels: ``-1`` for ``Dense``/``ConvND``, ``-2`` for
            ``ConvNDTranspose``, ``(-2, -1)`` for depthwise kernels.

    Returns:
        (tensor): The kernel ``w``, in the dtype of ``v`` (computed in at
            least float32).

    Reference:
        Salimans & Kingma, "Weight Normalization: A Simple
        Reparameterization to Accelerate Training of Deep Neural Networks",
        NeurIPS 2016.

    Examples:
        >>> import numpy as np, keras_norms
        >>> w = keras_norms.ops.weight_normalization(
        ...     np.array([[3.0], [4.0]]), np.array([10.0]))
        >>> np.round(np.asarray(w).ravel(), 6).tolist()
        [6.0, 8.0]
    """
    v = ops.convert_to_tensor(v)
    dtype = statistics_dtype(v.dtype)
    computed = ops.cast(v, dtype)
    squared_norm = _squared_norm(computed, output_axis)
    # A zero slice keeps a finite gradient: 1 / sqrt(1) instead of 1 / 0.
    inverse_norm = ops.rsqrt(ops.where(squared_norm > 0, squared_norm, 1.0))
    scale = per_output_channel(
        ops.cast(g, dtype), tuple(computed.shape), output_axis
    )
    return ops.cast(computed * inverse_norm * scale, v.dtype)
