"""Whether a `recompute_batch_statistics` is running, and what it records.

A small module that imports nothing from the package, so that both the
layers (which consult it) and `keras_norms._population` (which runs the
collection) can import it.
"""

import contextlib
import threading

from keras import ops

_state = threading.local()


def active_collector():
    """The collector of a running `recompute_batch_statistics`, or None.

    Read while a layer's ``call`` is traced or run: a layer that sees one
    computes batch statistics (whatever ``training`` says) and records them
    instead of updating its moving statistics.
    """
    return getattr(_state, "collector", None)


class StatisticsCollector:
    """Batch statistics recorded by the layers during one forward pass."""

    def __init__(self):
        self.layers = []
        self.statistics = []

    def record(self, layer, mean, variance, count):
        """``mean``, ``variance`` and ``count`` have the moving tables'
        shape; ``count`` is 0 where the batch had no values."""
        self.layers.append(layer)
        self.statistics.append(
            tuple(
                ops.expand_dims(ops.cast(value, "float32"), 0)
                for value in (mean, variance, count)
            )
        )


@contextlib.contextmanager
def collecting_statistics(collector):
    previous = active_collector()
    _state.collector = collector
    try:
        yield collector
    finally:
        _state.collector = previous
