r"""Local response normalization (Krizhevsky, Sutskever & Hinton, 2012).

Two modes, as in Caffe's ``LRN`` layer:

- ``"across_channels"`` (AlexNet, Caffe ``ACROSS_CHANNELS``, PyTorch
  ``local_response_norm``): each value is divided by a function of the sum of
  squares over ``size`` neighbouring channels at the same position,

  $$b_i = a_i \Big/ \Big(k + \frac{\alpha}{n} \sum_{j=i-\lfloor n/2 \rfloor}
  ^{i+\lfloor (n-1)/2 \rfloor} a_j^2\Big)^\beta$$

  with zero padding at the ends of the channel axis. For odd ``n`` the
  window is centred on ``i``; for even ``n`` it has one more channel
  before ``i`` than after, as in PyTorch.
- ``"within_channel"`` (Caffe ``WITHIN_CHANNEL``): the sum runs over an
  ``n x n`` spatial window centred on the position, within the channel,
  zero padded, and ``alpha`` is divided by the window's size ``n^2``.

The windowed sums are computed by average pooling over a zero-padded
tensor (pooling a window of ``n`` values and dividing by ``n`` is exactly
``alpha / n * sum``), never by a Python loop over shifted copies.
"""

from keras import ops

from keras_norms._validation import check_choice
from keras_norms._validation import check_finite_float
from keras_norms._validation import check_non_negative_float
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_positive_int
from keras_norms._validation import non_batch_axis
from keras_norms.native import dispatch
from keras_norms.ops._moments import statistics_dtype

ACROSS_CHANNELS = "across_channels"
WITHIN_CHANNEL = "within_channel"
MODES = (ACROSS_CHANNELS, WITHIN_CHANNEL)

# Spatial axes average pooling supports: 1-D, 2-D (Caffe's case) and 3-D.
WITHIN_CHANNEL_RANKS = (3, 4, 5)


def check_local_response_arguments(size, alpha, beta, k, mode):
    """Validated ``(size, alpha, beta, k, mode)``; raises ``ValueError``.

    ``size`` is a positive int (odd for ``"within_channel"``, whose square
    window must be centred), ``alpha`` a number >= 0, ``beta`` a finite
    number, ``k`` a number > 0 (so the base of the power is positive).
    """
    size = check_positive_int("size", size)
    alpha = check_non_negative_float("alpha", alpha)
    beta = check_finite_float("beta", beta)
    k = check_positive_float("k", k)
    mode = check_choice("mode", mode, MODES)
    if mode == WITHIN_CHANNEL and size % 2 == 0:
        raise ValueError(
            "Argument `size` must be odd for mode='within_channel', whose "
            "size x size window is centred on each position (as in Caffe). "
            f"Received: size={size}"
        )
    return size, alpha, beta, k, mode


def check_local_response_rank(shape, mode, owner="local_response_norm"):
    """Raise unless an input of ``shape`` suits ``mode``.

    ``owner`` names the caller in the message (a layer passes its name).
    """
    ndim = len(shape)
    if mode == ACROSS_CHANNELS and ndim < 2:
        raise ValueError(
            f"{owner} with mode='across_channels' expects inputs of rank "
            f">= 2 (batch, ..., channels). Received: input_shape={shape}"
        )
    if mode == WITHIN_CHANNEL and ndim not in WITHIN_CHANNEL_RANKS:
        raise ValueError(
            f"{owner} with mode='within_channel' expects inputs of rank 3, "
            "4 or 5 (batch, 1 to 3 spatial axes, channels; rank 4 is "
            f"Caffe's 2-D case). Received: input_shape={shape}"
        )


def _product(values):
    result = 1
    for value in values:
        result = result * value
    return result


def _pad_axis(x, axis, before, after):
    widths = [(0, 0)] * len(x.shape)
    widths[axis] = (before, after)
    return ops.pad(x, widths)


@dispatch("channel_window_mean")
def channel_window_mean(squares, axis, size):
    """Mean of ``size`` consecutive channels, torch-style zero padding.

    The window of channel ``i`` is ``[i - size // 2, i + (size - 1) // 2]``.
    The tensor is viewed (free reshape) as ``(outer, channels, inner)`` and
    pooled along the channels. Backends override it with the layout their
    pooling kernel is fastest on (measured in benchmarks/).
    """
    shape = ops.shape(squares)
    channels = shape[axis]
    grid = ops.reshape(squares, (-1, channels, _product(shape[axis + 1 :])))
    grid = _pad_axis(grid, 1, size // 2, (size - 1) // 2)
    mean = ops.average_pool(grid, size, strides=1, data_format="channels_last")
    return ops.reshape(mean, shape)


def _spatial_window_mean(squares, axis, size):
    """Mean over a centred ``size``-wide window along every spatial axis."""
    ndim = len(squares.shape)
    spatial = [i for i in range(1, ndim) if i != axis]
    half = (size - 1) // 2
    widths = [(0, 0)] * ndim
    for i in spatial:
        widths[i] = (half, half)
    padded = ops.pad(squares, widths)
    data_format = "channels_first" if axis == 1 else "channels_last"
    return ops.average_pool(
        padded,
        (size,) * len(spatial),
        strides=1,
        data_format=data_format,
    )


def local_response_norm(
    x,
    size=5,
    alpha=1e-4,
    beta=0.75,
    k=1.0,
    mode="across_channels",
    axis=-1,
):
    r"""Local response normalization of ``x``.

    With the default ``mode="across_channels"`` this equals
    ``torch.nn.functional.local_response_norm(x, size, alpha, beta, k)``
    (channels at ``axis`` instead of torch's axis 1), odd and even ``size``
    alike:

    $$b_i = a_i / (k + \frac{\alpha}{n} \sum_{j \in W(i)} a_j^2)^\beta$$

    where ``W(i)`` holds the ``n = size`` channels from ``i - n // 2`` to
    ``i + (n - 1) // 2`` (zero padded). ``alpha`` has the Caffe/PyTorch
    meaning (divided by ``size``); see
    `keras_norms.layers.LocalResponseNormalization.from_tensorflow` and
    ``from_alexnet`` for the other parametrizations.

    With ``mode="within_channel"`` the sum runs over a ``size``-wide window
    centred on each position along every spatial axis (``size x size`` for
    images), within each channel, zero padded, and ``alpha`` is divided by
    the window's number of values ``size ** d``: Caffe's ``WITHIN_CHANNEL``
    mode, with ``k`` in place of Caffe's fixed 1.

    Args:
        x (tensor): Input tensor; rank >= 2 for ``"across_channels"``, rank 3, 4
            or 5 (one to three spatial axes) for ``"within_channel"``.
        size (int): Positive int, the window width ``n`` (odd for
            ``"within_channel"``).
        alpha (float): Non-negative float, the scale (divided by the window
            size).
        beta (float): Float, the exponent.
        k (float): Positive float, the additive constant.
        mode (str): ``"across_channels"`` or ``"within_channel"``.
        axis (int): Int, the channel axis (``-1`` channels-last, ``1``
            channels-first).

    Returns:
        (tensor): A tensor of the shape and dtype of ``x``, computed in at
            least float32.

    Reference:
        Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
        Convolutional Neural Networks", NeurIPS 2012, Section 3.3; Caffe's
        LRN layer.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> x = np.ones((1, 2, 2, 3), "float32")
        >>> y = keras_norms.ops.local_response_norm(
        ...     x, size=3, alpha=3.0, beta=1.0
        ... )
        >>> y = keras.ops.convert_to_numpy(y)
        >>> [round(float(v), 4) for v in y[0, 0, 0]]
        [0.3333, 0.25, 0.3333]
    """
    size, alpha, beta, k, mode = check_local_response_arguments(
        size, alpha, beta, k, mode
    )
    x = ops.convert_to_tensor(x)
    ndim = len(x.shape)
    check_local_response_rank(tuple(x.shape), mode)
    axis = non_batch_axis(axis, ndim, "local_response_norm")
    computed = ops.cast(x, statistics_dtype(x.dtype))
    squares = ops.square(computed)
    if mode == ACROSS_CHANNELS:
        mean = channel_window_mean(squares, axis, size)
    elif axis in (1, ndim - 1):
        mean = _spatial_window_mean(squares, axis, size)
    else:
        moved = ops.moveaxis(squares, axis, -1)
        mean = ops.moveaxis(
            _spatial_window_mean(moved, ndim - 1, size), -1, axis
        )
    # x * exp(-beta * log(d)) rather than x / d ** beta: the same value, and
    # 2-4x faster than `power` (and its gradient) on every backend.
    scale = ops.exp(-beta * ops.log(k + alpha * mean))
    return ops.cast(computed * scale, x.dtype)
