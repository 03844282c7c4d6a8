"""Batch normalization with separate statistics for every time step."""

from keras import initializers
from keras import ops
from keras.layers import InputSpec

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_min_rank
from keras_norms._validation import check_positive_int_or_none
from keras_norms._validation import resolve_axes
from keras_norms.layers._base import expand_mask
from keras_norms.layers._batch_normalization import BatchNormalization
from keras_norms.ops._checks import check_sequence_length
from keras_norms.ops._timestep import spread_over_rows


@export
class TimestepBatchNormalization(BatchNormalization):
    r"""Batch normalization with per-time-step statistics (Cooijmans 2016).

    For inputs ``(batch, time, ..., features)``: in training mode, step
    ``t`` of the sequence is normalized with the mean and variance of step
    ``t`` over the batch (and any axes between time and features), and each
    step keeps its own moving mean and variance, stored as
    ``(max_timesteps, features)`` weights. ``gamma`` and ``beta`` are shared
    by all steps. Sharing the *statistics* across steps is what fails in
    recurrent networks (the activations' distribution drifts with ``t``
    early in a sequence); keeping them per step is what Recurrent Batch
    Normalization prescribes.

    At inference, steps beyond ``max_timesteps`` use the statistics of the
    last step. In training a longer sequence is an error (checked at run
    time in a TensorFlow graph whose time axis is ``None``). With a mask,
    of Keras's shape (the input's without its last axis) or ``(batch,
    time)`` for any input rank, padded steps of a sample are excluded from
    that step's statistics, and a step that is padded in every sample has no
    batch statistics: it leaves its moving statistics unchanged and is
    normalized with them, as at inference (rather than with a variance of
    0, which would scale it by ``1 / sqrt(epsilon)``).

    Takes every argument of `BatchNormalization` (``axis`` is the features
    axis and may not be the batch or time axis; ``momentum=None`` keeps a
    cumulative average per step, with a ``(max_timesteps,)`` batch count;
    not ``renorm`` or ``virtual_batch_size``), plus:

    Args:
        max_timesteps (int | None): Number of steps with their own statistics.
            ``None`` takes the length of the time axis of the built input shape.
        **kwargs: The arguments of `BatchNormalization`.

    Input shape:
        ``(batch, time, ..., features)``, rank >= 3. Output: same shape.

    Reference:
        Cooijmans, Ballas, Laurent, Gülçehre & Courville, "Recurrent Batch
        Normalization", ICLR 2017 (arXiv:1603.09025).

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.TimestepBatchNormalization()
        >>> y = layer(np.ones((4, 10, 3), "float32"), training=True)
        >>> tuple(y.shape)
        (4, 10, 3)
        >>> tuple(layer.moving_mean.shape)
        (10, 3)
    """

    def __init__(self, max_timesteps=None, **kwargs):
        super().__init__(**kwargs)
        if self.renorm or self.virtual_batch_size is not None:
            raise ValueError(
                "Batch renormalization and ghost batches are not supported "
                f"with per-step statistics. Received: renorm={self.renorm}, "
                f"virtual_batch_size={self.virtual_batch_size}"
            )
        self.max_timesteps = check_positive_int_or_none(
            "max_timesteps", max_timesteps
        )

    def build(self, input_shape):
        check_min_rank(input_shape, 3, self.name)
        (self._channel_axis,) = resolve_axes(self.axis, input_shape, self.name)
        if self._channel_axis == 1:
            raise ValueError(
                f"Argument `axis` of layer '{self.name}' must be a features "
                "axis, not the time axis 1. Received: axis="
                f"{self.axis}"
            )
        steps = self.max_timesteps or input_shape[1]
        if steps is None:
            raise ValueError(
                f"Layer '{self.name}' needs `max_timesteps` when the time "
                f"axis of its input is undefined. Received: input_shape="
                f"{tuple(input_shape)}, max_timesteps=None"
            )
        self._steps = steps
        channels = input_shape[self._channel_axis]
        self.build_affine_weights((channels,))
        self.build_moving_statistics((steps, channels))
        self.input_spec = InputSpec(
            ndim=len(input_shape), axes={self._channel_axis: channels}
        )

    def call(self, inputs, training=None, mask=None):
        return self.normalize_sequence(inputs, training, mask)

    def normalize_sequence(self, inputs, training=None, mask=None, time_axis=1):
        """`call`, for inputs with their time axis at ``time_axis``: 1, as
        Keras's sequences have it, or 0 for the time-major input terms of
        the recurrent layers' time loops (with the mask ``(time, batch)``).
        """
        ndim = len(inputs.shape)
        step_axes = (time_axis, self._channel_axis)
        if not self.uses_batch_statistics(training):
            return ops.cast(
                self._normalize_with_moving_statistics(inputs, time_axis),
                self.compute_dtype,
            )

        inputs = check_sequence_length(
            inputs, self._steps, f"Layer '{self.name}'", time_axis
        )
        if mask is not None:
            mask = self._expand_sequence_mask(mask, inputs)
        # Batch normalization with (step, feature) channels: the fused
        # kernels apply (keras_norms.native); gamma and beta are shared by
        # the steps.
        outputs, mean, variance, count = self.normalize_per_slice(
            inputs,
            step_axes,
            mask=mask,
            all_gather=self.cross_replica_all_gather(),
        )
        if len(count.shape) > 0:
            # A step that no sample reaches has no batch statistics: it is
            # normalized with its moving ones, as at inference.
            step_reached = ops.max(count, axis=1) > 0
            outputs = ops.where(
                norm_ops.broadcast_parameter(step_reached, ndim, time_axis),
                outputs,
                self._normalize_with_moving_statistics(inputs, time_axis),
            )
        self.update_moving_statistics(mean, variance, count)
        return ops.cast(outputs, self.compute_dtype)

    def _expand_sequence_mask(self, mask, inputs):
        """Keras's mask (the input's shape without its last axis), or one
        flag per step of a sample, ``(batch, time)``, for any input rank."""
        ndim = len(inputs.shape)
        if len(mask.shape) == 2 and ndim > 3:
            return ops.reshape(
                ops.cast(mask, "bool"),
                tuple(ops.shape(mask)) + (1,) * (ndim - 2),
            )
        return expand_mask(mask, inputs, self.name)

    def _normalize_with_moving_statistics(self, inputs, time_axis=1):
        """Inference: each step with its own moving statistics."""
        ndim = len(inputs.shape)
        steps = ops.arange(ops.shape(inputs)[time_axis], dtype="int32")

        def statistic(table):
            rows = norm_ops.step_statistics(table, steps)
            return norm_ops.broadcast_parameter(
                rows, ndim, (time_axis, self._channel_axis)
            )

        def parameter(weight):
            return norm_ops.broadcast_parameter(
                weight, ndim, self._channel_axis
            )

        return norm_ops.normalize(
            inputs,
            statistic(self.moving_mean),
            statistic(self.moving_variance),
            offset=parameter(self.beta),
            scale=parameter(self.gamma),
            epsilon=self.epsilon,
        )

    def normalize_step(self, inputs, step, training=False, mask=None):
        """Normalize one time step ``(batch, features)`` of a sequence.

        For recurrent cells, which see one step at a time. ``step`` is the
        step index: a scalar, or one index per sample. In training the
        batch statistics of this step are used and returned, so that the
        caller can hand them to `update_moving_statistics` after its time
        loop; at inference the moving statistics of ``step`` are used.

        Returns:
            ``(outputs, (mean, variance, count))``; the statistics are
            ``None`` at inference.
        """
        if self.uses_batch_statistics(training):
            if mask is not None:
                mask = ops.reshape(ops.cast(mask, "bool"), (-1, 1))
            outputs, mean, variance, count = (
                norm_ops.batch_normalization_training(
                    inputs,
                    offset=self.beta,
                    scale=self.gamma,
                    epsilon=self.epsilon,
                    mask=mask,
                    all_gather=self.cross_replica_all_gather(),
                )
            )
            count = ops.reshape(count, (-1,))[0]
            if mask is not None:
                # No sample reaches this step: its moving statistics.
                outputs = ops.where(
                    count > 0,
                    outputs,
                    self._normalize_step_with_moving_statistics(inputs, step),
                )
            return outputs, (mean, variance, count)
        return self._normalize_step_with_moving_statistics(inputs, step), None

    def _normalize_step_with_moving_statistics(self, inputs, step):
        return norm_ops.normalize(
            inputs,
            norm_ops.step_statistics(self.moving_mean, step),
            norm_ops.step_statistics(self.moving_variance, step),
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
        )

    def update_moving_statistics(self, mean, variance, count):
        """Fold one batch's per-step statistics into the moving ones.

        Steps the batch does not have (beyond its length, or padded in
        every sample) keep their moving statistics.

        Args:
            mean: ``(time, features)`` batch means of steps ``0..time-1``.
            variance: ``(time, features)`` biased batch variances.
            count: Scalar, ``(time,)`` or ``(time, features)``: values
                behind each statistic.
        """
        steps = self.moving_mean.shape[0]
        count = ops.cast(count, mean.dtype)
        if len(count.shape) == 1:
            count = ops.expand_dims(count, -1)
        count = ops.broadcast_to(count, ops.shape(mean))
        (mean, variance), count = spread_over_rows(
            (mean, variance), count, steps
        )
        super().update_moving_statistics(mean, variance, count)

    def get_config(self):
        return {**super().get_config(), "max_timesteps": self.max_timesteps}


@export
class RecurrentBatchNormalization(TimestepBatchNormalization):
    """`TimestepBatchNormalization` with the recurrent defaults.

    ``gamma`` starts at 0.1 and there is no ``beta`` (``center=False``), as
    recommended for the normalized terms inside an LSTM by Cooijmans et al.
    (2016), who argue that with ``gamma = 1`` the normalized
    pre-activations saturate ``tanh`` and block the gradient flow (the
    recurrent batch normalization tutorial measures this: ``tanh``
    saturates, but at initialization the gradient does not vanish faster
    than with 0.1); the bias of the recurrent layer plays the role of
    ``beta``. Any argument can still be overridden.

    Args:
        gamma_initializer (str | Initializer | None): Initializer for
            ``gamma``; ``None`` means the constant 0.1.
        center (bool): If ``True``, add the learned offset ``beta``.
        **kwargs: The arguments of `TimestepBatchNormalization`.

    Reference:
        Cooijmans et al., "Recurrent Batch Normalization", ICLR 2017.
    """

    def __init__(
        self,
        gamma_initializer=None,
        center=False,
        **kwargs,
    ):
        super().__init__(
            gamma_initializer=(
                initializers.Constant(0.1)
                if gamma_initializer is None
                else gamma_initializer
            ),
            center=center,
            **kwargs,
        )
