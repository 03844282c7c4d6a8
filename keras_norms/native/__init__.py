"""Backend-specific code, reached in one way: `dispatch`.

Everything the package does differently on a backend (a fused kernel, a
cross-replica collective, a custom-gradient rule, a time loop, a run-time
shape check, a memory layout) is first written once, backend-neutral, with
`keras.ops`: the *reference*. The reference is decorated with
``@dispatch("name")``. When it is called, the current backend's folder,
``keras_norms/native/<backend>/``, is asked for a function of that name;
if there is one it is called with the same arguments, and its result is
used unless it is ``NotImplemented``, the override's way of declining. An
override declines from static facts only (rank, dtype, known sizes, the
device), never from tensor values, so that it traces under ``jit``.

So adding a backend is one folder, and a GPU-only kernel is one function
that declines elsewhere. This module is the only place in the package
that asks which backend runs; nothing here imports from
`keras_norms.ops` or `keras_norms.layers`.

Two kinds of overrides:

- fast paths (``dispatch(name)``): the same numbers as the reference,
  faster; `reference_only` switches them off, for comparisons;
- required ones (``dispatch(name, fast_path=False)``): what the backend
  needs to run the reference's contract at all (a collective, a loop
  that XLA compiles, a run-time check). They always run.

Every override computes exactly the reference's semantics: the same
outputs, gradients to every input, and statistics stable on data whose
mean is large next to its spread. The tests compare each one against the
reference and the NumPy oracle.
"""

import contextlib
import functools
import importlib

import keras

_BACKENDS = ("jax", "tensorflow", "torch")
_fast_paths_enabled = True


def _backend_module():
    name = keras.backend.backend()
    if name not in _BACKENDS:
        return None
    return importlib.import_module(f"keras_norms.native.{name}")


def override(name):
    """The current backend's override called ``name``, or None."""
    module = _backend_module()
    return None if module is None else getattr(module, name, None)


def dispatch(name, fast_path=True):
    """Decorate a keras.ops reference: the backend's ``name`` replaces it.

    The override takes the reference's arguments and returns its result,
    or ``NotImplemented`` to decline (the reference then runs).
    """

    def decorate(reference):
        @functools.wraps(reference)
        def dispatched(*args, **kwargs):
            if fast_path and not _fast_paths_enabled:
                return reference(*args, **kwargs)
            function = override(name)
            if function is not None:
                result = function(*args, **kwargs)
                if result is not NotImplemented:
                    return result
            return reference(*args, **kwargs)

        dispatched.reference = reference
        dispatched.override_name = name
        return dispatched

    return decorate


@contextlib.contextmanager
def reference_only():
    """Run `keras_norms.ops` on its keras.ops reference implementation.

    Inside the block no backend fast path is used (also when a function is
    traced for ``jit`` inside it). For comparisons and debugging. Required
    backend code (collectives, the time loop) still runs.

    Examples:
        >>> import numpy as np, keras_norms
        >>> x = np.random.default_rng(0).normal(size=(8, 3))
        >>> x = x.astype("float32")
        >>> with keras_norms.ops.reference_only():
        ...     y, mean, variance, count = (
        ...         keras_norms.ops.batch_normalization_training(x)
        ...     )
    """
    global _fast_paths_enabled
    previous, _fast_paths_enabled = _fast_paths_enabled, False
    try:
        yield
    finally:
        _fast_paths_enabled = previous
