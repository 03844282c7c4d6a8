"""Normalization layers for Keras 3, on every backend."""

from keras_norms.layers._batch_normalization import (
    BatchNormalization as BatchNormalization,
)
from keras_norms.layers._group_normalization import (
    GroupNormalization as GroupNormalization,
)
from keras_norms.layers._layer_normalization import (
    LayerNormalization as LayerNormalization,
)
