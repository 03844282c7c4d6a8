"""PReLU: the parametric ReLU of He et al. (2015), slope initialised to 0.25."""

import numbers

import keras
from keras import constraints
from keras import initializers
from keras import regularizers
from keras.layers import InputSpec

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_finite_float
from keras_norms._validation import check_int_list
from keras_norms._validation import check_min_rank
from keras_norms._validation import get_keras_object
from keras_norms._validation import non_batch_axis


@export
class PReLU(keras.layers.Layer):
    r"""Parametric ReLU with a learned negative slope (He et al., 2015).

    $$f(x) = \max(0, x) + a \min(0, x)$$

    Like `keras.layers.PReLU` (same arguments and weight name ``alpha``),
    but the slope starts at ``0.25`` as in the paper (and PyTorch), where
    Keras starts it at 0 (a plain ReLU at initialization).

    The weight ``alpha`` has the input's shape without the batch axis,
    with size 1 along each of ``shared_axes``: by default one slope per
    element, as in Keras. The paper's *channel-wise* PReLU for images is
    ``shared_axes=[1, 2]`` (channels-last, one slope per channel) and its
    *channel-shared* variant shares every non-batch axis (one slope).

    Args:
        alpha_initializer (float | str | Initializer): Initializer for the
            slopes; a float means a constant (default ``0.25``).
        alpha_regularizer (str | Regularizer | None): Optional regularizer for
            the slopes. (The paper does not use weight decay on them.)
        alpha_constraint (str | Constraint | None): Optional constraint for the
            slopes.
        shared_axes (int | Sequence[int] | None): Int or list of ints, the axes
            along which one slope is shared (e.g. ``[1, 2]`` for the spatial
            axes of channels-last images). Negative axes count from the end. The
            batch axis is always shared.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        Any, rank >= 2; the non-shared axes must have a known size.
        Output shape: same as input.

    Reference:
        He, Zhang, Ren & Sun, "Delving Deep into Rectifiers: Surpassing
        Human-Level Performance on ImageNet Classification", ICCV 2015,
        Section 2.1.

    Examples:
        >>> import keras, numpy as np, keras_norms
        >>> layer = keras_norms.layers.PReLU(shared_axes=[1, 2])
        >>> y = keras.ops.convert_to_numpy(layer(np.full((1, 4, 4, 3), -2.0)))
        >>> tuple(layer.alpha.shape), float(y[0, 0, 0, 0])
        ((1, 1, 3), -0.5)
    """

    def __init__(
        self,
        alpha_initializer=0.25,
        alpha_regularizer=None,
        alpha_constraint=None,
        shared_axes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(alpha_initializer, numbers.Real) and not isinstance(
            alpha_initializer, bool
        ):
            alpha_initializer = initializers.Constant(
                check_finite_float("alpha_initializer", alpha_initializer)
            )
        self.alpha_initializer = get_keras_object(
            "alpha_initializer", alpha_initializer, initializers
        )
        self.alpha_regularizer = get_keras_object(
            "alpha_regularizer", alpha_regularizer, regularizers
        )
        self.alpha_constraint = get_keras_object(
            "alpha_constraint", alpha_constraint, constraints
        )
        self.shared_axes = (
            None
            if shared_axes is None
            else check_int_list("shared_axes", shared_axes)
        )
        self.supports_masking = True
        self.alpha = None

    def build(self, input_shape):
        check_min_rank(input_shape, 2, self.name)
        ndim = len(input_shape)
        shared = {
            non_batch_axis(
                axis,
                ndim,
                f"layer '{self.name}'",
                name="shared_axes",
                received=self.shared_axes,
            )
            for axis in self.shared_axes or []
        }
        param_shape = [
            1 if axis in shared else input_shape[axis]
            for axis in range(1, ndim)
        ]
        if None in param_shape:
            raise ValueError(
                f"Layer '{self.name}' needs a known size for every axis "
                "that has its own slopes; share the others with "
                f"`shared_axes`. Received: input_shape={tuple(input_shape)}, "
                f"shared_axes={self.shared_axes}"
            )
        self.alpha = self.add_weight(
            shape=tuple(param_shape),
            name="alpha",
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )
        self.input_spec = InputSpec(
            ndim=ndim,
            axes={
                axis: input_shape[axis]
                for axis in range(1, ndim)
                if axis not in shared
            },
        )

    def call(self, inputs):
        return norm_ops.prelu(inputs, self.alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
