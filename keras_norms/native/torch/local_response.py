"""`channel_window_mean` in torch's pooling layout (channels first).

``(outer, 1, channels, inner)`` pooled with a ``(size, 1)`` window is the
layout of ``torch.nn.functional.local_response_norm`` itself, on every
device; the reference would transpose to it and back (two copies).
"""

import math

import torch.nn.functional as F
from keras import ops

from keras_norms.native.torch.devices import on_gpu


def channel_window_mean(squares, axis, size):
    shape = tuple(squares.shape)
    channels = shape[axis]
    before, after = size // 2, (size - 1) // 2
    if axis == len(shape) - 1 and not on_gpu(squares):
        # Channels last on CPU: the 1-D pool of (outer, 1, channels), which
        # pools along the contiguous axis, is 2x faster there. On a GPU
        # (not measured) torch's own layout below, as for any axis.
        grid = F.pad(squares.reshape(-1, 1, channels), (before, after))
        pool_size = size
    else:
        inner = math.prod(shape[axis + 1 :])
        grid = squares.reshape(-1, 1, channels, inner)
        grid = F.pad(grid, (0, 0, before, after))
        pool_size = (size, 1)
    mean = ops.average_pool(
        grid, pool_size, strides=1, data_format="channels_first"
    )
    return mean.reshape(shape)
