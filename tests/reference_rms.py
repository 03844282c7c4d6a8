"""NumPy float64 oracle for RMS normalization (Zhang & Sennrich, 2019).

Like tests/reference.py it never imports keras_norms (nor keras). The
normalized axes are moved to the end and flattened, and each slice is
treated on its own in a loop, so the oracle shares none of the library's
axis or broadcasting logic.
"""

import numpy as np


def _slices(x, axes):
    """``x`` (float64) with ``axes`` moved last and flattened into one:
    ``(rows, n)``, plus the function that undoes it."""
    x = np.asarray(x, np.float64)
    axes = sorted(a % x.ndim for a in ([axes] if np.ndim(axes) == 0 else axes))
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + axes)
    moved_shape = moved.shape
    rows = moved.reshape(-1, int(np.prod([x.shape[a] for a in axes])))

    def restore(values):
        return np.transpose(
            values.reshape(moved_shape), np.argsort(kept + axes)
        )

    return rows, restore


def rms_norm(x, axes=-1, scale=None, epsilon=1e-6, unit_offset=False):
    """``x / sqrt(mean(x^2) + epsilon) * s`` over ``axes``, where ``s`` is
    ``scale`` (the shape of ``x`` at the sorted axes) or ``1 + scale``."""
    rows, restore = _slices(x, axes)
    out = np.empty_like(rows)
    if scale is None:
        multiplier = np.ones(rows.shape[1])
    else:
        multiplier = np.asarray(scale, np.float64).reshape(-1)
        if unit_offset:
            multiplier = 1.0 + multiplier
    for i, row in enumerate(rows):
        root_mean_square = np.sqrt(np.sum(row * row) / row.size + epsilon)
        out[i] = row / root_mean_square * multiplier
    return restore(out)


def rms_norm_backward(x, dy, axes=-1, scale=None, epsilon=1e-6):
    """Analytic gradients of ``sum(rms_norm(x) * dy)``: ``(dx, dscale)``.

    With ``r = sqrt(mean(x^2) + eps)`` and ``g = dy * s`` per slice of
    ``n`` values: ``dx = g / r - x * sum(g * x) / (n r^3)`` and
    ``dscale = sum over slices of dy * x / r``.
    """
    rows, restore = _slices(x, axes)
    upstream, _ = _slices(dy, axes)
    n = rows.shape[1]
    multiplier = (
        np.ones(n)
        if scale is None
        else np.asarray(scale, np.float64).reshape(-1)
    )
    dx = np.empty_like(rows)
    dscale = np.zeros(n)
    for i, (row, up) in enumerate(zip(rows, upstream, strict=True)):
        r = np.sqrt(np.sum(row * row) / n + epsilon)
        g = up * multiplier
        dx[i] = g / r - row * np.sum(g * row) / (n * r**3)
        dscale += up * row / r
    return restore(dx), dscale
