"""`cross_replica_all_gather` inside a `tf.distribute` replica context."""

import tensorflow as tf


def cross_replica_all_gather():
    if (
        not tf.distribute.has_strategy()
        or tf.distribute.in_cross_replica_context()
    ):
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None

    def all_gather(tensor):
        return context.all_gather(tensor[None], axis=0)

    return all_gather


def keras_synchronizes_batch_statistics():
    """keras.layers.BatchNormalization(synchronized=True) synchronizes
    here (under tf.distribute); on the other backends it does not."""
    return True
