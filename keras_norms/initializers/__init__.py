"""Xavier/Glorot and He/Kaiming initializers, as in the papers."""

from keras_norms.initializers._variance_scaling import HeNormal as HeNormal
from keras_norms.initializers._variance_scaling import HeUniform as HeUniform
from keras_norms.initializers._variance_scaling import (
    XavierNormal as XavierNormal,
)
from keras_norms.initializers._variance_scaling import (
    XavierUniform as XavierUniform,
)
from keras_norms.initializers._variance_scaling import (
    calculate_gain as calculate_gain,
)
from keras_norms.initializers._variance_scaling import (
    compute_fans as compute_fans,
)

__all__ = [
    "XavierUniform",
    "XavierNormal",
    "HeNormal",
    "HeUniform",
    "calculate_gain",
    "compute_fans",
]
