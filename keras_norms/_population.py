r"""Population statistics as Ioffe & Szegedy define them (Algorithm 2).

`recompute_batch_statistics` runs a model over data with every batch
normalization layer computing batch statistics, collects those statistics
(they leave the compiled predict step as outputs: no variable is written
inside it, so this works under `jit` and `tf.function` alike) and sets
each layer's moving statistics to their averages over the batches.

The layers take part through one hook: inside `collecting_statistics`,
`BatchNormalization.update_moving_statistics` hands its batch statistics
to the active collector instead of updating the moving averages.
"""

import inspect

import keras
import numpy as np
from keras import ops

from keras_norms._collecting import StatisticsCollector
from keras_norms._collecting import collecting_statistics


def _batch_normalization_layers(model):
    from keras_norms.layers import BatchNormalization

    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, BatchNormalization)
    ]


def _replicas_per_batch(model):
    """How many copies of each batch's statistics `predict` returns: one per
    replica under a `tf.distribute` strategy (all equal: the layers gather
    global statistics while collecting), one elsewhere (only TensorFlow's
    models have a strategy)."""
    strategy = getattr(model, "distribute_strategy", None)
    return getattr(strategy, "num_replicas_in_sync", 1)


def population_statistics(means, variances, counts):
    r"""Algorithm 2's averages of per-batch statistics, in float64 NumPy.

    Args:
        means, variances, counts: Arrays ``(batches, *table_shape)``: each
            batch's mean, biased variance and number of values (0 where
            the batch had none).

    Returns:
        ``(mean, variance, total)``: ``mean`` is the count-weighted average
        of the batch means, $\sum_B m_B \mu_B / \sum_B m_B$, and
        ``variance`` the count-weighted average of the unbiased batch
        variances, $\sum_B m_B \frac{m_B}{m_B - 1}\sigma_B^2 / \sum_B m_B$
        over batches with $m_B > 1$. With $n$ equal batches of size $m$
        these are exactly $E_B[\mu_B]$ and $\frac{m}{m-1} E_B[\sigma_B^2]$.
        ``total`` is the number of values behind each entry (0: no data
        reached it).
    """
    means, variances, counts = (
        np.asarray(value, np.float64) for value in (means, variances, counts)
    )
    total = counts.sum(axis=0)
    mean = (counts * means).sum(axis=0) / np.maximum(total, 1.0)
    several = counts > 1.0
    variance_weight = np.where(several, counts, 0.0)
    unbiased = np.where(
        several, variances * counts / np.where(several, counts - 1.0, 1.0), 0
    )
    variance = (variance_weight * unbiased).sum(axis=0) / np.maximum(
        variance_weight.sum(axis=0), 1.0
    )
    return mean, variance, total


def recompute_batch_statistics(
    model: keras.Model,
    x,
    batch_size: int | None = None,
    steps: int | None = None,
    verbose: str | int = "auto",
) -> dict[str, int]:
    r"""Set every BN layer's moving statistics to Algorithm 2's averages.

    Ioffe & Szegedy (2015, Algorithm 2, step 10) define the statistics used
    at inference as averages over training mini-batches $B$ of size $m$:

    $$E[x] = E_B[\mu_B], \qquad
    \mathrm{Var}[x] = \frac{m}{m - 1} E_B[\sigma_B^2].$$

    The moving averages that training keeps are an approximation of them
    that weights recent batches more and lags behind the weights; they are
    stale after weight averaging (SWA, an EMA of the weights), after
    fine-tuning with frozen BN layers, or when the batch composition
    changed. This function recomputes them from data: it runs the model's
    forward pass over ``x`` batch by batch (through ``model.predict``, so
    it takes the same data forms and shows the same progress bar), with
    every keras_norms batch-normalization layer normalizing with the batch
    statistics, as in training, and every other layer in inference mode
    (no dropout). No weight changes during the pass; afterwards each layer
    gets

    - ``moving_mean``: the average of the batch means;
    - ``moving_variance``: the average of the unbiased batch variances
      $\frac{m_B}{m_B - 1}\sigma_B^2$;

    both weighted by the number of values $m_B$ behind each batch's
    statistic, so a last, smaller batch counts for its size (with equal
    batches the formulas above hold exactly). Under a mask, $m_B$ counts
    the unmasked values; batches with $m_B \le 1$ carry no variance.

    What is covered:

    - `BatchNormalization` (also with ``renorm``, whose moving standard
      deviation is set to match, and ``momentum=None``, whose batch count
      becomes the number of batches seen); ``virtual_batch_size`` is
      ignored: statistics are those of the whole batch.
    - `TimestepBatchNormalization` / `RecurrentBatchNormalization`: per
      time step; steps no batch reaches keep their moving statistics.
    - `BNLSTM`: its input, recurrent and cell-state normalizations, each
      per time step.
    - Layers inside nested models; layers with ``trainable=False`` too.
    - Layers the data never reaches, and all other weights, are unchanged.
      ``keras.layers.BatchNormalization`` is not touched.

    Under a ``tf.distribute`` strategy, ``torch.distributed`` or JAX's
    ``DataParallel``, each batch's statistics are those of the global
    batch (the layers gather them across replicas as with
    ``synchronized=True``).

    Args:
        model: A built `keras.Model`.
        x (array | Dataset | PyDataset | Iterator): Input data, in any form
            `keras.Model.predict` takes: arrays, a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a generator. Targets in the data are
            ignored.
        batch_size: Samples per batch for array inputs (default 32, as in
            ``predict``). Use the training batch size: the statistics of
            a batch depend on its size.
        steps (int | None): Number of batches to draw (default: until ``x``
            ends).
        verbose: ``"auto"``, 0, 1 or 2, as in ``predict``.

    Returns:
        A dict from each updated layer's path to the number of batches
            whose statistics it averaged.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> model = keras.Sequential(
        ...     [keras.Input((4,)), keras_norms.layers.BatchNormalization()]
        ... )
        >>> x = np.random.default_rng(0).normal(5.0, 2.0, (96, 4))
        >>> report = keras_norms.recompute_batch_statistics(
        ...     model, x, batch_size=32, verbose=0
        ... )
        >>> list(report.values())
        [3]
        >>> mean = np.mean([x[i : i + 32].mean(0) for i in (0, 32, 64)], 0)
        >>> bool(np.allclose(model.layers[0].moving_mean, mean, atol=1e-5))
        True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a keras.Model. Received: "
            f"model={model!r} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' must be built (called on data, or created "
            "with an Input) before its statistics can be recomputed."
        )
    if not _batch_normalization_layers(model):
        raise ValueError(
            f"Model '{model.name}' has no keras_norms batch-normalization "
            "layer (keras.layers.BatchNormalization is not covered: use "
            "keras_norms.layers.BatchNormalization)."
        )
    recorded_layers = []
    original_step = model.predict_step
    # JAX's step is stateless: predict_step(state, data) -> (outputs,
    # state).
    stateless = "state" in inspect.signature(original_step).parameters

    def statistics_step(*args):
        collector = StatisticsCollector()
        with collecting_statistics(collector):
            result = original_step(*args)
        recorded_layers[:] = collector.layers
        # A leaf of ones counts the batches; the model's outputs are
        # dropped (they may not concatenate, and are not needed).
        outputs = (ops.ones((1,)), tuple(collector.statistics))
        if stateless:
            return outputs, result[1]
        return outputs

    previous_function = model.predict_function
    model.predict_step = statistics_step
    model.predict_function = None  # trace the statistics step
    try:
        _, statistics = model.predict(
            x, batch_size=batch_size, steps=steps, verbose=verbose
        )
    finally:
        del model.predict_step
        model.predict_function = previous_function

    per_layer = {}
    for layer, values in zip(recorded_layers, statistics, strict=True):
        per_layer.setdefault(id(layer), (layer, []))[1].append(values)
    replicas = _replicas_per_batch(model)
    report = {}
    for layer, calls in per_layer.values():
        means, variances, counts = (
            np.concatenate([call[i] for call in calls]) for i in range(3)
        )
        mean, variance, total = population_statistics(means, variances, counts)
        # Batches that reached each row of the table (any feature).
        batches = (counts > 0).any(axis=-1).sum(axis=0) // replicas
        layer.set_population_statistics(mean, variance, total, batches)
        report[layer.path] = int(np.max(batches))
    return report
