"""Spectral normalization of a kernel by power iteration (Miyato et al.)."""

from typing import NamedTuple

from keras import ops

from keras_norms._validation import check_non_negative_int
from keras_norms.ops._moments import statistics_dtype


class SpectralNormalizationResult(NamedTuple):
    """What `spectral_normalization` returns."""

    kernel: object  # W / sigma, of the shape and dtype of the kernel
    vector_u: object  # the refined estimate, shape (1, units)
    sigma: object  # the estimate of the largest singular value, shape ()


def _unit(x):
    """``x / ||x||`` over all its values; a zero ``x`` stays zero.

    The norm is exact however small it is (Keras floors it at 1e-7, which
    leaves a vector of smaller norm shorter than 1); only an exact zero,
    where the direction is undefined, is left as it is.
    """
    squared_norm = ops.sum(ops.square(x))
    return x * ops.rsqrt(ops.where(squared_norm > 0, squared_norm, 1.0))


# Products of the (rows, units) matrix with vectors, as sums of elementwise
# products: keras.ops.matmul computes float64 in float32 on torch.
def _times(matrix, u):
    """``W u`` for ``u`` of shape (units,)."""
    return ops.sum(matrix * u, axis=1)


def _transpose_times(matrix, v):
    """``W^T v`` for ``v`` of shape (rows,)."""
    return ops.sum(matrix * ops.expand_dims(v, 1), axis=0)


def spectral_normalization(kernel, vector_u, power_iterations=1):
    r"""The kernel divided by an estimate of its largest singular value.

    The kernel is viewed as a matrix $W$ of shape
    ``(-1, kernel.shape[-1])`` (Keras's layout: for ``Dense`` the kernel
    itself, for ``Conv2D`` ``(kh * kw * in, out)``) and ``vector_u``, of
    shape ``(1, kernel.shape[-1])``, estimates its first right singular
    vector. Each of the ``power_iterations`` steps refines it:

    $$v \leftarrow \frac{W u}{\lVert W u \rVert}, \qquad
    u \leftarrow \frac{W^\top v}{\lVert W^\top v \rVert},$$

    and then $\sigma = v^\top W u$ and the result is $W / \sigma$. With
    ``power_iterations=0`` the given $u$ is used as it is (normalized):
    $v = W u / \lVert W u \rVert$ and $\sigma = \lVert W u \rVert /
    \lVert u \rVert$, what a layer computes at inference.

    $u$ and $v$ are under ``stop_gradient``: the gradient with respect to
    the kernel flows through $\sigma = v^\top W u$ with them held
    constant (Miyato et al.), so $\partial \sigma / \partial W = v u^\top$.

    $\sigma$ never exceeds the largest singular value, and reaches it as
    $u$ converges (at a rate set by the ratio of the two largest singular
    values). A zero kernel is returned as it is (zeros, no NaN) with
    ``vector_u`` unchanged, and so is a kernel whose $W u$ is exactly zero.

    Args:
        kernel (tensor): A kernel tensor of rank >= 2 (or a matrix).
        vector_u (tensor): The current estimate of $u$, shape
            ``(1, kernel.shape[-1])``; any nonzero scale.
        power_iterations (int): Non-negative int, the number of power-iteration
            steps.

    The result is a named tuple, `SpectralNormalizationResult`; only its
    ``kernel`` carries a gradient.

    Returns:
        kernel (tensor): The normalized kernel, of the shape and dtype of
            ``kernel``.
        vector_u (tensor): The refined $u$, of unit norm and the dtype of
            ``vector_u`` (the given ``vector_u`` unchanged with
            ``power_iterations=0`` or when the kernel maps it to zero).
        sigma (tensor): $\sigma$, a scalar in at least float32.

    Reference:
        Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for
        Generative Adversarial Networks", ICLR 2018.

    Examples:
        >>> import keras, numpy as np, keras_norms
        >>> kernel = np.diag([3.0, 1.0]).astype("float32")
        >>> result = keras_norms.ops.spectral_normalization(
        ...     kernel, np.array([[1.0, 1.0]], "float32"), power_iterations=20)
        >>> round(float(keras.ops.convert_to_numpy(result.sigma)), 4)
        3.0
        >>> normalized = keras.ops.convert_to_numpy(result.kernel)
        >>> np.round(normalized.astype("float64"), 4).tolist()
        [[1.0, 0.0], [0.0, 0.3333]]
    """
    power_iterations = check_non_negative_int(
        "power_iterations", power_iterations
    )
    kernel = ops.convert_to_tensor(kernel)
    vector_u = ops.convert_to_tensor(vector_u)
    units = kernel.shape[-1]
    if len(kernel.shape) < 2 or tuple(vector_u.shape) != (1, units):
        raise ValueError(
            "Argument `vector_u` must have shape (1, kernel.shape[-1]) and "
            "`kernel` rank >= 2. Received: "
            f"vector_u.shape={tuple(vector_u.shape)}, "
            f"kernel.shape={tuple(kernel.shape)}"
        )
    dtype = statistics_dtype(kernel.dtype)
    matrix = ops.reshape(ops.cast(kernel, dtype), (-1, units))
    # The power iteration is not differentiated (the paper's choice).
    constant = ops.stop_gradient(matrix)
    u = _unit(ops.reshape(ops.cast(ops.stop_gradient(vector_u), dtype), (-1,)))
    for _ in range(power_iterations):
        v = _unit(_times(constant, u))
        u = _unit(_transpose_times(constant, v))
    if power_iterations == 0:
        v = _unit(_times(constant, u))
    sigma = ops.sum(v * _times(matrix, u))
    # sigma is 0 only where W u is exactly 0 (a zero kernel): dividing by
    # 1 then keeps the kernel finite and unchanged.
    normalized = matrix / ops.where(sigma > 0, sigma, 1.0)
    if power_iterations == 0:
        refined = vector_u
    else:
        # A zero u would stay zero in every later step: keep the given one.
        refined = ops.where(
            ops.any(ops.not_equal(u, 0)),
            ops.cast(ops.reshape(u, (1, units)), vector_u.dtype),
            vector_u,
        )
    return SpectralNormalizationResult(
        kernel=ops.cast(ops.reshape(normalized, kernel.shape), kernel.dtype),
        vector_u=ops.stop_gradient(refined),
        sigma=ops.stop_gradient(sigma),
    )
