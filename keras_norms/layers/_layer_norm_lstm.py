"""Layer-normalized LSTM (Ba, Kiros & Hinton, 2016)."""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_norms import ops as norm_ops
from keras_norms._api import export
from keras_norms._validation import check_bool
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_positive_int
from keras_norms._validation import check_rate
from keras_norms._validation import check_seed
from keras_norms._validation import get_keras_object
from keras_norms.layers._layer_normalization import LayerNormalization
from keras_norms.layers._time_loop import run_steps
from keras_norms.layers._time_loop import time_major
from keras_norms.native import dispatch
from keras_norms.ops._loops import read_before_loop


@export
class LayerNormLSTMCell(keras.layers.LSTMCell):
    r"""Cell of the layer-normalized LSTM of Ba, Kiros & Hinton (2016).

    $$
    \begin{aligned}
    (i, f, g, o) &= \mathrm{LN}(W_h h_{t-1}; \gamma_h, \beta_h)
                  + \mathrm{LN}(W_x x_t; \gamma_x, \beta_x) + b \\
    c_t &= \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g) \\
    h_t &= \sigma(o) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))
    \end{aligned}
    $$

    A `keras.layers.LSTMCell` (same arguments, gate order i, f, g, o,
    state ``[h, c]``, ``kernel`` / ``recurrent_kernel`` / ``bias``) whose
    input and recurrent terms are layer-normalized separately, each over
    all ``4 * units`` pre-activations at once, and whose cell state is
    layer-normalized over its ``units`` before the output nonlinearity.
    Each sample is normalized with its own statistics: the cell works at
    any batch size (1 included), for sequences of any length, in training
    as at inference, inside `keras.layers.RNN` and
    `keras.layers.Bidirectional`. `LayerNormLSTM` is the whole layer.

    The weights come in TF-Addons' order: ``kernel``,
    ``recurrent_kernel``, ``bias``, then ``gamma`` and ``beta`` of the
    input (``kernel_norm``), recurrent (``recurrent_norm``) and cell-state
    (``state_norm``) normalizations. The three statistics are computed in
    at least float32 (see `keras_norms.ops.layer_normalization`).

    Args:
        units (int): Positive int, dimensionality of the output.
        activation (str | Callable): Activation of the cell input and output
            (``tanh``).
        recurrent_activation (str | Callable): Activation of the gates
            (``sigmoid``).
        use_bias (bool): Whether the layer has the bias ``b``.
        kernel_initializer (str | Initializer): Initializer of the input kernel
            ``W_x``.
        recurrent_initializer (str | Initializer): Initializer of the recurrent
            kernel ``W_h``.
        bias_initializer (str | Initializer): Initializer of the bias ``b``.
        unit_forget_bias (bool): Add 1 to the forget-gate bias at
            initialization.
        kernel_regularizer (str | Regularizer | None): Optional regularizer of
            ``W_x``.
        recurrent_regularizer (str | Regularizer | None): Optional regularizer
            of ``W_h``.
        bias_regularizer (str | Regularizer | None): Optional regularizer of
            ``b``.
        kernel_constraint (str | Constraint | None): Optional constraint on
            ``W_x``.
        recurrent_constraint (str | Constraint | None): Optional constraint on
            ``W_h``.
        bias_constraint (str | Constraint | None): Optional constraint on ``b``.
        dropout (float): Fraction of the inputs to drop (as
            `keras.layers.LSTMCell`: the same mask at every step; one mask per
            gate when ``recurrent_dropout`` is used).
        recurrent_dropout (float): Fraction of the recurrent state to drop.
        seed (int | None): Random seed for dropout.
        norm_gamma_initializer (str | Initializer): Initializer of the three
            gammas.
        norm_beta_initializer (str | Initializer): Initializer of the three
            betas.
        norm_epsilon (float): Positive float added to the three variances.
        carry_normalized_cell_state (bool): ``False`` (the paper): the next step
            receives the cell state ``c_t``; ``True`` (TF-Addons'
            ``LayerNormLSTMCell``): it receives ``LN(c_t)``, and so does
            the returned state.
        **kwargs: Base layer keyword arguments.

    Reference:
        Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450, 2016
        (section 6.3 and the supplementary material).

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> cell = keras_norms.layers.LayerNormLSTMCell(8)
        >>> rnn = keras.layers.RNN(cell, return_sequences=True)
        >>> tuple(rnn(np.ones((1, 10, 3), "float32")).shape)
        (1, 10, 8)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        norm_gamma_initializer="ones",
        norm_beta_initializer="zeros",
        norm_epsilon=1e-3,
        carry_normalized_cell_state=False,
        **kwargs,
    ):
        # Checked here, before LSTMCell sees them (it clips dropout rates
        # into [0, 1] and compares units with 0 whatever their type).
        lstm_arguments = {
            "activation": activation,
            "recurrent_activation": recurrent_activation,
            "kernel_initializer": kernel_initializer,
            "recurrent_initializer": recurrent_initializer,
            "bias_initializer": bias_initializer,
            "kernel_regularizer": kernel_regularizer,
            "recurrent_regularizer": recurrent_regularizer,
            "bias_regularizer": bias_regularizer,
            "kernel_constraint": kernel_constraint,
            "recurrent_constraint": recurrent_constraint,
            "bias_constraint": bias_constraint,
        }
        for name, value in lstm_arguments.items():
            module = _MODULES[name.rsplit("_", 1)[-1]]
            lstm_arguments[name] = get_keras_object(name, value, module)
        super().__init__(
            check_positive_int("units", units),
            use_bias=check_bool("use_bias", use_bias),
            unit_forget_bias=check_bool("unit_forget_bias", unit_forget_bias),
            dropout=check_rate("dropout", dropout),
            recurrent_dropout=check_rate(
                "recurrent_dropout", recurrent_dropout
            ),
            seed=check_seed("seed", seed),
            **lstm_arguments,
            **kwargs,
        )
        self.norm_gamma_initializer = get_keras_object(
            "norm_gamma_initializer", norm_gamma_initializer, initializers
        )
        self.norm_beta_initializer = get_keras_object(
            "norm_beta_initializer", norm_beta_initializer, initializers
        )
        self.norm_epsilon = check_positive_float("norm_epsilon", norm_epsilon)
        self.carry_normalized_cell_state = check_bool(
            "carry_normalized_cell_state", carry_normalized_cell_state
        )
        # TF-Addons' names: the weights are kernel_norm/gamma, ... In this
        # order (after kernel, recurrent_kernel, bias) in `weights`.
        self.kernel_norm = self._normalization("kernel_norm")
        self.recurrent_norm = self._normalization("recurrent_norm")
        self.state_norm = self._normalization("state_norm")

    def _normalization(self, name):
        return LayerNormalization(
            axis=-1,
            epsilon=self.norm_epsilon,
            gamma_initializer=self.norm_gamma_initializer,
            beta_initializer=self.norm_beta_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        super().build(input_shape)
        for layer, width in (
            (self.kernel_norm, 4 * self.units),
            (self.recurrent_norm, 4 * self.units),
            (self.state_norm, self.units),
        ):
            layer.build((None, width))

    def _normalize(self, layer, x):
        # The op, not the sublayer's __call__: this runs at every step.
        return norm_ops.layer_normalization(
            x,
            axis=-1,
            offset=layer.beta,
            scale=layer.gamma,
            epsilon=self.norm_epsilon,
        )

    def input_term(self, inputs, training=False):
        """``LN(W_x x)`` for inputs ``(batch, features)`` or, all steps
        at once, time-major ``(time, batch, features)`` (with input dropout
        in training, the same mask at every step)."""
        masks = None
        if training and 0.0 < self.dropout < 1.0:
            first = inputs if len(inputs.shape) == 2 else inputs[0]
            masks = self.get_dropout_mask(first)
            if len(inputs.shape) == 3:  # one mask for every step
                if isinstance(masks, (list, tuple)):
                    masks = [ops.expand_dims(mask, 0) for mask in masks]
                else:
                    masks = ops.expand_dims(masks, 0)
        return self._normalize(
            self.kernel_norm, _project(inputs, self.kernel, masks)
        )

    def step_weights(self):
        """The weights a step reads, as tensors: ``(recurrent_kernel,
        bias, recurrent gamma, recurrent beta, state gamma, state beta)``
        (None for absent ones).

        `LayerNormLSTM` reads them once, before its time loop: on
        TensorFlow a read inside the loop is a kernel at every step, and
        the loop stacks its value for the backward pass.
        """
        return tuple(
            read_before_loop(weight)
            for weight in (
                self.recurrent_kernel,
                self.bias,
                self.recurrent_norm.gamma,
                self.recurrent_norm.beta,
                self.state_norm.gamma,
                self.state_norm.beta,
            )
        )

    def step(self, input_term, h, c, training=False, weights=None):
        """One step from the normalized input term ``LN(W_x x_t)``.

        ``weights``: `step_weights`, read here when not given. Returns
        ``(h, c)``: the output and the cell state to carry.
        """
        masks = None
        if training and 0.0 < self.recurrent_dropout < 1.0:
            masks = self.get_recurrent_dropout_mask(h)
        if weights is None:
            weights = self.step_weights()
        recurrent_kernel, *parameters = weights
        return _lstm_step(
            input_term,
            _project(h, recurrent_kernel, masks),
            c,
            *parameters,
            self.norm_epsilon,
            self.activation,
            self.recurrent_activation,
            self.carry_normalized_cell_state,
        )

    def call(self, inputs, states, training=False):
        input_term = self.input_term(inputs, training)
        h, c = self.step(input_term, states[0], states[1], training)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "norm_gamma_initializer": initializers.serialize(
                self.norm_gamma_initializer
            ),
            "norm_beta_initializer": initializers.serialize(
                self.norm_beta_initializer
            ),
            "norm_epsilon": self.norm_epsilon,
            "carry_normalized_cell_state": self.carry_normalized_cell_state,
        }


@dispatch("layer_normalized_lstm_step")
def _lstm_step(
    input_term,
    recurrent_term,
    c,
    bias,
    recurrent_scale,
    recurrent_offset,
    cell_scale,
    cell_offset,
    epsilon,
    activation,
    recurrent_activation,
    carry_normalized_cell_state,
):
    """``(h, c)`` of one step, given ``LN(W_x x_t)`` and ``W_h h`` (torch
    runs it in torch operations, `keras_norms.native`)."""

    def normalize(x, offset, scale):
        return norm_ops.layer_normalization(
            x, axis=-1, offset=offset, scale=scale, epsilon=epsilon
        )

    gates = input_term + normalize(
        recurrent_term, recurrent_offset, recurrent_scale
    )
    if bias is not None:
        gates = gates + bias
    i, f, g, o = ops.split(gates, 4, axis=-1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    normalized_c = normalize(c, cell_offset, cell_scale)
    h = recurrent_activation(o) * activation(normalized_c)
    if carry_normalized_cell_state:
        c = normalized_c
    return h, c


_MODULES = {
    "activation": activations,
    "initializer": initializers,
    "regularizer": regularizers,
    "constraint": constraints,
}


def _project(inputs, kernel, masks):
    """``inputs @ kernel`` with dropout ``masks``: one mask, or one per
    gate (`keras.layers.LSTMCell`'s ``implementation=1``)."""
    if masks is None:
        return ops.matmul(inputs, kernel)
    if isinstance(masks, (list, tuple)):
        return ops.concatenate(
            [
                ops.matmul(inputs * mask, gate_kernel)
                for mask, gate_kernel in zip(
                    masks, ops.split(kernel, 4, axis=-1), strict=True
                )
            ],
            axis=-1,
        )
    return ops.matmul(inputs * masks, kernel)


# The cell's arguments, which LayerNormLSTM also exposes as properties.
_CELL_ARGUMENTS = (
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "unit_forget_bias",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
    "norm_gamma_initializer",
    "norm_beta_initializer",
    "norm_epsilon",
    "carry_normalized_cell_state",
)


@export
class LayerNormLSTM(keras.layers.RNN):
    """Layer-normalized LSTM layer (Ba, Kiros & Hinton, 2016).

    `keras.layers.LSTM`'s interface (``return_sequences``,
    ``return_state``, ``go_backwards``, ``stateful``, ``unroll``, masks,
    dropout, initial states ``[h, c]``) around `LayerNormLSTMCell`, whose
    arguments it takes. The input term ``LN(W_x x_t)`` does not depend on
    the recurrence, so it is computed for all steps at once (one matmul,
    one normalization) before the time loop, which runs the cell's step
    over the recurrent part only (``keras.ops.scan``, not the cell's
    layer call at every step, which on torch cost as much as the step);
    the result is the cell's.

    Every argument of `LayerNormLSTMCell` (``activation`` ...
    ``norm_epsilon``, ``carry_normalized_cell_state``) is accepted, with
    the same meaning and default, and readable as a property of the layer,
    as `keras.layers.LSTM` does for `keras.layers.LSTMCell`'s.

    Args:
        units (int): Positive int, dimensionality of the output.
        activity_regularizer (str | Regularizer | None): Optional regularizer of
            the output.
        return_sequences (bool): Return the full sequence of outputs.
        return_state (bool): Also return the last ``h`` and ``c``.
        go_backwards (bool): Process the sequence backwards.
        stateful (bool): Carry the last states of each batch into the next.
        unroll (bool): Accepted as `keras.layers.LSTM` takes it; the time
            loop is ``keras.ops.scan`` either way (the same results).
        **kwargs: Base layer keyword arguments (and `keras.layers.RNN`'s
            ``zero_output_for_mask``).

    Input shape:
        ``(batch, time, features)``; ``time`` may vary between calls.

    Reference:
        Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450, 2016.

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.LayerNormLSTM(8, return_sequences=True)
        >>> tuple(layer(np.ones((4, 10, 3), "float32")).shape)
        (4, 10, 8)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        norm_gamma_initializer="ones",
        norm_beta_initializer="zeros",
        norm_epsilon=1e-3,
        carry_normalized_cell_state=False,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        if "zero_output_for_mask" in kwargs:
            kwargs["zero_output_for_mask"] = check_bool(
                "zero_output_for_mask", kwargs["zero_output_for_mask"]
            )
        cell = LayerNormLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            norm_gamma_initializer=norm_gamma_initializer,
            norm_beta_initializer=norm_beta_initializer,
            norm_epsilon=norm_epsilon,
            carry_normalized_cell_state=carry_normalized_cell_state,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="layer_norm_lstm_cell",
            implementation=kwargs.pop("implementation", 2),
        )
        super().__init__(
            cell,
            return_sequences=check_bool("return_sequences", return_sequences),
            return_state=check_bool("return_state", return_state),
            go_backwards=check_bool("go_backwards", go_backwards),
            stateful=check_bool("stateful", stateful),
            unroll=check_bool("unroll", unroll),
            activity_regularizer=get_keras_object(
                "activity_regularizer", activity_regularizer, regularizers
            ),
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        sequences, mask = time_major(sequences, mask, self.go_backwards)
        # LN(W_x x_t) of every step in one go; the loop runs the rest,
        # calling the cell's step rather than the cell as a layer.
        input_terms = cell.input_term(sequences, training)

        weights = cell.step_weights()

        def cell_step(input_t, h, c, step, mask_t):
            return (*cell.step(input_t, h, c, training, weights), ())

        h, c = initial_state[0], initial_state[1]
        if self.stateful:
            # Not the state variables' own tensors (torch's autograd).
            h, c = ops.copy(h), ops.copy(c)
        last_output, outputs, h, c, _ = run_steps(
            cell_step,
            input_terms,
            h,
            c,
            mask,
            zero_output_for_mask=bool(self.zero_output_for_mask),
        )
        return last_output, outputs, [h, c]

    def get_config(self):
        config = {
            key: value
            for key, value in super().get_config().items()
            if key != "cell"
        }
        cell_config = self.cell.get_config()
        config["units"] = self.units
        for name in _CELL_ARGUMENTS:
            config[name] = cell_config[name]
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# keras.layers.LSTM's read-only views of the cell's arguments.
for _name in ("units",) + _CELL_ARGUMENTS:
    setattr(
        LayerNormLSTM,
        _name,
        property(lambda self, name=_name: getattr(self.cell, name)),
    )
del _name
