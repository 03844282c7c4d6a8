"""`RecomputeBatchStatistics`: Algorithm 2's statistics during `fit`."""

import time

import keras

from keras_norms._population import _batch_normalization_layers
from keras_norms._population import recompute_batch_statistics

_WHEN = ("validation", "end", "both")


def _check_count(name, value):
    # bool is an int subclass; `steps=True` is a mistake, not 1.
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be None or a positive integer. "
            f"Received: {name}={value!r}"
        )


class RecomputeBatchStatistics(keras.callbacks.Callback):
    r"""Recompute the population statistics during `fit`.

    Calls `keras_norms.recompute_batch_statistics` on the model being
    trained (Ioffe & Szegedy's Algorithm 2: the moving mean and variance
    of every keras_norms batch-normalization layer become the averages of
    the batch statistics over ``x``, with the current weights), so that
    the statistics used at inference are those of the weights, not moving
    averages that lag behind them.

    When it runs:

    - ``when="validation"``: before each validation pass of `fit`
      (`on_test_begin`, which Keras calls after the epoch's last training
      step, once the weights are final for that epoch). The reported
      ``val_*`` metrics use the recomputed statistics. Training continues
      from them: the moving averages of the next epoch start there.
      Epochs without validation (no ``validation_data``, or skipped by
      ``validation_freq``) do not recompute. A standalone
      ``model.evaluate(callbacks=[...])`` does not trigger it either.
    - ``when="end"``: once, at the end of training (`on_train_end`, after
      the optimizer's final weights, e.g. its EMA, are in place), so the
      model `fit` leaves behind uses them. Validation metrics keep using
      the moving averages.
    - ``when="both"`` (default): both.

    Each run costs one inference pass over ``x`` (``steps`` batches, or
    all of it) plus a NumPy average. With ``verbose``, it shows
    ``predict``'s progress bar and prints one line with the number of
    layers, batches and the seconds it took.

    A model with no keras_norms batch-normalization layer is an error,
    raised at the start of `fit` (before any training).

    Args:
        x (array | Dataset | PyDataset | Iterator): The data to recompute from,
            in any form `keras.Model.predict` takes (arrays, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, ...); targets are
            ignored. Usually the training data.
        batch_size: Samples per batch for array inputs (default 32). Use
            the training batch size: batch statistics depend on it.
        steps (int | None): Number of batches to draw per run (default: all of
            ``x``). A few hundred batches are usually enough.
        when: ``"validation"``, ``"end"`` or ``"both"``.
        verbose: ``"auto"`` (follow `fit`'s ``verbose``: quiet under
            ``verbose=0``), 0 (silent), 1 (progress bar and a line) or 2
            (the line only).

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (64, 4))
        >>> model = keras.Sequential(
        ...     [keras.Input((4,)), keras_norms.layers.BatchNormalization(),
        ...      keras.layers.Dense(1)]
        ... )
        >>> model.compile("sgd", "mse")
        >>> callback = keras_norms.callbacks.RecomputeBatchStatistics(
        ...     x, batch_size=32, when="end", verbose=0
        ... )
        >>> _ = model.fit(x, x[:, :1], batch_size=32, callbacks=[callback],
        ...               verbose=0)
        >>> mean = np.mean([x[:32].mean(0), x[32:].mean(0)], 0)
        >>> bool(np.allclose(model.layers[0].moving_mean, mean, atol=1e-5))
        True
    """

    def __init__(
        self,
        x,
        batch_size: int | None = None,
        steps: int | None = None,
        when: str = "both",
        verbose: str | int = "auto",
    ):
        super().__init__()
        if x is None:
            raise ValueError(
                "Argument `x` must be the data to recompute the statistics "
                "from (arrays, a tf.data.Dataset, a PyDataset...). "
                "Received: x=None"
            )
        _check_count("batch_size", batch_size)
        _check_count("steps", steps)
        if when not in _WHEN:
            raise ValueError(
                f"Argument `when` must be one of {_WHEN}. Received: "
                f"when={when!r}"
            )
        if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(
                "Argument `verbose` must be 'auto', 0, 1 or 2. Received: "
                f"verbose={verbose!r}"
            )
        self.x = x
        self.batch_size = batch_size
        self.steps = steps
        self.when = when
        self.verbose = verbose
        self._in_fit = False
        self._epoch = None

    def _verbosity(self):
        if self.verbose != "auto":
            return self.verbose
        fit_verbose = (self.params or {}).get("verbose", 1)
        # fit passes its "auto" on unresolved; for fit it means 1.
        return 1 if fit_verbose == "auto" else fit_verbose or 0

    def _recompute(self, moment):
        verbose = self._verbosity()
        start = time.perf_counter()
        # Keras before 3.9 gives predict a History of its own and sets it
        # as model.history, which fit then returns (empty): keep fit's.
        history = getattr(self.model, "history", None)
        report = recompute_batch_statistics(
            self.model,
            self.x,
            batch_size=self.batch_size,
            steps=self.steps,
            verbose=1 if verbose == 1 else 0,
        )
        if history is not None:
            self.model.history = history
        seconds = time.perf_counter() - start
        if verbose:
            batches = max(report.values(), default=0)
            print(
                f"RecomputeBatchStatistics ({moment}): {len(report)} "
                f"layer(s), {batches} batch(es), {seconds:.2f}s"
            )
        return report

    def on_train_begin(self, logs=None):
        # Fail before training, not after the first epoch.
        if not _batch_normalization_layers(self.model):
            raise ValueError(
                f"RecomputeBatchStatistics: model '{self.model.name}' has no "
                "keras_norms batch-normalization layer "
                "(keras.layers.BatchNormalization is not covered: use "
                "keras_norms.layers.BatchNormalization)."
            )
        self._in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        if self._in_fit and self.when in ("validation", "both"):
            self._recompute(f"before validation, epoch {self._epoch + 1}")

    def on_train_end(self, logs=None):
        self._in_fit = False
        if self.when in ("end", "both"):
            self._recompute("end of training")
