r"""Xavier/Glorot and He/Kaiming initialization, as in the papers.

One engine, `VarianceScaling`, draws zero-mean weights with variance
``scale / n`` from an untruncated normal or a uniform distribution, where
``n`` is the fan-in, the fan-out or their average (`compute_fans`). The four
public initializers are thin subclasses that fix ``scale`` and ``n``:

| initializer   | variance                        | distribution      |
|---------------|---------------------------------|-------------------|
| XavierUniform | gain^2 * 2 / (fan_in + fan_out) | U[-b, b], b^2 = 3 var |
| XavierNormal  | gain^2 * 2 / (fan_in + fan_out) | N(0, var)         |
| HeNormal      | 2 / ((1 + a^2) * fan)           | N(0, var)         |
| HeUniform     | 2 / ((1 + a^2) * fan)           | U[-b, b], b^2 = 3 var |

Unlike `keras.initializers.HeNormal` / ``GlorotNormal``, which draw from a
normal truncated at two standard deviations (rescaled so the variance is
still ``scale / n``), the normal here is *not* truncated, as in the papers
and in PyTorch's ``kaiming_normal_`` / ``xavier_normal_``.

Unlike Keras 3's random initializers, an *unseeded* instance draws new
values on every call, so one instance shared by several layers does not
give them identical weights (see `VarianceScaling`).
"""

import math
import numbers
import random

import keras

from keras_norms._api import export
from keras_norms._validation import check_choice
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_squarable_float

FAN_MODES = ("fan_in", "fan_out")

# calculate_gain's table: gains that keep the activations' scale through
# a nonlinearity (PyTorch's values). leaky_relu is computed from its slope.
_LINEAR = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
_GAINS = {
    **{name: 1.0 for name in _LINEAR},
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4.0,
}
NONLINEARITIES = (*_GAINS, "leaky_relu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The recommended gain (standard-deviation factor) for a nonlinearity.

    Multiply the standard deviation of a unit-gain initialization by it
    (e.g. ``XavierUniform(gain=calculate_gain("tanh"))``):

    | nonlinearity                              | gain                        |
    |-------------------------------------------|-----------------------------|
    | linear, conv{1,2,3}d, conv_transpose{1,2,3}d | 1                        |
    | sigmoid                                   | 1                           |
    | tanh                                      | 5/3                         |
    | relu                                      | sqrt(2)                     |
    | leaky_relu                                | sqrt(2 / (1 + slope^2))     |
    | selu                                      | 3/4                         |

    Args:
        nonlinearity: Name of the nonlinearity, one of the table's.
        param: The negative slope for ``"leaky_relu"`` (default 0.01); it
            must be ``None`` for the others.

    Returns:
        The gain, a float.

    Examples:
        >>> from keras_norms.initializers import calculate_gain
        >>> round(calculate_gain("leaky_relu", 0.25), 6)
        1.371989
    """
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check_squarable_float("param", param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if param is not None:
        raise ValueError(
            "Argument `param` is only used by nonlinearity='leaky_relu'. "
            f"Received: nonlinearity={nonlinearity!r}, param={param!r}"
        )
    return _GAINS[nonlinearity]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel in Keras's layout.

    A ``Dense`` kernel is ``(inputs, units)``; a ``Conv1D/2D/3D`` kernel is
    ``(*kernel_size, in_channels, out_channels)``. The fans are the
    receptive field size (product of ``kernel_size``) times the input,
    respectively output, channels: ``n_l = k^2 c`` in He et al. (For
    ``Conv*DTranspose``, whose Keras kernel is ``(*kernel_size, filters,
    in_channels)``, the two swap, as in Keras and PyTorch.)

    Args:
        shape: The kernel's shape, of rank >= 2.

    Returns:
        fan_in: The receptive field size times the input channels.
        fan_out: The receptive field size times the output channels.

    Raises:
        ValueError: if the shape has rank < 2 (there is no fan-in/fan-out
            to speak of) or a dimension that is not a positive int.
    """
    shape = tuple(shape)
    if len(shape) < 2 or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
        for d in shape
    ):
        raise ValueError(
            "Fan-in and fan-out need a kernel shape of rank >= 2 with "
            "positive dimensions: (inputs, units) or (*kernel_size, "
            f"in_channels, out_channels). Received: shape={shape}"
        )
    receptive_field = math.prod(int(d) for d in shape[:-2])
    return receptive_field * int(shape[-2]), receptive_field * int(shape[-1])


class VarianceScaling(keras.initializers.Initializer):
    """The engine: zero-mean weights with variance ``scale / n``.

    ``n`` is the fan-in, the fan-out or their average (``mode``); the
    distribution is an *untruncated* normal or the uniform distribution on
    ``[-sqrt(3 scale / n), sqrt(3 scale / n)]``.

    Seeds:

    - an int gives the same values on every call (as in Keras), so one
      int-seeded instance shared by several layers gives them identical
      weights: give each layer its own seed or instance;
    - ``None`` (unseeded) draws *new* values on every call. Keras 3's
      unseeded initializers repeat their first values instead, so one
      instance shared by several layers silently gives them all the same
      weights (a deep stack built that way barely trains); Keras 2 warned
      about it. The per-call seeds come from one seed picked with Python's
      `random` at construction, so `keras.utils.set_random_seed` still
      makes a model's weights reproducible;
    - a `keras.random.SeedGenerator` draws new values on each call from
      that generator.

    Args:
        scale: Positive float, the variance times ``n``.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"normal"`` (untruncated) or ``"uniform"``.
        seed: ``None``, an int or a `keras.random.SeedGenerator`.
    """

    def __init__(self, scale, mode, distribution, seed=None):
        self.scale = check_positive_float("scale", scale)
        self.mode = check_choice("mode", mode, (*FAN_MODES, "fan_avg"))
        self.distribution = check_choice(
            "distribution", distribution, ("normal", "uniform")
        )
        self._init_seed = seed
        self._calls = None
        if seed is None:
            # Python's generator, as Keras does, so that
            # keras.utils.set_random_seed makes unseeded models reproducible.
            seed = random.randint(1, 10**9)
            # Seeds of the calls after the first, derived from the first.
            self._calls = random.Random(seed)
        elif isinstance(seed, dict):
            seed = keras.saving.deserialize_keras_object(seed)
        elif isinstance(seed, bool) or not isinstance(
            seed, (numbers.Integral, keras.random.SeedGenerator)
        ):
            raise ValueError(
                "Argument `seed` must be None, an int or a "
                f"keras.random.SeedGenerator. Received: seed={seed!r}"
            )
        self.seed = seed

    def variance(self, shape):
        """The variance of the weights drawn for a kernel of ``shape``."""
        fan_in, fan_out = compute_fans(shape)
        fans = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2.0,
        }
        return self.scale / fans[self.mode]

    def _call_seed(self):
        """This call's seed: unseeded instances move to a new one."""
        seed = self.seed
        if self._calls is not None:
            self.seed = self._calls.randint(1, 10**9)
        return seed

    def __call__(self, shape, dtype=None):
        variance = self.variance(shape)
        seed = self._call_seed()
        if self.distribution == "normal":
            return keras.random.normal(
                shape, stddev=math.sqrt(variance), dtype=dtype, seed=seed
            )
        bound = math.sqrt(3.0 * variance)
        return keras.random.uniform(
            shape, minval=-bound, maxval=bound, dtype=dtype, seed=seed
        )

    def get_config(self):
        return {"seed": keras.saving.serialize_keras_object(self._init_seed)}


class _Xavier(VarianceScaling):
    def __init__(self, distribution, gain=1.0, seed=None):
        # gain enters squared: 1e200 would overflow, 1e-200 give 0.
        self.gain = check_squarable_float("gain", gain, positive=True)
        super().__init__(self.gain**2, "fan_avg", distribution, seed=seed)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


@export
class XavierUniform(_Xavier):
    r"""Xavier/Glorot uniform initialization (Glorot & Bengio, 2010).

    $$W \sim U\Big[-g\sqrt{\tfrac{6}{n_{in} + n_{out}}},
    \; g\sqrt{\tfrac{6}{n_{in} + n_{out}}}\Big]$$

    The "normalized initialization" of the paper (eq. 16): its variance
    ``g^2 * 2 / (n_in + n_out)`` compromises between keeping the forward
    activations' variance (``n_in Var[W] = 1``) and the backward
    gradients' variance (``n_out Var[W] = 1``) for linear or tanh-like
    units. With ReLUs it halves the variance at every layer; use
    `HeNormal` / `HeUniform` there.

    Args:
        gain (float): Positive float ``g`` multiplying the bound (see
            `calculate_gain`; e.g. 5/3 for tanh).
        seed (int | SeedGenerator | None): ``None`` (new values on every call,
            reproducible under `keras.utils.set_random_seed`; unlike Keras 3,
            one unseeded instance shared by several layers gives each its own
            weights), an int (the same values on every call) or a
            `keras.random.SeedGenerator`. See `VarianceScaling`.

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.

    Examples:
        >>> import keras, keras_norms
        >>> init = keras_norms.initializers.XavierUniform(seed=0)
        >>> dense = keras.layers.Dense(4, kernel_initializer=init)
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__("uniform", gain=gain, seed=seed)


@export
class XavierNormal(_Xavier):
    r"""Xavier/Glorot normal initialization, untruncated.

    $$W \sim \mathcal{N}\Big(0, \; g^2 \frac{2}{n_{in} + n_{out}}\Big)$$

    The same variance as `XavierUniform`. Unlike
    `keras.initializers.GlorotNormal`, the normal is not truncated.

    Args:
        gain (float): Positive float ``g`` multiplying the standard deviation
            (see `calculate_gain`).
        seed (int | SeedGenerator | None): ``None`` (new values on every call,
            reproducible under `keras.utils.set_random_seed`; unlike Keras 3,
            one unseeded instance shared by several layers gives each its own
            weights), an int (the same values on every call) or a
            `keras.random.SeedGenerator`. See `VarianceScaling`.

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.

    Examples:
        >>> import keras_norms
        >>> init = keras_norms.initializers.XavierNormal(seed=0)
        >>> tuple(init((3, 3, 16, 32)).shape)
        (3, 3, 16, 32)
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__("normal", gain=gain, seed=seed)


class _He(VarianceScaling):
    def __init__(
        self, distribution, mode="fan_in", negative_slope=0.0, seed=None
    ):
        check_choice("mode", mode, FAN_MODES)
        self.negative_slope = check_squarable_float(
            "negative_slope", negative_slope
        )
        scale = 2.0 / (1.0 + self.negative_slope**2)
        super().__init__(scale, mode, distribution, seed=seed)

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "negative_slope": self.negative_slope,
        }


@export
class HeNormal(_He):
    r"""He/Kaiming normal initialization (He et al., 2015), untruncated.

    $$W \sim \mathcal{N}\Big(0, \; \frac{2}{(1 + a^2)\, n_l}\Big)$$

    With ``mode="fan_in"``, ``n_l = k^2 c`` (kernel area times input
    channels) and the variance of the *activations* stays constant through
    a deep stack of ReLU (``a = 0``) or PReLU/leaky-ReLU (slope ``a``)
    layers (the paper's eq. 10 and 14). With ``mode="fan_out"``, ``n_l =
    k^2 d`` (times output channels) and the variance of the *gradients*
    stays constant in the backward pass (eq. 13). Either keeps a deep
    network trainable; the paper notes both differ only by a bounded
    factor over the whole depth.

    Unlike `keras.initializers.HeNormal`, which draws from a normal
    truncated at two standard deviations, the normal here is not truncated
    (as in the paper and ``torch.nn.init.kaiming_normal_``).

    Args:
        mode (str): ``"fan_in"`` (preserve the forward variance) or
            ``"fan_out"`` (preserve the backward variance).
        negative_slope (float): Float ``a``, the negative slope of the PReLU /
            leaky ReLU that follows (``0`` for ReLU; He et al. start PReLU
            at ``0.25``).
        seed (int | SeedGenerator | None): ``None`` (new values on every call,
            reproducible under `keras.utils.set_random_seed`; unlike Keras 3,
            one unseeded instance shared by several layers gives each its own
            weights), an int (the same values on every call) or a
            `keras.random.SeedGenerator`. See `VarianceScaling`.

    Reference:
        He, Zhang, Ren & Sun, "Delving Deep into Rectifiers: Surpassing
        Human-Level Performance on ImageNet Classification", ICCV 2015,
        Section 2.2.

    Examples:
        >>> import keras, keras_norms
        >>> conv = keras.layers.Conv2D(
        ...     16, 3, kernel_initializer=keras_norms.initializers.HeNormal(
        ...         mode="fan_out", negative_slope=0.25, seed=0
        ...     )
        ... )
    """

    def __init__(self, mode="fan_in", negative_slope=0.0, seed=None):
        super().__init__("normal", mode, negative_slope, seed=seed)


@export
class HeUniform(_He):
    r"""He/Kaiming uniform initialization: the variance of `HeNormal`.

    $$W \sim U[-b, b], \quad b = \sqrt{\frac{6}{(1 + a^2)\, n_l}}$$

    Args:
        mode (str): ``"fan_in"`` or ``"fan_out"`` (see `HeNormal`).
        negative_slope (float): Float ``a``, the negative slope of the PReLU /
            leaky ReLU that follows (``0`` for ReLU).
        seed (int | SeedGenerator | None): ``None`` (new values on every call,
            reproducible under `keras.utils.set_random_seed`; unlike Keras 3,
            one unseeded instance shared by several layers gives each its own
            weights), an int (the same values on every call) or a
            `keras.random.SeedGenerator`. See `VarianceScaling`.

    Reference:
        He, Zhang, Ren & Sun, "Delving Deep into Rectifiers", ICCV 2015.

    Examples:
        >>> import keras_norms
        >>> init = keras_norms.initializers.HeUniform(seed=0)
        >>> tuple(init((64, 32)).shape)
        (64, 32)
    """

    def __init__(self, mode="fan_in", negative_slope=0.0, seed=None):
        super().__init__("uniform", mode, negative_slope, seed=seed)
