"""keras-norms: normalization layers for Keras 3 on TensorFlow, JAX and torch.

Submodules:

- `keras_norms.layers`: the layers (drop-ins for Keras's, and more).
- `keras_norms.ops`: the pure functional core the layers share.
"""

from keras_norms import layers as layers
from keras_norms import ops as ops

__version__ = "0.1.0"
