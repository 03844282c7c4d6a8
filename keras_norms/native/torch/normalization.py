"""Batch, group, layer and RMS normalization on torch's fused kernels.

``torch.nn.functional.batch_norm`` / ``group_norm`` / ``layer_norm`` /
``rms_norm`` read the data once or twice per pass where the keras.ops
reference, run eagerly, makes a pass per operation. The first three's
statistics, though, lose digits on data whose mean is large next to its
spread (float32 at 1e4 + N(0, 1): errors of 1e-3 to 1e2 in the output,
worst for channels-last inputs). So those kernels see ``x - shift``, where
``shift`` is one value of the data from each normalized slice: the shifted
data has a mean of the order of its spread, and the normalized output,
invariant to a constant shift of each slice, is unchanged (the shift is
held constant for the gradient, which is exact for the same reason). This
costs one elementwise pass. ``rms_norm`` takes the data as it is: a mean
of squares has no cancellation (and its output is not shift-invariant).

Half-precision inputs (float16, bfloat16: what a layer receives under a
mixed-precision policy) are computed in float32, as the reference
computes its statistics, and the output is cast back to the input's
dtype. The shift is taken in float32, so that ``x - shift`` is also the
cast (type promotion): no pass is added for it.

Each function returns ``NotImplemented`` where the kernel does not apply
(other dtypes; one value per statistic, which torch refuses; axes other
than the trailing ones for layer and RMS normalization).
"""

import contextlib
import math

import torch
import torch.nn.functional as F

_DTYPES = (torch.float32, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)


def _kernel_dtype(x):
    """The dtype the kernel computes ``x`` in, or None if it does not apply:
    half precision is computed in float32, as in the reference."""
    if x.dtype in _DTYPES:
        return x.dtype
    if x.dtype in _HALF_DTYPES:
        return torch.float32
    return None


def _parameter(parameter, dtype):
    if parameter is None:
        return None
    return torch.as_tensor(parameter).to(dtype)


def _first_values(x, keep_axes, dtype):
    """``x`` at index 0 of every axis but ``keep_axes`` (dims kept), in
    ``dtype``."""
    index = tuple(
        slice(None) if axis in keep_axes else slice(0, 1)
        for axis in range(x.dim())
    )
    return x[index].detach().to(dtype)


def batch_normalization_training(
    x, channel_axes, offset, scale, epsilon, mask=None, all_gather=None
):
    if mask is not None or all_gather is not None:
        return NotImplemented
    dtype = _kernel_dtype(x)
    if dtype is None:
        return NotImplemented
    ndim = x.dim()
    statistics_shape = tuple(x.shape[a] for a in channel_axes)
    channels = math.prod(statistics_shape)
    count = x.numel() // max(channels, 1)
    if count < 2:
        return NotImplemented
    if len(channel_axes) == 1:
        # torch wants channels at axis 1; moving them there is a view (for
        # channels-last data the kernel reads the channels-last layout).
        moved = torch.movedim(x, channel_axes[0], 1)

        def restore(outputs):
            return torch.movedim(outputs, 1, channel_axes[0])

    elif channel_axes == tuple(range(ndim - len(channel_axes), ndim)):
        # Several trailing axes (per-step statistics): one flat channel
        # axis, a free reshape of contiguous data.
        moved = x.reshape(-1, channels)

        def restore(outputs):
            return outputs.reshape(x.shape)

    elif len(channel_axes) == ndim - 1:
        # Statistics over one inner axis (per-step statistics of
        # time-major data): that axis first and the rest one flat channel
        # axis (a copy).
        (batch_axis,) = set(range(ndim)) - set(channel_axes)
        first = torch.movedim(x, batch_axis, 0)
        moved = first.reshape(first.shape[0], channels)

        def restore(outputs):
            return torch.movedim(outputs.reshape(first.shape), 0, batch_axis)

    else:
        return NotImplemented
    outputs, mean, variance = shifted_batch_norm(
        moved,
        _flat_parameter(offset, statistics_shape, dtype),
        _flat_parameter(scale, statistics_shape, dtype),
        epsilon,
        dtype,
    )
    mean = mean.reshape(statistics_shape)
    variance = variance.reshape(statistics_shape)
    count = torch.tensor(float(count), dtype=dtype, device=x.device)
    return restore(outputs).to(x.dtype), mean, variance, count


def shifted_batch_norm(moved, offset, scale, epsilon, dtype):
    """Training-mode ``F.batch_norm`` of ``moved`` (channels at axis 1) on
    the shifted data: ``(outputs in dtype, mean, biased variance)``, the
    statistics of shape ``(channels,)``. ``offset`` and ``scale`` are flat
    tensors in ``dtype`` or None."""
    shift = _first_values(moved, (1,), dtype)
    channels = moved.shape[1]
    count = moved.numel() // channels
    # With momentum 1 the "running" buffers receive this batch's mean and
    # unbiased variance.
    mean = moved.new_zeros(channels, dtype=dtype)
    variance = moved.new_zeros(channels, dtype=dtype)
    outputs = F.batch_norm(
        moved - shift,
        mean,
        variance,
        weight=scale,
        bias=offset,
        training=True,
        momentum=1.0,
        eps=epsilon,
    )
    mean = mean + shift.reshape(-1)
    return outputs, mean, variance * ((count - 1) / count)


@contextlib.contextmanager
def _saving_source(shifted, source, shift):
    """Inside, a kernel that saves ``shifted = source - shift`` for its
    backward saves ``source`` and ``shift`` instead and recomputes
    ``shifted`` there (one elementwise pass).

    The source, the previous layer's output, is usually kept until the
    backward anyway (a Keras model holds every layer's output through the
    forward pass, as Keras core's layers save their input); a saved
    shifted copy would be one more tensor of the input's size.
    """

    # The hooks outlive this block (torch keeps them with what they
    # saved): they must not hold ``shifted`` itself.
    address, shape = shifted.data_ptr(), shifted.shape

    def pack(tensor):
        if tensor.data_ptr() == address and tensor.shape == shape:
            return (source, shift)
        return tensor

    def unpack(saved):
        if isinstance(saved, tuple):
            return saved[0] - saved[1]
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


def _flat_parameter(parameter, statistics_shape, dtype):
    """One value per (flat) channel; a parameter shared along some of the
    channel axes is expanded along them."""
    parameter = _parameter(parameter, dtype)
    if parameter is None:
        return None
    return parameter.expand(statistics_shape).reshape(-1)


def group_normalization(x, groups, channel_axis, offset, scale, epsilon):
    dtype = _kernel_dtype(x)
    if dtype is None:
        return NotImplemented
    moved = torch.movedim(x, channel_axis, 1)
    batch, channels = moved.shape[0], moved.shape[1]
    if math.prod(moved.shape[1:]) // groups < 2:
        return NotImplemented  # torch refuses one value per group
    # One value per sample and group, repeated over the group's channels.
    first = _first_values(moved, (0, 1), dtype).reshape(batch, groups, -1)
    shift = first[:, :, :1].expand(-1, -1, channels // groups)
    shift = shift.reshape((batch, channels) + (1,) * (x.dim() - 2))
    shifted = moved - shift
    weight = _parameter(scale, dtype)
    bias = _parameter(offset, dtype)
    if (
        torch.is_grad_enabled()
        and not shifted.requires_grad
        and any(p is not None and p.requires_grad for p in (weight, bias))
    ):
        # torch 2.13's CPU group_norm backward crashes (segfault) on a
        # channels-last input that needs no gradient while gamma/beta do
        # (e.g. a model's first layer); asking for the input's gradient
        # too avoids it, at no extra pass (the kernel computes both).
        shifted.requires_grad_(True)
    with _saving_source(shifted, moved, shift):
        outputs = F.group_norm(shifted, groups, weight, bias, epsilon)
    return torch.movedim(outputs, 1, channel_axis).to(x.dtype)


def layer_normalization(x, axes, offset, scale, epsilon):
    ndim = x.dim()
    dtype = _kernel_dtype(x)
    if dtype is None or tuple(axes) != tuple(range(ndim - len(axes), ndim)):
        return NotImplemented  # the kernel normalizes trailing axes only
    normalized_shape = tuple(x.shape[ndim - len(axes) :])
    if math.prod(normalized_shape) == 0:
        return NotImplemented
    shift = _first_values(x, tuple(range(ndim - len(axes))), dtype)
    shifted = x - shift
    with _saving_source(shifted, x, shift):
        outputs = F.layer_norm(
            shifted,
            normalized_shape,
            weight=_parameter(scale, dtype),
            bias=_parameter(offset, dtype),
            eps=epsilon,
        )
    return outputs.to(x.dtype)


def rms_normalization(x, axes, scale, epsilon):
    ndim = x.dim()
    if x.dtype not in _DTYPES or tuple(axes) != tuple(
        range(ndim - len(axes), ndim)
    ):
        return NotImplemented  # the kernel normalizes trailing axes only
    normalized_shape = tuple(x.shape[ndim - len(axes) :])
    if math.prod(normalized_shape) == 0:
        return NotImplemented
    return F.rms_norm(
        x, normalized_shape, weight=_parameter(scale, x.dtype), eps=epsilon
    )
