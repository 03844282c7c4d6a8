"""Batch renormalization (Ioffe, 2017), with Keras's formulas and clipping."""

from keras import ops

from keras_norms.ops._normalization import broadcast_parameter


def renormalize(
    normalized,
    mean,
    variance,
    renorm_mean,
    renorm_stddev,
    axis,
    offset=None,
    scale=None,
    epsilon=1e-3,
    clipping=None,
):
    """``x_hat * r + d``, then the affine transform.

    ``normalized`` is the batch normalized with its own statistics
    ``mean`` / ``variance`` (per channel, ``axis``); the corrections
    ``r = sigma_B / sigma_renorm`` and ``d = (mu_B - mu_renorm) /
    sigma_renorm`` are clipped by ``clipping`` (keys ``rmin``, ``rmax``,
    ``dmax``) and held constant for the gradient. ``sigma_renorm`` is
    floored at ``sqrt(epsilon)``: no division by ~0 early in training.
    """
    floor = epsilon**0.5
    renorm_stddev = ops.convert_to_tensor(renorm_stddev)
    renorm_stddev = ops.where(renorm_stddev > floor, renorm_stddev, floor)
    r = ops.sqrt(variance + epsilon) / renorm_stddev
    d = (mean - renorm_mean) / renorm_stddev
    clipping = clipping or {}
    if clipping.get("rmin") is not None:
        r = ops.where(r > clipping["rmin"], r, clipping["rmin"])
    if clipping.get("rmax") is not None:
        r = ops.where(r < clipping["rmax"], r, clipping["rmax"])
    if clipping.get("dmax") is not None:
        d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
    r, d = ops.stop_gradient(r), ops.stop_gradient(d)
    if scale is not None:
        r, d = r * scale, d * scale
    if offset is not None:
        d = d + offset
    ndim = len(normalized.shape)
    return ops.cast(normalized, r.dtype) * broadcast_parameter(
        r, ndim, axis
    ) + broadcast_parameter(d, ndim, axis)
