"""LayerNormalization: a drop-in for keras.layers.LayerNormalization."""

import warnings

from keras import ops

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_axis_type
from keras_norms._validation import check_bool
from keras_norms._validation import check_positive_float
from keras_norms._validation import resolve_axes
from keras_norms.layers._base import AffineNormalization


@export
class LayerNormalization(AffineNormalization):
    r"""Layer normalization (Ba, Kiros & Hinton, 2016).

    A drop-in replacement for `keras.layers.LayerNormalization`. Each sample
    is normalized with its own mean and variance over ``axis``, so the
    result does not depend on the batch: it works for batch size 1 and
    inside recurrent networks.

    $$y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta$$

    ``gamma`` and ``beta`` have the shape of the input at ``axis``.

    Args:
        axis (int | Sequence[int]): Int or list of ints, the axes normalized
            over (usually the features axis ``-1``). The batch axis is not
            allowed.
        epsilon (float): Positive float added to the variance.
        center (bool): If ``True``, add the learned offset ``beta``.
        scale (bool): If ``True``, multiply by the learned scale ``gamma``.
        beta_initializer (str | Initializer): Initializer for ``beta``.
        gamma_initializer (str | Initializer): Initializer for ``gamma``.
        beta_regularizer (str | Regularizer | None): Optional regularizer for
            ``beta``.
        gamma_regularizer (str | Regularizer | None): Optional regularizer for
            ``gamma``.
        beta_constraint (str | Constraint | None): Optional constraint for
            ``beta``.
        gamma_constraint (str | Constraint | None): Optional constraint for
            ``gamma``.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).
            Keras's deprecated ``rms_scaling=True`` is accepted, so Keras
            configs load, with Keras's numbers (``x / sqrt(variance +
            epsilon) * gamma``, no ``beta``) and a ``FutureWarning``; for
            RMS normalization use an RMS layer instead.

    Input shape:
        Any, rank >= 2. Output shape: same as input.

    Reference:
        Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450.

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.LayerNormalization()
        >>> tuple(layer(np.ones((2, 3), "float32")).shape)
        (2, 3)
    """

    def __init__(self, axis=-1, epsilon=1e-3, **kwargs):
        # Keras's deprecated `rms_scaling` (in Keras configs): it scales by
        # the variance, not the RMS. Accepted with Keras's exact numbers.
        rms_scaling = check_bool(
            "rms_scaling", kwargs.pop("rms_scaling", False)
        )
        if rms_scaling:
            warnings.warn(
                "LayerNormalization(rms_scaling=True) is deprecated, as in "
                "Keras: it computes x / sqrt(variance + epsilon) * gamma "
                "(the variance, not the root mean square, and no beta). For "
                "RMS normalization use keras.layers.RMSNormalization.",
                FutureWarning,
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.axis = check_axis_type(axis, allow_sequence=True)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.rms_scaling = rms_scaling

    def build(self, input_shape):
        self._axes = resolve_axes(self.axis, input_shape, self.name)
        shape = tuple(input_shape[a] for a in self._axes)
        if self.rms_scaling:  # Keras's weights: gamma always, never beta
            self.build_affine_weights(shape, scale=True, center=False)
        else:
            self.build_affine_weights(shape)

    def call(self, inputs):
        if self.rms_scaling:
            outputs = self._scale_by_variance(inputs)
        else:
            outputs = norm_ops.layer_normalization(
                inputs,
                axis=self._axes,
                offset=self.beta,
                scale=self.gamma,
                epsilon=self.epsilon,
            )
        return ops.cast(outputs, self.compute_dtype)

    def _scale_by_variance(self, inputs):
        """Keras's ``rms_scaling=True``: ``x / sqrt(var + eps) * gamma``."""
        ndim = len(inputs.shape)
        _, variance = norm_ops.moments(inputs, self._axes, keepdims=True)
        outputs = ops.cast(inputs, variance.dtype) * ops.rsqrt(
            variance + self.epsilon
        )
        gamma = norm_ops.broadcast_parameter(self.gamma, ndim, self._axes)
        return outputs * ops.cast(gamma, outputs.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "rms_scaling": self.rms_scaling,
        }
