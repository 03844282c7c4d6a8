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
    activation = _TORCH_ACTIVATIONS.get(activation)
    recurrent_activation = _TORCH_ACTIVATIONS.get(recurrent_activation)
    tensors = (input_term, h, c, recurrent_kernel)
    if (
        activation is None
        or recurrent_activation is None
        or any(not isinstance(t, torch.Tensor) for t in tensors)
        or any(t.dtype not in _FLOAT_DTYPES for t in tensors)
        or h.dim() != 2
        or h.shape[0] < 2  # one value per statistic: the reference's case
    ):
        return NotImplemented
    dtype = h.dtype
    recurrent_term, *recurrent_statistics = shifted_batch_norm(
        torch.matmul(h, recurrent_kernel),
        None,
        _parameter(recurrent_scale, dtype),
        epsilon,
        dtype,
    )
    gates = input_term + recurrent_term
    if bias is not None:
        gates = gates + bias
    i, f, g, o = torch.chunk(gates, 4, dim=-1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    normalized_c, *cell_statistics = shifted_batch_norm(
        c,
        _parameter(cell_offset, dtype),
        _parameter(cell_scale, dtype),
        epsilon,
        dtype,
    )
    h = recurrent_activation(o) * activation(normalized_c)
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
    activation = _TORCH_ACTIVATIONS.get(activation)
    recurrent_activation = _TORCH_ACTIVATIONS.get(recurrent_activation)
    tensors = (input_term, recurrent_term, c)
    if (
        activation is None
        or recurrent_activation is None
        or any(not isinstance(t, torch.Tensor) for t in tensors)
        or any(t.dtype not in _FLOAT_DTYPES for t in tensors)
        or c.dim() != 2
    ):
        return NotImplemented
    dtype = c.dtype
    normalized = layer_normalization(
        recurrent_term,
        (1,),
        _parameter(recurrent_offset, dtype),
        _parameter(recurrent_scale, dtype),
        epsilon,
    )
    gates = input_term + normalized
    if bias is not None:
        gates = gates + bias
    i, f, g, o = torch.chunk(gates, 4, dim=-1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    normalized_c = layer_normalization(
        c,
        (1,),
        _parameter(cell_offset, dtype),
        _parameter(cell_scale, dtype),
        epsilon,
    )
    h = recurrent_activation(o) * activation(normalized_c)
    if carry_normalized_cell_state:
        c = normalized_c
    return h, c


def _parameter(parameter, dtype):
    return None if parameter is None else parameter.to(dtype)
