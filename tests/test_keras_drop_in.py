"""Drop-in behaviour that Keras's own tests do not pin down: masks on a
non-last channel axis, mixed precision with large inputs, Keras configs
that load, Keras's deprecated ``rms_scaling``, batch renorm under masks and
the time-axis check of the per-step layers in TensorFlow graphs.

Each expectation comes from the float64 oracle (tests/reference.py) or
from Keras's own class on the same input.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_norms

import reference
from helpers import BACKEND
from helpers import KERAS_VERSION
from helpers import to_numpy
from layer_cases import LAYER_CASES

layers = keras_norms.layers


# -- 1. masks follow Keras's convention (expanded at the last axis) -------


@pytest.mark.parametrize("axis", [1, 2])
def test_mask_is_expanded_at_the_last_axis_whatever_the_channel_axis(axis, rng):
    x = rng.normal(3.0, 2.0, (4, 3, 3)).astype("float32")
    mask = rng.random((4, 3)) > 0.4
    mask[0, 0] = True
    ours = layers.BatchNormalization(axis=axis, momentum=0.0)
    y = to_numpy(ours(x, training=True, mask=mask))
    expected, mean, variance, _ = reference.batch_norm_train(
        x, axis, mask=mask[..., None]
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_numpy(ours.moving_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(
        to_numpy(ours.moving_variance), variance, rtol=1e-4
    )
    # ... which is what Keras's layer computes too.
    if axis != x.ndim - 1 and KERAS_VERSION < (3, 9):
        pytest.skip(
            f"Keras {keras.__version__} does not broadcast the mask over the "
            "last axis when it is not the channel axis (fixed in Keras 3.9)"
        )
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.0)
    np.testing.assert_allclose(
        y, to_numpy(theirs(x, training=True, mask=mask)), atol=2e-4
    )


def test_masking_layer_before_channels_first_batch_normalization(rng):
    x = rng.normal(size=(4, 3, 5)).astype("float32")
    x[1, 2] = 0.0  # a masked time step
    inputs = keras.Input((3, 5))
    masked = keras.layers.Masking()(inputs)
    model = keras.Model(
        inputs,
        layers.BatchNormalization(axis=1, momentum=0.0)(masked, training=True),
    )
    y = to_numpy(model(x))
    expected, _, _, _ = reference.batch_norm_train(
        x, 1, mask=np.any(x != 0, axis=-1)[..., None]
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_a_mask_of_another_shape_is_a_clear_error(rng):
    x = rng.normal(size=(4, 3, 5)).astype("float32")
    layer = layers.BatchNormalization(axis=1)
    # (4, 5): the input without its channel axis, which was accepted before.
    with pytest.raises(ValueError, match=r"without its last axis"):
        layer(x, training=True, mask=np.ones((4, 5), bool))


def test_timestep_layer_takes_keras_masks_of_rank_4_inputs(rng):
    x = rng.normal(1.0, 2.0, (5, 4, 2, 3)).astype("float32")
    mask = rng.random((5, 4, 2)) > 0.3
    mask[:, :, 0] = True
    layer = layers.TimestepBatchNormalization(momentum=0.0)
    y = to_numpy(layer(x, training=True, mask=mask))
    expected = np.empty_like(x, dtype=np.float64)
    for t in range(4):
        expected[:, t], mean, variance, _ = reference.batch_norm_train(
            x[:, t], -1, mask=mask[:, t, :, None]
        )
        np.testing.assert_allclose(
            to_numpy(layer.moving_mean)[t], mean, rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


# -- 2. mixed precision: float32 statistics from float32 inputs -----------

# (The wrappers normalize a kernel, not their input; the LSTMs multiply
# the input by their kernel in the compute dtype before any statistics.)
NORMALIZING_CASES = sorted(
    name
    for name in LAYER_CASES
    if not name.startswith(
        ("prelu", "weight_norm", "spectral_norm", "bn_lstm", "layer_norm_lstm")
    )
)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", NORMALIZING_CASES)
def test_large_float32_inputs_under_mixed_policies(name, policy, rng):
    """Inputs above float16's range and a large mean: the statistics must
    see the float32 values, not float16/bfloat16 roundings of them."""
    factory, shape = LAYER_CASES[name]
    x = rng.normal(0.0, 1.0, shape) * 10.0 + 7e4  # > 65504
    keras.config.set_dtype_policy("float32")
    reference_layer = factory()
    expected = to_numpy(reference_layer(x.astype("float32"), training=True))
    keras.config.set_dtype_policy(policy)
    layer = factory()
    y = layer(x.astype("float32"), training=True)
    low = policy.split("_")[1]
    assert keras.backend.standardize_dtype(y.dtype) == low
    got = to_numpy(keras.ops.cast(y, "float32"))
    assert np.all(np.isfinite(got))
    # Only the output's rounding to 8 (bfloat16) or 11 (float16) bits.
    tolerance = 2**-7 if low == "bfloat16" else 2**-10
    np.testing.assert_allclose(
        got, expected, rtol=2 * tolerance, atol=2 * tolerance
    )


@pytest.mark.parametrize(
    "make, groups",
    [
        (lambda: layers.LayerNormalization(), 1),
        (lambda: layers.GroupNormalization(groups=2), 2),
    ],
    ids=["layer_norm", "group_norm"],
)
def test_layer_and_group_norm_mean_1e3_under_mixed_float16(make, groups, rng):
    x = rng.normal(1e3, 1.0, (8, 16)).astype("float32")
    keras.config.set_dtype_policy("mixed_float16")
    y = to_numpy(keras.ops.cast(make()(x), "float32"))
    # float16's rounding of an O(1) output, not of the input at 1e3
    # (a step of 0.5 there: errors up to 0.37 were seen).
    np.testing.assert_allclose(y, reference.group_norm(x, groups), atol=4e-3)


# -- 3. Keras's deprecated rms_scaling --------------------------------------


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_rms_scaling_gives_keras_numbers(axis, rng):
    x = rng.normal(2.0, 3.0, (4, 3, 5)).astype("float32")
    gamma_shape = (5,) if axis == -1 else (3, 5)
    gamma = rng.normal(size=gamma_shape).astype("float32")
    with pytest.warns(FutureWarning, match="RMSNormalization"):
        ours = layers.LayerNormalization(axis=axis, rms_scaling=True)
    ours.build(x.shape)
    assert [w.name for w in ours.weights] == ["gamma"]
    ours.gamma.assign(gamma)
    y = to_numpy(ours(x))
    np.testing.assert_allclose(
        y,
        reference.layer_norm_variance_scaling(x, axis, gamma),
        rtol=1e-5,
        atol=1e-5,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = keras.layers.LayerNormalization(axis=axis, rms_scaling=True)
        theirs.build(x.shape)
        theirs.set_weights([gamma])
    np.testing.assert_allclose(y, to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    assert ours.get_config()["rms_scaling"] is True


# -- 4. every Keras config loads -------------------------------------------

KERAS_CONFIGS = [
    (keras.layers.BatchNormalization, {}, (4, 6, 3)),
    (keras.layers.BatchNormalization, {"axis": 1, "momentum": 0.5}, (4, 3, 5)),
    # renorm_clipping without renorm: Keras accepts (and ignores) it.
    (
        keras.layers.BatchNormalization,
        {"renorm_clipping": {"rmax": 2.0}, "momentum": 1.0},
        (4, 3),
    ),
    (
        keras.layers.BatchNormalization,
        {"renorm": True, "renorm_clipping": {"rmax": 3.0, "dmax": 1.0}},
        (4, 3),
    ),
    (
        keras.layers.BatchNormalization,
        {"center": False, "scale": False, "dtype": "mixed_float16"},
        (4, 3),
    ),
    (keras.layers.LayerNormalization, {"axis": (1, 2)}, (4, 3, 5)),
    (keras.layers.LayerNormalization, {"rms_scaling": True}, (4, 5)),
    (
        keras.layers.LayerNormalization,
        {"gamma_regularizer": "l2", "beta_constraint": "non_neg"},
        (4, 5),
    ),
    (keras.layers.GroupNormalization, {"groups": -1}, (2, 4, 6)),
    (keras.layers.GroupNormalization, {"groups": 2, "axis": 1}, (2, 4, 6)),
    (keras.layers.PReLU, {"shared_axes": [1]}, (2, 4, 6)),
    (
        keras.layers.PReLU,
        {"shared_axes": 2, "alpha_initializer": "ones"},
        (2, 4, 6),
    ),
]


@pytest.mark.filterwarnings("ignore:.*rms_scaling")
@pytest.mark.parametrize(
    "keras_cls, arguments, shape",
    KERAS_CONFIGS,
    ids=[f"{c.__name__}-{a}" for c, a, _ in KERAS_CONFIGS],
)
def test_keras_configs_load_and_compute_the_same(
    keras_cls, arguments, shape, rng
):
    renorm = {"renorm", "renorm_clipping"} & set(arguments)
    if renorm and KERAS_VERSION < (3, 14):
        pytest.skip(f"Keras {keras.__version__} has no renorm (new in 3.14)")
    theirs = keras_cls(**arguments)
    theirs.build(shape)
    weights = [
        rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in theirs.weights
    ]
    theirs.set_weights(weights)
    ours = getattr(layers, keras_cls.__name__).from_config(theirs.get_config())
    ours.build(shape)
    ours.set_weights(weights)
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(ours(x), "float32")),
        to_numpy(keras.ops.cast(theirs(x), "float32")),
        rtol=1e-3,
        atol=1e-3,
    )


# -- 8. batch renorm and an all-masked batch -------------------------------


def test_renorm_all_masked_batch_leaves_every_statistic_unchanged(rng):
    layer = layers.BatchNormalization(
        renorm=True, momentum=0.5, renorm_momentum=0.5
    )
    layer.build((4, 3, 2))
    for variable, value in (
        (layer.moving_mean, 7.0),
        (layer.moving_stddev, 2.0),
        (layer.moving_variance, 4.0 - 1e-3),
        (layer.renorm_mean, 7.0),
        (layer.renorm_stddev, 2.0),
    ):
        variable.assign(np.full(2, value, "float32"))
    before = [to_numpy(w) for w in layer.non_trainable_weights]
    x = rng.normal(size=(4, 3, 2)).astype("float32")
    layer(x, training=True, mask=np.zeros((4, 3), bool))
    for name, old, new in zip(
        [w.name for w in layer.non_trainable_weights],
        before,
        [to_numpy(w) for w in layer.non_trainable_weights],
        strict=True,
    ):
        np.testing.assert_allclose(new, old, rtol=1e-6, err_msg=name)


def test_renorm_partly_masked_batch_moves_only_reached_channels(rng):
    """With a mask that varies along the last axis's predecessor, a channel
    stays put only if none of its values are unmasked: here all are
    reached, and the statistics follow the masked oracle."""
    x = rng.normal(3.0, 2.0, (6, 4, 2)).astype("float32")
    mask = rng.random((6, 4)) > 0.5
    mask[0, 0] = True
    layer = layers.BatchNormalization(
        renorm=True, momentum=0.5, renorm_momentum=0.5
    )
    layer(x, training=True, mask=mask)
    _, mean, variance, _ = reference.batch_norm_train(
        x, -1, mask=mask[..., None]
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), 0.5 * mean, rtol=1e-5
    )


# -- 9. the time axis of the per-step layers in TensorFlow graphs ---------


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs only")
def test_longer_sequence_in_a_graph_with_unknown_time_axis_is_an_error(rng):
    import tensorflow as tf

    layer = layers.TimestepBatchNormalization(max_timesteps=4)
    layer.build((None, None, 3))

    @tf.function(input_signature=[tf.TensorSpec((None, None, 3))])
    def train_step(x):
        return layer(x, training=True)

    train_step(rng.normal(size=(2, 4, 3)).astype("float32"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_timesteps=4"):
        train_step(rng.normal(size=(2, 6, 3)).astype("float32"))


def test_longer_sequence_in_eager_training_is_an_error(rng):
    layer = layers.TimestepBatchNormalization(max_timesteps=4)
    with pytest.raises(ValueError, match="max_timesteps=4"):
        layer(rng.normal(size=(2, 6, 3)).astype("float32"), training=True)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs only")
def test_bnlstm_longer_sequence_in_a_graph_is_an_error(rng):
    import tensorflow as tf

    layer = layers.BNLSTM(3, max_timesteps=4)
    layer.build((None, None, 2))

    @tf.function(input_signature=[tf.TensorSpec((None, None, 2))])
    def train_step(x):
        return layer(x, training=True)

    train_step(rng.normal(size=(2, 4, 2)).astype("float32"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="4 steps"):
        train_step(rng.normal(size=(2, 6, 2)).astype("float32"))
