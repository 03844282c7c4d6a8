"""NumPy float64 oracle for spectral normalization (Miyato et al. 2018).

Like tests/reference.py it never imports keras_norms (nor keras). It works
with column vectors and the matrix ``W`` of shape ``(rows, units)``: the
right vector ``u`` has ``units`` entries, the left vector ``v`` has
``rows``; norms come from ``np.linalg.norm``.
"""

import numpy as np


def kernel_matrix(kernel):
    """The kernel as the ``(rows, units)`` matrix the power iteration uses:
    every axis but the last flattened (row-major) into the rows."""
    kernel = np.asarray(kernel, np.float64)
    return kernel.reshape(-1, kernel.shape[-1])


def _direction(x):
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else np.zeros_like(x)


def power_iteration(matrix, u, steps):
    """``steps`` power-iteration steps from ``u``: returns ``(u, v)``.

    Each step: ``v = W u / |W u|``, then ``u = W^T v / |W^T v|``. With no
    step, ``v`` comes from the normalized ``u`` as given.
    """
    u = _direction(np.asarray(u, np.float64).reshape(-1))
    v = _direction(matrix @ u)
    for _ in range(steps):
        v = _direction(matrix @ u)
        u = _direction(matrix.T @ v)
    return u, v


def spectral_normalize(kernel, u, steps):
    """``(W / sigma, u, sigma)`` after ``steps`` steps from ``u``, with
    ``sigma = v^T W u``; the kernel keeps its shape, ``u`` is a vector."""
    matrix = kernel_matrix(kernel)
    u, v = power_iteration(matrix, u, steps)
    sigma = float(v @ matrix @ u)
    return np.asarray(kernel, np.float64) / sigma, u, sigma


def normalize_with_fixed_vectors(kernel, u, v):
    """``W / (v^T W u)`` for constant ``u`` and ``v``: the function whose
    derivative the layer's gradient is (the vectors get no gradient)."""
    kernel = np.asarray(kernel, np.float64)
    return kernel / float(v @ kernel_matrix(kernel) @ u)


def largest_singular_value(kernel):
    """The spectral norm of the kernel matrix, from NumPy's SVD."""
    return float(np.linalg.svd(kernel_matrix(kernel), compute_uv=False)[0])
