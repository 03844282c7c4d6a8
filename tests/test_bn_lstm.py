"""BNLSTM / BNLSTMCell against the NumPy BN-LSTM oracle."""

import keras
import numpy as np
import pytest

from keras_norms.layers import BNLSTM
from keras_norms.layers import BNLSTMCell
from keras_norms.ops import reference_only

import reference_recurrent as reference
from helpers import BACKEND
from helpers import save_and_load
from helpers import to_numpy
from helpers import value_and_gradients

UNITS = 4
NAMES = ("input", "recurrent", "cell")


def _normalizations(layer):
    cell = layer.cell
    return {
        "input": cell.input_normalization,
        "recurrent": cell.recurrent_normalization,
        "cell": cell.cell_normalization,
    }


def _randomize(layer, rng):
    """Random weights (and moving tables), returned for the oracle."""
    cell = layer.cell
    norms = _normalizations(layer)
    weights = {
        "kernel": rng.normal(0, 0.5, cell.kernel.shape),
        "recurrent_kernel": rng.normal(0, 0.5, cell.recurrent_kernel.shape),
        "bias": rng.normal(0, 0.5, cell.bias.shape),
        "input_gamma": rng.uniform(0.1, 1.0, norms["input"].gamma.shape),
        "recurrent_gamma": rng.uniform(
            0.1, 1.0, norms["recurrent"].gamma.shape
        ),
        "cell_gamma": rng.uniform(0.1, 1.0, norms["cell"].gamma.shape),
        "cell_beta": rng.normal(0, 0.5, norms["cell"].beta.shape),
    }
    cell.kernel.assign(weights["kernel"])
    cell.recurrent_kernel.assign(weights["recurrent_kernel"])
    cell.bias.assign(weights["bias"])
    for name in NAMES:
        norms[name].gamma.assign(weights[f"{name}_gamma"])
    norms["cell"].beta.assign(weights["cell_beta"])
    tables = {}
    for name in NAMES:
        shape = norms[name].moving_mean.shape
        tables[f"{name}_mean"] = rng.normal(0, 0.5, shape)
        tables[f"{name}_variance"] = rng.uniform(0.5, 2.0, shape)
        norms[name].moving_mean.assign(tables[f"{name}_mean"])
        norms[name].moving_variance.assign(tables[f"{name}_variance"])
    return weights, tables


def _drifting_sequences(rng, batch=6, time=5, features=3):
    steps = np.arange(time)[None, :, None]
    return (
        rng.normal(size=(batch, time, features)) * (1 + steps) + steps
    ).astype("float32")


def _tables(layer):
    return {
        f"{name}_{kind}": to_numpy(getattr(norm, f"moving_{kind}"))
        for name, norm in _normalizations(layer).items()
        for kind in ("mean", "variance")
    }


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_training_forward_and_statistics_match_oracle(
    rng, go_backwards, masked
):
    x = _drifting_sequences(rng)
    mask = None
    if masked:
        mask = rng.random(x.shape[:2]) > 0.25
        mask[:, 0] = True
    layer = BNLSTM(
        UNITS, return_sequences=True, go_backwards=go_backwards, momentum=0.7
    )
    layer.build(x.shape)
    weights, tables = _randomize(layer, rng)
    y = layer(x, training=True, mask=mask)
    ref, _, _, statistics = reference.bn_lstm(
        x, weights, True, mask=mask, go_backwards=go_backwards
    )
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-5)
    got = _tables(layer)
    for name in NAMES:
        means, variances, counts = statistics[name]
        for kind, values in (("mean", means), ("variance", variances)):
            expected = reference.update_tables(
                tables[f"{name}_{kind}"], values, counts, 0.7
            )
            np.testing.assert_allclose(
                got[f"{name}_{kind}"],
                expected,
                rtol=1e-4,
                atol=1e-5,
                err_msg=f"{name}_{kind}",
            )


@pytest.mark.parametrize("time", [5, 8])
def test_inference_matches_oracle_including_longer_sequences(rng, time):
    x = _drifting_sequences(rng, time=time)
    layer = BNLSTM(UNITS, return_sequences=True, return_state=True)
    layer.build((None, 5, 3))  # statistics for 5 steps
    weights, tables = _randomize(layer, rng)
    y, h, c = layer(x, training=False)
    ref, ref_h, ref_c, _ = reference.bn_lstm(x, weights, False, tables)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(h), ref_h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(c), ref_c, rtol=1e-4, atol=1e-5)


def test_initial_state_and_last_output(rng):
    x = _drifting_sequences(rng)
    layer = BNLSTM(UNITS)
    layer.build(x.shape)
    weights, tables = _randomize(layer, rng)
    h0 = rng.normal(size=(6, UNITS)).astype("float32")
    c0 = rng.normal(size=(6, UNITS)).astype("float32")
    y = layer(x, initial_state=[h0, c0], training=False)
    ref, _, _, _ = reference.bn_lstm(x, weights, False, tables, h0=h0, c0=c0)
    np.testing.assert_allclose(to_numpy(y), ref[:, -1], rtol=1e-4, atol=1e-5)


def test_moving_statistics_really_update_inside_fit(rng):
    # Learning rate 0 keeps the weights fixed, so after k identical steps
    # each table must be momentum**k * initial + (1 - momentum**k) * batch
    # statistics of *its own step*; the data's statistics drift with t, so
    # statistics shared across steps would fail.
    x = _drifting_sequences(rng, batch=16, time=5)
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            BNLSTM(UNITS, momentum=0.5),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    layer = model.layers[0]
    weights, tables = _randomize(layer, rng)
    model.fit(x, np.zeros((16, 1)), batch_size=16, epochs=3, verbose=0)
    _, _, _, statistics = reference.bn_lstm(x, weights, True)
    got = _tables(layer)
    for name in NAMES:
        means, variances, _ = statistics[name]
        for kind, values in (("mean", means), ("variance", variances)):
            expected = 0.5**3 * tables[f"{name}_{kind}"] + (1 - 0.5**3) * values
            np.testing.assert_allclose(
                got[f"{name}_{kind}"], expected, rtol=1e-4, atol=1e-5
            )
    # The per-step statistics really differ between steps.
    assert np.ptp(statistics["input"][0][:, 0]) > 0.1


def test_cell_in_keras_rnn_matches_bnlstm_at_inference(rng):
    x = _drifting_sequences(rng, time=7)
    layer = BNLSTM(UNITS, return_sequences=True, max_timesteps=5)
    layer.build(x.shape)
    _randomize(layer, rng)
    rnn = keras.layers.RNN(
        BNLSTMCell.from_config(layer.cell.get_config()), return_sequences=True
    )
    rnn.build(x.shape)
    rnn.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(rnn(x, training=False)),
        to_numpy(layer(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="Use keras_norms.layers.BNLSTM"):
        rnn(x, training=True)


@pytest.mark.parametrize(
    "policy, tolerance", [("mixed_bfloat16", 0.03), ("mixed_float16", 3e-3)]
)
def test_cell_in_keras_rnn_counts_steps_under_mixed_precision(
    rng, policy, tolerance
):
    # bfloat16 counts exactly only up to 256 (float16: 2048): a step
    # counter kept in the compute dtype stopped there, and every later
    # step read the statistics of step 256.
    time = 300
    x = rng.normal(size=(2, time, 3)).astype("float32")
    rnn = keras.layers.RNN(
        BNLSTMCell(UNITS, max_timesteps=time, dtype=policy),
        return_sequences=True,
        dtype=policy,
    )
    # predict: the compiled loop (tf.function, jax.jit) on TF and JAX.
    model = keras.Sequential([keras.Input((time, 3)), rnn])
    weights, tables = _randomize(rnn, rng)  # random statistics per step
    expected, _, _, _ = reference.bn_lstm(x, weights, False, tables)
    got = model.predict(x, verbose=0).astype("float64")
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
    # The check has teeth: a counter stuck at 256 is far off.
    stuck = {
        key: np.concatenate([table[:256], np.repeat(table[256:257], 44, 0)])
        for key, table in tables.items()
    }
    wrong, _, _, _ = reference.bn_lstm(x, weights, False, stuck)
    errors = np.max(np.abs(wrong - expected)[:, 257:], axis=(0, 2))
    assert np.all(errors > 0.05)


def test_bidirectional(rng):
    x = _drifting_sequences(rng)
    bidirectional = keras.layers.Bidirectional(
        BNLSTM(UNITS, return_sequences=True, return_state=True)
    )
    outputs = bidirectional(x, training=True)
    assert len(outputs) == 5
    assert tuple(outputs[0].shape) == (6, 5, 2 * UNITS)
    forward = bidirectional.forward_layer
    backward = bidirectional.backward_layer
    assert backward.go_backwards and not forward.go_backwards
    # The backward layer counts steps in its own processing order.
    x_reversed = x[:, ::-1]
    copy = BNLSTM.from_config({**forward.get_config(), "name": "copy"})
    copy.build(x.shape)
    copy.set_weights(backward.get_weights())
    expected = to_numpy(copy(x_reversed, training=False)[0])
    got = to_numpy(backward(x, training=False)[0])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_save_and_load(rng, tmp_path):
    x = _drifting_sequences(rng)
    inputs = keras.Input((5, 3))
    outputs = BNLSTM(UNITS, dropout=0.1, recurrent_dropout=0.1)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(outputs))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((6, 2)), epochs=2, verbose=0)
    loaded = save_and_load(model, tmp_path)
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)),
        to_numpy(model(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )
    assert loaded.layers[1].get_config() == model.layers[1].get_config()


def test_zero_output_for_mask_survives_config_and_saving(rng, tmp_path):
    x = _drifting_sequences(rng)
    # Masked steps (all features 0): in the middle and padding at the end.
    x[:2, 2] = 0.0
    x[3:, 3:] = 0.0
    masked = np.all(x == 0.0, axis=-1)
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Masking(0.0),
            BNLSTM(UNITS, return_sequences=True, zero_output_for_mask=True),
        ]
    )
    layer = model.layers[1]
    _randomize(layer, rng)
    expected = to_numpy(model(x, training=False))
    np.testing.assert_array_equal(expected[masked], 0.0)
    assert np.all(expected[~masked] != 0.0)

    config = layer.get_config()
    assert config["zero_output_for_mask"] is True
    restored = BNLSTM.from_config(config)
    assert restored.zero_output_for_mask is True
    copy = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.Masking(0.0), restored]
    )
    restored.set_weights(layer.get_weights())
    loaded = save_and_load(model, tmp_path)
    assert loaded.layers[1].get_config()["zero_output_for_mask"] is True
    for other in (copy, loaded):
        got = to_numpy(other(x, training=False))
        np.testing.assert_array_equal(got[masked], 0.0)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)

    # The default (carry the last output forward) round-trips too.
    default = BNLSTM(UNITS, return_sequences=True)
    assert default.get_config()["zero_output_for_mask"] is False
    restored = BNLSTM.from_config(default.get_config())
    assert restored.zero_output_for_mask is False


def test_recurrent_defaults():
    layer = BNLSTM(UNITS)
    layer.build((None, 3, 2))
    for name, norm in _normalizations(layer).items():
        np.testing.assert_allclose(to_numpy(norm.gamma), 0.1, rtol=1e-6)
        assert (norm.beta is None) == (name != "cell")
    bias = to_numpy(layer.cell.bias)
    np.testing.assert_array_equal(bias[UNITS : 2 * UNITS], 1.0)  # forget gate
    np.testing.assert_array_equal(np.delete(bias, np.s_[UNITS : 2 * UNITS]), 0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BNLSTM(0), "units=0"),
        (lambda: BNLSTM(4, momentum=1.5), "momentum=1.5"),
        (lambda: BNLSTM(4, dropout=1.0), "dropout=1.0"),
        (lambda: BNLSTM(4, stateful=True), "stateful=True"),
        (lambda: BNLSTM(4, max_timesteps=-1), "max_timesteps=-1"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_training_on_longer_sequences_is_an_error():
    layer = BNLSTM(UNITS, max_timesteps=3)
    with pytest.raises(ValueError, match="Received: 5 steps"):
        layer(np.ones((2, 5, 1), "float32"), training=True)


def test_frozen_cell_inside_keras_rnn_trains_around_it(rng):
    # Issue 11, defect 3: a frozen BNLSTMCell in keras.layers.RNN runs in
    # inference mode under fit, as a frozen Keras layer does.
    cell = BNLSTMCell(UNITS, max_timesteps=5)
    rnn = keras.layers.RNN(cell)
    rnn.trainable = False
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(rnn(inputs)))
    model.compile("sgd", "mse")
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    before = [to_numpy(w) for w in rnn.weights]
    model.fit(x, np.zeros((8, 2)), epochs=2, verbose=0)
    for old, weight in zip(before, rnn.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(weight), old)


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="no XLA compilation on torch"
)
def test_trains_under_jit_compile_like_eager(rng):
    # Issue 11, defect 1: TensorFlow's XLA refused the time loop's gradient.
    x = rng.normal(size=(8, 6, 3)).astype("float32")
    y = rng.normal(size=(8, UNITS)).astype("float32")
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((6, 3))
        layer = BNLSTM(UNITS, momentum=0.5)
        model = keras.Model(inputs, layer(inputs))
        model.compile("sgd", "mse", jit_compile=jit_compile)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        results.append([to_numpy(w) for w in model.weights])
    for eager, compiled in zip(*results, strict=True):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)


def test_unknown_time_axis_fits_several_lengths_and_exports(rng, tmp_path):
    # Issue 11, defect 2: TensorFlow failed on an unknown time axis.
    inputs = keras.Input((None, 3))
    layer = BNLSTM(UNITS, max_timesteps=6, return_sequences=True)
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", "mse")
    for steps in (4, 6, 5):
        x = rng.normal(size=(5, steps, 3)).astype("float32")
        model.fit(x, np.zeros((5, steps, UNITS)), epochs=1, verbose=0)
    longer = rng.normal(size=(2, 9, 3)).astype("float32")
    predicted = model.predict(longer, verbose=0)
    assert predicted.shape == (2, 9, UNITS)
    if keras.backend.backend() != "tensorflow":
        return  # export (a SavedModel) is checked where it is native
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    import tensorflow as tf

    exported = tf.saved_model.load(path)
    served = exported.serve(longer)
    np.testing.assert_allclose(np.asarray(served), predicted, rtol=1e-5)


def test_training_step_fast_path_matches_reference(rng, fast_calls):
    """torch runs the training step in torch operations: outputs, input
    gradients and moving statistics equal the keras.ops reference's."""
    x = _drifting_sequences(rng, batch=8, time=6, features=3)
    upstream = rng.normal(size=(8, 6, UNITS)).astype("float32")
    results = []
    for fast in (True, False):
        layer = BNLSTM(UNITS, return_sequences=True)
        layer.build(x.shape)
        _randomize(layer, np.random.default_rng(7))  # same weights

        def loss(x, layer=layer):
            y = layer(x, training=True)
            return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

        if fast:
            value, gradients = value_and_gradients(loss, x)
        else:
            with reference_only():
                value, gradients = value_and_gradients(loss, x)
        results.append((value, gradients[0], _tables(layer)))
    if BACKEND == "torch":
        assert "batch_normalized_lstm_step" in fast_calls
    (value, gradient, tables), (ref_value, ref_gradient, ref_tables) = results
    np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradient, ref_gradient, rtol=1e-4, atol=1e-5)
    for name, table in tables.items():
        np.testing.assert_allclose(
            table, ref_tables[name], rtol=1e-5, atol=1e-6, err_msg=name
        )
