"""`scan` on torch: the sequence split once, not indexed at every step.

Keras's torch `scan` reads step ``i`` as ``x[i]``; the gradient of each
such read is a zero tensor of the whole sequence's size with one step
filled in, so a sequence of ``T`` steps costs ``T`` full-size
allocations and fills in the backward pass (a BNLSTM training step of 64
steps spent a third of its time filling them). ``torch.unbind`` reads all
steps at once: its gradient is one ``stack``.
"""

import torch
from keras import ops
from keras import tree


def scan(f, init, xs, length=None):
    xs_flat = [ops.convert_to_tensor(x) for x in tree.flatten(xs)]
    if not xs_flat or xs_flat[0].shape[0] == 0:
        return NotImplemented
    steps = [torch.unbind(x, 0) for x in xs_flat]
    count = len(steps[0]) if length is None else int(length)
    carry, outputs = init, []
    for i in range(count):
        carry, output = f(
            carry, tree.pack_sequence_as(xs, [s[i] for s in steps])
        )
        outputs.append(output)
    stacked = tree.map_structure(lambda *ys: torch.stack(ys), *outputs)
    return carry, stacked
