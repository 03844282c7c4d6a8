"""keras_norms.ops.spectral_normalization and layers.SpectralNormalization
against the float64 NumPy oracle (tests/reference_spectral.py), NumPy's
SVD, finite differences and Keras's own layer."""

import keras
import numpy as np
import pytest

from keras_norms import ops as norm_ops
from keras_norms.layers import SpectralNormalization

import reference
import reference_spectral
from helpers import BACKEND
from helpers import assert_same_weights
from helpers import float64_enabled
from helpers import save_and_load
from helpers import to_numpy
from helpers import value_and_gradients

# Kernel shapes: Dense, Conv2D (kh, kw, in, out), Conv2DTranspose
# (kh, kw, out, in), Embedding (input_dim, output_dim), a single unit.
KERNEL_SHAPES = [(5, 3), (3, 3, 2, 4), (2, 2, 4, 3), (10, 4), (6, 1)]


def random_u(rng, units):
    return rng.normal(size=(1, units))


def with_singular_values(rng, shape, values):
    """A kernel whose ``(-1, shape[-1])`` matrix has the given singular
    values (and random singular vectors)."""
    rows, units = int(np.prod(shape[:-1])), shape[-1]
    left, _ = np.linalg.qr(rng.normal(size=(rows, len(values))))
    right, _ = np.linalg.qr(rng.normal(size=(units, len(values))))
    return ((left * np.asarray(values)) @ right.T).reshape(shape)


# -- the op ------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, 1, 3])
@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=str)
def test_op_matches_oracle(rng, shape, steps):
    kernel = rng.normal(size=shape).astype("float32")
    u = random_u(rng, shape[-1]).astype("float32")
    result = norm_ops.spectral_normalization(kernel, u, power_iterations=steps)
    expected_kernel, expected_u, expected_sigma = (
        reference_spectral.spectral_normalize(kernel, u, steps)
    )
    assert tuple(result.kernel.shape) == shape
    assert keras.backend.standardize_dtype(result.kernel.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(result.kernel), expected_kernel, rtol=2e-5, atol=1e-6
    )
    if steps == 0:  # nothing refined: the given u as it is
        expected_u = u[0]
    np.testing.assert_allclose(
        to_numpy(result.vector_u), expected_u[None, :], rtol=2e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        float(to_numpy(result.sigma)), expected_sigma, rtol=2e-5
    )


@pytest.mark.parametrize("shape", KERNEL_SHAPES[:3], ids=str)
def test_op_in_float64_stays_float64(rng, shape):
    with float64_enabled():
        kernel = rng.normal(size=shape)
        u = random_u(rng, shape[-1])
        result = norm_ops.spectral_normalization(kernel, u, 2)
        assert keras.backend.standardize_dtype(result.kernel.dtype) == (
            "float64"
        )
        expected_kernel, expected_u, _ = reference_spectral.spectral_normalize(
            kernel, u, 2
        )
        np.testing.assert_allclose(
            to_numpy(result.kernel), expected_kernel, rtol=1e-12
        )
        np.testing.assert_allclose(
            to_numpy(result.vector_u)[0], expected_u, rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_kernel_keeps_its_dtype(rng, dtype):
    kernel = keras.ops.cast(rng.normal(size=(6, 4)), dtype)
    rounded = to_numpy(keras.ops.cast(kernel, "float32"))
    u = random_u(rng, 4).astype("float32")
    result = norm_ops.spectral_normalization(kernel, u, 3)
    assert keras.backend.standardize_dtype(result.kernel.dtype) == dtype
    assert keras.backend.standardize_dtype(result.vector_u.dtype) == "float32"
    expected_kernel, expected_u, _ = reference_spectral.spectral_normalize(
        rounded, u, 3
    )
    tolerance = 2**-10 if dtype == "float16" else 2**-7
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(result.kernel, "float32")),
        expected_kernel,
        rtol=tolerance,
        atol=tolerance,
    )
    # u is computed from the rounded kernel in float32.
    np.testing.assert_allclose(
        to_numpy(result.vector_u)[0], expected_u, rtol=1e-5, atol=1e-6
    )


def test_power_iteration_converges_to_the_largest_singular_value(rng):
    kernel = with_singular_values(rng, (3, 3, 2, 4), [4.0, 2.0, 1.0, 0.5])
    u = random_u(rng, 4)
    result = norm_ops.spectral_normalization(
        kernel.astype("float32"), u.astype("float32"), 30
    )
    np.testing.assert_allclose(float(to_numpy(result.sigma)), 4.0, rtol=1e-5)
    normalized = to_numpy(result.kernel)
    np.testing.assert_allclose(
        reference_spectral.largest_singular_value(normalized), 1.0, rtol=1e-5
    )


def test_sigma_never_exceeds_the_largest_singular_value(rng):
    # Both estimates (with and without steps) are lower bounds: the
    # normalized kernel has spectral norm >= 1, never a smaller one.
    for _ in range(5):
        kernel = rng.normal(size=(7, 5))
        u = random_u(rng, 5)
        largest = reference_spectral.largest_singular_value(kernel)
        for steps in (0, 1, 2):
            sigma = norm_ops.spectral_normalization(
                kernel.astype("float32"), u.astype("float32"), steps
            ).sigma
            assert float(to_numpy(sigma)) <= largest * (1 + 1e-6)


def test_zero_kernel_gives_zeros_and_keeps_u(rng):
    u = random_u(rng, 3).astype("float32")
    for steps in (0, 2):
        result = norm_ops.spectral_normalization(
            np.zeros((4, 3), "float32"), u, steps
        )
        np.testing.assert_array_equal(to_numpy(result.kernel), 0.0)
        np.testing.assert_array_equal(to_numpy(result.vector_u), u)
        assert float(to_numpy(result.sigma)) == 0.0


def test_small_kernel_is_normalized_exactly(rng):
    # Norms below Keras's 1e-7 floor: the direction is still exact.
    kernel = rng.normal(size=(5, 3)) * 1e-9
    u = random_u(rng, 3)
    result = norm_ops.spectral_normalization(
        kernel.astype("float32"), u.astype("float32"), 2
    )
    expected_kernel, _, _ = reference_spectral.spectral_normalize(kernel, u, 2)
    np.testing.assert_allclose(
        to_numpy(result.kernel), expected_kernel, rtol=1e-4
    )


def test_op_rejects_bad_arguments(rng):
    kernel = rng.normal(size=(4, 3)).astype("float32")
    u = random_u(rng, 3).astype("float32")
    with pytest.raises(ValueError, match=r"power_iterations=-1"):
        norm_ops.spectral_normalization(kernel, u, -1)
    with pytest.raises(TypeError, match=r"power_iterations=1.5"):
        norm_ops.spectral_normalization(kernel, u, 1.5)
    with pytest.raises(ValueError, match=r"vector_u.shape=\(3,\)"):
        norm_ops.spectral_normalization(kernel, u[0], 1)
    with pytest.raises(ValueError, match=r"kernel.shape=\(3,\)"):
        norm_ops.spectral_normalization(kernel[0], u, 1)


# -- gradients ---------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, 2])
def test_op_kernel_gradient_holds_the_vectors_constant(rng, steps):
    kernel = rng.normal(size=(3, 2, 4))
    u = random_u(rng, 4)
    upstream = rng.normal(size=kernel.shape)

    def loss(kernel, u):
        result = norm_ops.spectral_normalization(kernel, u, steps)
        return keras.ops.sum(
            result.kernel * keras.ops.convert_to_tensor(upstream)
        )

    with float64_enabled():
        _, (grad_kernel, grad_u) = value_and_gradients(loss, kernel, u)
    u_fixed, v_fixed = reference_spectral.power_iteration(
        reference_spectral.kernel_matrix(kernel), u, steps
    )
    expected = reference.numerical_gradient(
        lambda k: np.sum(
            reference_spectral.normalize_with_fixed_vectors(k, u_fixed, v_fixed)
            * upstream
        ),
        kernel,
    )
    np.testing.assert_allclose(grad_kernel, expected, rtol=1e-6, atol=1e-9)
    # The gradient goes through sigma: it is not upstream / sigma.
    sigma = float(v_fixed @ reference_spectral.kernel_matrix(kernel) @ u_fixed)
    assert np.max(np.abs(grad_kernel - upstream / sigma)) > 1e-2
    np.testing.assert_array_equal(grad_u, 0.0)


def _float64_dense(units=3):
    layer = SpectralNormalization(
        keras.layers.Dense(units, activation="tanh", dtype="float64"),
        power_iterations=2,
        dtype="float64",
    )
    return layer


@pytest.mark.parametrize("training", [True, False])
def test_layer_kernel_gradient_matches_finite_differences(rng, training):
    x = rng.normal(size=(5, 4))
    upstream = rng.normal(size=(5, 3))
    kernel0 = rng.normal(size=(4, 3))
    u0 = random_u(rng, 3)
    with float64_enabled():
        layer = _float64_dense()
        layer.build(x.shape)
        bias = rng.normal(size=3)
        layer.layer.bias.assign(bias)

        def loss(kernel, u):
            # The layer reads its kernel and u from the scope, as in JAX's
            # training step: the gradient must flow to the kernel only.
            mapping = [(layer.kernel, kernel), (layer.vector_u, u)]
            with keras.StatelessScope(mapping):
                y = layer(keras.ops.convert_to_tensor(x), training=training)
            return keras.ops.sum(y * keras.ops.convert_to_tensor(upstream))

        value, (grad_kernel, grad_u) = value_and_gradients(loss, kernel0, u0)

    steps = 2 if training else 0
    u_fixed, v_fixed = reference_spectral.power_iteration(kernel0, u0, steps)

    def oracle_loss(kernel):
        normalized = reference_spectral.normalize_with_fixed_vectors(
            kernel, u_fixed, v_fixed
        )
        return np.sum(np.tanh(x @ normalized + bias) * upstream)

    # Keras's own Dense computes float64 at reduced precision on the JAX
    # and torch backends (see test_weight_normalization); TF keeps float64.
    tolerance = 1e-8 if BACKEND == "tensorflow" else 2e-5
    np.testing.assert_allclose(value, oracle_loss(kernel0), rtol=tolerance)
    np.testing.assert_allclose(
        grad_kernel,
        reference.numerical_gradient(oracle_loss, kernel0),
        rtol=max(tolerance, 1e-6),
        atol=1e-7,
    )
    np.testing.assert_array_equal(grad_u, 0.0)


# -- the layer ---------------------------------------------------------------


def test_layer_matches_oracle_in_training_and_inference(rng):
    x = rng.normal(size=(6, 5)).astype("float32")
    layer = SpectralNormalization(
        keras.layers.Dense(4, activation="tanh"), power_iterations=3
    )
    layer.build(x.shape)
    kernel = to_numpy(layer.kernel)
    bias = rng.normal(size=4).astype("float32")
    layer.layer.bias.assign(bias)
    u0 = to_numpy(layer.vector_u).copy()

    y = to_numpy(layer(x, training=True))
    expected_kernel, expected_u, _ = reference_spectral.spectral_normalize(
        kernel, u0, 3
    )
    np.testing.assert_allclose(
        y, np.tanh(x @ expected_kernel + bias), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.vector_u)[0], expected_u, rtol=1e-5, atol=1e-6
    )
    # The trainable kernel is still the raw one.
    np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)
    np.testing.assert_array_equal(to_numpy(layer.layer.kernel), kernel)

    # Inference: sigma from the stored u, which does not move.
    u1 = to_numpy(layer.vector_u).copy()
    inference_kernel, _, _ = reference_spectral.spectral_normalize(
        kernel, u1, 0
    )
    for _ in range(2):
        y = to_numpy(layer(x, training=False))
        np.testing.assert_allclose(
            y, np.tanh(x @ inference_kernel + bias), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(to_numpy(layer.vector_u), u1)
    np.testing.assert_allclose(
        to_numpy(layer.normalized_kernel()),
        inference_kernel,
        rtol=1e-5,
        atol=1e-7,
    )


# name: (layer factory, input shape or integer input, kernel shape)
WRAPPABLE = {
    "dense": (lambda: keras.layers.Dense(4), (3, 6)),
    "conv2d": (lambda: keras.layers.Conv2D(4, 3), (2, 6, 6, 2)),
    "conv1d_transpose": (
        lambda: keras.layers.Conv1DTranspose(3, 2, strides=2),
        (2, 5, 4),
    ),
    "embedding": (lambda: keras.layers.Embedding(12, 5), None),
}


def _inputs(rng, shape):
    if shape is None:  # Embedding: token ids
        return rng.integers(0, 12, size=(3, 7))
    return rng.normal(size=shape).astype("float32")


@pytest.mark.parametrize("name", sorted(WRAPPABLE))
def test_largest_singular_value_tends_to_one_in_training(rng, name):
    factory, shape = WRAPPABLE[name]
    x = _inputs(rng, shape)
    layer = SpectralNormalization(factory())
    layer(x)  # build
    kernel_shape = tuple(layer.kernel.shape)
    units = kernel_shape[-1]
    values = 3.0 * 0.5 ** np.arange(min(units, np.prod(kernel_shape[:-1])))
    layer.kernel.assign(with_singular_values(rng, kernel_shape, values))
    before = reference_spectral.largest_singular_value(
        to_numpy(layer.normalized_kernel())
    )
    for _ in range(15):
        layer(x, training=True)
    after = reference_spectral.largest_singular_value(
        to_numpy(layer.normalized_kernel())
    )
    # From Keras's small random u the first estimate is rough.
    assert abs(before - 1.0) > 1e-3
    np.testing.assert_allclose(after, 1.0, rtol=1e-5)
    # And the layer computes with that kernel.
    unwrapped = factory()
    unwrapped(x)
    unwrapped.set_weights(
        [to_numpy(layer.normalized_kernel())] + layer.layer.get_weights()[1:]
    )
    np.testing.assert_allclose(
        to_numpy(layer(x, training=False)),
        to_numpy(unwrapped(x)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_stack_with_relu_is_1_lipschitz(rng):
    def normal_kernel(seed):
        return keras.initializers.RandomNormal(stddev=1.5, seed=seed)

    model = keras.Sequential(
        [keras.Input((6,))]
        + [
            layer
            for seed, units in enumerate([16, 16])
            for layer in (
                SpectralNormalization(
                    keras.layers.Dense(
                        units, kernel_initializer=normal_kernel(seed)
                    ),
                    power_iterations=2,
                ),
                keras.layers.ReLU(),
            )
        ]
        + [
            SpectralNormalization(
                keras.layers.Dense(3, kernel_initializer=normal_kernel(9)),
                power_iterations=2,
            )
        ]
    )
    warmup = rng.normal(size=(4, 6)).astype("float32")
    for _ in range(40):
        model(warmup, training=True)
    x = rng.normal(size=(400, 6)).astype("float32")
    # Far pairs and near ones (where ReLU is locally linear).
    y = np.concatenate(
        [
            rng.normal(size=(200, 6)),
            x[200:] + 1e-2 * rng.normal(size=(200, 6)),
        ]
    ).astype("float32")
    ratio = np.linalg.norm(
        to_numpy(model(x)) - to_numpy(model(y)), axis=1
    ) / np.linalg.norm(x - y, axis=1)
    assert ratio.max() <= 1.0 + 1e-4
    # The same stack with the raw kernels is far from 1-Lipschitz, so the
    # bound above is the normalization's doing.
    kernels = [to_numpy(layer.kernel) for layer in model.layers[::2]]
    biases = [to_numpy(layer.layer.bias) for layer in model.layers[::2]]

    def raw(points):
        for i, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
            points = points @ kernel + bias
            if i < len(kernels) - 1:
                points = np.maximum(points, 0.0)
        return points

    raw_ratio = np.linalg.norm(raw(x) - raw(y), axis=1) / np.linalg.norm(
        x - y, axis=1
    )
    assert raw_ratio.max() > 2.0


def test_vector_u_moves_only_in_training(rng):
    x = rng.normal(size=(4, 5)).astype("float32")
    layer = SpectralNormalization(keras.layers.Dense(3))
    layer(x)
    u0 = to_numpy(layer.vector_u).copy()
    layer(x, training=False)
    layer(x)  # training=None
    np.testing.assert_array_equal(to_numpy(layer.vector_u), u0)
    layer.trainable = False
    layer(x, training=True)
    np.testing.assert_array_equal(to_numpy(layer.vector_u), u0)
    layer.trainable = True
    layer(x, training=True)
    assert np.max(np.abs(to_numpy(layer.vector_u) - u0)) > 1e-3
    assert layer.vector_u.trainable is False
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_sigma_comes_from_the_float32_kernel_under_a_mixed_policy(rng, policy):
    # Called outside a model, a mixed layer runs in an autocast scope even
    # when it does not autocast itself: the kernel must still be read in
    # float32, not rounded to 8 or 11 bits first.
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = SpectralNormalization(
        keras.layers.Dense(5), power_iterations=3, dtype=policy
    )
    layer.build(x.shape)
    kernel = to_numpy(layer.kernel)
    u0 = to_numpy(layer.vector_u).copy()
    layer(x, training=True)
    _, expected_u, _ = reference_spectral.spectral_normalize(kernel, u0, 3)
    np.testing.assert_allclose(
        to_numpy(layer.vector_u)[0], expected_u, rtol=1e-5, atol=1e-6
    )


def test_zero_kernel_gives_the_bias_and_keeps_u(rng):
    x = rng.normal(size=(4, 5)).astype("float32")
    layer = SpectralNormalization(
        keras.layers.Dense(
            3, kernel_initializer="zeros", bias_initializer="ones"
        )
    )
    layer(x)
    u0 = to_numpy(layer.vector_u).copy()
    for training in (True, False):
        np.testing.assert_array_equal(
            to_numpy(layer(x, training=training)), np.ones((4, 3))
        )
    np.testing.assert_array_equal(to_numpy(layer.vector_u), u0)


def test_weights_and_config_are_keras_s():
    ours = SpectralNormalization(keras.layers.Conv2D(3, 2), power_iterations=2)
    theirs = keras.layers.SpectralNormalization(
        keras.layers.Conv2D(3, 2), power_iterations=2
    )
    for layer in (ours, theirs):
        layer.build((None, 5, 5, 2))
    assert [(w.name, tuple(w.shape), w.trainable) for w in ours.weights] == [
        (w.name, tuple(w.shape), w.trainable) for w in theirs.weights
    ]
    config = theirs.get_config()
    config["layer"]["config"]["name"] = ours.layer.name
    config["name"] = ours.name
    assert ours.get_config() == config


def test_keras_configs_and_trained_weights_load(rng, tmp_path):
    x = rng.normal(size=(8, 5)).astype("float32")

    def model(layer):
        inputs = keras.Input((5,))
        return keras.Model(inputs, layer(inputs))

    keras_layer = keras.layers.SpectralNormalization(
        keras.layers.Dense(4), power_iterations=2, name="sn"
    )
    theirs = model(keras_layer)
    # Keras's training calls write W / sigma into its kernel.
    for _ in range(20):
        theirs(x, training=True)
    theirs.save_weights(str(tmp_path / "keras.weights.h5"))
    ours = model(SpectralNormalization.from_config(keras_layer.get_config()))
    ours.load_weights(str(tmp_path / "keras.weights.h5"))
    for mine, keras_weight in zip(ours.weights, theirs.weights, strict=True):
        assert mine.name == keras_weight.name
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(keras_weight))
    # A kernel Keras normalized has sigma 1 for its converged u: the same
    # outputs.
    np.testing.assert_allclose(
        to_numpy(ours(x)), to_numpy(theirs(x)), rtol=1e-4, atol=1e-5
    )


def test_embedding_is_normalized(rng):
    ids = rng.integers(0, 12, size=(3, 7))
    layer = SpectralNormalization(keras.layers.Embedding(12, 5))
    layer(ids)  # build
    table = to_numpy(layer.layer.embeddings)
    u = to_numpy(layer.vector_u).copy()
    y = to_numpy(layer(ids, training=True))
    expected, _, _ = reference_spectral.spectral_normalize(table, u, 1)
    np.testing.assert_allclose(y, expected[ids], rtol=1e-5, atol=1e-6)


def test_activity_regularizer_of_wrapped_layer_is_kept(rng):
    x = rng.normal(size=(4, 3)).astype("float32")
    layer = SpectralNormalization(
        keras.layers.Dense(2, activity_regularizer="l2")
    )
    # Inference: sigma from the stored u, as normalized_kernel() uses.
    layer(x, training=False)
    assert len(layer.losses) == 1
    # What a plain Dense with the normalized kernel records (Keras divides
    # the activity loss by the batch size since 3.9, not in 3.8).
    plain = keras.layers.Dense(2, activity_regularizer="l2")
    plain.build(x.shape)
    plain.set_weights(
        [to_numpy(layer.normalized_kernel()), to_numpy(layer.layer.bias)]
    )
    plain(x)
    expected = plain.losses[0]
    np.testing.assert_allclose(
        to_numpy(layer.losses[0]), to_numpy(expected), rtol=1e-5
    )


# -- in models ---------------------------------------------------------------


def _model(kind, power_iterations):
    def wrapper(name):
        return SpectralNormalization(
            keras.layers.Dense(4, activation="relu"),
            power_iterations=power_iterations,
            name=name,
        )

    if kind == "sequential":
        return keras.Sequential(
            [keras.Input((5,)), wrapper("sn"), keras.layers.Dense(2)]
        )
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(2)(wrapper("sn")(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_fit_keeps_every_power_iteration_step(rng, kind):
    # Learning rate 0: the kernel stays, and after n training steps u is n
    # power-iteration steps (times power_iterations) from where it began.
    # On JAX the step is stateless: u must come back from it as state.
    x = rng.normal(size=(32, 5)).astype("float32")
    model = _model(kind, power_iterations=2)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    layer = model.get_layer("sn")
    kernel = to_numpy(layer.kernel).copy()
    u0 = to_numpy(layer.vector_u).copy()
    model.fit(
        x, np.zeros((32, 2)), batch_size=8, epochs=2, shuffle=False, verbose=0
    )
    np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)
    _, expected_u, _ = reference_spectral.spectral_normalize(
        kernel, u0, 2 * 4 * 2
    )
    np.testing.assert_allclose(
        to_numpy(layer.vector_u)[0], expected_u, rtol=1e-4, atol=1e-5
    )
    # predict and evaluate leave it.
    u1 = to_numpy(layer.vector_u).copy()
    model.predict(x, verbose=0)
    model.evaluate(x, np.zeros((32, 2)), verbose=0)
    np.testing.assert_array_equal(to_numpy(layer.vector_u), u1)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_fit_trains_the_raw_kernel(rng, kind):
    x = rng.normal(size=(64, 5)).astype("float32")
    y = np.sin(x[:, :2])
    model = _model(kind, power_iterations=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    layer = model.get_layer("sn")
    kernel = to_numpy(layer.kernel).copy()
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.max(np.abs(to_numpy(layer.kernel) - kernel)) > 1e-3
    # Trained through sigma, the raw kernel is free to grow or shrink; the
    # kernel the layer computes with keeps spectral norm ~1.
    largest = reference_spectral.largest_singular_value(
        to_numpy(layer.normalized_kernel())
    )
    np.testing.assert_allclose(largest, 1.0, rtol=0.05)
    # 4 trainable variables: the wrapped Dense's and the head's.
    assert len(model.trainable_weights) == 4


def test_save_and_load_round_trip(rng, tmp_path):
    inputs = keras.Input((8, 8, 2))
    x = SpectralNormalization(
        keras.layers.Conv2D(4, 3, activation="relu"), power_iterations=3
    )(inputs)
    x = keras.layers.Flatten()(x)
    x = SpectralNormalization(keras.layers.Dense(3))(x)
    model = keras.Model(inputs, x)
    data = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    model(data, training=True)  # u moves away from its initial value
    expected = to_numpy(model(data, training=False))
    loaded = save_and_load(model, tmp_path)
    assert isinstance(loaded.layers[1], SpectralNormalization)
    assert loaded.layers[1].power_iterations == 3
    assert loaded.layers[1].layer.activation is keras.activations.relu
    np.testing.assert_allclose(
        to_numpy(loaded(data, training=False)), expected, rtol=1e-6, atol=1e-6
    )
    assert_same_weights(model, loaded)


def test_config_round_trip():
    layer = SpectralNormalization(
        keras.layers.Conv1D(3, 2, use_bias=False), power_iterations=4, name="s"
    )
    config = layer.get_config()
    assert config["power_iterations"] == 4
    assert config["layer"]["class_name"] == "Conv1D"
    restored = SpectralNormalization.from_config(config)
    assert restored.get_config() == config
    assert "layer" in config  # from_config must not consume its argument


# -- bad arguments -----------------------------------------------------------


@pytest.mark.parametrize("value", [0, -2, 1.5, "1", True, None])
def test_power_iterations_must_be_a_positive_int(value):
    with pytest.raises(ValueError, match=f"power_iterations={value!r}"):
        SpectralNormalization(keras.layers.Dense(2), power_iterations=value)


def test_a_layer_without_kernel_is_rejected_at_build():
    layer = SpectralNormalization(keras.layers.ReLU(name="no_kernel"))
    with pytest.raises(
        ValueError, match=r"layer 'no_kernel' of class ReLU has none"
    ):
        layer(np.ones((4, 2), "float32"))


@pytest.mark.parametrize("value", ["dense", len, None])
def test_a_non_layer_is_rejected(value):
    # TypeError, and the ValueError keras.layers.Wrapper raises.
    for error in (TypeError, ValueError):
        with pytest.raises(error, match=f"layer={value!r}"):
            SpectralNormalization(value)


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit specific")
def test_update_inside_jax_jit_is_returned_as_state(rng):
    import jax

    x = rng.normal(size=(4, 3)).astype("float32")
    layer = SpectralNormalization(keras.layers.Dense(2))
    layer.build(x.shape)
    u0 = to_numpy(layer.vector_u).copy()

    @jax.jit
    def step(trainable, non_trainable, x):
        return layer.stateless_call(trainable, non_trainable, x, training=True)

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    _, (new_u,) = step(trainable, non_trainable, x)
    _, expected_u, _ = reference_spectral.spectral_normalize(
        to_numpy(layer.kernel), u0, 1
    )
    np.testing.assert_allclose(to_numpy(new_u)[0], expected_u, rtol=1e-5)
    # The layer's own variable is untouched by a stateless call.
    np.testing.assert_array_equal(to_numpy(layer.vector_u), u0)
