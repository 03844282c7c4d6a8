"""WeightNormalization: a wrapper reparametrizing a kernel as g * v / ||v||."""

import math

from keras import ops

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._kernel_layers import KERNEL_LAYER_NAMES
from keras_norms._kernel_layers import kernel_output_axis
from keras_norms._kernel_layers import output_channel_axis
from keras_norms._validation import check_bool
from keras_norms.layers._kernel_wrapper import KernelWrapper
from keras_norms.ops._folding import kernel_output_axes

# Added to the variance of the pre-activations in the data-dependent
# initialization, so a unit that is constant on the first batch gets a
# large but finite scale instead of a division by zero.
DATA_INIT_EPSILON = 1e-6


@export
class WeightNormalization(KernelWrapper):
    r"""Weight normalization of a Dense or convolution layer.

    Reparametrizes the kernel of the wrapped layer as

    $$w = g \, \frac{v}{\lVert v \rVert}$$

    with one scale $g_c$ per output unit $c$ and the norm taken over all
    other kernel axes (for ``Dense``: the inputs; for ``Conv2D``: the
    kernel window and the input channels), so the length of each unit's
    weight vector is learned by $g$ and its direction by $v$
    (Salimans & Kingma 2016). The wrapped layer then computes as usual,
    ``activation(inputs (*) w + bias)``, so its activation is applied after
    the reparametrized linear operation.

    The weights:

    - ``v`` is the wrapped layer's own ``kernel`` variable (it keeps its
      name, initializer, regularizer and constraint); `v` is an alias.
    - ``g``: trainable, one per output unit, initialized to ``||v||`` so
      that before any data initialization the wrapper computes exactly what
      the wrapped layer computed.
    - With ``data_init=True`` also ``g_offset``, ``bias_offset`` and
      ``initialized`` (non-trainable). The scale actually used is
      ``g + g_offset`` and the bias ``bias + bias_offset``; the offsets are
      zero until the data-dependent initialization sets them, once, on the
      first call with ``training=True``: the pre-activations
      ``t = x (*) w`` (zero bias) of that batch get per-unit mean
      $\mu_t$ and variance $\sigma_t^2$ and the effective parameters become
      ``g / sqrt(var + eps)`` and ``-mean / sqrt(var + eps)``, so the
      pre-activations of that batch have zero mean and unit variance.
      ``initialized`` (0.0, then 1.0) records that this happened; it is
      saved with the model. The result is kept in non-trainable offsets
      rather than written into ``g`` and ``bias`` because JAX's stateless
      training step (``model.fit``) keeps the updates of non-trainable
      variables only; the gradient of the loss with respect to ``g`` and
      ``bias`` is the same either way. Use `effective_weights` for the
      kernel and bias the layer computes with.

    Args:
        layer (Layer): The layer to wrap: ``keras.layers.Dense``, ``Conv1D``,
            ``Conv2D``, ``Conv3D``, ``Conv1DTranspose``, ``Conv2DTranspose``,
            ``Conv3DTranspose``, ``DepthwiseConv1D`` or ``DepthwiseConv2D``
            (or a subclass of one). Its call must read its weights through
            its ``kernel`` and ``bias`` variables.
        data_init (bool): If ``True`` (default), initialize ``g`` and the bias
            from the first training batch as described above. Needs the wrapped
            layer to have a bias (``use_bias=True``).
        **kwargs: Base layer keyword arguments (``name``, ``dtype``, ...).

    Call arguments:
        - inputs: The wrapped layer's input.
        - training: The data-dependent initialization happens on the first
              call with ``training=True`` (when ``data_init=True`` and the
              wrapper is trainable).

    Input shape:
        That of the wrapped layer. Output shape: that of the wrapped layer.

    Reference:
        Salimans & Kingma, "Weight Normalization: A Simple
        Reparameterization to Accelerate Training of Deep Neural Networks",
        NeurIPS 2016.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> layer = keras_norms.layers.WeightNormalization(
        ...     keras.layers.Dense(4), data_init=True)
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (256, 8))
        >>> y = keras.ops.convert_to_numpy(layer(x.astype("float32"),
        ...                                      training=True))
        >>> bool(np.allclose(y.mean(axis=0), 0.0, atol=1e-4))
        True
    """

    WRAPPABLE = f"a Keras layer with a kernel ({KERNEL_LAYER_NAMES})"

    def __init__(self, layer, data_init=True, **kwargs):
        super().__init__(layer, **kwargs)  # checks that it is a layer
        if kernel_output_axis(layer) is None:
            raise ValueError(
                "WeightNormalization can wrap only a layer with a kernel "
                f"whose layout it knows ({KERNEL_LAYER_NAMES}). Received: "
                f"layer '{layer.name}' of class {type(layer).__name__}"
            )
        data_init = check_bool("data_init", data_init)
        if data_init and not layer.use_bias:
            raise ValueError(
                "The data-dependent initialization of WeightNormalization "
                "centers the pre-activations with the bias, but layer "
                f"'{layer.name}' has use_bias=False. Use use_bias=True or "
                f"data_init=False. Received: data_init={data_init!r}"
            )
        self.data_init = data_init
        self._output_axis = kernel_output_axis(layer)
        self.g = None
        self.g_offset = None
        self.bias_offset = None
        self.initialized = None

    def build(self, input_shape):
        super().build(input_shape)
        kernel = self.v
        units = math.prod(
            kernel.shape[axis]
            for axis in kernel_output_axes(self._output_axis, len(kernel.shape))
        )

        def kernel_norm_initializer(shape, dtype=None):
            norm = norm_ops.kernel_norm(kernel, self._output_axis)
            return ops.cast(ops.reshape(norm, shape), dtype)

        self.g = self.add_weight(
            shape=(units,),
            name="g",
            initializer=kernel_norm_initializer,
            trainable=True,
            autocast=False,
        )
        if self.data_init:
            self.g_offset = self.add_weight(
                shape=(units,),
                name="g_offset",
                initializer="zeros",
                trainable=False,
                autocast=False,
            )
            self.bias_offset = self.add_weight(
                shape=(units,),
                name="bias_offset",
                initializer="zeros",
                trainable=False,
                autocast=False,
            )
            self.initialized = self.add_weight(
                shape=(),
                name="initialized",
                initializer="zeros",
                trainable=False,
                autocast=False,
            )

    def call(self, inputs, training=None):
        scale = ops.convert_to_tensor(self.g)
        bias = self.layer.bias
        if self.data_init:
            if training and self.trainable:
                g_offset, bias_offset = self._initialize_from_data(inputs)
            else:
                g_offset = ops.convert_to_tensor(self.g_offset)
                bias_offset = ops.convert_to_tensor(self.bias_offset)
            scale = scale + g_offset
            bias = ops.convert_to_tensor(bias) + bias_offset
        # The wrapped layer computes in its own dtype policy; the output is
        # in this layer's compute dtype, as its output spec says (Keras's
        # SpectralNormalization does the same).
        return ops.cast(
            self._call_wrapped(inputs, scale, bias), self.compute_dtype
        )

    def get_config(self):
        return {**super().get_config(), "data_init": self.data_init}

    @property
    def v(self):
        """The direction ``v``: the wrapped layer's ``kernel`` variable."""
        kernel = self._wrapped_weight("kernel")
        if kernel is not None:
            return kernel
        raise ValueError(
            f"Layer '{self.layer.name}' wrapped by WeightNormalization has no "
            "weight named 'kernel'; build it first."
        )

    def effective_weights(self):
        """The ``(kernel, bias)`` the layer currently computes with.

        ``kernel = (g + g_offset) * v / ||v||`` and ``bias = bias +
        bias_offset`` (without offsets when ``data_init=False``); ``bias``
        is ``None`` for a wrapped layer without bias. Handy to export the
        layer as a plain ``Dense`` / convolution for inference.
        """
        scale = ops.convert_to_tensor(self.g)
        bias = self.layer.bias
        if bias is not None:
            bias = ops.convert_to_tensor(bias)
        if self.data_init:
            scale = scale + self.g_offset
            bias = bias + self.bias_offset
        kernel = norm_ops.weight_normalization(self.v, scale, self._output_axis)
        return kernel, bias

    def _call_wrapped(self, inputs, scale, bias, linear=False):
        """The wrapped layer's call with kernel ``scale * v / ||v||`` and
        bias ``bias``, so gradients flow to ``g`` and ``v`` (see
        `KernelWrapper`). ``linear=True`` is the data initialization's
        pass: no activation, no losses."""
        kernel_variable = self.v
        replacements = [
            (
                kernel_variable,
                norm_ops.weight_normalization(
                    self._unrounded(kernel_variable), scale, self._output_axis
                ),
            )
        ]
        if self.layer.bias is not None:
            replacements.append((self.layer.bias, bias))
        return self._call_with_weights(inputs, replacements, linear=linear)

    def _initialize_from_data(self, inputs):
        """Data-dependent initialization, once; returns the offsets to use.

        Written with `keras.ops.cond` on the ``initialized`` flag and
        unconditional assignments, so it runs inside a compiled training
        step (tf.function, jax.jit) and on JAX lands in the non-trainable
        state the training step returns.
        """
        g = ops.convert_to_tensor(self.g)
        bias = ops.convert_to_tensor(self.layer.bias)

        def keep():
            return (
                ops.convert_to_tensor(self.g_offset),
                ops.convert_to_tensor(self.bias_offset),
            )

        def from_data():
            scale = g + ops.convert_to_tensor(self.g_offset)
            pre_activations = self._call_wrapped(
                inputs, scale, ops.zeros_like(bias), linear=True
            )
            ndim = len(pre_activations.shape)
            channel_axis = output_channel_axis(self.layer) % ndim
            axes = [axis for axis in range(ndim) if axis != channel_axis]
            mean, variance = norm_ops.moments(pre_activations, axes)
            inverse_std = ops.rsqrt(
                ops.cast(variance, g.dtype) + DATA_INIT_EPSILON
            )
            new_scale = scale * inverse_std
            new_bias = -ops.cast(mean, g.dtype) * inverse_std
            return new_scale - g, new_bias - bias

        initialized = ops.convert_to_tensor(self.initialized) > 0.5
        g_offset, bias_offset = ops.cond(initialized, keep, from_data)
        g_offset = ops.stop_gradient(g_offset)
        bias_offset = ops.stop_gradient(bias_offset)
        self.g_offset.assign(g_offset)
        self.bias_offset.assign(bias_offset)
        self.initialized.assign(1.0)
        return g_offset, bias_offset
