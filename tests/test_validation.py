"""Bad arguments fail early with a message naming the argument and value."""

import keras
import numpy as np
import pytest

from keras_norms.layers import BatchNormalization
from keras_norms.layers import GroupNormalization
from keras_norms.layers import LayerNormalization


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BatchNormalization(axis="channels"), "axis='channels'"),
        (lambda: BatchNormalization(axis=1.5), "axis=1.5"),
        (lambda: BatchNormalization(epsilon=0), "epsilon=0"),
        (lambda: BatchNormalization(epsilon=-1e-3), "epsilon=-0.001"),
        (lambda: BatchNormalization(momentum=1.0), "momentum=1.0"),
        (lambda: BatchNormalization(momentum=-0.1), "momentum=-0.1"),
        (lambda: BatchNormalization(momentum=0.1j), "momentum=0.1j"),
        (
            lambda: BatchNormalization(renorm_clipping={"rmax": 2}),
            "renorm=False",
        ),
        (
            lambda: BatchNormalization(
                renorm=True, renorm_clipping={"rmax": 1.0, "rmin": 2.0}
            ),
            "rmax must be >= rmin",
        ),
        (
            lambda: BatchNormalization(
                renorm=True, renorm_clipping={"rmx": 1.0}
            ),
            "'rmx'",
        ),
        (
            lambda: BatchNormalization(renorm=True, renorm_momentum=1.0),
            "renorm_momentum=1.0",
        ),
        (lambda: LayerNormalization(axis=[]), "axis=\\[\\]"),
        (lambda: LayerNormalization(epsilon=0.0), "epsilon=0.0"),
        (lambda: GroupNormalization(groups=0), "groups=0"),
        (lambda: GroupNormalization(groups=2.0), "groups=2.0"),
        (lambda: GroupNormalization(epsilon=None), "epsilon=None"),
    ],
)
def test_constructor_rejects(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (BatchNormalization(axis=3), (4, 5, 6), "axis=3"),
        (BatchNormalization(axis=-4), (4, 5, 6), "axis=-4"),
        (BatchNormalization(axis=0), (4, 5), "axis=0"),
        (BatchNormalization(), (5,), "rank >= 2"),
        (LayerNormalization(axis=[1, -2]), (4, 5, 6), "repeat"),
        (LayerNormalization(axis=[1, 3]), (4, 5, 6), "axis=\\[1, 3\\]"),
        (GroupNormalization(groups=4), (2, 6), "groups=4"),
        (GroupNormalization(groups=3, axis=2), (2, 6), "axis=2"),
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
