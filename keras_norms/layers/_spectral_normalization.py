"""SpectralNormalization: a wrapper dividing a kernel by its spectral norm."""

from keras import initializers
from keras import ops

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_positive_int
from keras_norms.layers._kernel_wrapper import KernelWrapper

# The wrapped layer's weight that is normalized, by the name it is looked
# up under, in this order (Keras's: a kernel, else an Embedding's table).
NORMALIZED_WEIGHT_NAMES = ("kernel", "embeddings")


@export
class SpectralNormalization(KernelWrapper):
    r"""Spectral normalization of a layer's kernel (Miyato et al. 2018).

    The wrapped layer computes with its kernel divided by an estimate of
    the kernel's largest singular value,

    $$\bar W = \frac{W}{\sigma(W)}, \qquad
    \sigma(W) = \max_{\lVert h \rVert = 1} \lVert W h \rVert,$$

    so that, for a ``Dense`` layer, $\lVert \bar W x - \bar W y \rVert \le
    \lVert x - y \rVert$. The kernel is viewed as a matrix of shape
    ``(-1, kernel.shape[-1])``, as in Keras (for a convolution this bounds
    the reshaped kernel, Miyato et al.'s approximation, not the
    convolution as an operator). $\sigma$ is estimated by power iteration
    with a vector $u$ kept between calls; see
    `keras_norms.ops.spectral_normalization` for the formulas.

    A drop-in for `keras.layers.SpectralNormalization`: the same arguments
    and config, and the same weights in the same order, so Keras's configs
    and saved weights load. What differs, on purpose:

    - The wrapped layer's ``kernel`` variable stays the raw $W$, the
      trainable weight; every call, in training or not, computes with
      $W / \sigma$ without writing it anywhere. Keras instead writes
      $W / \sigma$ into the kernel at each training call and computes with
      whatever the kernel holds (the raw $W$ before the first training
      call, at inference), so the gradient skips
      $\sigma$ and the optimizer updates the normalized kernel; on JAX,
      whose ``fit`` does not keep that write, Keras's layer trains
      differently than on the other backends. Here the kernel's gradient
      flows through $\sigma$.
    - ``vector_u`` moves only in training (``training=True`` and the layer
      trainable), by ``power_iterations`` steps, also inside JAX's
      stateless ``fit``. Any other call uses the stored $u$ as it is:
      $\sigma = \lVert W u \rVert / \lVert u \rVert$, which equals the
      training estimate once $u$ has converged, and which, like it, never
      exceeds the largest singular value.
    - A zero kernel gives zeros, never NaN, and leaves ``vector_u`` as it
      is (Keras skips the update in that case too).
    - Wrong arguments are rejected at construction (``power_iterations``
      must be an int >= 1; Keras accepts ``2.5`` or ``True``).

    Weights, in Keras's order:

    - ``kernel``: the wrapped layer's ``kernel`` (or an ``Embedding``'s
      ``embeddings``) variable, $W$, also reachable as this layer's
      ``kernel`` attribute.
    - ``vector_u``: non-trainable, shape ``(1, kernel.shape[-1])``,
      initialized from a truncated normal of standard deviation 0.02 as
      Keras's; it gets no gradient.
    - The wrapped layer's other weights (``bias``).

    Args:
        layer (Layer): The layer to wrap: any layer with a weight named
            ``kernel`` (``Dense``, the convolutions, ...) or ``embeddings``
            (``Embedding``), of rank >= 2, that its call reads through that
            variable. Checked when the wrapper is built.
        power_iterations (int): Positive int, the power-iteration steps per
            training call.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Call arguments:
        - inputs: The wrapped layer's input.
        - training: If ``True`` (and the layer is trainable), refine
              ``vector_u`` before normalizing.

    Input shape:
        That of the wrapped layer. Output shape: that of the wrapped
        layer, in this layer's compute dtype.

    Reference:
        Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for
        Generative Adversarial Networks", ICLR 2018.

    Examples:
        >>> import keras, numpy as np, keras_norms
        >>> layer = keras_norms.layers.SpectralNormalization(
        ...     keras.layers.Dense(3, use_bias=False), power_iterations=10)
        >>> x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
        >>> for _ in range(5):  # u converges over training calls
        ...     _ = layer(x, training=True)
        >>> kernel = keras.ops.convert_to_numpy(layer.normalized_kernel())
        >>> round(float(np.linalg.svd(kernel, compute_uv=False)[0]), 3)
        1.0
    """

    WRAPPABLE = "a Keras layer with a `kernel` or `embeddings` weight"

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        self.power_iterations = check_positive_int(
            "power_iterations", power_iterations
        )
        self.kernel = None
        self.vector_u = None

    def build(self, input_shape):
        super().build(input_shape)
        kernel = self._wrapped_weight(*NORMALIZED_WEIGHT_NAMES)
        if kernel is None or len(kernel.shape) < 2:
            raise ValueError(
                "SpectralNormalization needs a wrapped layer with a weight "
                "named 'kernel' or 'embeddings' of rank >= 2 (Dense, the "
                f"convolutions, Embedding, ...); layer '{self.layer.name}' "
                f"of class {type(self.layer).__name__} has none. Received: "
                f"layer={self.layer!r}"
            )
        self.vector_u = self.add_weight(
            shape=(1, kernel.shape[-1]),
            name="vector_u",
            initializer=initializers.TruncatedNormal(stddev=0.02),
            trainable=False,
            dtype=kernel.dtype,
            autocast=False,
        )
        # Tracked as this layer's own weight too, as Keras's layer does:
        # its own weights are then (kernel, vector_u), the order in which
        # Keras saves them and `get_weights` lists them.
        self.kernel = kernel

    def call(self, inputs, training=None):
        update = bool(training and self.trainable)
        result = norm_ops.spectral_normalization(
            self._unrounded(self.kernel),
            self.vector_u,
            power_iterations=self.power_iterations if update else 0,
        )
        if update:
            self.vector_u.assign(result.vector_u)
        outputs = self._call_with_weights(
            inputs, [(self.kernel, result.kernel)]
        )
        # The wrapped layer computes in its own dtype policy.
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "power_iterations": self.power_iterations,
        }

    def normalized_kernel(self):
        r"""The kernel the layer computes with at inference: $W / \sigma$
        with $\sigma$ from the stored ``vector_u``. Handy to export the
        layer as a plain one."""
        return norm_ops.spectral_normalization(
            self._unrounded(self.kernel), self.vector_u, power_iterations=0
        ).kernel
