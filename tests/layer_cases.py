"""Every public layer with a typical configuration and input shape.

The generic tests (serialization, mixed precision, cross-backend loading)
run over this list: a new public layer gets them by adding a line here.
"""

import keras_norms

LAYER_CASES = {
    "batch_norm": (
        lambda: keras_norms.layers.BatchNormalization(
            momentum=0.9, unbiased_moving_variance=True
        ),
        (4, 5, 5, 3),
    ),
    "batch_norm_channels_first": (
        lambda: keras_norms.layers.BatchNormalization(axis=1),
        (4, 3, 5, 5),
    ),
    "layer_norm": (
        lambda: keras_norms.layers.LayerNormalization(axis=[1, 2]),
        (4, 6, 3),
    ),
    "group_norm": (
        lambda: keras_norms.layers.GroupNormalization(groups=2),
        (4, 5, 5, 6),
    ),
}
