"""Sums over the leading axes as a matrix product, on XLA's CPU backend.

XLA's CPU backend hands reductions to YNNPACK fusions, which are very slow
at summing the leading axes into many outputs: a ``(32, 65536)`` float32
array summed over axis 0 takes about 9 ms, against 0.1 ms for the same sum
as ``ones(32) @ x`` (and 0.35 ms with those fusions switched off). That
is the shape of per-time-step batch normalization's statistics (batch ×
time·features) and of its backward pass. Below that the reduction is fast
on its own (``(32, 16384)``: 0.16 ms, the product 0.11; ``(32, 4096)``:
0.05 and 0.08 ms), but inside per-step batch normalization's training
step the product is faster from about 4096 outputs: a step on (32, 64,
64), 4096 outputs, took 1.47x Keras core's batch normalization with the
reduction and 0.95x with the product (1.96x and 1.47x on (32, 256, 64);
interleaved in one process). Smaller sums keep the reduction; so do
other devices, where this was not measured.
"""

import math

import jax
import jax.numpy as jnp

# Outputs from which the sum runs as a matrix product (see above; the
# reduction itself falls off YNNPACK's fast path between 16384 and 32768
# outputs: 0.16 and 2.9 ms).
MIN_OUTPUTS = 4096


def sum_adjacent_axes(values, axes):
    shape = values.shape
    rest = shape[len(axes) :]
    if (
        jax.default_backend() != "cpu"
        or axes != tuple(range(len(axes)))
        or not rest
        or not all(isinstance(size, int) for size in shape)
        or not jnp.issubdtype(values.dtype, jnp.floating)
        or math.prod(rest) < MIN_OUTPUTS
    ):
        return NotImplemented
    rows = values.reshape(math.prod(shape[: len(axes)]), math.prod(rest))
    ones = jnp.ones((1, rows.shape[0]), values.dtype)
    # HIGHEST: a float32 product in float32, as the sum is, on any device.
    total = jnp.matmul(ones, rows, precision=jax.lax.Precision.HIGHEST)
    return total.reshape((1,) * len(axes) + rest)
