"""Keras's own layer harness over every public layer of ours.

`keras.src.testing.TestCase.run_layer_test` is how Keras checks its layers:
serialization round trips, symbolic and eager calls with the output shape,
the weight counts, masking support, a short `fit`, and the dtypes under a
mixed precision policy (not on torch CPU, where Keras skips it). Each case
below gives it one of our layers with the weight counts we document.
"""

import keras
import pytest
from keras.src import testing

import keras_norms

layers = keras_norms.layers

# name -> (layer class, init_kwargs, input shape, trainable weights,
# non-trainable weights, run_layer_test's other keyword arguments)
CASES = {
    "batch_norm": (layers.BatchNormalization, {}, (3, 4, 2), 2, 2, {}),
    "batch_norm_channels_first": (
        layers.BatchNormalization,
        {"axis": 1, "gamma_regularizer": "l2"},
        (3, 4, 2),
        2,
        2,
        {"expected_num_losses": 1},
    ),
    "batch_renorm": (
        layers.BatchNormalization,
        {"renorm": True, "renorm_clipping": {"rmax": 2.0}},
        (3, 4, 2),
        2,
        5,
        {},
    ),
    "batch_norm_cumulative_ghost": (
        layers.BatchNormalization,
        {"momentum": None, "virtual_batch_size": 1},
        (3, 4, 2),
        2,
        3,
        {},
    ),
    "layer_norm": (
        layers.LayerNormalization,
        {"axis": [1, 2]},
        (3, 4, 2),
        2,
        0,
        {},
    ),
    "group_norm": (
        layers.GroupNormalization,
        {"groups": 2},
        (3, 4, 6),
        2,
        0,
        {},
    ),
    "instance_norm": (
        layers.InstanceNormalization,
        {},
        (3, 4, 2),
        2,
        0,
        {},
    ),
    "timestep_batch_norm": (
        layers.TimestepBatchNormalization,
        {"max_timesteps": 6},
        (3, 4, 2),
        2,
        2,
        {},
    ),
    "recurrent_batch_norm": (
        layers.RecurrentBatchNormalization,
        {},
        (3, 4, 2, 5),
        1,
        2,
        {},
    ),
    "lrn": (
        layers.LocalResponseNormalization,
        {"size": 3},
        (3, 4, 6),
        0,
        0,
        {},
    ),
    "lrn_within_channel": (
        layers.LocalResponseNormalization,
        {"size": 3, "mode": "within_channel", "axis": 1},
        (3, 2, 5, 5),
        0,
        0,
        {},
    ),
    "prelu": (layers.PReLU, {"shared_axes": [1]}, (3, 4, 2), 1, 0, {}),
    "weight_norm_dense": (
        layers.WeightNormalization,
        {"layer": keras.layers.Dense(3)},
        (3, 4),
        3,  # g, kernel, bias
        3,  # the data-init offsets and flag
        {"supports_masking": None, "expected_output_shape": (3, 3)},
    ),
    "weight_norm_conv": (
        layers.WeightNormalization,
        {"layer": keras.layers.Conv1D(2, 3), "data_init": False},
        (3, 5, 4),
        3,
        0,
        {"supports_masking": None, "expected_output_shape": (3, 3, 2)},
    ),
    "bn_lstm": (
        layers.BNLSTM,
        {"units": 3, "return_sequences": True},
        (3, 4, 2),
        7,  # kernels, bias, three gammas, the cell state's beta
        6,  # three pairs of per-step moving statistics
        # (The dropout seed generator, as keras.layers.LSTM has.)
        {
            "supports_masking": True,
            "expected_num_seed_generators": 1,
            "expected_output_shape": (3, 4, 3),
        },
    ),
    "bn_lstm_cell_in_rnn": (
        keras.layers.RNN,
        {"cell": layers.BNLSTMCell(3, max_timesteps=4)},
        (3, 4, 2),
        7,
        6,
        # Training a bare cell is BNLSTM's job (the cell infers only).
        {
            "supports_masking": True,
            "run_training_check": False,
            "expected_num_seed_generators": 1,
            "expected_output_shape": (3, 3),
        },
    ),
    "layer_norm_lstm": (
        layers.LayerNormLSTM,
        {"units": 3, "return_sequences": True},
        (3, 4, 2),
        9,  # kernels, bias, gamma and beta of three normalizations
        0,
        {
            "supports_masking": True,
            "expected_num_seed_generators": 1,
            "expected_output_shape": (3, 4, 3),
        },
    ),
    "layer_norm_lstm_cell_in_rnn": (
        keras.layers.RNN,
        {"cell": layers.LayerNormLSTMCell(3)},
        (3, 4, 2),
        9,
        0,
        # (Unlike BNLSTMCell, it trains inside keras.layers.RNN.)
        {
            "supports_masking": True,
            "expected_num_seed_generators": 1,
            "expected_output_shape": (3, 3),
        },
    ),
    "rms_norm": (
        layers.RMSNormalization,
        {"axis": [1, 2], "scale_regularizer": "l2"},
        (3, 4, 2),
        1,
        0,
        {"expected_num_losses": 1},
    ),
    "rms_norm_unit_offset": (
        layers.RMSNormalization,
        {"unit_offset": True},
        (3, 4, 2),
        1,
        0,
        {},
    ),
    "spectral_norm_dense": (
        layers.SpectralNormalization,
        {"layer": keras.layers.Dense(3, activity_regularizer="l2")},
        (3, 4),
        2,  # kernel, bias
        1,  # vector_u
        {
            "supports_masking": None,
            "expected_output_shape": (3, 3),
            "expected_num_losses": 1,
        },
    ),
    "spectral_norm_conv": (
        layers.SpectralNormalization,
        {"layer": keras.layers.Conv1D(2, 3), "power_iterations": 3},
        (3, 5, 4),
        2,
        1,
        {"supports_masking": None, "expected_output_shape": (3, 3, 2)},
    ),
}


class _Harness(testing.TestCase):
    def runTest(self):  # (unittest needs a test method to instantiate)
        pass


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_layer_harness(name):
    cls, init_kwargs, shape, trainable, non_trainable, extra = CASES[name]
    arguments = {
        "expected_output_shape": shape,
        "expected_num_seed_generators": 0,
        "expected_num_losses": 0,
        "supports_masking": True,
        **extra,
    }
    harness = _Harness()
    harness.setUp()
    harness.run_layer_test(
        cls,
        init_kwargs=init_kwargs,
        input_shape=shape,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        **arguments,
    )


def test_every_public_layer_has_a_case():
    covered = {cls for cls, *_ in CASES.values()}
    covered |= {layers.BNLSTMCell, layers.LayerNormLSTMCell}  # (in RNN)
    assert set(map(lambda n: getattr(layers, n), layers.__all__)) <= covered
