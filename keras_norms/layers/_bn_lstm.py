"""Batch-normalized LSTM (Recurrent Batch Normalization, Cooijmans 2016)."""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_norms._api import export
from keras_norms._validation import check_bool
from keras_norms._validation import check_momentum
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_positive_int
from keras_norms._validation import check_positive_int_or_none
from keras_norms._validation import check_rate
from keras_norms._validation import check_seed
from keras_norms._validation import get_keras_object
from keras_norms.layers._time_loop import run_steps
from keras_norms.layers._time_loop import time_major
from keras_norms.layers._timestep_batch_normalization import (
    TimestepBatchNormalization,
)
from keras_norms.native import dispatch
from keras_norms.ops import batch_normalization_training
from keras_norms.ops._checks import check_sequence_length
from keras_norms.ops._loops import read_before_loop

# keras.layers.RNN casts every state to the cell's compute dtype (and its
# loops need the carry to keep its dtype), so the step counter cannot be
# an int32 state there. A float counter stops at 256 in bfloat16 (float16:
# 2048), so the step is carried as two digits in this base, each exact in
# any float dtype: [step % base, step // base], saturating at
# max_timesteps (exact up to 65536 steps in bfloat16).
_STEP_BASE = 256


def _step_state(steps, dtype):
    """The ``(batch, 2)`` state of int32 ``steps`` ``(batch,)``."""
    steps = ops.cast(steps, "int32")
    digits = ops.stack([steps % _STEP_BASE, steps // _STEP_BASE], axis=-1)
    return ops.cast(digits, dtype)


def _step_index(state):
    """The int32 steps ``(batch,)`` of a ``(batch, 2)`` step state."""
    digits = ops.cast(state, "int32")
    return digits[:, 0] + _STEP_BASE * digits[:, 1]


def _lstm_step(
    input_term,
    h,
    c,
    recurrent_kernel,
    bias,
    normalize_recurrent,
    normalize_cell,
    activation,
    recurrent_activation,
):
    """One BN-LSTM step: ``(h, c, recurrent statistics, cell statistics)``.

    ``normalize_recurrent`` / ``normalize_cell`` map a term to ``(normalized
    term, statistics)``: batch or moving statistics, as the caller decides.
    """
    recurrent_term, recurrent_statistics = normalize_recurrent(
        ops.matmul(h, recurrent_kernel)
    )
    gates = input_term + recurrent_term
    if bias is not None:
        gates = gates + bias
    i, f, g, o = ops.split(gates, 4, axis=-1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    normalized_c, cell_statistics = normalize_cell(c)
    h = recurrent_activation(o) * activation(normalized_c)
    return h, c, recurrent_statistics, cell_statistics


@dispatch("batch_normalized_lstm_step")
def _training_step(
    input_term,
    h,
    c,
    recurrent_kernel,
    bias,
    recurrent_scale,
    cell_scale,
    cell_offset,
    epsilon,
    activation,
    recurrent_activation,
):
    """`_lstm_step` with batch statistics, without mask or synchronized
    statistics; each statistics ``(mean, variance, count)``. torch runs it
    in torch operations (`keras_norms.native`)."""

    def normalizer(offset, scale):
        def normalize(term):
            outputs, *statistics = batch_normalization_training(
                term, offset=offset, scale=scale, epsilon=epsilon
            )
            return outputs, tuple(statistics)

        return normalize

    return _lstm_step(
        input_term,
        h,
        c,
        recurrent_kernel,
        bias,
        normalizer(None, recurrent_scale),
        normalizer(cell_offset, cell_scale),
        activation,
        recurrent_activation,
    )


@export
class BNLSTMCell(keras.layers.Layer):
    r"""Cell of the batch-normalized LSTM of Cooijmans et al. (2016).

    $$
    \begin{aligned}
    (i, f, g, o) &= \mathrm{BN}(W_h h_{t-1}; \gamma_h)
                  + \mathrm{BN}(W_x x_t; \gamma_x) + b \\
    c_t &= \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g) \\
    h_t &= \sigma(o) \odot \tanh(\mathrm{BN}(c_t; \gamma_c, \beta_c))
    \end{aligned}
    $$

    The input and recurrent terms are normalized separately, each BN keeps
    its statistics per time step (shared statistics are known not to
    work), all gammas start at 0.1 and the two gate terms have no beta (the
    bias ``b`` covers it). The gate order and the ``kernel`` /
    ``recurrent_kernel`` / ``bias`` layout are those of `keras.layers.LSTM`
    (i, f, g, o), so weights port from a plain LSTM.

    Use it through `BNLSTM`, which runs the time loop, collects every
    step's batch statistics and updates the moving averages once after the
    loop. Inside `keras.layers.RNN` (or `Bidirectional` around it) the cell
    runs in inference mode only: a plain RNN loop cannot hand the
    per-step statistics back (on JAX an update made inside the loop is
    lost), so training there raises an error that points to `BNLSTM`,
    rather than training with moving statistics that never move.

    The cell's state is ``[h, c, step]``: the step index is carried so
    that each step reads its own population statistics. ``step`` has shape
    ``(batch, 2)``: the index in two base-256 digits, exact under a
    ``float16`` or ``bfloat16`` compute dtype (to which
    `keras.layers.RNN` casts its states).

    Args:
        units (int): Positive int, dimensionality of the output.
        activation (str | Callable): Activation for the cell input and output
            (``tanh``).
        recurrent_activation (str | Callable): Activation of the gates
            (``sigmoid``).
        use_bias (bool): Whether the layer has the bias ``b``.
        kernel_initializer (str | Initializer): Initializer of the input kernel
            ``W_x``.
        recurrent_initializer (str | Initializer): Initializer of the recurrent
            kernel ``W_h``.
        bias_initializer (str | Initializer): Initializer of the bias ``b``.
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
        unit_forget_bias (bool): Add 1 to the forget-gate bias at
            initialization.
        dropout (float): Fraction of the inputs to drop (same mask at every
            step).
        recurrent_dropout (float): Fraction of the recurrent state to drop.
        seed (int | None): Random seed for dropout.
        max_timesteps (int | None): Number of steps with their own statistics
            (``None``: the sequence length `BNLSTM` is built with).
        momentum (float | None): Momentum of the moving statistics, in ``[0,
            1)``, or ``None`` for cumulative averages (see
            `BatchNormalization`).
        epsilon (float): Positive float added to the variances.
        gamma_initializer (str | Initializer | None): Initializer of the three
            gammas (``None``: ``Constant(0.1)``).
        beta_initializer (str | Initializer): Initializer of the cell-state BN's
            beta.
        **kwargs: Base layer keyword arguments.

    Reference:
        Cooijmans, Ballas, Laurent, Gülçehre & Courville, "Recurrent Batch
        Normalization", ICLR 2017 (arXiv:1603.09025).
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
        max_timesteps=None,
        momentum=0.99,
        epsilon=1e-3,
        gamma_initializer=None,
        beta_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.use_bias = check_bool("use_bias", use_bias)
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)
        # The paper's gamma 0.1: with 1, tanh saturates (see the docstring).
        if gamma_initializer is None:
            gamma_initializer = initializers.Constant(0.1)
        for name, value, module in (
            ("activation", activation, activations),
            ("recurrent_activation", recurrent_activation, activations),
            ("kernel_initializer", kernel_initializer, initializers),
            ("recurrent_initializer", recurrent_initializer, initializers),
            ("bias_initializer", bias_initializer, initializers),
            ("kernel_regularizer", kernel_regularizer, regularizers),
            ("recurrent_regularizer", recurrent_regularizer, regularizers),
            ("bias_regularizer", bias_regularizer, regularizers),
            ("kernel_constraint", kernel_constraint, constraints),
            ("recurrent_constraint", recurrent_constraint, constraints),
            ("bias_constraint", bias_constraint, constraints),
            ("gamma_initializer", gamma_initializer, initializers),
            ("beta_initializer", beta_initializer, initializers),
        ):
            setattr(self, name, get_keras_object(name, value, module))
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate(
            "recurrent_dropout", recurrent_dropout
        )
        self.seed = check_seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.max_timesteps = check_positive_int_or_none(
            "max_timesteps", max_timesteps
        )
        self.momentum = check_momentum(momentum, allow_none=True)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.state_size = [self.units, self.units, 2]
        self.output_size = self.units

        def normalization(name, center):
            return TimestepBatchNormalization(
                max_timesteps=self.max_timesteps,
                momentum=self.momentum,
                epsilon=self.epsilon,
                center=center,
                gamma_initializer=self.gamma_initializer,
                beta_initializer=self.beta_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        # Gate terms: no beta, the bias b plays its role.
        self.input_normalization = normalization("input_normalization", False)
        self.recurrent_normalization = normalization(
            "recurrent_normalization", False
        )
        self.cell_normalization = normalization("cell_normalization", True)

    def build(self, input_shape):
        if self.max_timesteps is None:
            raise ValueError(
                f"Cell '{self.name}' needs `max_timesteps` (the number of "
                "steps with their own statistics) when used outside "
                "BNLSTM. Received: max_timesteps=None"
            )
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, 4 * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            bias_initializer = self.bias_initializer
            if self.unit_forget_bias:
                units = self.units
                base = self.bias_initializer

                def bias_initializer(shape, dtype=None):
                    return ops.concatenate(
                        [
                            base((units,), dtype=dtype),
                            initializers.get("ones")((units,), dtype=dtype),
                            base((2 * units,), dtype=dtype),
                        ]
                    )

            self.bias = self.add_weight(
                shape=(4 * self.units,),
                name="bias",
                initializer=bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        steps = self.max_timesteps
        for layer, width in (
            (self.input_normalization, 4 * self.units),
            (self.recurrent_normalization, 4 * self.units),
            (self.cell_normalization, self.units),
        ):
            layer.max_timesteps = steps
            layer.build((None, steps, width))

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype),
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype),
            ops.zeros((batch_size, 2), dtype=self.compute_dtype),
        ]

    def step_weights(self):
        """The weights a step reads, as tensors: ``(recurrent_kernel,
        bias, recurrent gamma, cell gamma, cell beta)`` (None for absent
        ones).

        `BNLSTM` reads them once, before its time loop: on TensorFlow a
        read inside the loop is a kernel at every step, and the loop
        stacks its value for the backward pass.
        """
        return (
            read_before_loop(self.recurrent_kernel),
            read_before_loop(self.bias),
            read_before_loop(self.recurrent_normalization.gamma),
            read_before_loop(self.cell_normalization.gamma),
            read_before_loop(self.cell_normalization.beta),
        )

    def step(
        self,
        input_term,
        h,
        c,
        step,
        training=False,
        mask=None,
        recurrent_dropout_mask=None,
        weights=None,
    ):
        """One time step from the normalized input term ``BN(W_x x_t)``.

        The input term does not depend on the recurrence, so `BNLSTM`
        computes it for all steps at once before the time loop (one matmul
        and one `TimestepBatchNormalization` call); only the recurrent and
        cell-state normalizations run inside the loop. ``weights``:
        `step_weights`, read here when not given.

        Returns:
            ``(h, c, statistics)``: in training, ``statistics`` holds this
            step's batch statistics of the recurrent and cell-state
            normalizations for `update_moving_statistics` after the loop
            (``None`` at inference).
        """
        if recurrent_dropout_mask is not None:
            h = h * recurrent_dropout_mask
        if weights is None:
            weights = self.step_weights()
        recurrent_kernel, bias, recurrent_scale, cell_scale, cell_offset = (
            weights
        )
        recurrent_normalization = self.recurrent_normalization
        cell_normalization = self.cell_normalization
        if (
            mask is None
            and recurrent_normalization.uses_batch_statistics(training)
            and cell_normalization.uses_batch_statistics(training)
            and recurrent_normalization.cross_replica_all_gather() is None
            and cell_normalization.cross_replica_all_gather() is None
        ):
            # The two batch statistics as normalize_step computes them.
            h, c, recurrent_stats, cell_stats = _training_step(
                input_term,
                h,
                c,
                recurrent_kernel,
                bias,
                recurrent_scale,
                cell_scale,
                cell_offset,
                self.epsilon,
                self.activation,
                self.recurrent_activation,
            )
            return h, c, (recurrent_stats, cell_stats)
        h, c, recurrent_stats, cell_stats = _lstm_step(
            input_term,
            h,
            c,
            recurrent_kernel,
            bias,
            lambda term: recurrent_normalization.normalize_step(
                term, step, training, mask
            ),
            lambda term: cell_normalization.normalize_step(
                term, step, training, mask
            ),
            self.activation,
            self.recurrent_activation,
        )
        statistics = None
        if recurrent_stats is not None:
            statistics = (recurrent_stats, cell_stats)
        return h, c, statistics

    def update_moving_statistics(self, statistics):
        """Apply the stacked per-step statistics of the loop's two BNs."""
        for layer, (mean, variance, count) in zip(
            (self.recurrent_normalization, self.cell_normalization),
            statistics,
            strict=True,
        ):
            layer.update_moving_statistics(mean, variance, count)

    def call(self, inputs, states, training=False):
        # A frozen cell runs in inference mode, as every Keras layer does.
        if training and self.trainable:
            raise ValueError(
                f"Cell '{self.name}' cannot train inside keras.layers.RNN: "
                "its per-step batch statistics have to leave the time loop "
                "to update the moving averages, which only BNLSTM arranges. "
                "Use keras_norms.layers.BNLSTM (it works inside "
                "keras.layers.Bidirectional too). Received: training=True"
            )
        h, c, step = states
        step_index = _step_index(step)
        input_term, _ = self.input_normalization.normalize_step(
            ops.matmul(inputs, self.kernel), step_index
        )
        h, c, _ = self.step(input_term, h, c, step_index)
        # Saturates: steps past max_timesteps all read the last row.
        next_step = ops.minimum(step_index + 1, self.max_timesteps)
        return h, [h, c, _step_state(next_step, step.dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(
                self.recurrent_activation
            ),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(
                self.kernel_initializer
            ),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(
                self.kernel_regularizer
            ),
            "recurrent_regularizer": regularizers.serialize(
                self.recurrent_regularizer
            ),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(
                self.recurrent_constraint
            ),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "max_timesteps": self.max_timesteps,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_initializer": initializers.serialize(self.beta_initializer),
        }


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
    "max_timesteps",
    "momentum",
    "epsilon",
    "gamma_initializer",
    "beta_initializer",
)


@export
class BNLSTM(keras.layers.RNN):
    """Batch-normalized LSTM layer (Cooijmans et al., 2016).

    `keras.layers.LSTM`'s interface (``return_sequences``, ``return_state``,
    ``go_backwards``, masks, dropout, initial states ``[h, c]``) around
    `BNLSTMCell`. The time loop is `keras.ops.scan` (``lax.scan`` on JAX, a
    while loop on TensorFlow): each step's batch statistics leave the loop
    as scan outputs and the moving averages of all steps are updated once,
    vectorized, after it, so they really update under ``model.fit`` on
    every backend. Steps are counted in processing order (reversed with
    ``go_backwards``); at inference, steps beyond ``max_timesteps`` use the
    last step's statistics. A masked (padded) step of a sample leaves its
    state unchanged and is excluded from that step's statistics.

    Args:
        units (int): Positive int, dimensionality of the output.
        return_sequences (bool): Return the full sequence of outputs.
        return_state (bool): Also return the last ``h`` and ``c``.
        go_backwards (bool): Process the sequence backwards.
        stateful (bool): Only ``False`` is supported.
        **kwargs: The arguments of `BNLSTMCell` (BN arguments
            ``max_timesteps``, ``momentum``, ``epsilon``,
            ``gamma_initializer``, ``beta_initializer``; LSTM arguments),
            and base layer arguments.

    Input shape:
        ``(batch, time, features)``.

    Reference:
        Cooijmans et al., "Recurrent Batch Normalization", ICLR 2017.

    Examples:
        >>> import numpy as np, keras_norms
        >>> layer = keras_norms.layers.BNLSTM(8, return_sequences=True)
        >>> y = layer(np.ones((4, 10, 3), "float32"), training=True)
        >>> tuple(y.shape)
        (4, 10, 8)
    """

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        **kwargs,
    ):
        return_sequences = check_bool("return_sequences", return_sequences)
        return_state = check_bool("return_state", return_state)
        go_backwards = check_bool("go_backwards", go_backwards)
        stateful = check_bool("stateful", stateful)
        # keras.layers.RNN's flags, passed through kwargs; the time loop
        # here ignores unroll, but a non-bool is still a mistake.
        for name in ("unroll", "zero_output_for_mask"):
            if name in kwargs:
                kwargs[name] = check_bool(name, kwargs[name])
        if stateful:
            raise ValueError(
                "BNLSTM does not support stateful=True (the per-step "
                "statistics restart with every sequence). Received: "
                f"stateful={stateful!r}"
            )
        cell_kwargs = {
            name: kwargs.pop(name) for name in _CELL_ARGUMENTS if name in kwargs
        }
        cell = BNLSTMCell(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="bn_lstm_cell",
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self):
        return self.cell.units

    def build(self, sequences_shape, initial_state_shape=None):
        if self.cell.max_timesteps is None:
            if sequences_shape[1] is None:
                raise ValueError(
                    f"Layer '{self.name}' needs `max_timesteps` when the "
                    "time axis of its input is undefined. Received: "
                    f"input_shape={tuple(sequences_shape)}"
                )
            self.cell.max_timesteps = sequences_shape[1]
        super().build(sequences_shape, initial_state_shape)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        learning = bool(training) and self.trainable  # (dropout)
        # The normalizations' decision: also batch statistics inside
        # recompute_batch_statistics (with no dropout).
        training = cell.input_normalization.uses_batch_statistics(learning)
        if training:
            sequences = check_sequence_length(
                sequences, cell.max_timesteps, f"Layer '{self.name}'"
            )
        h, c = initial_state[0], initial_state[1]
        sequences, mask = time_major(sequences, mask, self.go_backwards)
        if learning and cell.dropout:
            # One mask for every step.
            sequences = sequences * keras.random.dropout(
                ops.ones_like(sequences[:1]),
                cell.dropout,
                seed=cell.seed_generator,
            )
        recurrent_dropout_mask = None
        if learning and cell.recurrent_dropout:
            recurrent_dropout_mask = keras.random.dropout(
                ops.ones_like(h),
                cell.recurrent_dropout,
                seed=cell.seed_generator,
            )
        # BN(W_x x_t) for every step at once, time-major, in processing
        # order; it updates its own per-step moving statistics.
        input_terms = cell.input_normalization.normalize_sequence(
            ops.matmul(sequences, cell.kernel), training, mask, time_axis=0
        )

        weights = cell.step_weights()

        def cell_step(input_t, h, c, step, mask_t):
            h, c, statistics = cell.step(
                input_t,
                h,
                c,
                step,
                training,
                mask_t,
                recurrent_dropout_mask,
                weights,
            )
            if not training:
                return h, c, ()
            return h, c, tuple(value for term in statistics for value in term)

        last_output, outputs, h, c, statistics = run_steps(
            cell_step,
            input_terms,
            h,
            c,
            mask,
            zero_output_for_mask=bool(self.zero_output_for_mask),
        )
        if training:
            cell.update_moving_statistics([statistics[:3], statistics[3:]])
        # The cell's step state after the loop (saturated like the cell's).
        steps = ops.full(
            (ops.shape(h)[0],), ops.shape(input_terms)[0], dtype="int32"
        )
        step_state = _step_state(
            ops.minimum(steps, cell.max_timesteps), h.dtype
        )
        return last_output, outputs, [h, c, step_state]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is not None:
            # Users pass [h, c], as to keras.layers.LSTM; the step counter
            # starts at 0.
            initial_state = list(initial_state)[:2] + [
                ops.zeros((ops.shape(sequences)[0], 2), self.compute_dtype)
            ]
        outputs = super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )
        if self.return_state:
            return outputs[:3]  # output, h, c: not the step counter
        return outputs

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shapes = super().compute_output_shape(
            sequences_shape, initial_state_shape
        )
        if self.return_state:
            return shapes[:3]
        return shapes

    def get_config(self):
        # zero_output_for_mask stays: it changes the outputs at masked steps.
        config = {
            key: value
            for key, value in super().get_config().items()
            if key not in ("cell", "stateful", "unroll")
        }
        cell_config = self.cell.get_config()
        config["units"] = self.cell.units
        for name in _CELL_ARGUMENTS:
            config[name] = cell_config[name]
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
