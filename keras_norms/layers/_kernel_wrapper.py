"""The base of the wrappers that reparametrize their layer's kernel.

`WeightNormalization` and `SpectralNormalization` compute the wrapped
layer's own call with its kernel replaced by a function of it. The
replacement happens in a `keras.StatelessScope`, so nothing in the wrapped
layer is written: the trainable variable stays the raw kernel and its
gradient flows through the reparametrization, on every backend and inside
JAX's stateless training step.
"""

import keras

from keras_norms._validation import ArgumentTypeError


class KernelWrapper(keras.layers.Wrapper):
    """A `keras.layers.Wrapper` that calls its layer with substituted
    weights (see the module docstring).

    Subclasses set ``WRAPPABLE``, the layers they accept, for the message
    of a wrong ``layer`` argument.
    """

    WRAPPABLE = "a Keras layer"

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            # Both a TypeError and the ValueError keras.layers.Wrapper
            # raises.
            raise ArgumentTypeError(
                f"Argument `layer` of {type(self).__name__} must be "
                f"{self.WRAPPABLE}. Received: layer={layer!r}"
            )
        super().__init__(layer, **kwargs)
        # The wrapper's own weights are read in float32; the wrapped layer
        # autocasts the substituted kernel itself under a mixed policy.
        self.autocast = False

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from its argument.
        return super().from_config(dict(config), custom_objects)

    def _wrapped_weight(self, *names):
        """The wrapped layer's first weight with one of ``names``, tried in
        order (its own weights come before those of its sublayers), or
        ``None``."""
        for name in names:
            for variable in self.layer.weights:
                if variable.name == name:
                    return variable
        return None

    def _unrounded(self, variable):
        """The value of a wrapped layer's ``variable`` in its own dtype.

        Keras enters an autocast scope for a layer of a mixed policy even
        when the layer's ``autocast`` is False, if no scope is active yet
        (a call outside a model), and the wrapped layer's kernel, unlike
        this layer's own weights, is autocast: read plainly there, it
        would be rounded to float16 before the reparametrization.
        """
        # keras.src is private; AutocastScope(None) is what Keras's own
        # Layer.__call__ enters for a layer that does not autocast.
        from keras.src.backend import AutocastScope

        # (`.value`: on TensorFlow `convert_to_tensor` returns the variable
        # itself, which would be read, and cast, later.)
        with AutocastScope(None):
            return variable.value

    def _call_with_weights(self, inputs, replacements, linear=False):
        """The wrapped layer's call with some of its weights replaced.

        ``replacements`` is a list of ``(variable, tensor)`` pairs; the
        wrapped layer reads each ``tensor`` where it would read the
        ``variable``, and its other variables as they are (in an enclosing
        stateless scope, such as JAX's training step, as that scope holds
        them). ``linear=True`` leaves out the activation and records no
        losses (for a pass that is not the layer's output, such as a data
        initialization inside a cond, whose losses are not the model's
        and would leak out of the cond).
        """
        values = {id(variable): value for variable, value in replacements}
        mapping = [
            (variable, values.get(id(variable), variable.value))
            for variable in self.layer.variables
        ]
        # (Only layers with an activation take linear=True; an Embedding
        # has none.)
        activation = self.layer.activation if linear else None
        if linear:
            self.layer.activation = None
        try:
            # A scope that does not collect losses drops them.
            with keras.StatelessScope(
                mapping, collect_losses=not linear, initialize_variables=False
            ) as scope:
                outputs = self.layer(inputs)
        finally:
            if linear:
                self.layer.activation = activation
        # The wrapped layer's losses (an activity regularizer) are recorded
        # as its own, where it would record them unwrapped: the enclosing
        # stateless scope (JAX's training step) or the layer. Recorded as
        # this layer's, JAX's training step counted them twice: the wrapped
        # layer also claims their ids in the enclosing scope.
        for loss in scope.losses:
            self.layer.add_loss(loss)
        return outputs
