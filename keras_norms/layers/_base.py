"""What the normalization layers share: gamma/beta weights and their config."""

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_norms._validation import check_bool
from keras_norms._validation import get_keras_object


class AffineNormalization(keras.layers.Layer):
    """Base of the normalization layers with a learned scale and offset.

    Holds the ``center`` / ``scale`` switches and the initializers,
    regularizers and constraints of ``beta`` and ``gamma``, creates the two
    weights (float32 whatever the dtype policy, as Keras does) and
    serializes those arguments.
    """

    def __init__(
        self,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.center = check_bool("center", center)
        self.scale = check_bool("scale", scale)
        for name, value, module in (
            ("beta_initializer", beta_initializer, initializers),
            ("gamma_initializer", gamma_initializer, initializers),
            ("beta_regularizer", beta_regularizer, regularizers),
            ("gamma_regularizer", gamma_regularizer, regularizers),
            ("beta_constraint", beta_constraint, constraints),
            ("gamma_constraint", gamma_constraint, constraints),
        ):
            setattr(self, name, get_keras_object(name, value, module))
        self.supports_masking = True
        # Inputs keep their dtype: under a mixed policy a float32 input
        # reaches the statistics in float32 rather than rounded to float16
        # (which overflows above 65504), as Keras's LayerNormalization and
        # GroupNormalization do. Outputs are cast to the compute dtype.
        self.autocast = False
        self.gamma = None
        self.beta = None

    def build_affine_weights(self, shape, scale=None, center=None):
        """Create ``gamma`` (if scale) and ``beta`` (if center) of ``shape``;
        ``scale`` / ``center`` default to the layer's own switches."""
        scale = self.scale if scale is None else scale
        center = self.center if center is None else center
        if scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


def expand_mask(mask, inputs, layer_name):
    """A Keras mask as a boolean tensor that broadcasts against ``inputs``.

    Keras's convention, followed by every layer here: a mask has (or
    broadcasts to) the input's shape without its *last* axis (what
    ``Masking`` and ``Embedding(mask_zero=True)`` produce) and is expanded
    at the end, whatever the layer's channel axis. Other shapes are an
    error here, not a broadcasting error deep in a backend (or, where the
    sizes happen to fit, the wrong positions masked).
    """
    expected = tuple(inputs.shape[:-1])
    received = tuple(mask.shape)
    fits = len(received) == len(expected) and all(
        m is None or e is None or m in (1, e)
        for m, e in zip(received, expected, strict=True)
    )
    if not fits:
        raise ValueError(
            f"The mask of layer '{layer_name}' must have (or broadcast to) "
            f"the input's shape without its last axis, {expected}, as "
            "Keras's masks do. "
            f"Received: mask.shape={received}, "
            f"inputs.shape={tuple(inputs.shape)}"
        )
    return ops.expand_dims(ops.cast(mask, "bool"), -1)
