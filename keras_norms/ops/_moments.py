"""Corrected two-pass moments: the statistics every normalization shares.

A first pass gives a rough mean ``m1``; the deviations ``d = x - m1`` are
small numbers, so their mean (the rounding error of ``m1``) and their mean
square are accurate, and the variance ``mean(d^2) - mean(d)^2`` has no
catastrophic cancellation. The raw ``E[x^2] - E[x]^2`` formula, by
contrast, loses every significant digit when the data's mean is large next
to its spread (float32 data at 1e4 + N(0, 1) gives NaN with it).
"""

from typing import NamedTuple

from keras import backend
from keras import ops

from keras_norms.native import dispatch


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


def sum_over(values, axes):
    """``ops.sum(values, axes, keepdims=True)``, one run of adjacent axes at
    a time, the longest (in values) first.

    TensorFlow's CPU reduction over axes with gaps between them (group
    normalization's ``(1, 2, 4)`` of ``(batch, h, w, groups, channels)``,
    batch normalization's ``(0, 2, 3)`` for NCHW) is about 4x slower than
    over each run in turn; XLA compiles both alike.
    """
    runs = []
    for axis in sorted(axes):
        if runs and runs[-1][-1] == axis - 1:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    # Sizes unknown while tracing (None, or JAX's symbolic dimensions when
    # exporting) keep the axis order: any order sums the same values.
    if len(runs) > 1 and all(isinstance(values.shape[a], int) for a in axes):

        def size(run):
            product = 1
            for axis in run:
                product *= values.shape[axis]
            return product

        runs.sort(key=size, reverse=True)
    for run in runs:
        values = sum_adjacent_axes(values, tuple(run))
    return values


@dispatch("sum_adjacent_axes")
def sum_adjacent_axes(values, axes):
    """``ops.sum(values, axes, keepdims=True)`` over one run of adjacent
    axes. JAX on CPU sums a leading run as a matrix product
    (`keras_norms.native`)."""
    return ops.sum(values, axis=axes, keepdims=True)


def static_count(shape, axes):
    """The number of values over ``axes`` of ``shape`` as a Python int, or
    None when a size is unknown while tracing."""
    count = 1
    for axis in axes:
        if not isinstance(shape[axis], int):
            return None
        count *= shape[axis]
    return count


def count_divisor(count):
    """What sums over ``count`` values are divided by: ``count``, or 1 for
    fewer than two values (the statistics of an empty slice, all masked or
    a replica without samples, are 0, not 0/0).

    A count known while tracing (a Python int) gives a Python number: on
    TensorFlow every op is a kernel launch, and inside a recurrent layer's
    time loop the comparison and select ran at every step.
    """
    if isinstance(count, int):
        return float(max(count, 1))
    # `ops.where` rather than `ops.maximum`, which returns float32 for
    # float64 inputs on the torch backend.
    return ops.where(count > 1.0, count, 1.0)


class TwoPassMoments(NamedTuple):
    """The parts of the corrected two-pass moments of ``x`` over some axes.

    The statistics keep the reduced axes with size 1. The mean is
    ``rough_mean + correction``, kept apart because ``shifted -
    correction`` is the precise deviation ``x - mean`` (their sum rounds:
    in float32 at 1e4 by up to 5e-4).
    """

    shifted: object  # x - rough_mean
    rough_mean: object
    correction: object  # the mean of ``shifted``
    variance: object  # biased
    count: object  # values behind each statistic (unmasked ones)

    @property
    def mean(self):
        return self.rough_mean + self.correction

    @property
    def deviation(self):
        return self.shifted - self.correction


def two_pass_moments(x, axes, mask=None):
    """`TwoPassMoments` of ``x`` (already in the statistics dtype) over
    ``axes``; only positions where ``mask`` (broadcastable) is true count.
    """
    # Sums divided by the count rather than `ops.mean`, which on the torch
    # backend computes float64 inputs in float32.
    if mask is None:
        shape = ops.shape(x)
        count = 1
        for axis in axes:
            count = count * shape[axis]
        count = ops.cast(count, x.dtype)
        known = static_count(x.shape, axes)
        divisor = count_divisor(count if known is None else known)

        def masked(values):
            return values
    else:
        mask = ops.broadcast_to(ops.cast(mask, "bool"), ops.shape(x))
        count = sum_over(ops.cast(mask, x.dtype), axes)
        divisor = count_divisor(count)

        def masked(values):
            return ops.where(mask, values, 0.0)

    def average(values):
        return sum_over(masked(values), axes) / divisor

    rough_mean = average(x)
    shifted = x - rough_mean
    correction = average(shifted)
    mean_square = average(ops.square(shifted))
    # (`ops.relu`: `ops.maximum` returns float32 for float64 inputs on the
    # torch backend.)
    variance = ops.relu(mean_square - ops.square(correction))
    return TwoPassMoments(shifted, rough_mean, correction, variance, count)
