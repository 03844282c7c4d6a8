"""Fast paths on the TensorFlow backend: TensorFlow's fused batch norm, and
the closed-form backward for the other normalizations."""

from keras_norms.backend.tensorflow.checks import (
    check_dimension as check_dimension,
)
from keras_norms.backend.tensorflow.loops import scan as scan
from keras_norms.backend.tensorflow.normalization import (
    batch_normalization_training as batch_normalization_training,
)
from keras_norms.backend.tensorflow.normalization import (
    standardize as standardize,
)
