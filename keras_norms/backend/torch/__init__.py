"""Fast paths on the torch backend: torch's fused normalization kernels."""

from keras_norms.backend.torch.normalization import (
    batch_normalization_training as batch_normalization_training,
)
from keras_norms.backend.torch.normalization import (
    group_normalization as group_normalization,
)
from keras_norms.backend.torch.normalization import (
    layer_normalization as layer_normalization,
)
