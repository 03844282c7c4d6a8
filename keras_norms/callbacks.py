"""Keras callbacks: population statistics recomputed during `fit`."""

from keras_norms._callbacks import (
    RecomputeBatchStatistics as RecomputeBatchStatistics,
)

__all__ = ["RecomputeBatchStatistics"]
