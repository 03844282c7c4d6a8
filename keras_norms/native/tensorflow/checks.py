"""Checks that a TensorFlow graph can only make at run time.

In a `tf.function` traced by `fit` the batch size (and a time axis declared
``None``) is unknown, so a layer cannot check it in Python; without these
checks a wrong size shows up as a reshape error deep inside the graph, or
not at all.
"""

import tensorflow as tf


def check_dimension(x, axis, predicate, message):
    """``x``, after asserting ``predicate(size of axis)`` at run time
    (``InvalidArgumentError`` with ``message`` otherwise)."""
    size = tf.shape(x)[axis]
    with tf.control_dependencies(
        [tf.debugging.Assert(predicate(size), [message])]
    ):
        return tf.identity(x)
