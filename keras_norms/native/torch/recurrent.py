"""The steps of the BNLSTM (in training) and of the layer-normalized LSTM
in torch operations.

Keras's own torch LSTM runs its time loop on torch operations; the
keras.ops reference of these steps pays keras.ops' argument handling on
each of its operations, most of a training step's time at the
benchmark's sizes (the BNLSTM's step in torch operations alone took 40%
of it). Same operations in the same order, and the same shifted batch
and layer normalizations as `batch_normalization_training` and
`layer_normalization`.
"""

import torch
from keras import activations

from keras_norms.native.torch.normalization import layer_normalization
from keras_norms.native.torch.normalization import shifted_batch_norm

_FLOAT_DTYPES = (torch.float32, torch.float64)
# The activations with the same torch function behind them.
_TORCH_ACTIVATIONS = {
    activations.tanh: torch.tanh,
    activations.sigmoid: torch.sigmoid,
}


def batch_normalized_lstm_step(
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
    functions = _torch_activations(
        activation, recurrent_activation, (input_term, recurrent_kernel, h, c)
    )
    if functions is None or h.shape[0] < 2:
        # (One value per statistic: the reference's case.)
        return NotImplemented
    dtype = h.dtype
    recurrent_term, *recurrent_statistics = shifted_batch_norm(
        torch.matmul(h, recurrent_kernel),
        None,
        _parameter(recurrent_scale, dtype),
        epsilon,
        dtype,
    )

    def normalize_cell(c):
        normalized_c, *statistics = shifted_batch_norm(
            c,
            _parameter(cell_offset, dtype),
            _parameter(cell_scale, dtype),
            epsilon,
            dtype,
        )
        return normalized_c, statistics

    h, c, _, cell_statistics = _gate_step(
        input_term + recurrent_term, bias, c, normalize_cell, *functions
    )
    # Both statistics are over the batch.
    count = torch.tensor(float(h.shape[0]), dtype=dtype, device=h.device)
    return (
        h,
        c,
        (*recurrent_statistics, count),
        (*cell_statistics, count),
    )


def layer_normalized_lstm_step(
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
    functions = _torch_activations(
        activation, recurrent_activation, (input_term, recurrent_term, c)
    )
    if functions is None:
        return NotImplemented
    dtype = c.dtype

    def normalize(x, offset, scale):
        return layer_normalization(
            x,
            (1,),
            _parameter(offset, dtype),
            _parameter(scale, dtype),
            epsilon,
        )

    h, c, normalized_c, _ = _gate_step(
        input_term
        + normalize(recurrent_term, recurrent_offset, recurrent_scale),
        bias,
        c,
        lambda c: (normalize(c, cell_offset, cell_scale), None),
        *functions,
    )
    if carry_normalized_cell_state:
        c = normalized_c
    return h, c


def _torch_activations(activation, recurrent_activation, tensors):
    """The torch functions of the two activations; None where the step
    declines: other activations, other than float32/64 tensors, or a cell
    state (the last of ``tensors``) not ``(batch, units)``."""
    functions = (
        _TORCH_ACTIVATIONS.get(activation),
        _TORCH_ACTIVATIONS.get(recurrent_activation),
    )
    if (
        None in functions
        or any(not isinstance(t, torch.Tensor) for t in tensors)
        or any(t.dtype not in _FLOAT_DTYPES for t in tensors)
        or tensors[-1].dim() != 2
    ):
        return None
    return functions


def _gate_step(
    gates, bias, c, normalize_cell, activation, recurrent_activation
):
    """``(h, c, normalized c, cell statistics)`` from the gates' two terms'
    sum; ``normalize_cell`` maps ``c`` to ``(normalized, statistics)``."""
    if bias is not None:
        gates = gates + bias
    i, f, g, o = torch.chunk(gates, 4, dim=-1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    normalized_c, cell_statistics = normalize_cell(c)
    h = recurrent_activation(o) * activation(normalized_c)
    return h, c, normalized_c, cell_statistics


def _parameter(parameter, dtype):
    return None if parameter is None else parameter.to(dtype)
