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
        # With a closed-form gradient where the backend can attach one.
        closed_form = _closed_form.standardize(
            computed,
            axes,
            _tensor_or_none(offset),
            _tensor_or_none(scale),
            epsilon,
        )
        if closed_form is not NotImplemented:
            outputs, mean, variance, count = closed_form
            return ops.cast(outputs, x.dtype), mean, variance, count
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
        uses where the backend has one: see `keras_norms.native`).
    """
    x = ops.convert_to_tensor(x)
    return _batch_normalization_training(
        x,
        canonical_axes(axis, len(x.shape)),
        _tensor_or_none(offset),
        _tensor_or_none(scale),
        epsilon,
        mask,
        all_gather,
    )


@dispatch("batch_normalization_training")
def _batch_normalization_training(
    x, channel_axes, offset, scale, epsilon, mask=None, all_gather=None
):
    """`batch_normalization_training` with sorted non-negative
    ``channel_axes`` and tensor (or None) parameters: the signature of the
    backends' fused kernels."""
    ndim = len(x.shape)
    reduction_axes = tuple(i for i in range(ndim) if i not in channel_axes)
    outputs, mean, variance, count = standardize(
        x,
        reduction_axes,
        mask=mask,
        offset=broadcast_parameter(offset, ndim, channel_axes),
        scale=broadcast_parameter(scale, ndim, channel_axes),
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
    return _layer_normalization(
        x,
        canonical_axes(axis, len(x.shape)),
        _tensor_or_none(offset),
        _tensor_or_none(scale),
        epsilon,
    )


@dispatch("layer_normalization")
def _layer_normalization(x, axes, offset, scale, epsilon):
    """`layer_normalization` with sorted non-negative ``axes``."""
    ndim = len(x.shape)
    outputs, _, _, _ = standardize(
        x,
        axes,
        offset=broadcast_parameter(offset, ndim, axes),
        scale=broadcast_parameter(scale, ndim, axes),
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
    groups = resolve_groups(
        check_groups(groups), x.shape[axis], "group_normalization"
    )
    return _group_normalization(
        x,
        groups,
        axis,
        _tensor_or_none(offset),
        _tensor_or_none(scale),
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
