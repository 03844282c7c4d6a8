"""The time loop of the recurrent layers."""

from keras import ops

from keras_norms.native import dispatch
from keras_norms.ops._normalization import tensor_or_none


@dispatch("scan", fast_path=False)
def scan(f, init, xs, length=None):
    """``(final carry, stacked per-step outputs)`` of ``f(carry, x)`` over
    the leading axis of ``xs``, with the contract of `jax.lax.scan`: the
    per-step outputs may have any structure. `keras.ops.scan` keeps it on
    JAX and torch; TensorFlow's override keeps it there too (Keras's
    TensorFlow scan wants outputs shaped like the carry) and bounds its
    loop so that XLA compiles the gradient."""
    return ops.scan(f, init, xs, length=length)


@dispatch("read_before_loop")
def read_before_loop(value):
    """``value`` (a variable, a tensor or None) as a tensor read here,
    before a time loop whose steps all use it (a weight). TensorFlow's
    override reads a variable now: `keras.ops.convert_to_tensor` hands it
    back unread, to be read at every step inside the loop, each read
    stacked for the backward pass."""
    return tensor_or_none(value)
