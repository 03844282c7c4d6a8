"""JAX overrides: the custom-gradient mechanism (no fused kernels)."""

from keras_norms.native.jax.gradients import custom_gradient as custom_gradient
