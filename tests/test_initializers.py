"""Xavier/He initializers: fans, variances, distributions, depth behaviour."""

import contextlib
import math

import keras
import numpy as np
import pytest

from keras_norms import initializers
from keras_norms import layers

import reference
from helpers import save_and_load
from helpers import to_numpy

# Dense, Conv1D, Conv2D and Conv3D kernels in Keras's layout, each with
# fan_in != fan_out so that a swapped mode cannot pass. ~1.5e5 values each.
KERNELS = [
    (300, 500),
    (5, 40, 700),
    (3, 3, 64, 256),
    (3, 3, 3, 16, 300),
]
# Both modes and both slopes, in two cases rather than four (each draw of a
# new shape compiles on JAX).
MODES_AND_SLOPES = [("fan_in", 0.0), ("fan_out", 0.25)]


def _draw(initializer, shape):
    return to_numpy(initializer(shape, dtype="float32")).astype("float64")


def _check_moments(w, variance, distribution):
    """Mean and variance within 5 standard errors of the formulas."""
    n = w.size
    # Var of the sample variance: (mu4 - sigma^4) / n, with mu4 = 3 sigma^4
    # for a normal and 9/5 sigma^4 for a uniform.
    excess = 2.0 if distribution == "normal" else 0.8
    assert abs(w.mean()) < 5 * math.sqrt(variance / n)
    assert abs(w.var() - variance) < 5 * variance * math.sqrt(excess / n)


@pytest.mark.parametrize("shape", KERNELS, ids=str)
def test_fans_of_keras_kernels(shape):
    assert initializers.compute_fans(shape) == reference.kernel_fans(shape)


def test_fans_of_the_paper_example():
    # He et al.: n_l = k^2 c forward, k^2 d backward (3x3, c=64 -> d=128).
    assert initializers.compute_fans((3, 3, 64, 128)) == (9 * 64, 9 * 128)
    assert initializers.compute_fans((784, 10)) == (784, 10)


@pytest.mark.parametrize("shape", [(), (5,), (3, 0, 4), (-1, 3), (2, None)])
def test_fans_reject_shapes_without_positive_fans(shape):
    with pytest.raises(ValueError, match=r"shape=\("):
        initializers.compute_fans(shape)
    with pytest.raises(ValueError, match=r"shape=\("):
        initializers.HeNormal()(shape)


@pytest.mark.parametrize("shape", KERNELS, ids=str)
@pytest.mark.parametrize("mode, slope", MODES_AND_SLOPES)
def test_he_normal_statistics(shape, mode, slope):
    w = _draw(initializers.HeNormal(mode, slope, seed=1), shape)
    variance = reference.he_variance(shape, mode, slope)
    _check_moments(w, variance, "normal")
    # Untruncated: 4.55% of a normal lies beyond 2 sigma (Keras's
    # truncated HeNormal has none there).
    beyond = np.mean(np.abs(w) > 2 * math.sqrt(variance))
    p = math.erfc(2 / math.sqrt(2))
    assert abs(beyond - p) < 5 * math.sqrt(p * (1 - p) / w.size)


@pytest.mark.parametrize("shape", KERNELS, ids=str)
@pytest.mark.parametrize("mode, slope", MODES_AND_SLOPES)
def test_he_uniform_statistics(shape, mode, slope):
    w = _draw(initializers.HeUniform(mode, slope, seed=2), shape)
    variance = reference.he_variance(shape, mode, slope)
    _check_moments(w, variance, "uniform")
    bound = reference.uniform_bound(variance)
    assert np.abs(w).max() <= bound * (1 + 2**-23)
    assert np.abs(w).max() > bound * (1 - 1e-3)


@pytest.mark.parametrize(
    "shape, gain",
    list(zip(KERNELS, [1.0, 5 / 3, 1.0, 5 / 3], strict=True)),
    ids=str,
)
def test_xavier_uniform_bounds_and_statistics(shape, gain):
    w = _draw(initializers.XavierUniform(gain=gain, seed=3), shape)
    fan_in, fan_out = reference.kernel_fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(w).max() <= bound * (1 + 2**-23)
    assert np.abs(w).max() > bound * (1 - 1e-3)
    _check_moments(w, reference.xavier_variance(shape, gain), "uniform")


@pytest.mark.parametrize("shape", KERNELS, ids=str)
def test_xavier_normal_statistics(shape):
    w = _draw(initializers.XavierNormal(seed=4), shape)
    variance = reference.xavier_variance(shape)
    _check_moments(w, variance, "normal")
    beyond = np.mean(np.abs(w) > 2 * math.sqrt(variance))
    p = math.erfc(2 / math.sqrt(2))
    assert abs(beyond - p) < 5 * math.sqrt(p * (1 - p) / w.size)


def test_he_fan_in_agrees_with_keras_variance():
    # Same variance as keras.initializers.HeNormal, different tails.
    shape = (3, 3, 64, 256)
    ours = _draw(initializers.HeNormal(seed=5), shape)
    theirs = to_numpy(keras.initializers.HeNormal(seed=5)(shape)).astype(float)
    variance = reference.he_variance(shape)
    _check_moments(ours, variance, "normal")
    assert abs(theirs.var() - variance) < 0.02 * variance
    limit = 2 * math.sqrt(variance) / 0.87962566103423978
    assert np.abs(theirs).max() <= limit * (1 + 1e-6)
    assert np.abs(ours).max() > 1.2 * limit


@pytest.mark.parametrize(
    "name, param",
    [
        ("linear", None),
        ("conv1d", None),
        ("conv2d", None),
        ("conv3d", None),
        ("conv_transpose2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("selu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.25),
        ("leaky_relu", 0),
    ],
)
def test_calculate_gain_table(name, param):
    assert initializers.calculate_gain(name, param) == pytest.approx(
        reference.gain(name, param), rel=1e-15
    )


def test_he_variance_is_the_gain_squared_over_fan_in():
    for slope in [0.0, 0.25, 1.0]:
        gain = initializers.calculate_gain("leaky_relu", slope)
        shape = (3, 3, 8, 16)
        assert reference.he_variance(shape, "fan_in", slope) == pytest.approx(
            gain**2 / reference.kernel_fans(shape)[0]
        )


@pytest.mark.parametrize(
    "args, match",
    [
        (("swish",), "`nonlinearity`.*nonlinearity='swish'"),
        (("ReLU",), "`nonlinearity`.*nonlinearity='ReLU'"),
        ((None,), "`nonlinearity`.*nonlinearity=None"),
        (("leaky_relu", "0.1"), "`param`.*param='0.1'"),
        (("leaky_relu", True), "`param`.*param=True"),
        (("relu", 0.1), "param=0.1"),
        # The slope enters squared: 1e200 ** 2 overflows.
        (("leaky_relu", 1e200), "`param`.*param=1e\\+200"),
        (("leaky_relu", float("nan")), "`param`.*param=nan"),
    ],
)
def test_calculate_gain_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        initializers.calculate_gain(*args)


ALL = [
    initializers.XavierUniform(gain=2.0, seed=7),
    initializers.XavierNormal(seed=7),
    initializers.HeNormal(mode="fan_out", negative_slope=0.25, seed=7),
    initializers.HeUniform(seed=7),
]


@pytest.mark.parametrize("initializer", ALL, ids=lambda i: type(i).__name__)
def test_config_round_trip(initializer):
    config = initializer.get_config()
    clone = type(initializer).from_config(config)
    assert clone.get_config() == config
    revived = keras.initializers.deserialize(
        keras.initializers.serialize(initializer)
    )
    assert type(revived) is type(initializer)
    assert revived.get_config() == config
    assert keras.initializers.get(revived) is revived
    np.testing.assert_array_equal(
        to_numpy(revived((20, 30))), to_numpy(initializer((20, 30)))
    )


def test_seeds_behave_as_in_keras():
    shape = (20, 30)
    seeded = initializers.HeNormal(seed=3)
    np.testing.assert_array_equal(
        to_numpy(seeded(shape)), to_numpy(seeded(shape))
    )
    np.testing.assert_array_equal(
        to_numpy(seeded(shape)), to_numpy(initializers.HeNormal(seed=3)(shape))
    )
    assert not np.array_equal(
        to_numpy(seeded(shape)), to_numpy(initializers.HeNormal(seed=4)(shape))
    )
    # Unseeded: new values per call (unlike Keras 3, see the next test),
    # different between instances.
    unseeded = initializers.XavierUniform()
    assert not np.array_equal(
        to_numpy(unseeded(shape)), to_numpy(unseeded(shape))
    )
    assert unseeded.get_config()["seed"] is None
    assert not np.array_equal(
        to_numpy(unseeded(shape)), to_numpy(initializers.XavierUniform()(shape))
    )
    # A SeedGenerator draws new values on every call.
    generator = initializers.HeUniform(seed=keras.random.SeedGenerator(5))
    assert not np.array_equal(
        to_numpy(generator(shape)), to_numpy(generator(shape))
    )


def _shared_initializer_model(initializer):
    """Three Dense layers built with one initializer instance."""
    return keras.Sequential(
        [keras.Input((16,))]
        + [
            keras.layers.Dense(16, kernel_initializer=initializer)
            for _ in range(3)
        ]
    )


@pytest.mark.parametrize(
    "make",
    [
        initializers.XavierUniform,
        initializers.XavierNormal,
        initializers.HeNormal,
        initializers.HeUniform,
    ],
)
def test_shared_unseeded_instance_gives_each_layer_its_own_weights(make):
    # Keras 3's unseeded initializers repeat their values: three layers
    # sharing one instance would get the same kernel, and a deep stack
    # built that way barely trains.
    keras.utils.set_random_seed(21)
    kernels = [
        to_numpy(layer.kernel)
        for layer in _shared_initializer_model(make()).layers
    ]
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(kernels[i], kernels[j])
    # keras.utils.set_random_seed still makes the weights reproducible.
    keras.utils.set_random_seed(21)
    again = [
        to_numpy(layer.kernel)
        for layer in _shared_initializer_model(make()).layers
    ]
    for kernel, kernel_again in zip(kernels, again, strict=True):
        np.testing.assert_array_equal(kernel, kernel_again)


def test_shared_int_seeded_instance_repeats_its_values():
    # An int seed is an explicit request for the same values (as in Keras).
    kernels = [
        to_numpy(layer.kernel)
        for layer in _shared_initializer_model(
            initializers.HeNormal(seed=8)
        ).layers
    ]
    np.testing.assert_array_equal(kernels[0], kernels[2])


def test_dtype_and_use_in_a_saved_model(rng, tmp_path):
    init = initializers.HeNormal(mode="fan_out", seed=11)
    assert (
        keras.backend.standardize_dtype(init((4, 5), dtype="float16").dtype)
        == "float16"
    )
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3, kernel_initializer=init),
            layers.PReLU(shared_axes=[1, 2]),
            keras.layers.Flatten(),
            keras.layers.Dense(
                2, kernel_initializer=initializers.XavierUniform(seed=12)
            ),
        ]
    )
    loaded = save_and_load(model, tmp_path)
    conv = loaded.layers[0]
    assert type(conv.kernel_initializer) is initializers.HeNormal
    assert conv.kernel_initializer.get_config() == init.get_config()
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-7
    )


# Depth behaviour (He et al. 2015, Fig. 2/3; Glorot & Bengio 2010): 30
# layers of a plain Dense stack at initialization, with the initializers'
# weights, evaluated in NumPy. The per-layer gain fluctuates with the finite
# width, so each check averages (in log) over 4 independent stacks.
DEPTH = 30
STACKS = 4


def _single_threaded_blas():
    """These products are small: BLAS threads only add contention (100x
    slower seen on a loaded 2-core machine next to a backend's own pool)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _propagate(initializer, widths, slope, rng):
    """Variance ratios (last / first layer) of the forward pre-activations
    and of the backward gradients w.r.t. the layer inputs."""
    x = rng.normal(size=(64, widths[0])).astype("float32")
    kernels, pre_activations = [], []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        kernel = to_numpy(initializer((fan_in, fan_out), dtype="float32"))
        y = x @ kernel
        kernels.append(kernel)
        pre_activations.append(y)
        x = np.where(y > 0, y, np.float32(slope) * y)
    grad_y = rng.normal(size=pre_activations[-1].shape).astype("float32")
    grad_inputs = []
    for kernel, y in zip(kernels[::-1], pre_activations[::-1], strict=True):
        if grad_inputs:
            derivative = np.where(y > 0, 1.0, slope).astype("float32")
            grad_y = grad_inputs[-1] * derivative
        grad_inputs.append(grad_y @ kernel.T)
    forward = pre_activations[-1].var() / pre_activations[0].var()
    backward = grad_inputs[-1].var() / grad_inputs[0].var()
    return forward, backward


def _mean_ratios(make, widths, slope):
    """Geometric mean of `_propagate`'s ratios over `STACKS` stacks.

    The draws are fixed (weights from one SeedGenerator, inputs from one
    NumPy generator), so two initializers differing only in scale see the
    same standard normals.
    """
    seeds = keras.random.SeedGenerator(17)
    rng = np.random.default_rng(17)
    with _single_threaded_blas():
        logs = [
            np.log(_propagate(make(seeds), widths, slope, rng))
            for _ in range(STACKS)
        ]
    return np.exp(np.mean(logs, axis=0))


@pytest.mark.parametrize(
    "make, slope",
    [
        (lambda seed: initializers.HeNormal(seed=seed), 0.0),
        (lambda seed: initializers.HeUniform(seed=seed), 0.0),
        (
            lambda seed: initializers.HeNormal(negative_slope=0.25, seed=seed),
            0.25,
        ),
    ],
    ids=["he_normal_relu", "he_uniform_relu", "he_normal_prelu"],
)
def test_he_keeps_variance_through_depth(make, slope):
    forward, backward = _mean_ratios(make, [256] * (DEPTH + 1), slope)
    assert 1 / 4 < forward < 4
    assert 1 / 4 < backward < 4


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: initializers.XavierUniform(seed=seed),
        lambda seed: initializers.XavierNormal(seed=seed),
    ],
    ids=["xavier_uniform", "xavier_normal"],
)
def test_xavier_collapses_through_a_deep_relu_stack(make):
    # Each ReLU layer halves the variance: 2^-30 ~ 1e-9 after 30 layers.
    forward, backward = _mean_ratios(make, [256] * (DEPTH + 1), 0.0)
    assert forward < 1e-6
    assert backward < 1e-6


def test_slope_mismatch_grows_the_variance():
    # ReLU init (a=0) under PReLU(0.25): (1 + a^2) = 1.0625 per layer, 6x.
    forward, _ = _mean_ratios(
        lambda seed: initializers.HeNormal(seed=seed),
        [256] * (DEPTH + 1),
        0.25,
    )
    assert 1.0625**DEPTH / 3 < forward < 1.0625**DEPTH * 3


def test_fan_out_keeps_backward_variance_in_a_widening_stack():
    # 15 layers 64 wide, then 15 layers 512 wide: fan_in != fan_out at the
    # step. fan_out keeps the gradients' variance (He et al., eq. 13). With
    # the same draws, fan_in weights are fan_out weights times
    # sqrt(d_l / c_l) per layer, and ReLU stacks are positively
    # homogeneous, so the two modes differ by exactly the product of
    # d_l / c_l over the layers after the first, 512 / 64 (the paper's
    # c_2 / d_L): bounded, not exponential in depth.
    widths = [64] * 16 + [512] * 15
    forward_in, backward_in = _mean_ratios(
        lambda seed: initializers.HeNormal("fan_in", seed=seed), widths, 0.0
    )
    forward_out, backward_out = _mean_ratios(
        lambda seed: initializers.HeNormal("fan_out", seed=seed), widths, 0.0
    )
    assert 1 / 4 < backward_out < 4
    np.testing.assert_allclose(backward_in / backward_out, 512 / 64, rtol=1e-3)
    np.testing.assert_allclose(forward_in / forward_out, 512 / 64, rtol=1e-3)
