"""Training-mode batch normalization on TensorFlow's fused kernel.

``FusedBatchNormV3`` computes the statistics, the output and (in its
gradient) the closed-form backward in a few passes, on CPU, GPU and under
XLA. Like torch's kernels it loses digits on data whose mean is large next
to its spread, so it sees ``x - shift`` with ``shift`` one value of each
channel (see ``native/torch/normalization.py``): exact for the output and
the gradient, one elementwise pass. It returns the *unbiased* batch
variance; the biased one is recovered from the count.

Applies to float32 inputs, and to the float16 and bfloat16 inputs of the
mixed-precision policies (normalized in float32), with the channels last
(any rank: the other axes are flattened, a free reshape) or, on a GPU,
first in a rank-4 input (NCHW).
"""

import math

import tensorflow as tf

from keras_norms.native.tensorflow.devices import on_gpu

# On CPU, below this many values (known when traced) the fused kernel's
# fixed cost exceeds the closed-form `standardize`'s: 0.78 vs 0.42 ms for
# 64 x 256 values, 1.6 vs 2.1 ms for 256 x 1024 (tf.function, forward and
# backward; benchmarks/bench_layers.py). On a GPU (not measured) the fused
# kernel, cuDNN's, runs at every size: one kernel launch against the
# closed form's dozen.
_SMALLEST_FUSED_ON_CPU = 2**17


def batch_normalization_training(
    x, channel_axes, offset, scale, epsilon, mask=None, all_gather=None
):
    if mask is not None or all_gather is not None:
        return NotImplemented
    ndim = x.shape.rank
    if x.dtype not in (tf.float32, tf.float16, tf.bfloat16):
        return NotImplemented
    statistics_shape = [x.shape[a] for a in channel_axes]
    if None in statistics_shape:
        return NotImplemented
    channels = 1
    for size in statistics_shape:
        channels *= size
    if channel_axes == tuple(range(ndim - len(channel_axes), ndim)):
        # Channels last; several trailing axes (per-step statistics) are
        # one flat channel axis.
        data_format = "NHWC"
    elif channel_axes == (1,) and ndim == 4:
        if not on_gpu(x):
            # TensorFlow's CPU kernel transposes NCHW to NHWC and back; the
            # closed form is 2-2.6x faster there (64 x 128 x 28 x 28: 51
            # vs 124 ms per training step; Keras core 110 ms).
            return NotImplemented
        data_format = "NCHW"
    else:
        return NotImplemented
    # Sizes known when traced save a dozen small ops per call, which is
    # what a small batch-norm call costs on TensorFlow.
    count = x.shape.num_elements()
    count = None if count is None else count // channels
    if count is not None and count < 2:
        return NotImplemented  # the reference's zero variance
    if (
        count is not None
        and count * channels < _SMALLEST_FUSED_ON_CPU
        and not on_gpu(x)
    ):
        return NotImplemented  # the reference's closed form is faster
    # (Ops built only now: one that declines leaves none in the graph,
    # which inside a time loop would be traced into every step.)
    fused_input = x
    if x.dtype != tf.float32:
        # Shifted in float32: x - shift rounded to a half dtype would lose
        # the statistics' float32 precision (Keras core's batch
        # normalization also computes on a float32 copy).
        fused_input = tf.cast(x, tf.float32)
    if data_format == "NHWC":
        fused_input = tf.reshape(fused_input, (-1, 1, 1, channels))
        first = fused_input[:1]
    else:
        first = fused_input[:1, :, :1, :1]
    if count is None:
        # A sum over at most one value: the first one, or 0 for an empty
        # batch (a replica may hold no sample).
        first = tf.reduce_sum(first, axis=0, keepdims=True)
    shift = tf.stop_gradient(first)
    outputs, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
        x=fused_input - shift,
        scale=_channel_vector(scale, statistics_shape, 1.0),
        offset=_channel_vector(offset, statistics_shape, 0.0),
        mean=tf.zeros((0,), tf.float32),
        variance=tf.zeros((0,), tf.float32),
        epsilon=epsilon,
        data_format=data_format,
        is_training=True,
    )
    mean = mean + tf.reshape(shift, (-1,))
    if count is None:
        count = tf.cast(tf.size(x) // channels, tf.float32)
        variance = tf.where(count > 1.0, unbiased * (count - 1.0) / count, 0.0)
        # Statistics of an empty batch are 0, as in the reference.
        mean = tf.where(count > 0.0, mean, 0.0)
    else:
        variance = unbiased * ((count - 1) / count)
        count = tf.constant(float(count))
    if len(statistics_shape) > 1:
        mean = tf.reshape(mean, statistics_shape)
        variance = tf.reshape(variance, statistics_shape)
    if data_format == "NHWC":
        outputs = tf.reshape(outputs, tf.shape(x))
    return tf.cast(outputs, x.dtype), mean, variance, count


def _channel_vector(parameter, statistics_shape, default):
    """One value per (flat) channel; a parameter shared along some of the
    channel axes is broadcast along them."""
    if parameter is None:
        return tf.fill((math.prod(statistics_shape),), default)
    if parameter.shape.as_list() != list(statistics_shape):
        parameter = tf.broadcast_to(parameter, statistics_shape)
    if parameter.shape.rank != 1:
        parameter = tf.reshape(parameter, (-1,))
    return tf.cast(parameter, tf.float32)
