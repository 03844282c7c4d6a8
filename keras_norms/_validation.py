"""Argument checks shared by the layers: early, clear errors.

Each message names the argument and ends with the received value, so a user
sees at construction (or build) time what to fix.
"""

import numbers


def check_positive_float(name, value):
    """``value`` must be a real number > 0; returns it as a float."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not value > 0
    ):
        raise ValueError(
            f"Argument `{name}` must be a positive number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_momentum(value, name="momentum"):
    """Moving-average momentum (weight of the old value) in [0, 1)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 <= value < 1
    ):
        raise ValueError(
            f"Argument `{name}` must be a number in [0, 1) (the weight of "
            f"the old value in the moving average). Received: {name}={value!r}"
        )
    return float(value)


def check_axis_type(axis, allow_sequence=False):
    """``axis`` must be an int (or, if allowed, a non-empty list of ints)."""

    def is_int(value):
        return isinstance(value, numbers.Integral) and not isinstance(
            value, bool
        )

    if is_int(axis):
        return int(axis)
    if (
        allow_sequence
        and isinstance(axis, (list, tuple))
        and axis
        and all(is_int(a) for a in axis)
    ):
        return [int(a) for a in axis]
    expected = (
        "an int or a non-empty list of ints" if allow_sequence else "an int"
    )
    raise ValueError(
        f"Argument `axis` must be {expected}. Received: axis={axis!r}"
    )


def resolve_axes(axis, input_shape, layer_name):
    """Non-negative axes of ``axis`` for ``input_shape``; checked at build.

    Raises if an axis is out of range for the input rank, is the batch axis, is
    repeated, or has an undefined size.
    """
    ndim = len(input_shape)
    axes = axis if isinstance(axis, list) else [axis]
    resolved = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"Argument `axis` is out of range for the input of layer "
                f"'{layer_name}', which has rank {ndim} (shape "
                f"{tuple(input_shape)}). Received: axis={axis}"
            )
        a = a % ndim
        if a == 0:
            raise ValueError(
                f"Argument `axis` must not be the batch axis 0 of layer "
                f"'{layer_name}' (input shape {tuple(input_shape)}). "
                f"Received: axis={axis}"
            )
        if input_shape[a] is None:
            raise ValueError(
                f"Layer '{layer_name}' needs the size of axis {a} to be "
                f"defined, but the input shape is {tuple(input_shape)}. "
                f"Received: axis={axis}"
            )
        resolved.append(a)
    if len(set(resolved)) != len(resolved):
        raise ValueError(
            f"Argument `axis` must not repeat an axis. Received: axis={axis}"
        )
    return sorted(resolved)


def check_min_rank(input_shape, min_rank, layer_name):
    """The input must have at least ``min_rank`` dimensions (batch included)."""
    if len(input_shape) < min_rank:
        raise ValueError(
            f"Layer '{layer_name}' expects inputs of rank >= {min_rank} "
            f"(batch, ..., features). Received: input_shape="
            f"{tuple(input_shape)}"
        )


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_non_negative_float(name, value):
    """``value`` must be a finite real number >= 0; returns it as a float."""
    if not _is_real(value) or not 0 <= value < float("inf"):
        raise ValueError(
            f"Argument `{name}` must be a non-negative number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_finite_float(name, value):
    """``value`` must be a finite real number; returns it as a float."""
    if not _is_real(value) or not abs(value) < float("inf"):
        raise ValueError(
            f"Argument `{name}` must be a finite number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_choice(name, value, choices):
    """``value`` must be one of ``choices`` (strings); returns it."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(
            f"Argument `{name}` must be one of {allowed}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_int_list(name, value):
    """``value`` must be an int or a non-empty list/tuple of ints.

    Returns a list of ints (an int ``i`` becomes ``[i]``).
    """
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool)
        for v in values
    ):
        raise ValueError(
            f"Argument `{name}` must be an int or a non-empty list of ints. "
            f"Received: {name}={value!r}"
        )
    return [int(v) for v in values]


def _check_integer(name, value, minimum, description):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"Argument `{name}` must be {description}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_positive_int(name, value):
    """``value`` must be an int > 0 (bools are rejected); returns it."""
    return _check_integer(name, value, 1, "a positive integer")


def check_non_negative_int(name, value):
    """``value`` must be an int >= 0 (bools are rejected); returns it."""
    return _check_integer(name, value, 0, "a non-negative integer")


def check_positive_int_or_none(name, value):
    """``None`` or an int >= 1."""
    if value is None:
        return None
    return _check_integer(name, value, 1, "None or a positive integer")


def check_rate(name, value):
    """A dropout-like fraction in [0, 1)."""
    if not _is_real(value) or not 0 <= value < 1:
        raise ValueError(
            f"Argument `{name}` must be a number in [0, 1). "
            f"Received: {name}={value!r}"
        )
    return float(value)
