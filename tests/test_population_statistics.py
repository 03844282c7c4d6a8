"""Population statistics as Algorithm 2 defines them:
`recompute_batch_statistics` against the float64 NumPy oracles.
(``momentum=None`` and ghost batches: test_cumulative_and_ghost_batches.py.)"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import BNLSTM
from keras_norms.layers import BatchNormalization
from keras_norms.layers import TimestepBatchNormalization

import reference
import reference_recurrent
from helpers import float64_enabled
from helpers import sequences_with_step_statistics
from helpers import to_numpy


def _set_random_weights(model, rng):
    """Random values for every trainable weight (gamma and beta too), and
    moving statistics far from the data's, so a test sees them change."""
    for weight in model.weights:
        value = rng.normal(0.0, 0.7, weight.shape)
        if weight.name == "gamma":
            value = rng.uniform(0.5, 1.5, weight.shape)
        if weight.name == "moving_variance":
            value = np.full(weight.shape, 9.0)
        if weight.name == "moving_mean":
            value = np.full(weight.shape, -7.0)
        weight.assign(value.astype(weight.dtype))


def _mlp(dtype="float32"):
    return keras.Sequential(
        [
            keras.Input((5,), dtype=dtype),
            keras.layers.Dense(6, dtype=dtype),
            keras.layers.Dropout(0.5),  # must be off while recomputing
            BatchNormalization(name="bn1", dtype=dtype),
            keras.layers.Dense(3, dtype=dtype),
            BatchNormalization(name="bn2", dtype=dtype, epsilon=1e-2),
        ]
    )


def _mlp_batch_statistics(model, x, batch_size):
    """Oracle forward pass of `_mlp` over batches, both BNs with batch
    statistics (the training network of Algorithm 2), dropout off."""
    dense1, _, bn1, dense2, bn2 = model.layers
    w = {v.path: to_numpy(v).astype(np.float64) for v in model.weights}
    per_layer = {"bn1": [], "bn2": []}
    for start in range(0, len(x), batch_size):
        h = x[start : start + batch_size].astype(np.float64)
        h = h @ w[dense1.kernel.path] + w[dense1.bias.path]
        for bn, dense in ((bn1, dense2), (bn2, None)):
            y, mean, variance, count = reference.batch_norm_train(
                h,
                gamma=w[bn.gamma.path],
                beta=w[bn.beta.path],
                epsilon=bn.epsilon,
            )
            per_layer[bn.name].append((mean, variance, count))
            if dense is not None:
                h = y @ w[dense.kernel.path] + w[dense.bias.path]
    return {
        name: [np.stack(values) for values in zip(*batches, strict=True)]
        for name, batches in per_layer.items()
    }


@pytest.mark.parametrize("samples", [96, 100])  # 3 equal batches; 32*3 + 4
def test_recompute_matches_algorithm_2_in_float64(rng, samples):
    with float64_enabled():
        model = _mlp("float64")
        _set_random_weights(model, rng)
        before = {v.path: to_numpy(v) for v in model.weights}
        x = rng.normal(3.0, 2.0, (samples, 5))
        report = keras_norms.recompute_batch_statistics(
            model, x, batch_size=32, verbose=0
        )
        expected = _mlp_batch_statistics(model, x, 32)
        batches = -(-samples // 32)
        assert report == {
            model.get_layer("bn1").path: batches,
            model.get_layer("bn2").path: batches,
        }
        for name, (means, variances, counts) in expected.items():
            layer = model.get_layer(name)
            mean, variance = reference.population_statistics(
                means, variances, counts
            )
            if samples == 96:  # the paper's formulas, literally
                np.testing.assert_allclose(mean, means.mean(0), rtol=1e-12)
                np.testing.assert_allclose(
                    variance, 32 / 31 * variances.mean(0), rtol=1e-12
                )
            np.testing.assert_allclose(
                to_numpy(layer.moving_mean), mean, rtol=1e-6, atol=1e-9
            )
            np.testing.assert_allclose(
                to_numpy(layer.moving_variance), variance, rtol=1e-6
            )
        # Nothing else changed.
        for weight in model.weights:
            if "moving" not in weight.name:
                np.testing.assert_array_equal(
                    to_numpy(weight), before[weight.path]
                )


def test_recompute_leaves_predict_and_training_intact(rng):
    model = _mlp()
    x = rng.normal(size=(64, 5)).astype("float32")
    model.compile(optimizer="sgd", loss="mse")
    model.predict(x, verbose=0)  # a predict function exists already
    keras_norms.recompute_batch_statistics(model, x, verbose=0)
    # predict again returns the model's outputs (not statistics), with the
    # recomputed statistics at inference.
    outputs = model.predict(x, batch_size=64, verbose=0)
    np.testing.assert_allclose(
        outputs, to_numpy(model(x, training=False)), rtol=1e-5, atol=1e-5
    )
    assert outputs.shape == (64, 3)
    model.fit(x, np.zeros((64, 3)), epochs=1, verbose=0)


def test_recompute_per_step_with_masks_and_unreached_steps(rng):
    # Sequences padded with zeros at the end (Masking): each step's
    # statistics count the samples that reach it; steps 6 and 7 of the
    # 8-step tables are reached by no batch and keep their values.
    x = sequences_with_step_statistics(rng, 40)
    lengths = rng.integers(2, 7, 40)
    keep = np.arange(6)[None, :] < lengths[:, None]
    x = np.where(keep[..., None], x, 0.0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.Masking(0.0),
            TimestepBatchNormalization(max_timesteps=8, name="steps"),
        ]
    )
    layer = model.get_layer("steps")
    _set_random_weights(model, rng)
    report = keras_norms.recompute_batch_statistics(
        model, x, batch_size=16, verbose=0
    )
    assert report == {layer.path: 3}
    statistics = [
        reference_recurrent.timestep_batch_norm_train(
            x[i : i + 16], mask=keep[i : i + 16]
        )[1:]
        for i in range(0, 40, 16)
    ]
    means, variances, counts = (
        np.stack([s[i] for s in statistics]) for i in range(3)
    )
    counts = np.broadcast_to(counts[..., None], means.shape)
    mean, variance = reference.population_statistics(means, variances, counts)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean)[:6], mean, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance)[:6], variance, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(to_numpy(layer.moving_mean)[6:], -7.0)
    np.testing.assert_array_equal(to_numpy(layer.moving_variance)[6:], 9.0)


def test_recompute_the_three_normalizations_of_bnlstm(rng):
    x = sequences_with_step_statistics(rng, 32, time=5)
    model = keras.Sequential(
        [keras.Input((5, 3)), BNLSTM(4, name="lstm"), keras.layers.Dense(2)]
    )
    model.layers[0].trainable = False  # frozen layers are recomputed too
    cell = model.get_layer("lstm").cell
    norms = {
        "input": cell.input_normalization,
        "recurrent": cell.recurrent_normalization,
        "cell": cell.cell_normalization,
    }
    weights = {
        "kernel": rng.normal(0, 0.5, cell.kernel.shape),
        "recurrent_kernel": rng.normal(0, 0.5, cell.recurrent_kernel.shape),
        "bias": rng.normal(0, 0.5, cell.bias.shape),
        "cell_beta": rng.normal(0, 0.5, norms["cell"].beta.shape),
    }
    for name, norm in norms.items():
        weights[f"{name}_gamma"] = rng.uniform(0.1, 1.0, norm.gamma.shape)
        norm.gamma.assign(weights[f"{name}_gamma"])
    for name in ("kernel", "recurrent_kernel", "bias"):
        getattr(cell, name).assign(weights[name])
    norms["cell"].beta.assign(weights["cell_beta"])
    report = keras_norms.recompute_batch_statistics(
        model, x, batch_size=16, verbose=0
    )
    assert sorted(report) == sorted(norm.path for norm in norms.values())
    runs = [
        reference_recurrent.bn_lstm(x[i : i + 16], weights, True)[3]
        for i in (0, 16)
    ]
    for name, norm in norms.items():
        means, variances, counts = (
            np.stack([np.asarray(run[name][i]) for run in runs])
            for i in range(3)
        )
        counts = np.broadcast_to(
            counts.reshape(counts.shape + (1,) * (means.ndim - 2)), means.shape
        )
        mean, variance = reference.population_statistics(
            means, variances, counts
        )
        np.testing.assert_allclose(
            to_numpy(norm.moving_mean), mean, rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            to_numpy(norm.moving_variance), variance, rtol=1e-4, atol=1e-5
        )


class TwoBranchModel(keras.Model):
    """Calls only one of its two BN layers: the other is never reached."""

    def __init__(self):
        super().__init__()
        self.used = BatchNormalization()
        self.unused = BatchNormalization()

    def build(self, input_shape):
        self.used.build(input_shape)
        self.unused.build(input_shape)  # built, but never called

    def call(self, inputs, training=None):
        return self.used(inputs, training=training)


def test_nested_models_and_unreached_layers(rng):
    inner = keras.Sequential(
        [keras.Input((4,)), BatchNormalization(name="inner_bn")]
    )
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(4)(inner(inputs))
    outer = keras.Model(inputs, outputs)
    x = rng.normal(2.0, 3.0, (64, 4)).astype("float32")
    report = keras_norms.recompute_batch_statistics(
        outer, x, batch_size=64, verbose=0
    )
    bn = inner.get_layer("inner_bn")
    assert report == {bn.path: 1}
    np.testing.assert_allclose(
        to_numpy(bn.moving_mean), x.mean(0), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(bn.moving_variance), x.var(0) * 64 / 63, rtol=1e-5
    )

    model = TwoBranchModel()
    model(x[:2])
    report = keras_norms.recompute_batch_statistics(model, x, verbose=0)
    assert report == {model.used.path: 2}
    np.testing.assert_array_equal(to_numpy(model.unused.moving_mean), 0.0)
    np.testing.assert_array_equal(to_numpy(model.unused.moving_variance), 1.0)


def _sequence_of_batches(x, batch_size):
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(x) // batch_size

        def __getitem__(self, index):
            return x[index * batch_size : (index + 1) * batch_size]

    return Batches()


def _generator(x, batch_size):
    while True:  # endless, as a data generator often is: `steps` stops it
        for start in range(0, len(x), batch_size):
            yield (x[start : start + batch_size],)  # Keras wants a tuple


@pytest.mark.parametrize("form", ["tf.data", "PyDataset", "generator"])
def test_data_forms_of_predict(rng, form):
    x = rng.normal(1.0, 2.0, (64, 5)).astype("float32")
    reference_model = _mlp()
    model = _mlp()
    model.set_weights(reference_model.get_weights())
    keras_norms.recompute_batch_statistics(
        reference_model, x, batch_size=16, verbose=0
    )
    if form == "tf.data":
        tf = pytest.importorskip("tensorflow")
        data, steps = tf.data.Dataset.from_tensor_slices(x).batch(16), None
    elif form == "PyDataset":
        data, steps = _sequence_of_batches(x, 16), None
    else:
        data, steps = _generator(x, 16), 4
    report = keras_norms.recompute_batch_statistics(
        model, data, steps=steps, verbose=0
    )
    assert set(report.values()) == {4}
    for got, expected in zip(
        model.non_trainable_weights,
        reference_model.non_trainable_weights,
        strict=True,
    ):
        np.testing.assert_allclose(
            to_numpy(got), to_numpy(expected), rtol=1e-6, atol=1e-6
        )


def test_recompute_steps_limits_the_batches(rng):
    x = rng.normal(size=(64, 5)).astype("float32")
    model = _mlp()
    report = keras_norms.recompute_batch_statistics(
        model, x, batch_size=16, steps=2, verbose=0
    )
    assert set(report.values()) == {2}


def test_recompute_renorm_and_cumulative_layers(rng):
    x = rng.normal(4.0, 2.0, (48, 3)).astype("float32")
    for layer in (
        BatchNormalization(renorm=True),
        BatchNormalization(momentum=None),
    ):
        model = keras.Sequential([keras.Input((3,)), layer])
        keras_norms.recompute_batch_statistics(
            model, x, batch_size=16, verbose=0
        )
        batches = x.reshape(3, 16, 3)
        variance = 16 / 15 * batches.var(1).mean(0)
        np.testing.assert_allclose(
            to_numpy(layer.moving_variance), variance, rtol=1e-4, atol=1e-6
        )
        if layer.renorm:  # inference reads the variance from the stddev
            np.testing.assert_allclose(
                to_numpy(layer.moving_stddev) ** 2 - layer.epsilon,
                variance,
                rtol=1e-4,
            )
        else:
            assert float(to_numpy(layer.batch_count)) == 3.0


def test_recompute_bad_arguments(rng):
    with pytest.raises(TypeError, match="model"):
        keras_norms.recompute_batch_statistics(BatchNormalization(), None)
    core = keras.Sequential(
        [keras.Input((3,)), keras.layers.BatchNormalization()]
    )
    with pytest.raises(ValueError, match="keras_norms.layers.Batch"):
        keras_norms.recompute_batch_statistics(core, np.ones((4, 3)))
    with pytest.raises(ValueError, match="built"):
        keras_norms.recompute_batch_statistics(
            keras.Sequential([BatchNormalization()]), np.ones((4, 3))
        )
