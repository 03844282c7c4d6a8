"""keras-norms: normalization layers for Keras 3 on TensorFlow, JAX and torch.

Submodules:

- `keras_norms.layers`: the layers (drop-ins for Keras's, and more).
- `keras_norms.ops`: the pure functional core the layers share.
- `keras_norms.initializers`: Xavier/Glorot and He/Kaiming, as in the papers.
- `keras_norms.convert_normalization`: swap Keras's normalization layers in
  a model for ours, or back.
- `keras_norms.fold_batch_normalization`: merge inference-mode batch
  normalization into the preceding Dense/convolution layers.
- `keras_norms.recompute_batch_statistics`: population statistics as
  Ioffe & Szegedy's Algorithm 2 defines them.
- `keras_norms.callbacks`: `RecomputeBatchStatistics`, the same during
  `fit` (before validation, at the end of training).
- `keras_norms.version()`: the installed version.

Import it before loading a saved model that uses its layers: the import
registers them (as ``keras_norms>BatchNormalization``, ...) with Keras.
"""

from keras_norms import callbacks as callbacks
from keras_norms import initializers as initializers
from keras_norms import layers as layers
from keras_norms import ops as ops
from keras_norms._converting import (
    convert_normalization as convert_normalization,
)
from keras_norms._folding import (
    fold_batch_normalization as fold_batch_normalization,
)
from keras_norms._population import (
    recompute_batch_statistics as recompute_batch_statistics,
)
from keras_norms._version import __version__ as __version__
from keras_norms._version import version as version

__all__ = [
    "callbacks",
    "initializers",
    "layers",
    "ops",
    "convert_normalization",
    "fold_batch_normalization",
    "recompute_batch_statistics",
    "version",
]
