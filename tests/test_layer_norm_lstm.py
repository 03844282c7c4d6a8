"""LayerNormLSTM / LayerNormLSTMCell against the NumPy LN-LSTM oracle."""

import keras
import numpy as np
import pytest

from keras_norms.layers import LayerNormLSTM
from keras_norms.layers import LayerNormLSTMCell

import reference
import reference_recurrent
from helpers import float64_enabled
from helpers import save_and_load
from helpers import to_numpy
from helpers import value_and_gradients

UNITS = 3
FEATURES = 2
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
# TF-Addons' get_weights order (its test_build asserts these names).
WEIGHT_ORDER = (
    "kernel",
    "recurrent_kernel",
    "bias",
    "input_gamma",
    "input_beta",
    "recurrent_gamma",
    "recurrent_beta",
    "cell_gamma",
    "cell_beta",
)


def _random_weights(rng, use_bias=True, units=UNITS, features=FEATURES):
    width = 4 * units
    weights = {
        "kernel": rng.normal(0, 0.7, (features, width)),
        "recurrent_kernel": rng.normal(0, 0.7, (units, width)),
        "bias": rng.normal(0, 0.5, (width,)) if use_bias else None,
        "input_gamma": rng.uniform(0.5, 1.5, width),
        "input_beta": rng.normal(0, 0.3, width),
        "recurrent_gamma": rng.uniform(0.5, 1.5, width),
        "recurrent_beta": rng.normal(0, 0.3, width),
        "cell_gamma": rng.uniform(0.5, 1.5, units),
        "cell_beta": rng.normal(0, 0.3, units),
    }
    return weights


def _as_list(weights):
    """The weights in TF-Addons' (and our) order, as set_weights wants."""
    return [weights[name] for name in WEIGHT_ORDER if weights[name] is not None]


def _sequences(rng, batch=4, time=6):
    return rng.normal(0, 1.5, (batch, time, FEATURES)).astype("float32")


def _random_mask(rng, batch=4, time=6):
    mask = rng.random((batch, time)) > 0.3
    mask[:, 0] = True
    mask[0, 3:] = False  # padding at the end, as from Masking
    return mask


def _oracle(x, weights, **kwargs):
    return reference_recurrent.layer_norm_lstm(x, weights, **kwargs)


@pytest.mark.parametrize("carry_normalized", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_cell_in_keras_rnn_matches_oracle(
    rng, carry_normalized, use_bias, masked
):
    x = _sequences(rng)
    mask = _random_mask(rng) if masked else None
    rnn = keras.layers.RNN(
        LayerNormLSTMCell(
            UNITS,
            use_bias=use_bias,
            norm_epsilon=1e-2,
            carry_normalized_cell_state=carry_normalized,
        ),
        return_sequences=True,
        return_state=True,
    )
    rnn.build(x.shape)
    weights = _random_weights(rng, use_bias)
    rnn.set_weights(_as_list(weights))
    y, h, c = rnn(x, mask=mask)
    expected = _oracle(
        x,
        weights,
        epsilon=1e-2,
        carry_normalized_cell_state=carry_normalized,
        mask=mask,
    )
    for got, want in zip((y, h, c), expected, strict=True):
        np.testing.assert_allclose(to_numpy(got), want, **TOLERANCE)


@pytest.mark.parametrize("carry_normalized", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_matches_oracle(
    rng, carry_normalized, use_bias, masked, go_backwards
):
    x = _sequences(rng)
    mask = _random_mask(rng) if masked else None
    layer = LayerNormLSTM(
        UNITS,
        use_bias=use_bias,
        carry_normalized_cell_state=carry_normalized,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
    )
    layer.build(x.shape)
    weights = _random_weights(rng, use_bias)
    layer.set_weights(_as_list(weights))
    h0 = rng.normal(size=(4, UNITS)).astype("float32")
    c0 = rng.normal(size=(4, UNITS)).astype("float32")
    y, h, c = layer(x, initial_state=[h0, c0], mask=mask)
    expected = _oracle(
        x,
        weights,
        carry_normalized_cell_state=carry_normalized,
        mask=mask,
        go_backwards=go_backwards,
        h0=h0,
        c0=c0,
    )
    y, want_y = to_numpy(y), expected[0]
    if masked:
        # Masked steps before a sample's first step in processing order
        # output h0 in Keras's JAX loop, zeros in its TensorFlow and torch
        # loops (keras.layers.LSTM's too): not compared.
        processed = mask[:, ::-1] if go_backwards else mask
        before_first = np.cumsum(processed, axis=1) == 0
        y[before_first] = want_y[before_first] = 0.0
    np.testing.assert_allclose(y, want_y, **TOLERANCE)
    for got, want in zip((h, c), expected[1:], strict=True):
        np.testing.assert_allclose(to_numpy(got), want, **TOLERANCE)


def test_weights_in_tf_addons_order():
    cell = LayerNormLSTMCell(UNITS)
    keras.layers.RNN(cell).build((None, 5, FEATURES))
    paths = [weight.path.split(f"{cell.name}/")[-1] for weight in cell.weights]
    assert paths == [
        "kernel",
        "recurrent_kernel",
        "bias",
        "kernel_norm/gamma",
        "kernel_norm/beta",
        "recurrent_norm/gamma",
        "recurrent_norm/beta",
        "state_norm/gamma",
        "state_norm/beta",
    ]
    shapes = [tuple(weight.shape) for weight in cell.weights]
    width = 4 * UNITS
    assert (
        shapes
        == [(FEATURES, width), (UNITS, width), (width,)]
        + [(width,)] * 4
        + [(UNITS,)] * 2
    )


def test_published_tf_addons_values():
    # TF-Addons' own test (layer_norm_lstm_cell_test.py, test_cell_output):
    # constant 0.5 weights, epsilon 1e-12, one step of its cell.
    cell = LayerNormLSTMCell(
        2,
        kernel_initializer=keras.initializers.Constant(0.5),
        recurrent_initializer=keras.initializers.Constant(0.5),
        bias_initializer=keras.initializers.Constant(0.5),
        norm_epsilon=1e-12,
        carry_normalized_cell_state=True,
    )
    x = np.ones((1, 3), "float32")
    h0 = (0.1 * np.array([[2, 3]])).astype("float32")
    c0 = (0.1 * np.array([[0, 1]])).astype("float32")
    h, (state_h, state_c) = cell(x, [h0, c0])
    expected_h = [[-0.47406167, 0.47406143]]
    np.testing.assert_allclose(to_numpy(h), expected_h, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(state_h), expected_h, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(state_c), [[-1.0, 1.0]], rtol=1e-5)


def test_gradients_match_finite_differences_of_the_oracle(rng):
    x = rng.normal(size=(2, 4, FEATURES))
    weights = _random_weights(rng)
    output_weights = rng.normal(size=(2, 4, UNITS))
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    with float64_enabled():
        layer = LayerNormLSTM(
            UNITS, return_sequences=True, norm_epsilon=1e-2, dtype="float64"
        )
        layer.build(x.shape)
        variables = layer.trainable_variables
        # (The dropout seed generator's state.)
        others = [v.value for v in layer.non_trainable_variables]

        def loss(inputs, *values):
            outputs, _ = layer.stateless_call(
                list(values), others, inputs, mask=keras.ops.array(mask)
            )
            return keras.ops.sum(outputs * keras.ops.array(output_weights))

        _, gradients = value_and_gradients(
            loss, x, *[np.asarray(v) for v in _as_list(weights)]
        )
    assert len(variables) == len(WEIGHT_ORDER)

    def oracle_loss(inputs, name=None, value=None):
        changed = dict(weights)
        if name is not None:
            changed[name] = value
        outputs, _, _ = _oracle(inputs, changed, epsilon=1e-2, mask=mask)
        return float(np.sum(outputs * output_weights))

    expected = [reference.numerical_gradient(oracle_loss, x)] + [
        reference.numerical_gradient(
            lambda value, name=name: oracle_loss(x, name, value),
            weights[name],
        )
        for name in WEIGHT_ORDER
    ]
    for name, got, want in zip(
        ("inputs",) + WEIGHT_ORDER, gradients, expected, strict=True
    ):
        np.testing.assert_allclose(
            got, want, rtol=1e-5, atol=1e-7, err_msg=name
        )


def test_batch_size_one_is_each_sample_alone(rng):
    x = _sequences(rng)
    layer = LayerNormLSTM(UNITS, return_sequences=True)
    layer.build(x.shape)
    weights = _random_weights(rng)
    layer.set_weights(_as_list(weights))
    together = to_numpy(layer(x))
    expected, _, _ = _oracle(x, weights)
    for i in range(len(x)):
        alone = to_numpy(layer(x[i : i + 1]))
        np.testing.assert_allclose(alone, expected[i : i + 1], **TOLERANCE)
        np.testing.assert_allclose(alone, together[i : i + 1], **TOLERANCE)


def test_trains_at_batch_size_one_then_runs_longer_sequences(rng):
    x = _sequences(rng, batch=4, time=5)
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), LayerNormLSTM(UNITS)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [to_numpy(w) for w in model.weights]
    model.fit(x, np.ones((4, UNITS)), batch_size=1, epochs=2, verbose=0)
    after = [to_numpy(w) for w in model.weights]
    # Every weight moved (gammas and betas included).
    assert all(np.any(a != b) for a, b in zip(after, before, strict=True))
    weights = dict(zip(WEIGHT_ORDER, after, strict=True))
    longer = _sequences(rng, batch=3, time=17)
    expected, _, _ = _oracle(longer, weights)
    np.testing.assert_allclose(
        model.predict(longer, verbose=0), expected[:, -1], **TOLERANCE
    )


@pytest.mark.parametrize("wrap_cell", [False, True])
def test_bidirectional(rng, wrap_cell):
    x = _sequences(rng)
    mask = _random_mask(rng)
    if wrap_cell:
        inner = keras.layers.RNN(
            LayerNormLSTMCell(UNITS), return_sequences=True
        )
    else:
        inner = LayerNormLSTM(UNITS, return_sequences=True)
    bidirectional = keras.layers.Bidirectional(inner)
    bidirectional.build(x.shape)
    forward = _random_weights(rng)
    backward = _random_weights(rng)
    bidirectional.forward_layer.set_weights(_as_list(forward))
    bidirectional.backward_layer.set_weights(_as_list(backward))
    y = to_numpy(bidirectional(x, mask=mask))
    # Bidirectional zeroes the outputs of masked steps when it returns
    # sequences, and aligns the backward outputs with the input steps.
    expected_forward, _, _ = _oracle(
        x, forward, mask=mask, zero_output_for_mask=True
    )
    expected_backward, _, _ = _oracle(
        x, backward, mask=mask, go_backwards=True, zero_output_for_mask=True
    )
    np.testing.assert_allclose(y[..., :UNITS], expected_forward, **TOLERANCE)
    np.testing.assert_allclose(
        y[..., UNITS:], expected_backward[:, ::-1], **TOLERANCE
    )


@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
def test_dropout_matches_the_cell_in_keras_rnn(rng, recurrent_dropout):
    # LayerNormLSTM applies the input dropout to all steps before its loop;
    # it must draw and apply the same masks as the cell does step by step
    # (with recurrent dropout, LSTMCell's one mask per gate).
    x = _sequences(rng)
    arguments = {
        "dropout": 0.4,
        "recurrent_dropout": recurrent_dropout,
        "seed": 7,
    }
    layer = LayerNormLSTM(UNITS, return_sequences=True, **arguments)
    rnn = keras.layers.RNN(
        LayerNormLSTMCell(UNITS, **arguments), return_sequences=True
    )
    layer.build(x.shape)
    rnn.build(x.shape)
    weights = _as_list(_random_weights(rng))
    layer.set_weights(weights)
    rnn.set_weights(weights)
    dropped = to_numpy(layer(x, training=True))
    np.testing.assert_allclose(
        dropped, to_numpy(rnn(x, training=True)), **TOLERANCE
    )
    inference = to_numpy(layer(x, training=False))
    assert np.max(np.abs(dropped - inference)) > 1e-2
    np.testing.assert_allclose(
        inference, to_numpy(rnn(x, training=False)), **TOLERANCE
    )


def test_stateful_and_unrolled(rng):
    x = _sequences(rng, batch=2, time=6)
    weights = _random_weights(rng)
    expected, _, _ = _oracle(x, weights)
    stateful = LayerNormLSTM(UNITS, return_sequences=True, stateful=True)
    stateful.build(x.shape)
    stateful.set_weights(_as_list(weights))
    halves = [to_numpy(stateful(x[:, :3])), to_numpy(stateful(x[:, 3:]))]
    np.testing.assert_allclose(
        np.concatenate(halves, axis=1), expected, **TOLERANCE
    )
    unrolled = LayerNormLSTM(UNITS, return_sequences=True, unroll=True)
    unrolled.build(x.shape)
    unrolled.set_weights(_as_list(weights))
    np.testing.assert_allclose(to_numpy(unrolled(x)), expected, **TOLERANCE)


def test_config_round_trip():
    layer = LayerNormLSTM(
        5,
        dropout=0.1,
        recurrent_dropout=0.2,
        seed=3,
        norm_epsilon=1e-4,
        norm_gamma_initializer="glorot_uniform",
        carry_normalized_cell_state=True,
        return_sequences=True,
        go_backwards=True,
        zero_output_for_mask=True,
    )
    config = layer.get_config()
    assert "cell" not in config
    restored = LayerNormLSTM.from_config(config)
    assert restored.get_config() == config
    assert restored.carry_normalized_cell_state is True
    assert restored.norm_epsilon == 1e-4
    assert restored.zero_output_for_mask is True
    cell = layer.cell
    cell_config = cell.get_config()
    assert LayerNormLSTMCell.from_config(cell_config).get_config() == (
        cell_config
    )


@pytest.mark.parametrize("wrap_cell", [False, True])
def test_save_and_load(rng, tmp_path, wrap_cell):
    x = _sequences(rng)
    inputs = keras.Input((None, FEATURES))
    if wrap_cell:
        recurrent = keras.layers.RNN(
            LayerNormLSTMCell(UNITS, carry_normalized_cell_state=True)
        )
    else:
        recurrent = LayerNormLSTM(
            UNITS, dropout=0.1, carry_normalized_cell_state=True
        )
    model = keras.Model(inputs, keras.layers.Dense(2)(recurrent(inputs)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((4, 2)), epochs=2, verbose=0)
    loaded = save_and_load(model, tmp_path)
    np.testing.assert_allclose(
        to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6
    )
    cell = loaded.layers[1].cell
    assert cell.get_config() == model.layers[1].cell.get_config()
    if not wrap_cell:
        assert loaded.layers[1].get_config() == model.layers[1].get_config()
    assert isinstance(cell, LayerNormLSTMCell)
    assert cell.carry_normalized_cell_state is True


def _tf_addons_config():
    """What ``tfa.rnn.LayerNormLSTMCell(3).get_config()`` wrote, in the
    TF 2.13+ format of TF-Addons' test_config_layer_norm_legacy."""

    def keras_initializer(name, config):
        return {
            "class_name": name,
            "config": config,
            "module": "keras.initializers",
            "registered_name": None,
        }

    return {
        "class_name": "Addons>LayerNormLSTMCell",
        "config": {
            "dtype": "float32",
            "name": "layer_norm_lstm_cell",
            "trainable": True,
            "units": UNITS,
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "use_bias": True,
            "kernel_initializer": keras_initializer(
                "GlorotUniform", {"seed": None}
            ),
            "recurrent_initializer": keras_initializer(
                "Orthogonal", {"seed": None, "gain": 1.0}
            ),
            "bias_initializer": keras_initializer("Zeros", {}),
            "unit_forget_bias": True,
            "kernel_regularizer": None,
            "recurrent_regularizer": None,
            "bias_regularizer": None,
            "kernel_constraint": None,
            "recurrent_constraint": None,
            "bias_constraint": None,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
            "implementation": 2,
            "norm_gamma_initializer": keras_initializer("Ones", {}),
            "norm_beta_initializer": keras_initializer("Zeros", {}),
            "norm_epsilon": 1e-3,
        },
    }


@pytest.mark.parametrize("carry_normalized", [False, True])
def test_tf_addons_config_and_weights(rng, carry_normalized):
    config = _tf_addons_config()
    if carry_normalized:  # what a port of trained TF-Addons weights sets
        config["config"]["carry_normalized_cell_state"] = True
    cell = keras.saving.deserialize_keras_object(
        config,
        custom_objects={"Addons>LayerNormLSTMCell": LayerNormLSTMCell},
    )
    assert isinstance(cell, LayerNormLSTMCell)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    assert rnn.cell.norm_epsilon == 1e-3
    assert rnn.cell.carry_normalized_cell_state is carry_normalized
    x = _sequences(rng)
    rnn.build(x.shape)
    # TF-Addons' get_weights() order.
    weights = _random_weights(rng)
    rnn.set_weights(_as_list(weights))
    expected, _, _ = _oracle(
        x, weights, carry_normalized_cell_state=carry_normalized
    )
    np.testing.assert_allclose(to_numpy(rnn(x)), expected, **TOLERANCE)


@pytest.mark.parametrize("wrap_cell", [False, True])
def test_mixed_float16_statistics_in_float32(rng, wrap_cell):
    # Input terms of a few hundred: their variance (~1e5) overflows
    # float16 (max 65504); statistics computed in float16 give inf/NaN.
    x = (_sequences(rng) * 300).astype("float32")
    policy = "mixed_float16"
    if wrap_cell:
        layer = keras.layers.RNN(
            LayerNormLSTMCell(UNITS, dtype=policy),
            return_sequences=True,
            dtype=policy,
        )
    else:
        layer = LayerNormLSTM(UNITS, return_sequences=True, dtype=policy)
    layer.build(x.shape)
    weights = _random_weights(rng)
    layer.set_weights(_as_list(weights))
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    y = to_numpy(y).astype("float64")
    assert np.all(np.isfinite(y))
    expected, _, _ = _oracle(x, weights)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-2)


def test_learns_a_sequence_task(rng):
    # Is the running sum of the first feature positive at the end?
    x = rng.normal(size=(64, 8, FEATURES)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")[:, None]
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES)),
            LayerNormLSTM(8),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy"
    )
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LayerNormLSTMCell(0), "units=0"),
        (lambda: LayerNormLSTMCell(3, norm_epsilon=0.0), "norm_epsilon=0.0"),
        (lambda: LayerNormLSTMCell(3, norm_epsilon=-1), "norm_epsilon=-1"),
        (lambda: LayerNormLSTM(3, dropout=1.5), "dropout=1.5"),
        (
            lambda: LayerNormLSTM(3, carry_normalized_cell_state="yes"),
            "carry_normalized_cell_state='yes'",
        ),
        (
            lambda: LayerNormLSTM(3, norm_gamma_initializer="nope"),
            "norm_gamma_initializer='nope'",
        ),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("carry_normalized", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_step_fast_path_matches_reference_and_oracle(
    rng, fast_calls, carry_normalized, use_bias
):
    """torch runs the step in torch operations: outputs, states and input
    gradients equal the keras.ops reference's and the oracle's, also on
    inputs whose mean is large next to their spread."""
    from keras_norms.ops import reference_only

    x = (50.0 + _sequences(rng)).astype("float32")
    upstream = rng.normal(size=(4, 6, UNITS)).astype("float32")
    weights = _random_weights(rng, use_bias)
    layer = LayerNormLSTM(
        UNITS,
        use_bias=use_bias,
        norm_epsilon=1e-2,
        carry_normalized_cell_state=carry_normalized,
        return_sequences=True,
        return_state=True,
    )
    layer.build(x.shape)
    layer.set_weights(_as_list(weights))

    def loss(x):
        y, _, _ = layer(x, training=True)
        return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

    fast = [to_numpy(v) for v in layer(x, training=True)]
    _, (gradient,) = value_and_gradients(loss, x)
    ran = "layer_normalized_lstm_step" in fast_calls
    assert ran == (keras.backend.backend() == "torch")
    with reference_only():
        slow = [to_numpy(v) for v in layer(x, training=True)]
        _, (ref_gradient,) = value_and_gradients(loss, x)
    expected = _oracle(
        x,
        weights,
        epsilon=1e-2,
        carry_normalized_cell_state=carry_normalized,
    )
    for got, ref, want in zip(fast, slow, expected, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, want, **TOLERANCE)
    np.testing.assert_allclose(gradient, ref_gradient, rtol=1e-4, atol=1e-5)
