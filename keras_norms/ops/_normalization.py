"""Moments and normalization: the one core every normalization layer uses.

All functions take and return backend tensors and work unchanged on the
TensorFlow, JAX and PyTorch backends. Statistics are always computed in at
least float32 (float16/bfloat16 inputs are upcast) with the corrected
two-pass moments of `keras_norms.ops._moments`, and the normalized output
is cast back to the input dtype. The output is built from the precise
deviation ``x - mean``, so a large mean is never subtracted twice.

Where a backend has a faster way to compute the same numbers (a fused
kernel, a closed-form gradient) the function marked ``@dispatch`` hands
over to it: see `keras_norms.native`.
"""

import math

from keras import ops

from keras_norms._validation import check_groups
from keras_norms._validation import resolve_groups
from keras_norms.native import dispatch
from keras_norms.ops import _closed_form
from keras_norms.ops._moments import canonical_axes
from keras_norms.ops._moments import statistics_dtype
from keras_norms.ops._moments import two_pass_moments


def _combine_across_replicas(deviation, mean, variance, count, all_gather):
    """Global statistics from every replica's local ones, exactly.

    ONE collective: ``all_gather`` of each replica's ``[count, mean, M2]``
    (``M2`` = count * variance), combined with Chan et al.'s pairwise
    formula, ``M2 = sum(M2_r + n_r (mean_r - mean)^2)``. It is exact when
    replicas hold different numbers of values (or none), and as stable as
    the local two-pass moments: only differences of means are squared.
    Averaging per-replica means or variances, or all-reducing sums of
    squares, would be neither.

    Returns the global ``(deviation, mean, variance, count)``, with
    ``deviation = x - global mean`` derived from the local deviation.
    """
    count = ops.broadcast_to(count, ops.shape(mean))
    local = ops.stack([count, mean, variance * count])
    gathered = all_gather(local)  # (replicas, 3, *statistics shape)
    counts, means, second_moments = (
        gathered[:, 0],
        gathered[:, 1],
        gathered[:, 2],
    )
    total = ops.sum(counts, axis=0)
    divisor = ops.where(total > 1.0, total, 1.0)
    # Offsets from this replica's mean are small numbers: no cancellation.
    offsets = means - mean
    shift = ops.sum(counts * offsets, axis=0) / divisor
    second_moment = ops.sum(
        second_moments + counts * ops.square(offsets - shift), axis=0
    )
    return deviation - shift, mean + shift, second_moment / divisor, total


def tensor_or_none(value):
    """``value`` as a tensor (a variable's value); None stays None."""
    return None if value is None else ops.convert_to_tensor(value)


def _affine(deviation, variance, scale, offset, epsilon):
    """``deviation / sqrt(variance + epsilon) * scale + offset``."""
    inverse_std = ops.rsqrt(variance + epsilon)
    if scale is not None:
        inverse_std = inverse_std * ops.cast(scale, deviation.dtype)
    outputs = deviation * inverse_std
    if offset is not None:
        outputs = outputs + ops.cast(offset, deviation.dtype)
    return outputs


def moments_and_count(x, axes, mask=None, keepdims=False):
    """Mean, variance and sample count of ``x`` over ``axes``.

    Args:
        x (tensor): Input tensor.
        axes (int | Sequence[int]): Int or sequence of ints, the axes to reduce.
        mask (tensor | None): Optional boolean tensor broadcastable to ``x``;
            only the positions where it is true enter the statistics.
        keepdims (bool): Keep the reduced axes with size 1.

    Returns:
        mean (tensor): The mean, in the statistics dtype (at least float32).
        variance (tensor): The biased (population) variance, in the same
            dtype.
        count (tensor): The number of values behind each statistic.
    """
    x = ops.convert_to_tensor(x)
    axes = canonical_axes(axes, len(x.shape))
    x = ops.cast(x, statistics_dtype(x.dtype))
    moments = two_pass_moments(x, axes, mask)
    mean, variance, count = moments.mean, moments.variance, moments.count
    if not keepdims:
        mean = ops.squeeze(mean, axis=axes)
        variance = ops.squeeze(variance, axis=axes)
        if mask is not None:
            count = ops.squeeze(count, axis=axes)
    return mean, variance, count


def moments(x, axes, mask=None, keepdims=False):
    """Mean and (biased) variance of ``x`` over ``axes``.

    Numerically stable for data whose mean is large next to its spread, and
    computed in at least float32.

    Args:
        x (tensor): Input tensor.
        axes (int | Sequence[int]): The axes to reduce.
        mask (tensor | None): Optional boolean tensor broadcastable to
            ``x``; only the positions where it is true enter the statistics.
        keepdims (bool): Keep the reduced axes with size 1.

    Returns:
        mean (tensor): The mean, in the statistics dtype (at least float32).
        variance (tensor): The biased (population) variance, in the same
            dtype.
    """
    mean, variance, _ = moments_and_count(x, axes, mask, keepdims)
    return mean, variance


def normalize(x, mean, variance, offset=None, scale=None, epsilon=1e-3):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``.

    ``mean``, ``variance``, ``offset`` and ``scale`` must broadcast against
    ``x``. Computed in at least float32; returned in the dtype of ``x``.

    Args:
        x (tensor): Input tensor.
        mean (tensor): The mean to subtract.
        variance (tensor): The variance to divide by (its square root).
        offset (tensor | None): Optional offset added last (beta).
        scale (tensor | None): Optional scale (gamma).
        epsilon (float): Small float added to the variance.

    Returns:
        (tensor): The normalized ``x``, in the dtype of ``x``.
    """
    x = ops.convert_to_tensor(x)
    dtype = statistics_dtype(x.dtype)
    outputs = _affine(
        ops.cast(x, dtype) - ops.cast(mean, dtype),
        ops.cast(variance, dtype),
        scale,
        offset,
        epsilon,
    )
    return ops.cast(outputs, x.dtype)


def standardize(
    x,
    axes,
    mask=None,
    offset=None,
    scale=None,
    epsilon=1e-3,
    all_gather=None,
):
    """Normalize ``x`` with its own mean and variance over ``axes``.

    This is the training-mode computation shared by batch, layer, group and
    per-time-step normalization; they differ only in ``axes`` and in the
    shape of ``scale`` / ``offset``.

    Args:
        x (tensor): Input tensor.
        axes (int | Sequence[int]): Int or sequence of ints, the axes the
            statistics reduce over.
        mask (tensor | None): Optional boolean tensor broadcastable to ``x``;
            masked-out positions are excluded from the statistics (they are
            still normalized with them).
        offset (tensor | None): Optional tensor broadcastable to ``x`` (beta).
        scale (tensor | None): Optional tensor broadcastable to ``x`` (gamma).
        epsilon (float): Small float added to the variance.
        all_gather (Callable | None): Optional function that stacks a tensor
            from every replica along a new first axis (see
            `keras_norms.distributed.cross_replica_all_gather`). With it the
            statistics are global across replicas (synchronized batch
            normalization); one call per normalization.

    Returns:
        outputs (tensor): The normalized ``x``, in the dtype of ``x``.
        mean (tensor): The mean, in at least float32, with the reduced axes
            kept (size 1).
        variance (tensor): The biased variance, of the same shape and dtype.
        count (tensor): The number of values behind each statistic,
            broadcastable to ``mean``.
    """
    x = ops.convert_to_tensor(x)
    axes = canonical_axes(axes, len(x.shape))
    if mask is None and all_gather is None:
        # With a closed-form gradient where the backend can attach one.
        closed_form = _closed_form.standardize(
            x,
            axes,
            tensor_or_none(offset),
            tensor_or_none(scale),
            epsilon,
        )
        if closed_form is not NotImplemented:
            return closed_form
    computed = ops.cast(x, statistics_dtype(x.dtype))
    moments = two_pass_moments(computed, axes, mask)
    deviation, mean = moments.deviation, moments.mean
    variance, count = moments.variance, moments.count
    if all_gather is not None:
        deviation, mean, variance, count = _combine_across_replicas(
            deviation, mean, variance, count, all_gather
        )
    outputs = _affine(deviation, variance, scale, offset, epsilon)
    return ops.cast(outputs, x.dtype), mean, variance, count


def unbiased_variance(variance, count):
    """``count / (count - 1) * variance`` (Bessel's correction, Ioffe &
    Szegedy Alg. 2); a statistic from a single value keeps variance 0.

    Args:
        variance (tensor): Biased variances.
        count (tensor): The number of values behind each variance,
            broadcastable against ``variance``.

    Returns:
        (tensor): The unbiased variances, in the dtype of ``variance``.
    """
    count = ops.cast(count, variance.dtype)
    return variance * count / ops.where(count > 1.0, count - 1.0, 1.0)


def broadcast_parameter(parameter, ndim, axes):
    """Reshape a parameter of the shape of ``x`` at ``axes`` to rank ndim.

    Args:
        parameter (tensor | None): A tensor of the shape of ``x`` at
            ``axes``, or ``None``.
        ndim (int): The rank of ``x``.
        axes (int | Sequence[int]): The axes of ``x`` the parameter spans.

    Returns:
        (tensor | None): ``parameter`` with size-1 axes inserted so that it
            broadcasts against ``x``; ``None`` for ``None``.
    """
    if parameter is None:
        return None
    axes = canonical_axes(axes, ndim)
    shape = [1] * ndim
    # ops.shape: sizes unknown when traced (a time axis of None) are read
    # at run time.
    parameter_shape = tuple(ops.shape(parameter))
    for axis, size in zip(axes, parameter_shape, strict=True):
        shape[axis] = size
    return ops.reshape(parameter, shape)


def _broadcastable(parameter, ndim, axes):
    """``parameter`` (of the shape of ``x`` at the sorted ``axes``, or
    broadcastable to it) so that it broadcasts against ``x``: as it is
    for a single trailing axis (broadcasting aligns it), which saves a
    reshape at every step of a recurrent layer's time loop on TensorFlow;
    else `broadcast_parameter`'s reshape (XLA compiled per-step batch
    normalization's shared parameters, left in two dimensions, into a
    slower program)."""
    if parameter is None or tuple(axes) == (ndim - 1,):
        return parameter
    return broadcast_parameter(parameter, ndim, axes)


def batch_normalization(
    x, mean, variance, axis=-1, offset=None, scale=None, epsilon=1e-3
):
    """Normalize ``x`` with given per-channel statistics (inference mode).

    Same signature as `keras.ops.batch_normalization`: ``mean``,
    ``variance``, ``offset`` and ``scale`` are vectors over ``axis``.

    Args:
        x (tensor): Input tensor.
        mean (tensor): Per-channel mean, a vector over ``axis``.
        variance (tensor): Per-channel variance, a vector over ``axis``.
        axis (int): The channel axis.
        offset (tensor | None): Optional per-channel offset (beta).
        scale (tensor | None): Optional per-channel scale (gamma).
        epsilon (float): Small float added to the variance.

    Returns:
        (tensor): The normalized ``x``, in the dtype of ``x``.
    """
    x = ops.convert_to_tensor(x)
    ndim = len(x.shape)
    return normalize(
        x,
        broadcast_parameter(mean, ndim, axis),
        broadcast_parameter(variance, ndim, axis),
        offset=broadcast_parameter(offset, ndim, axis),
        scale=broadcast_parameter(scale, ndim, axis),
        epsilon=epsilon,
    )


def batch_normalization_training(
    x,
    axis=-1,
    offset=None,
    scale=None,
    epsilon=1e-3,
    mask=None,
    all_gather=None,
):
    """Normalize ``x`` with its batch statistics per channel (training mode).

    Statistics of each channel (``axis``) are taken over every other axis:
    the batch and, for convolutional inputs, all spatial positions. With
    several axes, every position along them has its own statistics (e.g.
    ``axis=(1, 2)`` of ``(batch, time, features)`` data: per-time-step
    statistics).

    The statistics are meant for the moving averages: no gradient flows
    through them (as with the fused kernels, which this function uses where
    the backend has one: see `keras_norms.native`).

    Args:
        x (tensor): Input tensor of rank >= 2.
        axis (int | Sequence[int]): The channel axis (int), or several (a
            sequence of ints).
        offset (tensor | None): Optional tensor of the shape of ``x`` at
            ``axis``, or broadcastable to it (beta). With several axes, a
            parameter shared along some of them has size 1 there or fewer
            leading dimensions: e.g. ``(features,)`` for every step of
            ``axis=(1, 2)``.
        scale (tensor | None): Optional tensor of the shape of ``x`` at
            ``axis``, or broadcastable to it (gamma).
        epsilon (float): Small float added to the variance.
        mask (tensor | None): Optional boolean tensor broadcastable to ``x``.
        all_gather (Callable | None): Optional cross-replica gather for
            synchronized statistics (see `standardize`).

    Returns:
        outputs (tensor): The normalized ``x``, in the dtype of ``x``.
        mean (tensor): The batch mean, of the shape of ``x`` at ``axis``
            (at least float32).
        variance (tensor): The biased batch variance, of the same shape and
            dtype.
        count (tensor): The number of values behind each statistic, of the
            same shape, or a scalar without ``mask``.
    """
    x = ops.convert_to_tensor(x)
    channel_axes = canonical_axes(axis, len(x.shape))
    statistics_sizes = tuple(x.shape[a] for a in channel_axes)
    return _batch_normalization_training(
        x,
        channel_axes,
        _channel_parameter("offset", offset, statistics_sizes),
        _channel_parameter("scale", scale, statistics_sizes),
        epsilon,
        mask,
        all_gather,
    )


def _channel_parameter(name, parameter, statistics_sizes):
    """``parameter`` as a tensor of the statistics' rank (leading size-1
    axes added), checked to broadcast to ``statistics_sizes``."""
    parameter = tensor_or_none(parameter)
    if parameter is None:
        return None
    shape = tuple(parameter.shape)
    lead = len(statistics_sizes) - len(shape)
    fits = lead >= 0 and all(
        size in (1, None) or wanted in (size, None)
        for size, wanted in zip(shape, statistics_sizes[lead:], strict=True)
    )
    if not fits:
        raise ValueError(
            f"`{name}` must have the shape of x at `axis` or broadcast to it "
            f"({statistics_sizes}). Received: {name}.shape={shape}"
        )
    if lead:
        parameter = ops.reshape(parameter, (1,) * lead + shape)
    return parameter


@dispatch("batch_normalization_training")
def _batch_normalization_training(
    x, channel_axes, offset, scale, epsilon, mask=None, all_gather=None
):
    """`batch_normalization_training` with sorted non-negative
    ``channel_axes`` and tensor (or None) parameters: the signature of the
    backends' fused kernels."""
    ndim = len(x.shape)
    statistics_sizes = [x.shape[a] for a in channel_axes]
    if (
        len(channel_axes) > 1
        and channel_axes == tuple(range(ndim - len(channel_axes), ndim))
        and None not in statistics_sizes
        and mask is None
        and all_gather is None
        and _spans(offset, statistics_sizes)
        and _spans(scale, statistics_sizes)
    ):
        # Several trailing channel axes (per-step statistics) are one flat
        # channel axis: a free reshape, and the (batch, channels) pattern
        # that compilers handle best (XLA materialized broadcasts of the
        # per-(step, channel) statistics over the three axes). Parameters
        # shared by the steps stay in the input's shape: XLA's CPU code
        # for a shared parameter broadcast and flattened is slow (half
        # precision: 2.0 vs 0.1 ms, benchmarks/profile_misses.py).
        channels = math.prod(statistics_sizes)
        flat = _batch_normalization_training(
            ops.reshape(x, (-1, channels)),
            (1,),
            _flat_or_none(offset, channels),
            _flat_or_none(scale, channels),
            epsilon,
        )
        outputs, mean, variance, count = flat
        return (
            ops.reshape(outputs, ops.shape(x)),
            ops.reshape(mean, statistics_sizes),
            ops.reshape(variance, statistics_sizes),
            count,
        )
    reduction_axes = tuple(i for i in range(ndim) if i not in channel_axes)
    outputs, mean, variance, count = standardize(
        x,
        reduction_axes,
        mask=mask,
        offset=_broadcastable(offset, ndim, channel_axes),
        scale=_broadcastable(scale, ndim, channel_axes),
        epsilon=epsilon,
        all_gather=all_gather,
    )
    # The statistics feed the moving averages; like the fused kernels'
    # statistics they carry no gradient.
    statistics_shape = tuple(ops.shape(x)[a] for a in channel_axes)
    mean = ops.stop_gradient(ops.reshape(mean, statistics_shape))
    variance = ops.stop_gradient(ops.reshape(variance, statistics_shape))
    if mask is not None or all_gather is not None:
        count = ops.reshape(count, statistics_shape)
    return outputs, mean, variance, count


def _flat_or_none(parameter, size):
    return None if parameter is None else ops.reshape(parameter, (size,))


def _spans(parameter, statistics_sizes):
    """Whether ``parameter`` (None or of the statistics' rank) has a value
    for every statistic."""
    return parameter is None or list(parameter.shape) == statistics_sizes


def layer_normalization(x, axis=-1, offset=None, scale=None, epsilon=1e-3):
    """Normalize each sample of ``x`` over ``axis`` (int or sequence).

    ``offset`` and ``scale`` have the shape of ``x`` at the (sorted) axes.

    Args:
        x (tensor): Input tensor.
        axis (int | Sequence[int]): The axes normalized over.
        offset (tensor | None): Optional offset (beta).
        scale (tensor | None): Optional scale (gamma).
        epsilon (float): Small float added to the variance.

    Returns:
        (tensor): The normalized ``x``, in the dtype of ``x``.
    """
    x = ops.convert_to_tensor(x)
    return _layer_normalization(
        x,
        canonical_axes(axis, len(x.shape)),
        tensor_or_none(offset),
        tensor_or_none(scale),
        epsilon,
    )


@dispatch("layer_normalization")
def _layer_normalization(x, axes, offset, scale, epsilon):
    """`layer_normalization` with sorted non-negative ``axes``."""
    ndim = len(x.shape)
    outputs, _, _, _ = standardize(
        x,
        axes,
        offset=_broadcastable(offset, ndim, axes),
        scale=_broadcastable(scale, ndim, axes),
        epsilon=epsilon,
    )
    return outputs


def group_normalization(
    x, groups, axis=-1, offset=None, scale=None, epsilon=1e-3
):
    """Group normalization (Wu & He, 2018).

    The channels (``axis``) are split into ``groups`` contiguous groups;
    each sample is normalized with the statistics of each group, taken over
    the group's channels and all positions. ``groups=1`` is layer
    normalization over all non-batch axes; ``groups=channels`` (or ``-1``) is
    instance normalization. ``offset`` and ``scale`` are per-channel vectors.

    Args:
        x (tensor): Input tensor.
        groups (int): The number of groups; it must divide the number of
            channels, or be ``-1`` (one group per channel).
        axis (int): The channel axis.
        offset (tensor | None): Optional per-channel offset (beta).
        scale (tensor | None): Optional per-channel scale (gamma).
        epsilon (float): Small float added to the variance.

    Returns:
        (tensor): The normalized ``x``, in the dtype of ``x``.
    """
    x = ops.convert_to_tensor(x)
    ndim = len(x.shape)
    axis = axis % ndim
    groups = resolve_groups(
        check_groups(groups), x.shape[axis], "group_normalization"
    )
    return _group_normalization(
        x,
        groups,
        axis,
        tensor_or_none(offset),
        tensor_or_none(scale),
        epsilon,
    )


@dispatch("group_normalization")
def _group_normalization(x, groups, axis, offset, scale, epsilon):
    """`group_normalization` with a non-negative ``axis`` and the number of
    groups resolved (``groups`` divides the channels)."""
    ndim = len(x.shape)
    channels = x.shape[axis]
    # (..., channels, ...) -> (..., groups, channels // groups, ...)
    shape = list(ops.shape(x))
    shape[0] = -1
    grouped_shape = (
        shape[:axis] + [groups, channels // groups] + shape[axis + 1 :]
    )
    grouped = ops.reshape(x, grouped_shape)
    reduction_axes = tuple(i for i in range(1, ndim + 1) if i != axis)
    group_axes = (axis, axis + 1)

    def grouped_parameter(parameter):
        if parameter is None:
            return None
        parameter = ops.reshape(parameter, (groups, channels // groups))
        return broadcast_parameter(parameter, ndim + 1, group_axes)

    outputs, _, _, _ = standardize(
        grouped,
        reduction_axes,
        offset=grouped_parameter(offset),
        scale=grouped_parameter(scale),
        epsilon=epsilon,
    )
    return ops.reshape(outputs, ops.shape(x))
