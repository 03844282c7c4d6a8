"""Variables read where the caller reads them."""

import tensorflow as tf


def tensor_or_none(value):
    """``value`` as a tensor; a variable is read here.

    `keras.ops.convert_to_tensor` hands a TensorFlow variable back as it
    is, to be read wherever it is used: inside a recurrent layer's time
    loop that is a read at every step, and the loop stacks each read value
    for the backward pass. (A Keras variable converts through its
    ``value``, cast to the compute dtype under mixed precision.)
    """
    return None if value is None else tf.convert_to_tensor(value)
