"""`channel_window_mean` in the layout TensorFlow's CPU pooling is fast on.

TensorFlow's CPU pooling is vectorized over the pooled tensor's channels:
with channels last there would be one, so the (outer, channels, width)
transpose is pooled instead (4x faster). Other layouts, and GPUs (whose
pooling this was not measured on): the reference.
"""

import tensorflow as tf
from keras import ops

from keras_norms.native.tensorflow.devices import on_gpu


def channel_window_mean(squares, axis, size):
    ndim = squares.shape.rank
    if axis != ndim - 1 or ndim < 3 or on_gpu(squares):
        return NotImplemented
    shape = ops.shape(squares)
    grid = tf.reshape(squares, (-1, shape[-2], shape[-1]))
    grid = tf.transpose(grid, (0, 2, 1))
    grid = tf.pad(grid, [(0, 0), (size // 2, (size - 1) // 2), (0, 0)])
    mean = ops.average_pool(grid, size, strides=1, data_format="channels_last")
    return tf.reshape(tf.transpose(mean, (0, 2, 1)), shape)
