"""Argument checks shared by the layers: early, clear errors.

Each message names the argument and ends with the received value (its
``repr``), so a user sees at construction (or build) time what to fix.

Exception classes: a value of the right type but out of range raises
``ValueError``. A value of the wrong type raises `ArgumentTypeError`, which
is both a ``TypeError`` (what Keras raises for, e.g., ``axis={}`` or
``epsilon=None``) and a ``ValueError`` (what Keras raises for others, e.g.
GroupNormalization's ``groups="4"``, and what earlier keras-norms versions
raised), so an ``except`` clause written for either library
catches it.
"""

import math
import numbers
import sys

import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (see the module docstring)."""


def _message(name, description, value):
    return (
        f"Argument `{name}` must be {description}. Received: {name}={value!r}"
    )


def _reject(name, description, value):
    raise ValueError(_message(name, description, value))


def _reject_type(name, description, value):
    raise ArgumentTypeError(_message(name, description, value))


def _is_real(value):
    """A real number; bools are not numbers here (``epsilon=True`` is a
    mistake)."""
    return isinstance(value, numbers.Real) and not isinstance(
        value, (bool, np.bool_)
    )


def _as_float(name, description, value):
    """``value`` as a float; the wrong type is an `ArgumentTypeError`.

    An int too large for a float (``10**400``) becomes ``inf``, which the
    callers' range checks reject.
    """
    if not _is_real(value):
        _reject_type(name, description, value)
    try:
        return float(value)
    except OverflowError:
        return math.inf


def check_bool(name, value):
    """``value`` must be a bool (Python or NumPy); returns a Python bool.

    Nothing else is converted: ``bool("False")`` is True, so a string (or
    0/1, or None) passed for a flag is an error rather than a silent switch.
    """
    if not isinstance(value, (bool, np.bool_)):
        _reject_type(name, "a boolean (True or False)", value)
    return bool(value)


def check_positive_float(name, value):
    """``value`` must be a finite real number > 0; returns it as a float."""
    description = "a finite positive number"
    if not 0 < _as_float(name, description, value) < math.inf:
        _reject(name, description, value)
    return float(value)


def check_squarable_float(name, value, positive=False):
    """A gain or slope that enters a variance squared; returns a float.

    It must be finite with a finite square (``1e200 ** 2`` overflows); with
    ``positive``, it must be > 0 with a square that is a normal float
    (``1e-200 ** 2`` is 0).
    """
    if positive:
        description = (
            "a positive number whose square is a positive finite float "
            "(between about 1e-154 and 1e154)"
        )
    else:
        description = (
            "a finite number whose square is finite (|value| below about 1e154)"
        )
    number = _as_float(name, description, value)
    square = number * number
    if positive:
        valid = number > 0 and sys.float_info.min <= square < math.inf
    else:
        valid = square < math.inf  # (NaN fails this too)
    if not valid:
        _reject(name, description, value)
    return number


def check_momentum(value, name="momentum", allow_none=False):
    """Moving-average momentum (weight of the old value) in [0, 1]; None
    (a cumulative average) where ``allow_none``.

    1 is allowed, as Keras allows it: the moving statistics then keep
    their value (a way to freeze them while the layer trains).
    """
    if value is None and allow_none:
        return None
    description = (
        "a number in [0, 1] (the weight of the old value in the moving "
        "average)" + (", or None (a cumulative average)" if allow_none else "")
    )
    number = _as_float(name, description, value)
    if not 0 <= number <= 1:
        _reject(name, description, value)
    return number


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
    _reject_type("axis", expected, axis)


def non_batch_axis(axis, ndim, owner, name="axis", received=None):
    """``axis`` as a non-negative axis of a rank-``ndim`` input, which must
    exist and not be the batch axis 0; ``owner`` names the caller."""
    if not -ndim <= axis < ndim or axis % ndim == 0:
        received = axis if received is None else received
        raise ValueError(
            f"Argument `{name}` must be a non-batch axis of the input of "
            f"{owner}, which has rank {ndim}. Received: {name}={received}"
        )
    return axis % ndim


def check_groups(groups):
    """A number of groups: a positive int, or -1 (one channel per group)."""
    if isinstance(groups, numbers.Integral) and groups == -1:
        return -1
    return check_positive_int(
        "groups", groups, "a positive integer, or -1 for instance normalization"
    )


def resolve_groups(groups, channels, owner):
    """The number of groups for ``channels``: -1 is one per channel; it
    must divide the channels."""
    resolved = channels if groups == -1 else groups
    if channels is None or channels % resolved:
        raise ValueError(
            f"Argument `groups` must divide the number of channels "
            f"({channels}) of {owner}. Received: groups={groups}"
        )
    return resolved


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


def check_non_negative_float(name, value):
    """``value`` must be a finite real number >= 0; returns it as a float."""
    description = "a finite non-negative number"
    number = _as_float(name, description, value)
    if not 0 <= number < math.inf:
        _reject(name, description, value)
    return number


def check_finite_float(name, value):
    """``value`` must be a finite real number; returns it as a float."""
    number = _as_float(name, "a finite number", value)
    if not math.isfinite(number):
        _reject(name, "a finite number", value)
    return number


def check_choice(name, value, choices):
    """``value`` must be one of ``choices`` (strings); returns it."""
    description = "one of " + ", ".join(repr(choice) for choice in choices)
    if not isinstance(value, str):
        _reject_type(name, description, value)
    if value not in choices:
        _reject(name, description, value)
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
        _reject_type(name, "an int or a non-empty list of ints", value)
    return [int(v) for v in values]


def _check_integer(name, value, minimum, description):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _reject_type(name, description, value)
    if value < minimum:
        _reject(name, description, value)
    return int(value)


def check_positive_int(name, value, description="a positive integer"):
    """``value`` must be an int > 0 (bools are rejected); returns it."""
    return _check_integer(name, value, 1, description)


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
    number = _as_float(name, "a number in [0, 1)", value)
    if not 0 <= number < 1:
        _reject(name, "a number in [0, 1)", value)
    return number


def check_seed(name, value):
    """``None`` or an int (bools are rejected): a seed for random ops."""
    if value is None:
        return None
    return _check_integer(name, value, -math.inf, "None or an integer")


def get_keras_object(name, value, module):
    """``module.get(value)`` with an error that names the argument.

    ``module`` is `keras.initializers`, ``regularizers``, ``constraints`` or
    ``activations``, whose own message does not say which argument was bad.
    """
    try:
        return module.get(value)
    except (ValueError, TypeError) as error:
        kind = module.__name__.rsplit(".", 1)[-1]
        # The class Keras raised (ValueError for an unknown identifier).
        raise (
            ArgumentTypeError if isinstance(error, TypeError) else ValueError
        )(
            f"Argument `{name}` is not a valid identifier or object of "
            f"keras.{kind} ({error}). Received: {name}={value!r}"
        ) from error
