"""Every constructor argument of every public layer and initializer, fed
bad values: wrong type, out of range, inf/NaN.

Each must fail early (constructor, or build where the check needs the
input shape) with ``ValueError`` (``TypeError`` for a non-layer wrapped by
`WeightNormalization`, as before; a wrong type raises `ArgumentTypeError`,
both), and the message must name the argument with the received value,
``name=repr(value)``. Where Keras's class of the same name rejects the
value too, ours raises an instance of Keras's exception class. A coverage
test keeps the table complete: a new constructor argument without bad
values fails it.
"""

import inspect
import math

import keras
import numpy as np
import pytest

from keras_norms import initializers
from keras_norms import layers

INF = math.inf
NAN = math.nan

# Bad values per kind of argument.
BAD = {
    # bool("False") is True: only real booleans are flags.
    "bool": ["False", 1, 0.0, None],
    "positive": [0, -1e-3, INF, NAN, "1e-3", True, None, 10**400],
    # (1 is allowed, as in Keras: it freezes the moving statistics.)
    "momentum": [1.01, -0.1, INF, NAN, "0.99", True, None, 0.1j],
    "momentum_or_none": [1.01, -0.1, INF, NAN, "0.99", True, 0.1j],
    "rate": [1.0, -0.1, INF, NAN, "0.5", True],
    "initializer": ["no_such_initializer", 3],
    "regularizer": ["no_such_regularizer", 3],
    "constraint": ["no_such_constraint", 3],
    "activation": ["no_such_activation", 3],
    "positive_int": [0, -1, 2.5, "4", True, None],
    "positive_int_or_none": [0, -1, 2.5, "10", True],
    "int_seed": ["a", 1.5, True],
    "initializer_seed": ["a", 1.5, True, NAN],
    "axis": ["channels", 1.5, None, True],
    "axes": ["channels", 1.5, None, [], [1.5], [True]],
    "groups": [0, -2, 2.0, "4", True, None],
    "lrn_alpha": [-1e-4, INF, NAN, "1e-4", True],
    "finite": [INF, -INF, NAN, "0.75", True, None],
    "lrn_mode": ["across", None, 1],
    # gain enters squared: 1e200 overflows, 1e-200 underflows to 0.
    "gain": [0, -1.0, INF, NAN, 1e200, 1e-200, "1", True, None],
    "slope": [INF, NAN, 1e200, -1e200, "0.25", True, None],
    "he_mode": ["fan_avg", "in", None],
    "prelu_alpha": [INF, NAN, "no_such_initializer", True],
    "shared_axes": [1.5, [], ["1"], [True], "1"],
    "renorm_clipping": [
        [1.0, 2.0],
        {"rmx": 1.0},
        {"rmax": "3"},
        {"rmax": NAN},
        {"dmax": True},
        {"rmax": 1.0, "rmin": 2.0},
        {"dmax": -1.0},
    ],
}

_AFFINE = {
    "center": "bool",
    "scale": "bool",
    "beta_initializer": "initializer",
    "gamma_initializer": "initializer",
    "beta_regularizer": "regularizer",
    "gamma_regularizer": "regularizer",
    "beta_constraint": "constraint",
    "gamma_constraint": "constraint",
}
_BATCH = {
    **_AFFINE,
    "axis": "axis",
    "momentum": "momentum_or_none",
    "epsilon": "positive",
    "moving_mean_initializer": "initializer",
    "moving_variance_initializer": "initializer",
    "renorm": "bool",
    "renorm_clipping": "renorm_clipping",
    "renorm_momentum": "momentum",
    "synchronized": "bool",
    "unbiased_moving_variance": "bool",
    "virtual_batch_size": "positive_int_or_none",
}
_CELL = {
    "units": "positive_int",
    "activation": "activation",
    "recurrent_activation": "activation",
    "use_bias": "bool",
    "kernel_initializer": "initializer",
    "recurrent_initializer": "initializer",
    "bias_initializer": "initializer",
    "unit_forget_bias": "bool",
    "kernel_regularizer": "regularizer",
    "recurrent_regularizer": "regularizer",
    "bias_regularizer": "regularizer",
    "kernel_constraint": "constraint",
    "recurrent_constraint": "constraint",
    "bias_constraint": "constraint",
    "dropout": "rate",
    "recurrent_dropout": "rate",
    "seed": "int_seed",
    "max_timesteps": "positive_int_or_none",
    "momentum": "momentum_or_none",
    "epsilon": "positive",
    "gamma_initializer": "initializer",
    "beta_initializer": "initializer",
}
# LayerNormLSTMCell: keras.layers.LSTMCell's arguments and TF-Addons'.
_LN_CELL = {
    **{
        name: kind
        for name, kind in _CELL.items()
        if name
        not in (
            "max_timesteps",
            "momentum",
            "epsilon",
            "gamma_initializer",
            "beta_initializer",
        )
    },
    "norm_gamma_initializer": "initializer",
    "norm_beta_initializer": "initializer",
    "norm_epsilon": "positive",
    "carry_normalized_cell_state": "bool",
}
_HE = {"mode": "he_mode", "negative_slope": "slope", "seed": "initializer_seed"}
_XAVIER = {"gain": "gain", "seed": "initializer_seed"}

# class -> ({argument: kind}, required arguments).
TABLE = {
    layers.BatchNormalization: (_BATCH, {}),
    layers.TimestepBatchNormalization: (
        {**_BATCH, "max_timesteps": "positive_int_or_none"},
        {},
    ),
    layers.RecurrentBatchNormalization: (
        {**_BATCH, "max_timesteps": "positive_int_or_none"},
        {},
    ),
    layers.LayerNormalization: (
        {**_AFFINE, "axis": "axes", "epsilon": "positive"},
        {},
    ),
    layers.GroupNormalization: (
        {**_AFFINE, "groups": "groups", "axis": "axis", "epsilon": "positive"},
        {},
    ),
    layers.InstanceNormalization: (
        {**_AFFINE, "groups": "groups", "axis": "axis", "epsilon": "positive"},
        {},
    ),
    layers.LocalResponseNormalization: (
        {
            "size": "positive_int",
            "alpha": "lrn_alpha",
            "beta": "finite",
            "k": "positive",
            "mode": "lrn_mode",
            "axis": "axis",
        },
        {},
    ),
    layers.PReLU: (
        {
            "alpha_initializer": "prelu_alpha",
            "alpha_regularizer": "regularizer",
            "alpha_constraint": "constraint",
            "shared_axes": "shared_axes",
        },
        {},
    ),
    layers.WeightNormalization: (
        {"data_init": "bool"},
        {"layer": lambda: keras.layers.Dense(3)},
    ),
    layers.SpectralNormalization: (
        {"power_iterations": "positive_int"},
        {"layer": lambda: keras.layers.Dense(3)},
    ),
    layers.BNLSTMCell: (_CELL, {"units": 4}),
    # BNLSTM hands the cell's arguments to its cell.
    layers.BNLSTM: (
        {
            **_CELL,
            "return_sequences": "bool",
            "return_state": "bool",
            "go_backwards": "bool",
            "stateful": "bool",
            "unroll": "bool",
            "zero_output_for_mask": "bool",
        },
        {"units": 4},
    ),
    layers.RMSNormalization: (
        {
            "axis": "axes",
            "epsilon": "positive",
            "unit_offset": "bool",
            "scale_initializer": "initializer",
            "scale_regularizer": "regularizer",
            "scale_constraint": "constraint",
        },
        {},
    ),
    layers.LayerNormLSTMCell: (_LN_CELL, {"units": 4}),
    layers.LayerNormLSTM: (
        {
            **_LN_CELL,
            "activity_regularizer": "regularizer",
            "return_sequences": "bool",
            "return_state": "bool",
            "go_backwards": "bool",
            "stateful": "bool",
            "unroll": "bool",
            "zero_output_for_mask": "bool",
        },
        {"units": 4},
    ),
    initializers.XavierUniform: (_XAVIER, {}),
    initializers.XavierNormal: (_XAVIER, {}),
    initializers.HeNormal: (_HE, {}),
    initializers.HeUniform: (_HE, {}),
}

# Values whose type is fine but that a constructor rejects in context:
# (class, extra arguments, argument, value).
SPECIAL = [
    (layers.TimestepBatchNormalization, {}, "renorm", True),
    (layers.RecurrentBatchNormalization, {}, "renorm", True),
    (layers.BNLSTM, {"units": 4}, "stateful", True),
    (layers.LocalResponseNormalization, {"mode": "within_channel"}, "size", 4),
    (
        layers.WeightNormalization,
        {"layer": lambda: keras.layers.Dense(3, use_bias=False)},
        "data_init",
        True,
    ),
]

# (class, arguments, argument, value, input shape): checked at build.
BUILD = [
    (layers.BatchNormalization, {}, "axis", 3, (4, 5, 6)),
    (layers.BatchNormalization, {}, "axis", -4, (4, 5, 6)),
    (layers.BatchNormalization, {}, "axis", 0, (4, 5)),
    (layers.TimestepBatchNormalization, {}, "axis", 3, (4, 5, 6)),
    (layers.TimestepBatchNormalization, {}, "axis", 1, (4, 5, 6)),
    (layers.RecurrentBatchNormalization, {}, "axis", -4, (4, 5, 6)),
    (layers.LayerNormalization, {}, "axis", [1, 3], (4, 5, 6)),
    (layers.LayerNormalization, {}, "axis", [1, -2], (4, 5, 6)),
    (layers.LayerNormalization, {}, "axis", 0, (4, 5)),
    (layers.GroupNormalization, {}, "groups", 4, (2, 6)),
    (layers.GroupNormalization, {"groups": 3}, "axis", 2, (2, 6)),
    (layers.GroupNormalization, {"groups": 3}, "axis", 0, (6, 6)),
    (layers.InstanceNormalization, {}, "axis", 3, (2, 3, 6)),
    (layers.InstanceNormalization, {}, "groups", 2, (2, 3, 6)),
    (layers.InstanceNormalization, {}, "axis", 0, (2, 3, 6)),
    (layers.LocalResponseNormalization, {}, "axis", 4, (2, 3, 3, 6)),
    (layers.LocalResponseNormalization, {}, "axis", 0, (2, 6)),
    (layers.PReLU, {}, "shared_axes", [3], (2, 3, 4)),
    (layers.PReLU, {}, "shared_axes", [0], (2, 3, 4)),
    (layers.PReLU, {}, "shared_axes", [-4], (2, 3, 4)),
    (layers.RMSNormalization, {}, "axis", [1, 3], (4, 5, 6)),
    (layers.RMSNormalization, {}, "axis", 0, (4, 5)),
]


def _constructor_cases():
    for cls, (arguments, required) in TABLE.items():
        for name, kind in arguments.items():
            extra = {"renorm": True} if name == "renorm_clipping" else {}
            for value in BAD[kind]:
                yield pytest.param(
                    cls,
                    {**required, **extra},
                    name,
                    value,
                    id=f"{cls.__name__}-{name}={value!r}",
                )
    for cls, extra, name, value in SPECIAL:
        yield pytest.param(
            cls, extra, name, value, id=f"{cls.__name__}-{name}={value!r}"
        )


def _make(cls, arguments, **overrides):
    # Required arguments that are layers are made fresh for each case.
    arguments = {
        key: (made() if callable(made) else made)
        for key, made in arguments.items()
    }
    return cls(**{**arguments, **overrides})


def _check_message(error, name, value):
    assert f"{name}={value!r}" in str(error), str(error)


@pytest.mark.parametrize("cls, arguments, name, value", _constructor_cases())
def test_constructor_rejects(cls, arguments, name, value):
    with pytest.raises(ValueError) as error:
        _make(cls, arguments, **{name: value})
    _check_message(error.value, name, value)


DROP_INS = {
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "PReLU",
    "RMSNormalization",
    "SpectralNormalization",
}


def _keras_error(cls, arguments, name, value):
    """The class of what Keras's class of the same name raises, or None."""
    keras_cls = getattr(keras.layers, cls.__name__)
    if name not in inspect.signature(keras_cls.__init__).parameters:
        # An argument of ours only: Keras's error would be about an
        # unknown keyword, not about the value.
        return None
    try:
        _make(keras_cls, arguments, **{name: value})
    except (TypeError, ValueError) as error:
        return type(error)
    except Exception:  # noqa: BLE001 (e.g. OverflowError for 10**400)
        return None
    return None


def _keras_cases():
    """The constructor cases of the drop-ins that Keras's classes reject
    with an argument error (where Keras accepts a value, ours may still
    reject it, earlier than the NaN or failure it leads to)."""
    for case in _constructor_cases():
        cls, arguments, name, value = case.values
        # (Keras 3.8, the oldest allowed, has no RMS or spectral layer.)
        if cls.__name__ not in DROP_INS or not hasattr(
            keras.layers, cls.__name__
        ):
            continue
        keras_error = _keras_error(cls, arguments, name, value)
        if keras_error is not None:
            yield pytest.param(
                cls, arguments, name, value, keras_error, id=case.id
            )


@pytest.mark.parametrize(
    "cls, arguments, name, value, keras_error", list(_keras_cases())
)
def test_same_exception_class_as_keras(
    cls, arguments, name, value, keras_error
):
    """Code written against Keras (``except TypeError``) catches ours."""
    with pytest.raises(keras_error):
        _make(cls, arguments, **{name: value})


@pytest.mark.parametrize(
    "cls, arguments, name, value, shape",
    [
        pytest.param(*case, id=f"{case[0].__name__}-{case[2]}={case[3]!r}")
        for case in BUILD
    ],
)
def test_build_rejects(cls, arguments, name, value, shape):
    layer = _make(cls, arguments, **{name: value})
    with pytest.raises(ValueError) as error:
        layer.build(shape)
    _check_message(error.value, name, value)


@pytest.mark.parametrize("value", ["dense", len, None])
def test_weight_normalization_rejects_a_non_layer(value):
    with pytest.raises(TypeError) as error:
        layers.WeightNormalization(value)
    _check_message(error.value, "layer", value)


@pytest.mark.parametrize("value", ["dense", len, None])
def test_spectral_normalization_rejects_a_non_layer(value):
    # A TypeError, and the ValueError keras.layers.SpectralNormalization
    # raises (through keras.layers.Wrapper).
    with pytest.raises(TypeError) as error:
        layers.SpectralNormalization(value)
    assert isinstance(error.value, ValueError)
    with pytest.raises(ValueError):
        keras.layers.SpectralNormalization(value)
    _check_message(error.value, "layer", value)


@pytest.mark.parametrize(
    "layer", [keras.layers.ReLU, keras.layers.Flatten, keras.layers.Dropout]
)
def test_spectral_normalization_rejects_a_layer_without_kernel_at_build(
    layer,
):
    wrapped = layer(0.5) if layer is keras.layers.Dropout else layer()
    wrapper = layers.SpectralNormalization(wrapped)  # as in Keras: no error
    with pytest.raises(ValueError) as error:
        wrapper.build((2, 3))
    _check_message(error.value, "layer", wrapped)
    assert f"'{wrapped.name}' of class {layer.__name__}" in str(error.value)


@pytest.mark.parametrize(
    "factory, name, value",
    [
        ("from_tensorflow", "depth_radius", -1),
        ("from_tensorflow", "depth_radius", 2.0),
        ("from_tensorflow", "bias", INF),
        ("from_tensorflow", "bias", 0.0),
        ("from_tensorflow", "alpha", NAN),
        ("from_tensorflow", "beta", INF),
        ("from_alexnet", "k", INF),
        ("from_alexnet", "n", 4),
        ("from_alexnet", "n", "5"),
        ("from_alexnet", "alpha", -1.0),
        ("from_alexnet", "beta", NAN),
    ],
)
def test_local_response_factories_reject(factory, name, value):
    with pytest.raises(ValueError) as error:
        getattr(layers.LocalResponseNormalization, factory)(**{name: value})
    _check_message(error.value, name, value)


def _documented_arguments(cls):
    """Named constructor arguments of ``cls`` and of the keras_norms base
    classes that its ``**kwargs`` reach (BNLSTM's reach its cell)."""
    owners = [c for c in cls.__mro__ if c.__module__.startswith("keras_norms")]
    if cls is layers.BNLSTM:
        owners = [cls, layers.BNLSTMCell]
    names = set()
    for owner in owners:
        parameters = inspect.signature(owner.__init__).parameters.values()
        names |= {
            p.name
            for p in parameters
            if p.name != "self" and p.kind is not p.VAR_KEYWORD
        }
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


@pytest.mark.parametrize("cls", list(TABLE), ids=lambda c: c.__name__)
def test_table_covers_every_constructor_argument(cls):
    arguments, required = TABLE[cls]
    tested = set(arguments) | {
        name for owner, _, name, _ in SPECIAL if owner is cls
    }
    assert _documented_arguments(cls) - tested - set(required) == set()


def _bool_arguments(cls):
    arguments, _ = TABLE[cls]
    return [name for name, kind in arguments.items() if kind == "bool"]


# Flags that a class accepts only as False.
_ONLY_FALSE = {
    layers.TimestepBatchNormalization: {"renorm"},
    layers.RecurrentBatchNormalization: {"renorm"},
    layers.BNLSTM: {"stateful"},
}


@pytest.mark.parametrize(
    "cls",
    [cls for cls in TABLE if _bool_arguments(cls)],
    ids=lambda c: c.__name__,
)
def test_flags_accept_numpy_booleans_and_store_python_ones(cls):
    _, required = TABLE[cls]
    flags = {
        name: np.False_ if name in _ONLY_FALSE.get(cls, ()) else np.True_
        for name in _bool_arguments(cls)
    }
    layer = _make(cls, required, **flags)
    for name, flag in flags.items():
        owner = layer.cell if cls is layers.BNLSTM and name in _CELL else layer
        assert getattr(owner, name) is bool(flag), name
