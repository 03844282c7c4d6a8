"""Fast paths on the TensorFlow backend: TensorFlow's fused batch norm."""

from keras_norms.backend.tensorflow.normalization import (
    batch_normalization_training as batch_normalization_training,
)
