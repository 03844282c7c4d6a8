"""Per-time-step population statistics (Cooijmans et al., 2016).

Recurrent batch normalization keeps one mean/variance per time step. The
moving averages live in ``(max_timesteps, features)`` tables; these two
functions read them for given steps and update them from the batch
statistics of a whole sequence at once (after the time loop, never inside
it: on JAX an assignment inside the loop would be lost).
"""

from keras import ops


def step_statistics(table, steps):
    """Rows of ``table`` for ``steps``; steps past the end use the last row.

    Args:
        table (tensor): ``(max_timesteps, features)`` tensor.
        steps (tensor): Integer tensor of any shape (e.g. ``(time,)`` or
            ``(batch,)``).

    Returns:
        (tensor): A tensor of shape ``steps.shape + (features,)``.
    """
    table = ops.convert_to_tensor(table)
    last = table.shape[0] - 1
    steps = ops.minimum(ops.cast(steps, "int32"), last)
    return ops.take(table, steps, axis=0)


def moving_average(moving, value, weight, reached=None):
    """``moving * (1 - weight) + value * weight`` where ``reached``; the
    old ``moving`` elsewhere.

    The one moving-average update of the package (the layers' moving
    statistics, batch renormalization's, the per-step tables).

    Args:
        moving (tensor | Variable): The current values (a tensor or a variable).
        value (tensor): The new observation, broadcastable to ``moving``.
        weight (float | tensor): The new value's weight: ``1 - momentum``
            (Keras's ``momentum`` is the old value's weight), or ``1 / (n + 1)``
            for the cumulative average of ``n + 1`` values; a number or a tensor
            broadcastable to ``moving``.
        reached (tensor | None): Optional boolean tensor broadcastable to
            ``moving`` (e.g. ``count > 0``): where false, ``moving`` is kept.

    Returns:
        (tensor): The updated values, in the dtype of ``moving``.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> updated = keras_norms.ops.moving_average(
        ...     np.array([1.0, 1.0], "float32"),
        ...     np.array([3.0, 3.0], "float32"),
        ...     0.5,
        ...     reached=np.array([True, False]),
        ... )
        >>> keras.ops.convert_to_numpy(updated).tolist()
        [2.0, 1.0]
    """
    moving = ops.convert_to_tensor(moving)
    weight = ops.cast(weight, moving.dtype)
    if reached is not None:
        weight = ops.where(reached, weight, 0.0)
    return moving * (1.0 - weight) + ops.cast(value, moving.dtype) * weight


def update_step_statistics(moving, batch_statistics, counts, momentum):
    """Moving average of per-step statistics, one update per time step.

    ``moving = momentum * moving + (1 - momentum) * batch`` for the steps
    ``0 .. time - 1`` that had at least one (unmasked) value; the other rows
    (padded-out steps, steps beyond this sequence's length) keep their
    value. (What `keras_norms.layers.TimestepBatchNormalization` does with
    its tables, as a function.)

    Args:
        moving (tensor | Variable): ``(max_timesteps, features)`` current table.
        batch_statistics (tensor): ``(time, features)`` statistics of this
            batch, ``time <= max_timesteps`` (may be dynamic).
        counts (tensor): ``(time,)`` or ``(time, 1)`` or scalar: number of
            values behind each step's statistics.
        momentum (float): Weight of the old value.

    Returns:
        (tensor): The updated ``(max_timesteps, features)`` table.
    """
    moving = ops.convert_to_tensor(moving)
    time = ops.shape(batch_statistics)[0]
    counts = ops.reshape(ops.cast(counts, moving.dtype), (-1,))
    counts = ops.broadcast_to(counts, (time,))
    (batch_rows,), row_counts = spread_over_rows(
        (ops.cast(batch_statistics, moving.dtype),), counts, moving.shape[0]
    )
    return moving_average(
        moving, batch_rows, 1.0 - momentum, row_counts[:, None] > 0
    )


def spread_over_rows(values, counts, max_timesteps):
    """Per-step values of steps ``0 .. time - 1`` onto ``max_timesteps``
    rows, ``time <= max_timesteps`` (may be dynamic).

    ``values`` is a tuple of tensors with a leading time axis, ``counts``
    the number of values behind each step (same leading axis). Returns
    ``(spread values, spread counts)``; the counts are 0 on the rows past
    ``time``, where the values hold a placeholder to be ignored.
    """
    if counts.shape[0] == max_timesteps:
        return tuple(values), counts  # every row has its step
    time = ops.shape(counts)[0]
    rows = ops.arange(max_timesteps, dtype="int32")
    # Rows past `time` read the last step; their count is zeroed below.
    last = ops.minimum(rows, time - 1)
    spread = tuple(ops.take(value, last, axis=0) for value in values)
    spread_counts = ops.take(counts, last, axis=0)
    inside = ops.reshape(
        rows < time, (-1,) + (1,) * (len(spread_counts.shape) - 1)
    )
    return spread, ops.where(inside, spread_counts, 0)
