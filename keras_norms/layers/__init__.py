"""Normalization layers for Keras 3, on every backend."""

from keras_norms.layers._batch_normalization import (
    BatchNormalization as BatchNormalization,
)
from keras_norms.layers._bn_lstm import BNLSTM as BNLSTM
from keras_norms.layers._bn_lstm import BNLSTMCell as BNLSTMCell
from keras_norms.layers._group_normalization import (
    GroupNormalization as GroupNormalization,
)
from keras_norms.layers._group_normalization import (
    InstanceNormalization as InstanceNormalization,
)
from keras_norms.layers._layer_norm_lstm import LayerNormLSTM as LayerNormLSTM
from keras_norms.layers._layer_norm_lstm import (
    LayerNormLSTMCell as LayerNormLSTMCell,
)
from keras_norms.layers._layer_normalization import (
    LayerNormalization as LayerNormalization,
)
from keras_norms.layers._local_response_normalization import (
    LocalResponseNormalization as LocalResponseNormalization,
)
from keras_norms.layers._prelu import PReLU as PReLU
from keras_norms.layers._rms_normalization import (
    RMSNormalization as RMSNormalization,
)
from keras_norms.layers._spectral_normalization import (
    SpectralNormalization as SpectralNormalization,
)
from keras_norms.layers._timestep_batch_normalization import (
    RecurrentBatchNormalization as RecurrentBatchNormalization,
)
from keras_norms.layers._timestep_batch_normalization import (
    TimestepBatchNormalization as TimestepBatchNormalization,
)
from keras_norms.layers._weight_normalization import (
    WeightNormalization as WeightNormalization,
)

__all__ = [
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "TimestepBatchNormalization",
    "RecurrentBatchNormalization",
    "BNLSTMCell",
    "BNLSTM",
    "LocalResponseNormalization",
    "PReLU",
    "WeightNormalization",
    "RMSNormalization",
    "LayerNormLSTMCell",
    "LayerNormLSTM",
    "SpectralNormalization",
]
