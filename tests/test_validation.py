"""Bad arguments fail early with a message naming the argument and value."""

import keras
import numpy as np
import pytest

from keras_norms._validation import check_bool
from keras_norms._validation import check_finite_float
from keras_norms._validation import check_non_negative_float
from keras_norms._validation import check_positive_float
from keras_norms._validation import check_squarable_float
from keras_norms._validation import get_keras_object
from keras_norms.layers import BatchNormalization
from keras_norms.layers import GroupNormalization

# Constructor arguments, and axes checked at build, are in the table of
# tests/test_bad_arguments.py; here: the shared checks themselves, and
# inputs that do not suit a layer.


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_])
def test_check_bool_accepts_booleans_and_returns_python_ones(value):
    result = check_bool("flag", value)
    assert type(result) is bool and result == bool(value)


@pytest.mark.parametrize(
    "value", ["True", 1, 0, None, np.array([True]), np.int64(1)]
)
def test_check_bool_rejects_everything_else(value):
    with pytest.raises(ValueError, match="`flag`") as error:
        check_bool("flag", value)
    assert f"flag={value!r}" in str(error.value)


@pytest.mark.parametrize(
    "value, expected",
    [(1, 1.0), (np.float32(0.5), 0.5), (np.int64(3), 3.0), (1e308, 1e308)],
)
def test_check_positive_float_returns_floats(value, expected):
    result = check_positive_float("epsilon", value)
    assert type(result) is float and result == expected


@pytest.mark.parametrize(
    "value", [np.float32("inf"), np.float64("nan"), 10**400, -(10**400)]
)
def test_float_checks_reject_what_no_float_holds(value):
    # A huge int is not a bare OverflowError, and NumPy inf/NaN count too.
    for check in (
        check_positive_float,
        check_finite_float,
        check_non_negative_float,
        check_squarable_float,
    ):
        with pytest.raises(ValueError) as error:
            check("x", value)
        assert f"x={value!r}" in str(error.value)


def test_check_squarable_float_bounds():
    # The square must be a finite float; positive: also > 0.
    assert check_squarable_float("a", 1e154) == 1e154
    assert check_squarable_float("a", 1e-200) == 1e-200
    assert check_squarable_float("a", -3.0) == -3.0
    assert check_squarable_float("gain", 1e-150, positive=True) == 1e-150
    for value in (1e155, -1e155):
        with pytest.raises(ValueError, match=r"a=-?1e\+155"):
            check_squarable_float("a", value)
    for value in (1e-155, 1e-170, 1e155, -1.0, 0.0):
        with pytest.raises(ValueError, match="`gain`"):
            check_squarable_float("gain", value, positive=True)


def test_get_keras_object_names_the_argument():
    assert isinstance(
        get_keras_object("k", "he_normal", keras.initializers),
        keras.initializers.HeNormal,
    )
    assert get_keras_object("r", None, keras.regularizers) is None
    with pytest.raises(ValueError, match="`k`.*keras.initializers") as error:
        get_keras_object("k", "he_nromal", keras.initializers)
    assert "k='he_nromal'" in str(error.value)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (BatchNormalization(), (5,), "rank >= 2"),
        (GroupNormalization(groups=2), (2, 3, None), "size of axis 2"),
    ],
)
def test_build_rejects(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.build(shape)


def test_group_message_names_channels():
    with pytest.raises(ValueError, match=r"number of channels \(6\)"):
        GroupNormalization(groups=4).build((2, 6))


def test_wrong_rank_after_build_is_caught_by_input_spec():
    layer = BatchNormalization()
    layer(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="ndim"):
        layer(np.ones((2, 3, 3), "float32"))


def test_mask_of_wrong_rank():
    layer = BatchNormalization()
    with pytest.raises(ValueError, match="mask.shape"):
        layer(
            np.ones((2, 3, 4), "float32"),
            training=True,
            mask=keras.ops.ones((2, 3, 4), "bool"),
        )
