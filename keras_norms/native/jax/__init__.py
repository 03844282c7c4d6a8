"""JAX overrides: the custom-gradient mechanism (no fused kernels) and, on
CPU, sums over the leading axes as a matrix product."""

from keras_norms.native.jax.gradients import custom_gradient as custom_gradient
from keras_norms.native.jax.reductions import (
    sum_adjacent_axes as sum_adjacent_axes,
)
