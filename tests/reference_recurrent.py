"""NumPy float64 oracle for per-time-step BN and the BN-LSTM.

Never imports keras_norms. Written as plain loops over time steps from
Cooijmans et al. (2016), "Recurrent Batch Normalization", eqs. 6-8.
"""

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _batch_moments(values, keep):
    """Mean/variance over the samples (rows) where ``keep`` is true."""
    kept = values[keep]
    if kept.shape[0] == 0:
        zeros = np.zeros(values.shape[1:])
        return zeros, zeros, 0
    return kept.mean(axis=0), kept.var(axis=0), kept.shape[0]


def timestep_batch_norm_train(
    x,
    gamma=None,
    beta=None,
    epsilon=1e-3,
    mask=None,
    mean_table=None,
    variance_table=None,
):
    """x: (batch, time, ..., features). Statistics per step and feature over
    the batch and any axes between time and features. A step that no
    sample reaches is normalized with its row of the moving-statistics
    tables (default: the layers' initial 0 and 1)."""
    x = np.asarray(x, np.float64)
    batch, time = x.shape[:2]
    keep = np.ones((batch, time), bool) if mask is None else np.asarray(mask)
    y = np.empty_like(x)
    means, variances, counts = [], [], []
    for t in range(time):
        # Rows: every (sample, position) of step t.
        step = x[:, t].reshape(batch, -1, x.shape[-1])
        rows = step.reshape(-1, x.shape[-1])
        row_keep = np.repeat(keep[:, t], step.shape[1])
        mean, variance, count = _batch_moments(rows, row_keep)
        used_mean, used_variance = mean, variance
        if count == 0:
            used_mean = 0.0 if mean_table is None else mean_table[t]
            used_variance = 1.0 if variance_table is None else variance_table[t]
        y[:, t] = (x[:, t] - used_mean) / np.sqrt(used_variance + epsilon)
        means.append(mean)
        variances.append(variance)
        counts.append(count)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y, np.array(means), np.array(variances), np.array(counts)


def timestep_batch_norm_inference(
    x, mean_table, variance_table, gamma=None, beta=None, epsilon=1e-3
):
    x = np.asarray(x, np.float64)
    y = np.empty_like(x)
    last = len(mean_table) - 1
    for t in range(x.shape[1]):
        row = min(t, last)
        y[:, t] = (x[:, t] - mean_table[row]) / np.sqrt(
            variance_table[row] + epsilon
        )
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def update_tables(table, statistics, counts, momentum):
    """Moving average per step for steps with data; other rows unchanged."""
    table = np.array(table, np.float64)
    for t, (value, count) in enumerate(zip(statistics, counts, strict=True)):
        if count > 0:
            table[t] = momentum * table[t] + (1 - momentum) * value
    return table


def bn_lstm(
    x,
    weights,
    training,
    tables=None,
    epsilon=1e-3,
    mask=None,
    go_backwards=False,
    h0=None,
    c0=None,
):
    """The BN-LSTM over a sequence; gate order (i, f, g, o) as Keras.

    weights: dict with kernel, recurrent_kernel, bias, input_gamma,
    recurrent_gamma, cell_gamma, cell_beta. tables (inference): dict with
    input_mean/input_variance/recurrent_mean/... of shape (steps, width).

    Returns (outputs (batch, time, units) in processing order, h, c,
    statistics) where statistics maps each BN name to (means, variances,
    counts) per processed step (training only).
    """
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    units = weights["recurrent_kernel"].shape[0]
    keep = np.ones((batch, time), bool) if mask is None else np.asarray(mask)
    if go_backwards:
        x = x[:, ::-1]
        keep = keep[:, ::-1]
    h = np.zeros((batch, units)) if h0 is None else np.array(h0, np.float64)
    c = np.zeros((batch, units)) if c0 is None else np.array(c0, np.float64)
    output = np.zeros((batch, units))
    outputs = []
    statistics = {name: ([], [], []) for name in ("input", "recurrent", "cell")}

    def bn(name, values, t, gamma, beta=0.0):
        if training:
            mean, variance, count = _batch_moments(values, keep[:, t])
            for store, value in zip(
                statistics[name], (mean, variance, count), strict=True
            ):
                store.append(value)
        else:
            row = min(t, len(tables[f"{name}_mean"]) - 1)
            mean = tables[f"{name}_mean"][row]
            variance = tables[f"{name}_variance"][row]
        return gamma * (values - mean) / np.sqrt(variance + epsilon) + beta

    for t in range(time):
        gates = (
            bn("input", x[:, t] @ weights["kernel"], t, weights["input_gamma"])
            + bn(
                "recurrent",
                h @ weights["recurrent_kernel"],
                t,
                weights["recurrent_gamma"],
            )
            + weights["bias"]
        )
        i, f, g, o = np.split(gates, 4, axis=-1)
        new_c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        normalized_c = bn(
            "cell", new_c, t, weights["cell_gamma"], weights["cell_beta"]
        )
        new_h = _sigmoid(o) * np.tanh(normalized_c)
        step_keep = keep[:, t][:, None]
        output = np.where(step_keep, new_h, output)
        h = np.where(step_keep, new_h, h)
        c = np.where(step_keep, new_c, c)
        outputs.append(output)
    statistics = {
        name: tuple(np.array(v) for v in values)
        for name, values in statistics.items()
    }
    return np.stack(outputs, axis=1), h, c, statistics


def _layer_norm(values, gamma, beta, epsilon):
    """Per-sample layer normalization over the last axis."""
    mean = values.mean(axis=-1, keepdims=True)
    variance = values.var(axis=-1, keepdims=True)
    return gamma * (values - mean) / np.sqrt(variance + epsilon) + beta


def layer_norm_lstm(
    x,
    weights,
    epsilon=1e-3,
    carry_normalized_cell_state=False,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    h0=None,
    c0=None,
):
    """The layer-normalized LSTM of Ba, Kiros & Hinton (2016) over a
    sequence; gate order (i, f, g, o) as Keras.

    weights: dict with kernel, recurrent_kernel, bias (or None), and
    input_gamma/input_beta (width 4 * units), recurrent_gamma/_beta
    (4 * units), cell_gamma/cell_beta (units). The next step receives
    c_t, or LN(c_t) with ``carry_normalized_cell_state`` (TF-Addons'
    LayerNormLSTMCell). A masked step of a sample keeps its state and
    outputs its h (or 0 with ``zero_output_for_mask``), as Keras's loop.

    Returns (outputs (batch, time, units) in processing order, h, c).
    """
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    units = weights["recurrent_kernel"].shape[0]
    keep = np.ones((batch, time), bool) if mask is None else np.asarray(mask)
    if go_backwards:
        x = x[:, ::-1]
        keep = keep[:, ::-1]
    h = np.zeros((batch, units)) if h0 is None else np.array(h0, np.float64)
    c = np.zeros((batch, units)) if c0 is None else np.array(c0, np.float64)
    bias = weights.get("bias")
    outputs = []
    for t in range(time):
        gates = _layer_norm(
            x[:, t] @ weights["kernel"],
            weights["input_gamma"],
            weights["input_beta"],
            epsilon,
        ) + _layer_norm(
            h @ weights["recurrent_kernel"],
            weights["recurrent_gamma"],
            weights["recurrent_beta"],
            epsilon,
        )
        if bias is not None:
            gates = gates + bias
        i, f, g, o = np.split(gates, 4, axis=-1)
        new_c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        normalized_c = _layer_norm(
            new_c, weights["cell_gamma"], weights["cell_beta"], epsilon
        )
        new_h = _sigmoid(o) * np.tanh(normalized_c)
        if carry_normalized_cell_state:
            new_c = normalized_c
        step_keep = keep[:, t][:, None]
        # (Keras's loop: the previous h, which is h0 before any step.)
        masked_output = np.zeros_like(h) if zero_output_for_mask else h
        output = np.where(step_keep, new_h, masked_output)
        h = np.where(step_keep, new_h, h)
        c = np.where(step_keep, new_c, c)
        outputs.append(output)
    return np.stack(outputs, axis=1), h, c
