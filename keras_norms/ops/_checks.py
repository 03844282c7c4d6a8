"""Shape checks that some graphs can only make at run time."""

from keras_norms.native import dispatch


@dispatch("check_dimension", fast_path=False)
def check_dimension(x, axis, predicate, message):
    """``x``, checked to satisfy ``predicate(size of axis)`` at run time.

    For sizes unknown when a graph is traced (TensorFlow: the batch size
    under ``fit``, a time axis declared ``None``). ``predicate`` maps the
    size (a scalar integer tensor) to a boolean tensor; ``message`` is the
    error's text. The reference has nothing to do: elsewhere sizes are
    known when traced, and the caller checks them in Python.
    """
    return x
