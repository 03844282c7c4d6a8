"""LayerNormalization: a drop-in for keras.layers.LayerNormalization."""

from keras import ops

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_axis_type
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
        axis: Int or list of ints, the axes normalized over (usually the
            features axis ``-1``). The batch axis is not allowed.
        epsilon: Positive float added to the variance.
        center: If ``True``, add the learned offset ``beta``.
        scale: If ``True``, multiply by the learned scale ``gamma``.
        beta_initializer: Initializer for ``beta``.
        gamma_initializer: Initializer for ``gamma``.
        beta_regularizer: Optional regularizer for ``beta``.
        gamma_regularizer: Optional regularizer for ``gamma``.
        beta_constraint: Optional constraint for ``beta``.
        gamma_constraint: Optional constraint for ``gamma``.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

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
        # Keras configs carry `rms_scaling` (deprecated there, and it scales
        # by the variance, not the RMS); accept False so they load here.
        rms_scaling = kwargs.pop("rms_scaling", False)
        if rms_scaling:
            raise ValueError(
                "Argument `rms_scaling` is not supported; use "
                "keras.layers.RMSNormalization for RMS normalization. "
                f"Received: rms_scaling={rms_scaling!r}"
            )
        super().__init__(**kwargs)
        self.axis = check_axis_type(axis, allow_sequence=True)
        self.epsilon = check_positive_float("epsilon", epsilon)

    def build(self, input_shape):
        self._axes = resolve_axes(self.axis, input_shape, self.name)
        self.build_affine_weights(tuple(input_shape[a] for a in self._axes))

    def call(self, inputs):
        outputs = norm_ops.layer_normalization(
            inputs,
            axis=self._axes,
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
        }
