"""The pure functional core of keras_norms: functions of tensors, no state.

Layers gather their weights and call into these functions; users can call
them directly, e.g. inside a custom layer or a JAX/torch training loop.
"""

from keras_norms.native import reference_only as reference_only
from keras_norms.ops._activations import prelu as prelu
from keras_norms.ops._folding import (
    fold_batch_normalization_weights as fold_batch_normalization_weights,
)
from keras_norms.ops._local_response import (
    local_response_norm as local_response_norm,
)
from keras_norms.ops._normalization import (
    batch_normalization as batch_normalization,
)
from keras_norms.ops._normalization import (
    batch_normalization_training as batch_normalization_training,
)
from keras_norms.ops._normalization import (
    broadcast_parameter as broadcast_parameter,
)
from keras_norms.ops._normalization import (
    group_normalization as group_normalization,
)
from keras_norms.ops._normalization import (
    layer_normalization as layer_normalization,
)
from keras_norms.ops._normalization import moments as moments
from keras_norms.ops._normalization import (
    moments_and_count as moments_and_count,
)
from keras_norms.ops._normalization import normalize as normalize
from keras_norms.ops._normalization import standardize as standardize
from keras_norms.ops._normalization import (
    unbiased_variance as unbiased_variance,
)
from keras_norms.ops._rms_normalization import (
    rms_normalization as rms_normalization,
)
from keras_norms.ops._spectral_normalization import (
    spectral_normalization as spectral_normalization,
)
from keras_norms.ops._timestep import moving_average as moving_average
from keras_norms.ops._timestep import step_statistics as step_statistics
from keras_norms.ops._timestep import (
    update_step_statistics as update_step_statistics,
)
from keras_norms.ops._weight_normalization import kernel_norm as kernel_norm
from keras_norms.ops._weight_normalization import (
    weight_normalization as weight_normalization,
)

__all__ = [
    "reference_only",
    "prelu",
    "fold_batch_normalization_weights",
    "local_response_norm",
    "batch_normalization",
    "batch_normalization_training",
    "broadcast_parameter",
    "group_normalization",
    "layer_normalization",
    "moments",
    "moments_and_count",
    "normalize",
    "standardize",
    "unbiased_variance",
    "moving_average",
    "step_statistics",
    "update_step_statistics",
    "kernel_norm",
    "weight_normalization",
    "rms_normalization",
    "spectral_normalization",
]
