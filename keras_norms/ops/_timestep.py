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
        table: ``(max_timesteps, features)`` tensor.
        steps: Integer tensor of any shape (e.g. ``(time,)`` or
            ``(batch,)``).

    Returns:
        Tensor of shape ``steps.shape + (features,)``.
    """
    table = ops.convert_to_tensor(table)
    last = table.shape[0] - 1
    steps = ops.minimum(ops.cast(steps, "int32"), last)
    return ops.take(table, steps, axis=0)


def update_step_statistics(moving, batch_statistics, counts, momentum):
    """Moving average of per-step statistics, one update per time step.

    ``moving = momentum * moving + (1 - momentum) * batch`` for the steps
    ``0 .. time - 1`` that had at least one (unmasked) value; the other rows
    (padded-out steps, steps beyond this sequence's length) keep their
    value.

    Args:
        moving: ``(max_timesteps, features)`` current table.
        batch_statistics: ``(time, features)`` statistics of this batch,
            ``time <= max_timesteps`` (may be dynamic).
        counts: ``(time,)`` or ``(time, 1)`` or scalar: number of values
            behind each step's statistics.
        momentum: Weight of the old value.

    Returns:
        The updated ``(max_timesteps, features)`` table.
    """
    moving = ops.convert_to_tensor(moving)
    max_timesteps = moving.shape[0]
    time = ops.shape(batch_statistics)[0]
    rows = ops.arange(max_timesteps, dtype="int32")
    # Gather this batch's statistics onto the table's rows (rows past
    # `time` get a placeholder that the `where` below discards).
    batch_rows = ops.take(
        ops.cast(batch_statistics, moving.dtype),
        ops.minimum(rows, time - 1),
        axis=0,
    )
    counts = ops.reshape(ops.cast(counts, moving.dtype), (-1,))
    counts = ops.broadcast_to(counts, (time,))
    row_counts = ops.take(counts, ops.minimum(rows, time - 1), axis=0)
    updated_rows = ops.logical_and(rows < time, row_counts > 0)
    averaged = moving * momentum + batch_rows * (1.0 - momentum)
    return ops.where(updated_rows[:, None], averaged, moving)
