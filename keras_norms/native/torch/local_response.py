"""`channel_window_mean` in torch's pooling layout (channels first)."""

import math

import torch.nn.functional as F
from keras import ops


def channel_window_mean(squares, axis, size):
    # torch pools channels-first: (outer, 1, channels, inner), the layout
    # of torch.nn.functional.local_response_norm itself; with channels
    # last, the 1-D pool of (outer, 1, channels) is 2x faster.
    shape = tuple(squares.shape)
    channels = shape[axis]
    before, after = size // 2, (size - 1) // 2
    if axis == len(shape) - 1:
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
