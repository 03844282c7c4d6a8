"""Which device TensorFlow computes a tensor on, for the choices that
were measured on one kind of device only."""

import tensorflow as tf


def on_gpu(x):
    """Whether ``x`` is (or, traced, will be) computed on a GPU.

    An eager tensor names its device; a traced one usually does not, and
    its ops then go where TensorFlow places them by default: on a GPU when
    one is visible.
    """
    device = getattr(x, "device", "") or ""
    if device:
        return "GPU" in device.upper()
    return bool(tf.config.list_logical_devices("GPU"))
