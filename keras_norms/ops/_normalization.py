"""Moments and normalization: the one core every normalization layer uses.

All functions take and return backend tensors and work unchanged on the
TensorFlow, JAX and PyTorch backends. Statistics are always computed in at
least float32 (float16/bfloat16 inputs are upcast) and the normalized output
is cast back to the input dtype.

Numerical method: a corrected two-pass algorithm. A first pass gives a rough
mean ``m1``; the deviations ``d = x - m1`` are small numbers, so their mean
(the rounding error of ``m1``) and their mean square are accurate, and the
variance ``mean(d^2) - mean(d)^2`` has no catastrophic cancellation. The raw
``E[x^2] - E[x]^2`` formula, by contrast, loses every significant digit when
the data's mean is large next to its spread (float32 data at 1e4 + N(0, 1)
gives NaN with it). The normalized output is built from ``d`` directly, so
the large mean is never subtracted twice.
"""

from keras import backend
from keras import ops

from keras_norms.backend import fast_path


def statistics_dtype(dtype):
    """The dtype statistics are computed in: float64 for float64, else float32.

    (Not `keras.backend.result_type`, which turns float64 into float32 on
    the JAX and torch backends.)
    """
    return (
        "float64"
        if backend.standardize_dtype(dtype) == "float64"
        else "float32"
    )


def canonical_axes(axes, ndim):
    """Sorted tuple of non-negative axes; ``axes`` is an int or a sequence."""
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted(axis % ndim for axis in axes))


def _centered_moments(x, axes, mask):
    """Corrected two-pass moments of ``x`` (already in statistics dtype).

    Returns ``(deviation, mean, variance, count)`` where ``deviation`` is
    ``x - mean`` computed without cancellation and the statistics keep the
    reduced axes with size 1. ``count`` is the number of values (unmasked
    values, with a mask) each statistic was computed from.
    """
    shifted, rough_mean, correction, variance, count = two_pass_moments(
        x, axes, mask
    )
    return shifted - correction, rough_mean + correction, variance, count


def two_pass_moments(x, axes, mask=None):
    """The parts of the corrected two-pass moments of ``x``.

    Returns ``(shifted, rough_mean, correction, variance, count)``:
    ``shifted = x - rough_mean``; the mean is ``rough_mean + correction``,
    kept apart because ``shifted - correction`` is the precise deviation
    (their sum rounds: in float32 at 1e4 by up to 5e-4). Statistics keep
    the reduced axes with size 1.
    """
    # Sums divided by the count rather than `ops.mean`, which on the torch
    # backend computes float64 inputs in float32.
    if mask is None:
        shape = ops.shape(x)
        count = 1
        for axis in axes:
            count = count * shape[axis]
        count = ops.cast(count, x.dtype)

        def masked(values):
            return values
    else:
        mask = ops.broadcast_to(ops.cast(mask, "bool"), ops.shape(x))
        count = ops.sum(ops.cast(mask, x.dtype), axis=axes, keepdims=True)

        def masked(values):
            return ops.where(mask, values, 0.0)

    # Statistics of an empty (all-masked, or zero-sample replica) slice are
    # 0, not 0/0. (`ops.where` and `ops.relu` rather than `ops.maximum`,
    # which returns float32 for float64 inputs on the torch backend.)
    divisor = ops.where(count > 1.0, count, 1.0)

    def average(values):
        return ops.sum(masked(values), axis=axes, keepdims=True) / divisor

    rough_mean = average(x)
    shifted = x - rough_mean
    correction = average(shifted)
    mean_square = average(ops.square(shifted))
    variance = ops.relu(mean_square - ops.square(correction))
    return shifted, rough_mean, correction, variance, count


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


def _dispatch(name, *args):
    """The backend's fast path for ``name`` on these arguments, or None."""
    function = fast_path(name)
    if function is None:
        return None
    result = function(*args)
    return None if result is NotImplemented else result


def _tensor_or_none(value):
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
        x: Input tensor.
        axes: Int or sequence of ints, the axes to reduce.
        mask: Optional boolean tensor broadcastable to ``x``; only the
            positions where it is true enter the statistics.
        keepdims: Keep the reduced axes with size 1.

    Returns:
        ``(mean, variance, count)`` in the statistics dtype (at least
        float32). ``variance`` is the biased (population) variance; ``count``
        is the number of values behind each statistic.
    """
    x = ops.convert_to_tensor(x)
    axes = canonical_axes(axes, len(x.shape))
    x = ops.cast(x, statistics_dtype(x.dtype))
    _, mean, variance, count = _centered_moments(x, axes, mask)
    if not keepdims:
        mean = ops.squeeze(mean, axis=axes)
        variance = ops.squeeze(variance, axis=axes)
        if mask is not None:
            count = ops.squeeze(count, axis=axes)
    return mean, variance, count


def moments(x, axes, mask=None, keepdims=False):
    """Mean and (biased) variance of ``x`` over ``axes``.

    Numerically stable for data whose mean is large next to its spread, and
    computed in at least float32. See `moments_and_count` for the arguments.

    Returns:
        ``(mean, variance)`` in the statistics dtype (at least float32).
    """
    mean, variance, _ = moments_and_count(x, axes, mask, keepdims)
    return mean, variance


def normalize(x, mean, variance, offset=None, scale=None, epsilon=1e-3):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``.

    ``mean``, ``variance``, ``offset`` and ``scale`` must broadcast against
    ``x``. Computed in at least float32; returned in the dtype of ``x``.
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
        x: Input tensor.
        axes: Int or sequence of ints, the axes the statistics reduce over.
        mask: Optional boolean tensor broadcastable to ``x``; masked-out
            positions are excluded from the statistics (they are still
            normalized with them).
        offset: Optional tensor broadcastable to ``x`` (beta).
        scale: Optional tensor broadcastable to ``x`` (gamma).
        epsilon: Small float added to the variance.
        all_gather: Optional function that stacks a tensor from every
            replica along a new first axis (see
            `keras_norms.distributed.cross_replica_all_gather`). With it the
            statistics are global across replicas (synchronized batch
            normalization); one call per normalization.

    Returns:
        ``(outputs, mean, variance, count)``: outputs in the dtype of ``x``;
        the statistics in at least float32 with the reduced axes kept
        (size 1), ``count`` broadcastable to them.
    """
    x = ops.convert_to_tensor(x)
    axes = canonical_axes(axes, len(x.shape))
    computed = ops.cast(x, statistics_dtype(x.dtype))
    if mask is None and all_gather is None:
        fast = _dispatch(
            "standardize",
            computed,
            axes,
            _tensor_or_none(offset),
            _tensor_or_none(scale),
            epsilon,
        )
        if fast is not None:
            outputs, mean, variance, count = fast
            return ops.cast(outputs, x.dtype), mean, variance, count
    statistics = _centered_moments(computed, axes, mask)
    if all_gather is not None:
        statistics = _combine_across_replicas(*statistics, all_gather)
    deviation, mean, variance, count = statistics
    outputs = _affine(deviation, variance, scale, offset, epsilon)
    return ops.cast(outputs, x.dtype), mean, variance, count


def unbiased_variance(variance, count):
    """``count / (count - 1) * variance`` (Bessel's correction, Ioffe &
    Szegedy Alg. 2); a statistic from a single value keeps variance 0.

    ``count`` must broadcast against ``variance``.
    """
    count = ops.cast(count, variance.dtype)
    return variance * count / ops.where(count > 1.0, count - 1.0, 1.0)


def broadcast_parameter(parameter, ndim, axes):
    """Reshape a parameter of the shape of ``x`` at ``axes`` to rank ndim."""
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


def batch_normalization(
    x, mean, variance, axis=-1, offset=None, scale=None, epsilon=1e-3
):
    """Normalize ``x`` with given per-channel statistics (inference mode).

    Same signature as `keras.ops.batch_normalization`: ``mean``,
    ``variance``, ``offset`` and ``scale`` are vectors over ``axis``.
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

    Args:
        x: Input tensor of rank >= 2.
        axis: The channel axis (int), or several (a sequence of ints).
        offset: Optional tensor of the shape of ``x`` at ``axis`` (beta).
        scale: Optional tensor of the shape of ``x`` at ``axis`` (gamma).
        epsilon: Small float added to the variance.
        mask: Optional boolean tensor broadcastable to ``x``.
        all_gather: Optional cross-replica gather for synchronized
            statistics (see `standardize`).

    Returns:
        ``(outputs, mean, variance, count)``: the statistics have the shape
        of ``x`` at ``axis`` (at least float32); ``count`` is the number of
        values behind each statistic (of that shape, or a scalar without
        mask).
        The statistics are meant for the moving averages: no gradient
        flows through them (as with the fused kernels, which this function
        uses where the backend has one: see `keras_norms.backend`).
    """
    x = ops.convert_to_tensor(x)
    ndim = len(x.shape)
    channel_axes = canonical_axes(axis, ndim)
    if mask is None and all_gather is None:
        fast = _dispatch(
            "batch_normalization_training",
            x,
            channel_axes,
            _tensor_or_none(offset),
            _tensor_or_none(scale),
            epsilon,
        )
        if fast is not None:
            return fast
    reduction_axes = tuple(i for i in range(ndim) if i not in channel_axes)
    outputs, mean, variance, count = standardize(
        x,
        reduction_axes,
        mask=mask,
        offset=broadcast_parameter(offset, ndim, axis),
        scale=broadcast_parameter(scale, ndim, axis),
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


def layer_normalization(x, axis=-1, offset=None, scale=None, epsilon=1e-3):
    """Normalize each sample of ``x`` over ``axis`` (int or sequence).

    ``offset`` and ``scale`` have the shape of ``x`` at the (sorted) axes.
    """
    x = ops.convert_to_tensor(x)
    ndim = len(x.shape)
    fast = _dispatch(
        "layer_normalization",
        x,
        canonical_axes(axis, ndim),
        _tensor_or_none(offset),
        _tensor_or_none(scale),
        epsilon,
    )
    if fast is not None:
        return fast
    outputs, _, _, _ = standardize(
        x,
        axis,
        offset=broadcast_parameter(offset, ndim, axis),
        scale=broadcast_parameter(scale, ndim, axis),
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
    """
    x = ops.convert_to_tensor(x)
    ndim = len(x.shape)
    axis = axis % ndim
    channels = x.shape[axis]
    if groups == -1:
        groups = channels
    if channels is None or groups < 1 or channels % groups:
        raise ValueError(
            "Argument `groups` must divide the number of channels. "
            f"Received: groups={groups}, channels={channels}"
        )
    fast = _dispatch(
        "group_normalization",
        x,
        groups,
        axis,
        _tensor_or_none(offset),
        _tensor_or_none(scale),
        epsilon,
    )
    if fast is not None:
        return fast
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
