"""What the normalization layers share: gamma/beta weights and their config."""

import keras
from keras import constraints
from keras import initializers
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
        self.gamma = None
        self.beta = None

    def build_affine_weights(self, shape):
        """Create ``gamma`` (if scale) and ``beta`` (if center) of ``shape``."""
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if self.center:
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
