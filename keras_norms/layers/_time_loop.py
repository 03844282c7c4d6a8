"""The time loop of the LSTM layers: the cell's step, without its layer call.

`keras.layers.RNN` calls the cell as a layer at every step; on torch,
which runs the loop eagerly, that call cost about as much as the step's
own operations. The LSTMs here compute their input terms for all steps
at once and loop over a plain step function instead, with Keras's
semantics for masks (a masked step keeps the previous state and
output, or outputs zeros with ``zero_output_for_mask``).
"""

from keras import ops

from keras_norms.ops._loops import scan


def time_major(sequences, mask, go_backwards):
    """``(sequences, mask)`` of a layer's call, ``(batch, time, features)``
    and ``(batch, time)`` (or a list holding it, or None), as the time loop
    takes them: time-major and in processing order.

    The sequences are transposed before the input terms are computed from
    them (all steps at once, then sliced by the loop): the terms are
    ``4 * units`` wide, the sequences usually narrower, and on JAX the
    transposes of the terms and of their gradient had cost more than the
    time loop's own steps at 256 steps (``benchmarks/profile_misses.py``).
    """
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    sequences = ops.transpose(sequences, (1, 0, 2))
    if mask is not None:
        mask = ops.transpose(mask, (1, 0))
    if go_backwards:
        sequences = ops.flip(sequences, axis=0)
        mask = None if mask is None else ops.flip(mask, axis=0)
    return sequences, mask


def run_steps(step, input_terms, h, c, mask=None, zero_output_for_mask=False):
    """Run ``step(input_t, h, c, t, mask_t) -> (h, c, extras)`` over time.

    Args:
        step: One step; ``t`` is the int32 step index, ``mask_t`` the
            ``(batch,)`` bool mask or None; ``extras`` a tuple of tensors
            (possibly empty) to stack over the steps.
        input_terms: ``(time, batch, width)``, in processing order (see
            `time_major`).
        h, c: The initial states ``(batch, units)``.
        mask: ``(time, batch)`` bool or None, in processing order.

    Returns:
        ``(last_output, outputs, h, c, extras)``, ``outputs`` batch-major
        and each of ``extras`` stacked time-major.
    """
    time = input_terms.shape[0]
    steps = ops.arange(ops.shape(input_terms)[0], dtype="int32")
    elements = (input_terms, steps)
    if mask is not None:
        elements += (ops.cast(mask, "bool"),)

    def one_step(carry, elements):
        h, c, output = carry
        mask_t = elements[2] if len(elements) == 3 else None
        new_h, new_c, extras = step(elements[0], h, c, elements[1], mask_t)
        new_output = new_h
        if mask_t is not None:
            keep = mask_t[:, None]
            new_output = ops.where(
                keep,
                new_h,
                ops.zeros_like(new_h) if zero_output_for_mask else output,
            )
            new_h = ops.where(keep, new_h, h)
            new_c = ops.where(keep, new_c, c)
        return (new_h, new_c, new_output), (new_output,) + tuple(extras)

    # (Only a concrete length: JAX's export traces a symbolic one.)
    length = time if isinstance(time, int) else None
    final, stacked = scan(
        one_step, (h, c, ops.zeros_like(h)), elements, length=length
    )
    outputs = stacked[0]
    return (
        outputs[-1],
        ops.transpose(outputs, (1, 0, 2)),
        final[0],
        final[1],
        stacked[1:],
    )
