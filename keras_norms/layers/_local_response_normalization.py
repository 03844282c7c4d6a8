"""LocalResponseNormalization: AlexNet's LRN, across or within channels."""

import keras
from keras import ops

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_axis_type
from keras_norms._validation import check_non_negative_float
from keras_norms._validation import check_non_negative_int
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_positive_int
from keras_norms._validation import resolve_axes
from keras_norms.ops._local_response import check_local_response_arguments
from keras_norms.ops._local_response import check_local_response_rank


@export
class LocalResponseNormalization(keras.layers.Layer):
    r"""Local response normalization (Krizhevsky et al., 2012).

    With ``mode="across_channels"`` (the AlexNet layer) each activation is
    divided by the energy of its ``size`` neighbouring channels at the
    same position:

    $$b_i = a_i \Big/ \Big(k + \frac{\alpha}{n}
    \sum_{j=i-\lfloor n/2 \rfloor}^{i+\lfloor (n-1)/2 \rfloor}
    a_j^2\Big)^\beta$$

    (``n = size``, channels beyond the ends count as zero). ``alpha`` has
    the Caffe/PyTorch meaning, *divided by* ``size``: the layer computes
    exactly ``torch.nn.functional.local_response_norm(x, size, alpha, beta,
    k)`` and Caffe's ``LRN`` layer. The window is centred for odd
    ``size``; an even ``size`` is accepted as in PyTorch, with
    ``size // 2`` channels before ``i`` and ``size // 2 - 1`` after (Caffe
    rejects even sizes).

    The AlexNet paper and TensorFlow write the formula without the ``1 /
    n`` (and TensorFlow with a radius ``r``, ``n = 2r + 1``): build the
    layer with `from_alexnet` or `from_tensorflow` to use their numbers.

    With ``mode="within_channel"`` (Caffe's ``WITHIN_CHANNEL``) the sum runs
    over a ``size x size`` spatial window centred on the position, within
    the channel, zero padded, and ``alpha`` is divided by ``size^2``:
    ``b = a / (k + alpha / size^2 * sum a^2)^beta``. Caffe fixes ``k = 1``
    (the default here). Inputs of rank 4 are Caffe's case; rank 3 and 5
    use a ``size``-wide 1-D and ``size^3`` 3-D window (``alpha / size`` and
    ``alpha / size^3``). ``size`` must be odd in this mode.

    The layer has no weights. It computes in at least float32 and returns
    the input's dtype.

    Args:
        size (int): Positive int, the window width ``n``.
        alpha (float): Non-negative float, the scale (Caffe/PyTorch meaning:
            divided by the window size).
        beta (float): Float, the exponent.
        k (float): Positive float, the additive constant (AlexNet uses 2).
        mode (str): ``"across_channels"`` or ``"within_channel"``.
        axis (int): Int, the channel axis (``-1`` for channels-last, ``1`` for
            channels-first inputs).
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        ``"across_channels"``: any rank >= 2 ``(batch, ..., channels)``.
        ``"within_channel"``: rank 3, 4 or 5 (batch, one to three spatial
        axes, channels). Output shape: same as input.

    Reference:
        Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
        Convolutional Neural Networks", NeurIPS 2012, Section 3.3.
        Jia et al., "Caffe: Convolutional Architecture for Fast Feature
        Embedding", 2014 (the ``LRN`` layer and its two modes).

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.LocalResponseNormalization.from_alexnet()
        >>> layer.size, layer.k, round(layer.alpha, 6)
        (5, 2.0, 0.0005)
        >>> tuple(layer(np.ones((2, 6, 6, 16), "float32")).shape)
        (2, 6, 6, 16)
    """

    def __init__(
        self,
        size=5,
        alpha=1e-4,
        beta=0.75,
        k=1.0,
        mode="across_channels",
        axis=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        (
            self.size,
            self.alpha,
            self.beta,
            self.k,
            self.mode,
        ) = check_local_response_arguments(size, alpha, beta, k, mode)
        self.axis = check_axis_type(axis)
        self.supports_masking = True
        # The sum of squares is taken in float32 even under a mixed policy
        # (in float16 it overflows for activations above 256).
        self.autocast = False

    @classmethod
    def from_tensorflow(
        cls, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, **kwargs
    ):
        """The layer computing ``tf.nn.local_response_normalization``.

        TensorFlow sums the squares over ``[d - depth_radius, d +
        depth_radius]`` and does not divide ``alpha`` by the window size:
        ``b = a / (bias + alpha * sqr_sum) ** beta``. So ``size = 2 *
        depth_radius + 1``, ``k = bias`` and ``alpha`` is multiplied by
        ``size``. The defaults are TensorFlow's.

        Args:
            depth_radius: Non-negative int, the half-width ``r``.
            bias: Positive float, TensorFlow's ``bias`` (our ``k``).
            alpha: Non-negative float, TensorFlow's ``alpha``.
            beta: Float, the exponent.
            **kwargs: Other constructor arguments (``axis``, ``name``...).
        """
        depth_radius = check_non_negative_int("depth_radius", depth_radius)
        alpha = check_non_negative_float("alpha", alpha)
        # Checked here too, so that an error names TensorFlow's argument.
        bias = check_positive_float("bias", bias)
        size = 2 * depth_radius + 1
        return cls(size=size, alpha=alpha * size, beta=beta, k=bias, **kwargs)

    @classmethod
    def from_alexnet(cls, k=2.0, n=5, alpha=1e-4, beta=0.75, **kwargs):
        """The layer with the AlexNet paper's parameters (Section 3.3).

        The paper writes ``b_i = a_i / (k + alpha * sum a_j^2) ** beta``
        over ``j`` from ``i - n/2`` to ``i + n/2``, without dividing
        ``alpha`` by ``n``; so ``alpha`` is multiplied by ``n`` here. The
        defaults are the paper's (``k=2, n=5, alpha=1e-4, beta=0.75``).
        ``n`` must be odd (the paper's window ``i - n/2 .. i + n/2`` has
        ``n`` channels only then).

        Args:
            k: Positive float, the additive constant.
            n: Positive odd int, the number of adjacent channels.
            alpha: Non-negative float, the paper's ``alpha``.
            beta: Float, the exponent.
            **kwargs: Other constructor arguments (``axis``, ``name``...).
        """
        n = check_positive_int("n", n)
        if n % 2 == 0:
            raise ValueError(
                "Argument `n` must be odd: the AlexNet window i - n/2 .. "
                f"i + n/2 spans n channels only for odd n. Received: n={n}"
            )
        alpha = check_non_negative_float("alpha", alpha)
        return cls(size=n, alpha=alpha * n, beta=beta, k=k, **kwargs)

    def build(self, input_shape):
        check_local_response_rank(
            tuple(input_shape), self.mode, owner=f"Layer '{self.name}'"
        )
        (self._channel_axis,) = resolve_axes(self.axis, input_shape, self.name)

    def call(self, inputs):
        outputs = norm_ops.local_response_norm(
            inputs,
            size=self.size,
            alpha=self.alpha,
            beta=self.beta,
            k=self.k,
            mode=self.mode,
            axis=self._channel_axis,
        )
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "mode": self.mode,
            "axis": self.axis,
        }
