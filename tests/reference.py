"""NumPy float64 oracle for the tests. It never imports keras_norms.

Everything here is written straight from the formulas in the papers (see
docs/design.md), as plainly as possible, so that it is easy to check by eye.
"""

import numpy as np


def _axes(axes, ndim):
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted(a % ndim for a in axes))


def moments(x, axes, mask=None):
    """Mean, biased variance and count over ``axes`` (keepdims)."""
    x = np.asarray(x, np.float64)
    axes = _axes(axes, x.ndim)
    if mask is None:
        weights = np.ones_like(x)
    else:
        weights = np.broadcast_to(np.asarray(mask, np.float64), x.shape)
    count = weights.sum(axis=axes, keepdims=True)
    safe = np.maximum(count, 1.0)
    mean = (weights * x).sum(axis=axes, keepdims=True) / safe
    variance = (weights * (x - mean) ** 2).sum(axis=axes, keepdims=True) / safe
    return mean, variance, count


def _channel_shape(ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def batch_norm_train(
    x, axis=-1, gamma=None, beta=None, epsilon=1e-3, mask=None
):
    """Training-mode BN; returns (y, mean, variance, count), statistics of
    the shape of ``x`` at ``axis`` (an int, or several channel axes: one
    statistic per position along them, e.g. per time step and feature)."""
    x = np.asarray(x, np.float64)
    kept = _axes(axis, x.ndim)
    reduce = tuple(i for i in range(x.ndim) if i not in kept)
    mean, variance, count = moments(x, reduce, mask)
    y = (x - mean) / np.sqrt(variance + epsilon)
    shape = [x.shape[i] if i in kept else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    statistics_shape = [x.shape[i] for i in kept]
    count = np.broadcast_to(count, mean.shape).reshape(statistics_shape)
    return (
        y,
        mean.reshape(statistics_shape),
        variance.reshape(statistics_shape),
        count,
    )


def batch_norm_inference(
    x, mean, variance, axis=-1, gamma=None, beta=None, epsilon=1e-3
):
    """Inference BN in the paper's affine form y = a * x + b."""
    x = np.asarray(x, np.float64)
    gamma = np.ones_like(mean) if gamma is None else np.asarray(gamma)
    beta = np.zeros_like(mean) if beta is None else np.asarray(beta)
    a = gamma / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    b = beta - a * mean
    shape = _channel_shape(x.ndim, axis)
    return x * a.reshape(shape) + b.reshape(shape)


def moving_average(old, new, momentum):
    """Keras convention: momentum is the weight of the old value."""
    return momentum * np.asarray(old) + (1.0 - momentum) * np.asarray(new)


def batch_renorm_train(
    x, renorm_mean, renorm_stddev, gamma, beta, epsilon=1e-3, clipping=None
):
    """Batch renormalization (Ioffe, 2017), channels last, Keras's form:
    ``r = sigma_B / max(sigma_renorm, sqrt(eps))``,
    ``d = (mu_B - mu_renorm) / max(sigma_renorm, sqrt(eps))``, clipped;
    ``y = gamma * (x_hat * r + d) + beta``. Returns (y, mean, variance)."""
    clipping = clipping or {}
    x_hat, mean, variance, _ = batch_norm_train(x, epsilon=epsilon)
    sigma = np.maximum(np.asarray(renorm_stddev, np.float64), np.sqrt(epsilon))
    r = np.sqrt(variance + epsilon) / sigma
    d = (mean - renorm_mean) / sigma
    r = np.clip(r, clipping.get("rmin", -np.inf), clipping.get("rmax", np.inf))
    d = np.clip(d, -clipping.get("dmax", np.inf), clipping.get("dmax", np.inf))
    return gamma * (x_hat * r + d) + beta, mean, variance


def layer_norm(x, axes=-1, gamma=None, beta=None, epsilon=1e-3):
    x = np.asarray(x, np.float64)
    axes = _axes(axes, x.ndim)
    mean, variance, _ = moments(x, axes)
    y = (x - mean) / np.sqrt(variance + epsilon)
    param_shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    if gamma is not None:
        y = y * np.reshape(gamma, param_shape)
    if beta is not None:
        y = y + np.reshape(beta, param_shape)
    return y


def group_norm(x, groups, axis=-1, gamma=None, beta=None, epsilon=1e-3):
    """Loop over samples and groups: the plainest statement of GN."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    per_group = channels // groups
    y = np.empty_like(x)
    moved = np.moveaxis(x, axis, -1)
    out = np.moveaxis(y, axis, -1)
    for n in range(x.shape[0]):
        for g in range(groups):
            block = moved[n, ..., g * per_group : (g + 1) * per_group]
            out[n, ..., g * per_group : (g + 1) * per_group] = (
                block - block.mean()
            ) / np.sqrt(block.var() + epsilon)
    shape = _channel_shape(x.ndim, axis)
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    return y


def batch_norm_backward(x, dy, gamma, epsilon=1e-3):
    """Analytic BN gradients of Ioffe & Szegedy (2015), Section 3.

    ``x`` and ``dy`` have shape (m, channels). Returns (dx, dgamma, dbeta).
    """
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    m = x.shape[0]
    mu = x.mean(axis=0)
    s2 = ((x - mu) ** 2).mean(axis=0)
    x_hat = (x - mu) / np.sqrt(s2 + epsilon)
    dx_hat = dy * gamma
    ds2 = np.sum(dx_hat * (x - mu) * -0.5 * (s2 + epsilon) ** -1.5, axis=0)
    dmu = np.sum(dx_hat * -1.0 / np.sqrt(s2 + epsilon), axis=0)
    dx = dx_hat / np.sqrt(s2 + epsilon) + ds2 * 2.0 * (x - mu) / m + dmu / m
    return dx, np.sum(dy * x_hat, axis=0), np.sum(dy, axis=0)


def numerical_gradient(f, x, step=1e-6):
    """Central finite differences of a scalar function ``f`` at ``x``."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    grad_flat = grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + step
        upper = f(x)
        flat[i] = saved - step
        lower = f(x)
        flat[i] = saved
        grad_flat[i] = (upper - lower) / (2 * step)
    return grad


# ---------------------------------------------------------------------------
# Local response normalization, PReLU and Xavier/He initialization
# (Krizhevsky et al. 2012; Caffe's LRN layer; He et al. 2015; Glorot &
# Bengio 2010). Plain loops over the windows, straight from the formulas.
# ---------------------------------------------------------------------------


def lrn_across_channels(x, size, alpha, beta, k, axis=-1):
    """b_i = a_i / (k + alpha/size * sum_j a_j^2)^beta, j from i - size//2
    to i + (size-1)//2.

    Channels outside [0, C) count as zero (PyTorch's window, also for even
    sizes: size//2 channels before i, (size-1)//2 after).
    """
    x = np.asarray(x, np.float64)
    moved = np.moveaxis(x, axis, -1)
    channels = moved.shape[-1]
    out = np.empty_like(moved)
    for i in range(channels):
        lo = max(0, i - size // 2)
        hi = min(channels - 1, i + (size - 1) // 2)
        total = np.zeros(moved.shape[:-1])
        for j in range(lo, hi + 1):
            total += moved[..., j] ** 2
        out[..., i] = moved[..., i] / (k + alpha / size * total) ** beta
    return np.moveaxis(out, -1, axis)


def lrn_alexnet_paper(x, k=2.0, n=5, alpha=1e-4, beta=0.75, axis=-1):
    """Section 3.3 of Krizhevsky et al. 2012, with N channels:

    b_i = a_i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2)^beta
    (alpha NOT divided by n; n/2 rounds down).
    """
    x = np.asarray(x, np.float64)
    moved = np.moveaxis(x, axis, -1)
    channels = moved.shape[-1]
    out = np.empty_like(moved)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        window = moved[..., lo : hi + 1]
        total = np.sum(window**2, axis=-1)
        out[..., i] = moved[..., i] / (k + alpha * total) ** beta
    return np.moveaxis(out, -1, axis)


def lrn_tensorflow(x, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
    """tf.nn.local_response_normalization's documented formula (last axis):

    sqr_sum[..., d] = sum(x[..., d - r : d + r + 1] ** 2);
    out = x / (bias + alpha * sqr_sum) ** beta.
    """
    x = np.asarray(x, np.float64)
    channels = x.shape[-1]
    out = np.empty_like(x)
    for d in range(channels):
        window = x[..., max(0, d - depth_radius) : d + depth_radius + 1]
        sqr_sum = np.sum(window**2, axis=-1)
        out[..., d] = x[..., d] / (bias + alpha * sqr_sum) ** beta
    return out


def lrn_within_channel(x, size, alpha, beta, k=1.0, axis=-1):
    """Caffe WITHIN_CHANNEL, generalised to 1-3 spatial axes (d of them):

    b = a / (k + alpha / size**d * sum over the size^d window of a^2)^beta,
    the window centred on the position, zero padded (Caffe: k = 1, d = 2).
    """
    x = np.asarray(x, np.float64)
    moved = np.moveaxis(x, axis, -1)  # (batch, *spatial, channels)
    spatial = moved.shape[1:-1]
    half = (size - 1) // 2
    out = np.empty_like(moved)
    for position in np.ndindex(*spatial):
        total = np.zeros((moved.shape[0], moved.shape[-1]))
        for offset in np.ndindex(*([size] * len(spatial))):
            neighbour = tuple(
                p + o - half for p, o in zip(position, offset, strict=True)
            )
            inside = all(
                0 <= q < n for q, n in zip(neighbour, spatial, strict=True)
            )
            if inside:
                total += moved[(slice(None), *neighbour)] ** 2
        window_size = size ** len(spatial)
        value = moved[(slice(None), *position)]
        out[(slice(None), *position)] = (
            value / (k + alpha / window_size * total) ** beta
        )
    return np.moveaxis(out, -1, axis)


def prelu(x, alpha):
    """f(x) = max(0, x) + alpha * min(0, x); alpha broadcasts against x."""
    x = np.asarray(x, np.float64)
    return np.maximum(0.0, x) + np.asarray(alpha, np.float64) * np.minimum(
        0.0, x
    )


def prelu_gradients(x, alpha, upstream):
    """d/dx and d/dalpha of sum(upstream * prelu(x, alpha)), per element.

    df/dx = 1 for x > 0, alpha for x < 0; df/dalpha = min(0, x). The alpha
    gradient is returned per element (sum it over the shared axes).
    """
    x = np.asarray(x, np.float64)
    dx = upstream * np.where(x > 0, 1.0, alpha)
    dalpha = upstream * np.minimum(0.0, x)
    return dx, dalpha


def kernel_fans(shape):
    """(fan_in, fan_out) of a Keras kernel: (in, out) for Dense,
    (*kernel_size, in_channels, out_channels) for ConvND: the receptive
    field k^d times the input (output) channels, n_l = k^2 c in He et al.
    """
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return receptive_field * shape[-2], receptive_field * shape[-1]


def gain(nonlinearity, param=None):
    """Recommended gains: sqrt(2) for ReLU, sqrt(2/(1+a^2)) for leaky ReLU /
    PReLU with slope a, 5/3 for tanh, 3/4 for SELU, 1 otherwise."""
    linear = ["linear", "sigmoid"] + [
        f"conv{t}{d}d" for t in ("", "_transpose") for d in (1, 2, 3)
    ]
    table = {name: 1.0 for name in linear}
    table.update({"tanh": 5.0 / 3.0, "relu": np.sqrt(2.0), "selu": 0.75})
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        return np.sqrt(2.0 / (1.0 + a**2))
    return table[nonlinearity]


def he_variance(shape, mode="fan_in", negative_slope=0.0):
    """He et al. 2015, eq. (10)/(14): Var[w] = 2 / ((1 + a^2) n_l)."""
    fan_in, fan_out = kernel_fans(shape)
    n = fan_in if mode == "fan_in" else fan_out
    return 2.0 / ((1.0 + negative_slope**2) * n)


def xavier_variance(shape, gain=1.0):
    """Glorot & Bengio 2010, eq. (12)-(16): Var[w] = gain^2 2/(n_in + n_out)."""
    fan_in, fan_out = kernel_fans(shape)
    return gain**2 * 2.0 / (fan_in + fan_out)


def uniform_bound(variance):
    """U[-b, b] has variance b^2 / 3, so b = sqrt(3 * variance)."""
    return np.sqrt(3.0 * variance)


def population_statistics(means, variances, counts):
    """Ioffe & Szegedy, Algorithm 2 (step 10), from per-batch statistics.

    ``means``/``variances`` (biased)/``counts``: one row per batch. With
    equal batches of m values: E[x] = mean of the batch means and
    Var[x] = m / (m - 1) * mean of the batch variances. Unequal batches
    count by their size (the unbiased variance of each batch, weighted by
    its count; batches of one value carry no variance).
    """
    means, variances, counts = (
        np.asarray(v, np.float64) for v in (means, variances, counts)
    )
    mean = (counts * means).sum(0) / counts.sum(0)
    weights = np.where(counts > 1, counts, 0.0)
    unbiased = variances * counts / np.where(counts > 1, counts - 1, 1)
    return mean, (weights * unbiased).sum(0) / weights.sum(0)


def ghost_batch_norm_train(
    x, virtual_batch_size, gamma=None, beta=None, epsilon=1e-3, mask=None
):
    """Ghost batch normalization (Hoffer et al. 2017): every group of
    ``virtual_batch_size`` consecutive samples normalized on its own
    (channels last). Returns (y, means, variances, counts), one row of
    statistics per ghost batch."""
    x = np.asarray(x, np.float64)
    chunks = range(0, x.shape[0], virtual_batch_size)
    results = [
        batch_norm_train(
            x[i : i + virtual_batch_size],
            gamma=gamma,
            beta=beta,
            epsilon=epsilon,
            mask=None if mask is None else mask[i : i + virtual_batch_size],
        )
        for i in chunks
    ]
    y = np.concatenate([r[0] for r in results])
    means, variances, counts = (
        np.stack([r[i] for r in results]) for i in (1, 2, 3)
    )
    return y, means, variances, counts


def layer_norm_variance_scaling(x, axes=-1, gamma=None, epsilon=1e-3):
    """Keras's deprecated ``LayerNormalization(rms_scaling=True)``:
    ``x / sqrt(var(x) + epsilon) * gamma``, the mean not subtracted."""
    x = np.asarray(x, np.float64)
    axes = _axes(axes, x.ndim)
    _, variance, _ = moments(x, axes)
    y = x / np.sqrt(variance + epsilon)
    if gamma is not None:
        shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
        y = y * np.reshape(gamma, shape)
    return y


def instance_norm(x, axis=-1, gamma=None, beta=None, epsilon=1e-3, mask=None):
    """Instance normalization, one (sample, channel) at a time: the values
    of that channel in that sample where ``mask`` (broadcast to ``x``) is
    true give the mean and variance; every value is normalized with them."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    keep = np.ones(x.shape, bool) if mask is None else mask
    keep = np.broadcast_to(np.asarray(keep, bool), x.shape)
    moved, kept = np.moveaxis(x, axis, 1), np.moveaxis(keep, axis, 1)
    y = np.empty_like(moved)
    for n in range(moved.shape[0]):
        for c in range(moved.shape[1]):
            values = moved[n, c][kept[n, c]]
            mean = values.mean() if values.size else 0.0
            variance = values.var() if values.size else 0.0
            y[n, c] = (moved[n, c] - mean) / np.sqrt(variance + epsilon)
            if gamma is not None:
                y[n, c] *= gamma[c]
            if beta is not None:
                y[n, c] += beta[c]
    return np.moveaxis(y, 1, axis)
