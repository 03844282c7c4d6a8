"""Root mean square normalization (Zhang & Sennrich, 2019)."""

from keras import ops

from keras_norms.native import dispatch
from keras_norms.ops._moments import canonical_axes
from keras_norms.ops._moments import statistics_dtype
from keras_norms.ops._normalization import broadcast_parameter


def rms_normalization(x, scale=None, axis=-1, epsilon=1e-6):
    r"""Divide ``x`` by its root mean square over ``axis``, times ``scale``.

    $$y = \frac{x}{\sqrt{\frac{1}{n}\sum_{i} x_i^2 + \epsilon}} \, s$$

    where the mean runs over the ``n`` values of each slice along
    ``axis``. Unlike layer normalization the mean is not subtracted, and
    there is no offset. The arguments are those of
    `keras.ops.rms_normalization`; the mean square is computed in at least
    float32 (float16 and bfloat16 inputs are upcast, so values whose
    square overflows float16, above 256, are fine) and the result is cast
    back to the dtype of ``x``. The mean square overflows float32 itself
    for values above about 1e19.

    On torch, trailing ``axis`` and float inputs run on the fused
    ``torch.nn.functional.rms_norm`` (see `keras_norms.native`).

    Args:
        x (tensor): Input tensor.
        scale (tensor | None): Optional tensor of the shape of ``x`` at the
            (sorted) axes, ``s`` above; with ``axis=-1`` a vector over the last
            axis.
        axis (int | Sequence[int]): Int or sequence of ints, the axes of each
            normalized slice.
        epsilon (float): Small float added to the mean square. (Keras's op
            defaults to ``keras.config.epsilon()``, 1e-7; its layer, like
            ours, to 1e-6.)

    Returns:
        (tensor): The normalized tensor, of the shape and dtype of ``x``.

    Reference:
        Zhang & Sennrich, "Root Mean Square Layer Normalization",
        NeurIPS 2019.

    Examples:
        >>> import keras, numpy as np, keras_norms
        >>> x = np.array([[3.0, 4.0]], "float32")  # mean square 12.5
        >>> y = keras_norms.ops.rms_normalization(x, epsilon=0.0)
        >>> np.round(keras.ops.convert_to_numpy(y) * np.sqrt(12.5), 5).tolist()
        [[3.0, 4.0]]
    """
    x = ops.convert_to_tensor(x)
    computed = ops.cast(x, statistics_dtype(x.dtype))
    axes = canonical_axes(axis, len(x.shape))
    if scale is not None:
        scale = ops.cast(ops.convert_to_tensor(scale), computed.dtype)
        if len(scale.shape) != len(axes):
            raise ValueError(
                "Argument `scale` must have the shape of `x` at `axis`, "
                f"one dimension per axis. Received: scale.shape="
                f"{tuple(scale.shape)}, axis={axis}, x.shape={tuple(x.shape)}"
            )
    outputs = _rms_normalization(computed, axes, scale, epsilon)
    return ops.cast(outputs, x.dtype)


@dispatch("rms_normalization")
def _rms_normalization(x, axes, scale, epsilon):
    """`rms_normalization` of ``x`` in its statistics dtype (float32 or
    float64), with sorted non-negative ``axes`` and ``scale`` (a tensor of
    ``x``'s dtype, or None)."""
    shape = ops.shape(x)
    count = 1
    for axis in axes:
        count = count * shape[axis]
    # A sum divided by the count: `ops.mean` computes float64 inputs in
    # float32 on the torch backend.
    mean_square = ops.sum(ops.square(x), axis=axes, keepdims=True) / ops.cast(
        count, x.dtype
    )
    outputs = x * ops.rsqrt(mean_square + epsilon)
    if scale is not None:
        outputs = outputs * broadcast_parameter(scale, len(x.shape), axes)
    return outputs
