"""`channel_window_mean` on torch.

On CPU a sum of ``size`` strided views (``unfold``) of the padded
``(outer, channels, inner)`` tensor, with its own backward (the same sum,
padding swapped): torch's CPU pooling kernels are 5-8x slower on these
shapes (one short row per position), whichever layout they get, and
autograd through ``unfold`` would scatter. On a GPU (not measured) the
pooling layout of ``torch.nn.functional.local_response_norm`` itself,
``(outer, 1, channels, inner)`` with a ``(size, 1)`` window.
"""

import math

import torch
import torch.nn.functional as F
from keras import ops

from keras_norms.native.torch.devices import on_gpu


def _window_sum(grid, size, before, after):
    """Sums of ``size`` consecutive values along axis 1, ``before`` zeros
    padded in front and ``after`` behind."""
    padded = F.pad(grid, (0, 0, before, after))
    return padded.unfold(1, size, 1).sum(-1)


class _ChannelWindowSum(torch.autograd.Function):
    # Value j enters the windows of outputs j - after .. j + before, so the
    # gradient is the window sum of the upstream with the padding swapped.

    @staticmethod
    def forward(ctx, grid, size, before, after):
        ctx.window = size, before, after
        return _window_sum(grid, size, before, after)

    @staticmethod
    def backward(ctx, upstream):
        size, before, after = ctx.window
        return _window_sum(upstream, size, after, before), None, None, None


def channel_window_mean(squares, axis, size):
    shape = tuple(squares.shape)
    channels = shape[axis]
    before, after = size // 2, (size - 1) // 2
    grid = squares.reshape(-1, channels, math.prod(shape[axis + 1 :]))
    if not on_gpu(squares):
        sums = _ChannelWindowSum.apply(grid, size, before, after)
        return (sums / size).reshape(shape)
    grid = F.pad(grid.unsqueeze(1), (0, 0, before, after))
    mean = ops.average_pool(
        grid, (size, 1), strides=1, data_format="channels_first"
    )
    return mean.reshape(shape)
