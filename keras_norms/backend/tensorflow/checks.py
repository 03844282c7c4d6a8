"""Checks that a TensorFlow graph can only make at run time.

In a `tf.function` traced by `fit` the batch size is unknown (``None``), so
a layer cannot check it in Python; without this check a wrong size shows up
as a reshape error deep inside the graph.
"""

import tensorflow as tf


def check_batch_multiple(x, multiple, message):
    """``x``, after asserting that its batch size is a multiple of
    ``multiple`` (``InvalidArgumentError`` with ``message`` otherwise)."""
    batch = tf.shape(x)[0]
    with tf.control_dependencies(
        [tf.debugging.assert_equal(batch % multiple, 0, message=message)]
    ):
        return tf.identity(x)
