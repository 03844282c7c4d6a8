"""Per-backend fast paths behind `keras_norms.ops`.

Each backend package (``backend/torch``, ``backend/tensorflow``,
``backend/jax``) may implement some of the functions named in
`FAST_PATHS` with the backend's own kernels. `keras_norms.ops` asks
`fast_path(name)` for one and falls back to its keras.ops reference
implementation when there is none, or when the function returns
``NotImplemented`` for the arguments it was given (decided from static
facts only: rank, dtype, shapes, never tensor values, so it traces under
``jit``). Layers never ask which backend runs.

``scan`` is the time loop of `keras_norms.layers.BNLSTM` (TensorFlow's
own, bounded so that XLA compiles its gradient; `keras.ops.scan`
elsewhere).

Every fast path computes exactly the reference's semantics: the same
outputs, gradients to every input, and statistics stable on data whose
mean is large next to its spread. The tests compare each against the
reference and the NumPy oracle.
"""

import contextlib
import importlib

import keras

FAST_PATHS = (
    "scan",
    "standardize",
    "batch_normalization_training",
    "layer_normalization",
    "group_normalization",
)

_enabled = True


def fast_path(name):
    """The current backend's implementation of ``name``, or None."""
    if name not in FAST_PATHS:
        raise ValueError(f"Unknown fast path: {name!r}")
    if not _enabled:
        return None
    module = _backend_module()
    return getattr(module, name, None) if module is not None else None


def _backend_module():
    name = keras.backend.backend()
    if name not in ("torch", "tensorflow", "jax"):
        return None
    return importlib.import_module(f"keras_norms.backend.{name}")


def check_dimension(x, axis, predicate, message):
    """``x``, checked at run time to satisfy ``predicate(size of axis)``
    where the backend traces graphs with unknown sizes (TensorFlow: the
    batch size under ``fit``, a time axis declared ``None``); elsewhere
    sizes are known and the caller's static check suffices.

    ``predicate`` maps the size (a scalar integer tensor) to a boolean
    tensor; ``message`` is the error's text."""
    module = _backend_module()
    check = getattr(module, "check_dimension", None)
    return x if check is None else check(x, axis, predicate, message)


@contextlib.contextmanager
def reference_only():
    """Run `keras_norms.ops` on its keras.ops reference implementation.

    Inside the block no backend fast path is used (also when a function is
    traced for ``jit`` inside it). For comparisons and debugging.

    Examples:
        >>> import numpy as np, keras_norms
        >>> x = np.random.default_rng(0).normal(size=(8, 3))
        >>> x = x.astype("float32")
        >>> with keras_norms.ops.reference_only():
        ...     y, mean, variance, count = (
        ...         keras_norms.ops.batch_normalization_training(x)
        ...     )
    """
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous
