"""BatchNormalization: a drop-in for keras.layers.BatchNormalization."""

import numbers

import numpy as np
from keras import initializers
from keras import ops
from keras.layers import InputSpec

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._collecting import active_collector
from keras_norms._validation import ArgumentTypeError
from keras_norms._validation import check_axis_type
from keras_norms._validation import check_bool
from keras_norms._validation import check_min_rank
from keras_norms._validation import check_momentum
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_positive_int_or_none
from keras_norms._validation import get_keras_object
from keras_norms._validation import resolve_axes
from keras_norms.distributed import cross_replica_all_gather
from keras_norms.layers._base import AffineNormalization
from keras_norms.layers._base import expand_mask
from keras_norms.ops._checks import check_dimension
from keras_norms.ops._renormalization import renormalize


def _check_renorm_clipping(renorm, clipping):
    """Keras's rules for ``renorm_clipping``: keys rmax, rmin, dmax.

    Without ``renorm`` it is unused and, as in Keras, not checked: Keras
    configs that carry it load unchanged.
    """
    if clipping is None:
        return {}
    if not renorm:
        return clipping
    if not isinstance(clipping, dict):
        raise ArgumentTypeError(
            "Argument `renorm_clipping` must be a dict with keys among "
            f"'rmax', 'rmin', 'dmax'. Received: renorm_clipping={clipping!r}"
        )
    if set(clipping) - {"rmax", "rmin", "dmax"}:
        raise ValueError(
            "Argument `renorm_clipping` must be a dict with keys among "
            f"'rmax', 'rmin', 'dmax'. Received: renorm_clipping={clipping!r}"
        )
    for key, value in clipping.items():
        # inf is allowed: it is Keras's default for rmax and dmax (no clip).
        if value is not None and not (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and value == value  # not NaN
        ):
            raise ValueError(
                f"In `renorm_clipping`, {key} must be None or a number (not "
                f"NaN). Received: renorm_clipping={clipping!r}"
            )
    rmin, rmax, dmax = (clipping.get(k) for k in ("rmin", "rmax", "dmax"))
    if rmin is not None and rmax is not None and rmax < rmin:
        raise ValueError(
            "In `renorm_clipping`, rmax must be >= rmin. Received: "
            f"renorm_clipping={clipping!r}"
        )
    if dmax is not None and dmax < 0:
        raise ValueError(
            "In `renorm_clipping`, dmax must be >= 0. Received: "
            f"renorm_clipping={clipping!r}"
        )
    return dict(clipping)


@export
class BatchNormalization(AffineNormalization):
    r"""Batch normalization (Ioffe & Szegedy, 2015).

    A drop-in replacement for `keras.layers.BatchNormalization`: the same
    constructor arguments, defaults, weight names (``gamma``, ``beta``,
    ``moving_mean``, ``moving_variance``) and ``training`` / ``mask``
    behaviour. On top of it the statistics are numerically stable on every
    backend (corrected two-pass moments in at least float32), and the moving
    variance can be updated with the unbiased batch variance.

    In training mode each channel is normalized with the mean and variance
    of the current batch, taken over every axis but ``axis`` (for images:
    the batch and all spatial positions):

    $$y = \gamma \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} + \beta$$

    and the moving statistics used at inference are updated as
    ``moving = moving * momentum + batch_statistic * (1 - momentum)``.
    Note that Keras's ``momentum`` is the weight of the *old* value: Keras
    ``momentum=0.99`` corresponds to PyTorch ``momentum=0.01``. With
    ``momentum=None`` the moving statistics are instead the plain average
    of every batch statistic seen so far (PyTorch's ``momentum=None``),
    counted in an extra weight ``batch_count``. For the statistics that
    Algorithm 2 of the paper defines, averages over the training batches
    with the weights fixed, see `keras_norms.recompute_batch_statistics`.

    Args:
        axis (int): Integer, the channel axis (``-1`` for channels-last data,
            ``1`` after a ``data_format="channels_first"`` convolution).
        momentum (float | None): Momentum of the moving averages, in ``[0, 1)``,
            or ``None`` for the cumulative average of all batch statistics (with
            a ``batch_count`` weight, saved with the model).
        epsilon (float): Positive float added to the variance.
        center (bool): If ``True``, add the learned offset ``beta``.
        scale (bool): If ``True``, multiply by the learned scale ``gamma``.
        beta_initializer (str | Initializer): Initializer for ``beta``.
        gamma_initializer (str | Initializer): Initializer for ``gamma``.
        moving_mean_initializer (str | Initializer): Initializer for the moving
            mean.
        moving_variance_initializer (str | Initializer): Initializer for the
            moving variance.
        beta_regularizer (str | Regularizer | None): Optional regularizer for
            ``beta``.
        gamma_regularizer (str | Regularizer | None): Optional regularizer for
            ``gamma``.
        beta_constraint (str | Constraint | None): Optional constraint for
            ``beta``.
        gamma_constraint (str | Constraint | None): Optional constraint for
            ``gamma``.
        renorm (bool): Use batch renormalization (Ioffe, 2017), exactly as
            `keras.layers.BatchNormalization` does (same extra weights
            ``moving_stddev``, ``renorm_mean``, ``renorm_stddev``).
        renorm_clipping (dict | None): Dict with optional keys ``"rmax"``,
            ``"rmin"``, ``"dmax"`` clipping the corrections ``r`` and ``d``.
            Unused (and, as in Keras, not checked) without ``renorm``.
        renorm_momentum (float): Momentum of the renorm statistics, in ``[0,
            1)``.
        synchronized (bool): If ``True``, the batch statistics (and so the
            moving statistics) are global across replicas: one all-gather of
            each replica's count, mean and sum of squared deviations per call,
            combined exactly even when replicas hold different numbers of
            samples. Works under `tf.distribute` strategies, with
            ``torch.distributed``, and under ``keras.distribution.DataParallel``
            on JAX (where the SPMD program computes global statistics anyway);
            see `keras_norms.distributed`. Without a multi-replica computation
            it is exactly the single-device path.
        unbiased_moving_variance (bool): If ``True``, the moving variance is
            updated with the unbiased batch variance ``m / (m - 1) *
            variance`` (``m`` values per channel), as in Algorithm 2 of the
            paper and in PyTorch. The batch itself is always normalized
            with the biased variance.
        virtual_batch_size (int | None): ``None``, or an integer ``k``: ghost
            batch normalization (Hoffer et al., 2017). In training the batch is
            split into consecutive groups of ``k`` samples, each normalized with
            its own statistics, and the moving statistics are updated with the
            average of the groups' statistics (weighted by their unmasked values
            under a mask). The batch size must be a multiple of ``k`` in
            training (checked when the layer is called, or at run time in a
            TensorFlow graph; under XLA, which drops run-time assertions, a
            wrong size fails as a reshape error). Inference (which uses the
            moving statistics) and `keras_norms.recompute_batch_statistics` do
            not depend on it. With ``synchronized=True`` each ghost batch stays
            local to its replica.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Call arguments:
        - inputs: Tensor of rank >= 2.
        - training: ``True`` normalizes with the batch statistics and updates
              the moving ones; ``False``/``None`` uses the moving statistics.
              A layer with ``trainable=False`` always runs in inference mode.
        - mask: Optional boolean tensor of the input's shape without its
              last axis (Keras's convention, as ``Masking`` and
              ``Embedding(mask_zero=True)`` produce it, whatever ``axis``
              is); it is expanded at the last axis, and masked-out
              positions do not enter the batch statistics. Ignored at
              inference.

    Input shape:
        Any, rank >= 2. Output shape: same as input.

    Reference:
        Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
        Training by Reducing Internal Covariate Shift", ICML 2015.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> layer = keras_norms.layers.BatchNormalization()
        >>> x = np.random.default_rng(0).normal(1e4, 1.0, (64, 8))
        >>> y = layer(x.astype("float32"), training=True)
        >>> bool(abs(float(keras.ops.mean(y))) < 1e-3)
        True
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        unbiased_moving_variance=False,
        virtual_batch_size=None,
        **kwargs,
    ):
        super().__init__(
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **kwargs,
        )
        self.axis = check_axis_type(axis)
        self.momentum = check_momentum(momentum, allow_none=True)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.renorm = check_bool("renorm", renorm)
        self.renorm_clipping = _check_renorm_clipping(
            self.renorm, renorm_clipping
        )
        self.renorm_momentum = check_momentum(
            renorm_momentum, "renorm_momentum"
        )
        self.synchronized = check_bool("synchronized", synchronized)
        self.unbiased_moving_variance = check_bool(
            "unbiased_moving_variance", unbiased_moving_variance
        )
        self.virtual_batch_size = check_positive_int_or_none(
            "virtual_batch_size", virtual_batch_size
        )
        if self.renorm and (
            self.momentum is None or self.virtual_batch_size is not None
        ):
            raise ValueError(
                "Batch renormalization keeps exponential moving averages of "
                "whole batches: it needs a float `momentum` and no "
                f"`virtual_batch_size`. Received: renorm=True, momentum="
                f"{momentum!r}, virtual_batch_size={virtual_batch_size!r}"
            )
        self.moving_mean_initializer = get_keras_object(
            "moving_mean_initializer", moving_mean_initializer, initializers
        )
        self.moving_variance_initializer = get_keras_object(
            "moving_variance_initializer",
            moving_variance_initializer,
            initializers,
        )
        self.moving_mean = None
        self.moving_variance = None
        self.batch_count = None

    def build(self, input_shape):
        check_min_rank(input_shape, 2, self.name)
        (self._channel_axis,) = resolve_axes(self.axis, input_shape, self.name)
        shape = (input_shape[self._channel_axis],)
        self.build_affine_weights(shape)
        self.build_moving_statistics(shape)
        if self.renorm:
            self._build_renorm_weights(shape)
        self.input_spec = InputSpec(
            ndim=len(input_shape), axes={self._channel_axis: shape[0]}
        )

    def build_moving_statistics(self, shape):
        """``moving_mean`` and ``moving_variance`` of ``shape`` (the last
        axis: channels), and with ``momentum=None`` the ``batch_count``
        behind each row (``shape[:-1]``)."""
        self.moving_mean = self.add_weight(
            shape=shape,
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        if self.momentum is None:
            # float32: exact up to 2**24 batches, and no integer variables
            # (which not every backend's assign casts to).
            self.batch_count = self.add_weight(
                shape=shape[:-1],
                name="batch_count",
                initializer="zeros",
                trainable=False,
                autocast=False,
                dtype="float32",
            )

    def _build_renorm_weights(self, shape):
        """Keras's batch-renormalization weights, with Keras's names."""
        variance_initializer = self.moving_variance_initializer

        def stddev_initializer(shape, dtype=None):
            return ops.sqrt(variance_initializer(shape, dtype=dtype))

        for name, initializer in (
            ("moving_stddev", stddev_initializer),
            ("renorm_mean", self.moving_mean_initializer),
            ("renorm_stddev", stddev_initializer),
        ):
            setattr(
                self,
                name,
                self.add_weight(
                    shape=shape,
                    name=name,
                    initializer=initializer,
                    trainable=False,
                    autocast=False,
                ),
            )

    def uses_batch_statistics(self, training):
        """Whether a call normalizes with batch statistics (and hands them
        to `update_moving_statistics`) rather than the moving ones: in
        training unless the layer is frozen, and always inside
        `keras_norms.recompute_batch_statistics`, which collects them from
        every BN-family layer, frozen or not. Every layer of the family
        decides here."""
        return (
            bool(training)
            and self.trainable
            or (active_collector() is not None)
        )

    def call(self, inputs, training=None, mask=None):
        collecting = active_collector() is not None
        if not self.uses_batch_statistics(training):
            outputs = norm_ops.batch_normalization(
                inputs,
                self.moving_mean,
                self.moving_variance,
                axis=self._channel_axis,
                offset=self.beta,
                scale=self.gamma,
                epsilon=self.epsilon,
            )
            return ops.cast(outputs, self.compute_dtype)

        if mask is not None:
            mask = expand_mask(mask, inputs, self.name)
        if self.virtual_batch_size is not None and not collecting:
            return ops.cast(
                self._ghost_batch_normalization(inputs, mask),
                self.compute_dtype,
            )
        outputs, mean, variance, count = norm_ops.batch_normalization_training(
            inputs,
            axis=self._channel_axis,
            offset=None if self.renorm else self.beta,
            scale=None if self.renorm else self.gamma,
            epsilon=self.epsilon,
            mask=mask,
            all_gather=self.cross_replica_all_gather(),
        )
        if self.renorm:
            outputs = renormalize(
                outputs,
                mean,
                variance,
                self.renorm_mean,
                self.renorm_stddev,
                self._channel_axis,
                offset=self.beta,
                scale=self.gamma,
                epsilon=self.epsilon,
                clipping=self.renorm_clipping,
            )
        self.update_moving_statistics(mean, variance, count)
        return ops.cast(outputs, self.compute_dtype)

    def _ghost_batch_normalization(self, inputs, mask):
        """Training with ghost batches of ``virtual_batch_size`` samples.

        The batch is reshaped to ``(ghosts, k, ...)`` and normalized with
        (ghost, channel) channel axes: every ghost batch gets its own
        statistics, in one call that the fused kernels can take.
        """
        k = self.virtual_batch_size
        batch = inputs.shape[0]
        message = (
            f"In training, the batch size of layer '{self.name}' must be a "
            f"multiple of virtual_batch_size={k}. Received: batch size "
            f"{batch}, inputs.shape={tuple(inputs.shape)}"
        )
        if batch is None:  # known only at run time (a TensorFlow graph)
            inputs = check_dimension(
                inputs, 0, lambda size: size % k == 0, message
            )
        elif batch % k:
            raise ValueError(message)
        shape = tuple(ops.shape(inputs))
        ghosts = ops.reshape(inputs, (-1, k) + shape[1:])
        if mask is not None:
            mask = ops.reshape(mask, (-1, k) + tuple(ops.shape(mask))[1:])
        outputs, mean, variance, count = self.normalize_per_slice(
            ghosts, (0, self._channel_axis + 1), mask=mask
        )
        # One row of statistics per ghost batch: the hook averages them.
        self.update_moving_statistics(mean, variance, count)
        return ops.reshape(outputs, shape)

    def normalize_per_slice(self, inputs, axes, mask=None, all_gather=None):
        """Training-mode normalization with statistics per position along
        several ``axes`` (ghost batch and channel, or time step and
        channel; the channel axis last), sharing this layer's ``gamma`` and
        ``beta`` along the others. Returns
        ``batch_normalization_training``'s ``(outputs, mean, variance,
        count)``."""
        return norm_ops.batch_normalization_training(
            inputs,
            axis=axes,
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
            mask=mask,
            all_gather=all_gather,
        )

    def update_moving_statistics(self, mean, variance, count):
        """Fold one batch's statistics into the moving ones: every update
        of the moving statistics goes through here.

        Inside `keras_norms.recompute_batch_statistics` the statistics are
        handed to it instead, and nothing is updated.

        Args:
            mean: The batch means, of the moving statistics' shape; or, for
                several groups of the batch normalized apart (ghost
                batches), one row per group (a leading axis), combined
                here with weights ``count`` after each group's own
                correction.
            variance: The biased batch variances, of the same shape.
            count: Values behind each statistic: a scalar or a tensor that
                broadcasts to ``mean``; where it is 0 the batch had no
                values, and the moving statistics keep their value.
        """
        count = ops.broadcast_to(ops.cast(count, mean.dtype), ops.shape(mean))
        collector = active_collector()
        if collector is not None:
            collector.record(self, mean, variance, count)
            return
        if self.unbiased_moving_variance:
            variance = norm_ops.unbiased_variance(variance, count)
        if len(mean.shape) > len(self.moving_mean.shape):
            # Groups: their count-weighted average (equal weights without
            # a mask).
            total = ops.sum(count, axis=0)
            divisor = ops.where(total > 0, total, 1.0)
            mean = ops.sum(count * mean, axis=0) / divisor
            variance = ops.sum(count * variance, axis=0) / divisor
            count = total
        if self.renorm:
            self._update_renorm_statistics(mean, variance, count)
        else:
            self._update_moving_averages(mean, variance, count)

    def _update_moving_averages(self, mean, variance, count):
        """The moving average (or, with ``momentum=None``, the cumulative
        average) of the statistics, where ``count > 0``."""
        reached = count > 0
        if self.momentum is None:
            # (The weight before the assign: on torch `seen` is the
            # variable's storage, which the assign overwrites.)
            seen = ops.convert_to_tensor(self.batch_count)
            weight = 1.0 / (ops.expand_dims(seen, -1) + 1.0)
            row_reached = ops.any(reached, axis=-1)
            self.batch_count.assign(ops.where(row_reached, seen + 1.0, seen))
        else:
            weight = 1.0 - self.momentum
        for variable, value in (
            (self.moving_mean, mean),
            (self.moving_variance, variance),
        ):
            variable.assign(
                norm_ops.moving_average(variable, value, weight, reached)
            )

    def set_population_statistics(self, mean, variance, count, batches):
        """Set the moving statistics to recomputed population statistics
        where ``count > 0`` (see `keras_norms.recompute_batch_statistics`);
        ``batches`` (the number behind each row) becomes ``batch_count``
        with ``momentum=None``."""
        reached = np.asarray(count) > 0
        pairs = [(self.moving_mean, mean), (self.moving_variance, variance)]
        if self.renorm:
            pairs.append((self.moving_stddev, np.sqrt(variance + self.epsilon)))
        for variable, value in pairs:
            old = ops.convert_to_numpy(variable)
            variable.assign(np.where(reached, value, old).astype(old.dtype))
        if self.batch_count is not None:
            rows = reached.any(axis=-1)
            old = ops.convert_to_numpy(self.batch_count)
            self.batch_count.assign(
                np.where(rows, batches, old).astype(old.dtype)
            )

    def _update_renorm_statistics(self, mean, variance, count):
        """Keras's renorm updates: the renorm pair, the moving mean and the
        moving *standard deviation*, from which the variance is derived;
        channels without values in this batch (``count == 0``) keep all
        of them."""
        reached = count > 0
        stddev = ops.sqrt(variance + self.epsilon)
        for variable, value, momentum in (
            (self.renorm_mean, mean, self.renorm_momentum),
            (self.renorm_stddev, stddev, self.renorm_momentum),
            (self.moving_mean, mean, self.momentum),
            (self.moving_stddev, stddev, self.momentum),
        ):
            variable.assign(
                norm_ops.moving_average(
                    variable, value, 1.0 - momentum, reached
                )
            )
        self.moving_variance.assign(
            ops.relu(ops.square(self.moving_stddev) - self.epsilon)
        )

    def cross_replica_all_gather(self):
        """The collective for global statistics, or None (see
        `keras_norms.distributed`). Population statistics are always
        global: `recompute_batch_statistics` gathers them."""
        if not (self.synchronized or active_collector() is not None):
            return None
        return cross_replica_all_gather()

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "moving_mean_initializer": initializers.serialize(
                self.moving_mean_initializer
            ),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping or None,
            "renorm_momentum": self.renorm_momentum,
            "synchronized": self.synchronized,
            "unbiased_moving_variance": self.unbiased_moving_variance,
            "virtual_batch_size": self.virtual_batch_size,
        }
