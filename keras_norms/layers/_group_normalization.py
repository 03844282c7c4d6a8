"""GroupNormalization: a drop-in for keras.layers.GroupNormalization."""

from keras import ops
from keras.layers import InputSpec

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_axis_type
from keras_norms._validation import check_groups
from keras_norms._validation import check_min_rank
from keras_norms._validation import check_positive_float
from keras_norms._validation import resolve_axes
from keras_norms._validation import resolve_groups
from keras_norms.layers._base import AffineNormalization
from keras_norms.layers._base import expand_mask


@export
class GroupNormalization(AffineNormalization):
    r"""Group normalization (Wu & He, 2018).

    A drop-in replacement for `keras.layers.GroupNormalization`. The
    channels are split into ``groups`` contiguous groups and each sample is
    normalized with the mean and variance of each group (over the group's
    channels and all other non-batch axes). It does not depend on the batch
    size, which makes it the usual choice for small per-device batches.

    ``groups=1`` equals `LayerNormalization` over all non-batch axes;
    ``groups=-1`` (one channel per group) is instance normalization.
    ``gamma`` and ``beta`` are per channel.

    Args:
        groups (int): Positive int dividing the number of channels, or ``-1``
            for instance normalization.
        axis (int): Integer, the channel axis.
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

    Input shape:
        Any, rank >= 2. Output shape: same as input.

    Reference:
        Wu & He, "Group Normalization", ECCV 2018.

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.GroupNormalization(groups=2)
        >>> tuple(layer(np.ones((1, 4, 4, 6), "float32")).shape)
        (1, 4, 4, 6)
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, **kwargs):
        groups = check_groups(groups)
        super().__init__(**kwargs)
        self.groups = groups
        self.axis = check_axis_type(axis)
        self.epsilon = check_positive_float("epsilon", epsilon)

    def build(self, input_shape):
        check_min_rank(input_shape, 2, self.name)
        (self._channel_axis,) = resolve_axes(self.axis, input_shape, self.name)
        channels = input_shape[self._channel_axis]
        self._groups = resolve_groups(
            self.groups, channels, f"layer '{self.name}'"
        )
        self.build_affine_weights((channels,))
        self.input_spec = InputSpec(
            ndim=len(input_shape), axes={self._channel_axis: channels}
        )

    def call(self, inputs):
        outputs = norm_ops.group_normalization(
            inputs,
            self._groups,
            axis=self._channel_axis,
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
        }


@export
class InstanceNormalization(GroupNormalization):
    r"""Instance normalization (Ulyanov, Vedaldi & Lempitsky, 2016).

    Each sample is normalized per channel, with the mean and variance of
    that channel over all other non-batch axes (the spatial positions, or
    the time steps):

    $$y_{nc\ldots} = \gamma_c \frac{x_{nc\ldots} - \mu_{nc}}
        {\sqrt{\sigma^2_{nc} + \epsilon}} + \beta_c$$

    It is `GroupNormalization` with one channel per group (``groups=-1``),
    and shares its implementation. It takes the arguments of TF-Addons'
    ``tfa.layers.InstanceNormalization``: its configs load here unchanged.
    They carry ``groups``, -1 or (saved from a built layer) the number of
    channels; both are accepted, any other value is an error (TF-Addons
    overwrote it with a warning).

    Unlike `GroupNormalization` (which, like Keras's, passes a mask on
    unused), a Keras mask is honoured: padded time steps of a sequence do
    not enter its statistics (they are normalized with them).

    Args:
        axis (int): Integer, the channel axis.
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
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...),
            and ``groups`` as TF-Addons' configs carry it (-1 or the
            number of channels).

    Input shape:
        Any, rank >= 3 (a channel axis and at least one axis to take the
        statistics over). Output shape: same as input.

    Reference:
        Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing
        Ingredient for Fast Stylization", arXiv:1607.08022.

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.InstanceNormalization()
        >>> tuple(layer(np.ones((1, 4, 4, 3), "float32")).shape)
        (1, 4, 4, 3)
    """

    def __init__(self, axis=-1, epsilon=1e-3, **kwargs):
        # TF-Addons' configs carry `groups`: -1, or, once its layer was
        # built, the number of channels. Either is accepted (checked at
        # build); the config written here says -1.
        self._requested_groups = check_groups(kwargs.pop("groups", -1))
        super().__init__(groups=-1, axis=axis, epsilon=epsilon, **kwargs)

    def build(self, input_shape):
        # Rank 2 would normalize each value by itself (output beta).
        check_min_rank(input_shape, 3, self.name)
        (channel_axis,) = resolve_axes(self.axis, input_shape, self.name)
        channels = input_shape[channel_axis]
        if self._requested_groups not in (-1, channels):
            raise ValueError(
                f"InstanceNormalization of layer '{self.name}' has one "
                "channel per group: argument `groups` can only be -1 or "
                f"the number of channels ({channels}), as in TF-Addons "
                "configs; for other groupings use GroupNormalization. "
                f"Received: groups={self._requested_groups!r}"
            )
        super().build(input_shape)

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        ndim = len(inputs.shape)
        channel_axes = (0, self._channel_axis)
        outputs, _, _, _ = norm_ops.standardize(
            inputs,
            tuple(a for a in range(ndim) if a not in channel_axes),
            mask=expand_mask(mask, inputs, self.name),
            offset=norm_ops.broadcast_parameter(
                self.beta, ndim, self._channel_axis
            ),
            scale=norm_ops.broadcast_parameter(
                self.gamma, ndim, self._channel_axis
            ),
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)
