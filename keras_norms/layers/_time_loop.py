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


def run_steps(step, input_terms, h, c, mask=None, zero_output_for_mask=False):
    """Run ``step(input_t, h, c, t, mask_t) -> (h, c, extras)`` over time.

    Args:
        step: One step; ``t`` is the int32 step index, ``mask_t`` the
            ``(batch,)`` bool mask or None; ``extras`` a tuple of tensors
            (possibly empty) to stack over the steps.
        input_terms: ``(batch, time, width)``, in processing order.
        h, c: The initial states ``(batch, units)``.
        mask: ``(batch, time)`` bool or None, in processing order.

    Returns:
        ``(last_output, outputs, h, c, extras)``, ``outputs`` batch-major
        and each of ``extras`` stacked time-major.
    """
    time = input_terms.shape[1]
    input_terms = ops.transpose(input_terms, (1, 0, 2))
    steps = ops.arange(ops.shape(input_terms)[0], dtype="int32")
    elements = (input_terms, steps)
    if mask is not None:
        elements += (ops.transpose(ops.cast(mask, "bool"), (1, 0)),)

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
