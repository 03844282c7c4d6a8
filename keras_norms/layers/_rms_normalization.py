"""RMSNormalization: a drop-in for keras.layers.RMSNormalization."""

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_axis_type
from keras_norms._validation import check_bool
from keras_norms._validation import check_positive_float
from keras_norms._validation import get_keras_object
from keras_norms._validation import resolve_axes


@export
class RMSNormalization(keras.layers.Layer):
    r"""Root mean square normalization (Zhang & Sennrich, 2019).

    A drop-in replacement for `keras.layers.RMSNormalization` (same
    arguments and weight name, ``scale``): each sample is divided by the
    root mean square of its values over ``axis`` and multiplied by a
    learned scale. No mean is subtracted and there is no offset.

    $$y = \frac{x}{\sqrt{\frac{1}{n}\sum_{i} x_i^2 + \epsilon}} \, s$$

    ``scale`` has the shape of the input at ``axis``. With
    ``unit_offset=True`` the output is multiplied by ``1 + scale`` instead
    and ``scale`` starts at zero, the parameterization of Gemma's RMS
    normalization (weight decay then pulls the multiplier towards 1, not
    0), whose checkpoints store that zero-centred ``scale``.

    Unlike Keras's layer, the mean square is computed in at least float32
    from the input as it comes: under ``mixed_float16`` an input of 7e4
    (above float16's 65504) gives a finite output where Keras's layer,
    which first rounds the input to float16, gives NaN. The output has
    the layer's compute dtype.

    Args:
        axis (int | Sequence[int]): Int or list of ints, the axes normalized
            over (usually the features axis ``-1``). The batch axis is not
            allowed.
        epsilon (float): Positive float added to the mean square.
        unit_offset (bool): If ``True``, multiply by ``1 + scale`` (Gemma's
            form) and initialize ``scale`` to zeros by default.
        scale_initializer (str | Initializer | None): Initializer for ``scale``;
            ``None`` means ``"ones"``, or ``"zeros"`` with ``unit_offset=True``.
        scale_regularizer (str | Regularizer | None): Optional regularizer for
            ``scale``.
        scale_constraint (str | Constraint | None): Optional constraint for
            ``scale``.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        Any, rank >= 2; the sizes at ``axis`` must be known. Output shape:
        same as input. A mask passes through unchanged.

    Reference:
        Zhang & Sennrich, "Root Mean Square Layer Normalization",
        NeurIPS 2019.

    Examples:
        >>> import keras, numpy as np, keras_norms
        >>> layer = keras_norms.layers.RMSNormalization(unit_offset=True)
        >>> x = np.array([[3.0, -4.0]], "float32")  # mean square 12.5
        >>> y = keras.ops.convert_to_numpy(layer(x))
        >>> tuple(layer.scale.shape), np.round(y * np.sqrt(12.5), 4).tolist()
        ((2,), [[3.0, -4.0]])
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-6,
        unit_offset=False,
        scale_initializer=None,
        scale_regularizer=None,
        scale_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = check_axis_type(axis, allow_sequence=True)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.unit_offset = check_bool("unit_offset", unit_offset)
        if scale_initializer is None:
            scale_initializer = "zeros" if self.unit_offset else "ones"
        for name, value, module in (
            ("scale_initializer", scale_initializer, initializers),
            ("scale_regularizer", scale_regularizer, regularizers),
            ("scale_constraint", scale_constraint, constraints),
        ):
            setattr(self, name, get_keras_object(name, value, module))
        self.supports_masking = True
        # The input reaches the mean square unrounded (see the docstring).
        self.autocast = False
        self.scale = None

    def build(self, input_shape):
        axes = resolve_axes(self.axis, input_shape, self.name)
        self.scale = self.add_weight(
            shape=tuple(input_shape[a] for a in axes),
            name="scale",
            initializer=self.scale_initializer,
            regularizer=self.scale_regularizer,
            constraint=self.scale_constraint,
            trainable=True,
            autocast=False,
        )

    def call(self, inputs):
        scale = self.scale
        if self.unit_offset:
            scale = ops.add(scale, 1.0)
        # The axes are resolved against each call's rank, as Keras's layer
        # does, so a negative axis keeps meaning the same feature axis.
        outputs = norm_ops.rms_normalization(
            inputs, scale=scale, axis=self.axis, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "unit_offset": self.unit_offset,
            "scale_initializer": initializers.serialize(self.scale_initializer),
            "scale_regularizer": regularizers.serialize(self.scale_regularizer),
            "scale_constraint": constraints.serialize(self.scale_constraint),
        }
