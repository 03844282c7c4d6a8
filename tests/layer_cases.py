"""Every public layer with a typical configuration and input shape.

The generic tests (serialization, mixed precision, cross-backend loading)
run over this list: a new public layer gets them by adding a line here.
"""

import keras

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
    "batch_renorm": (
        lambda: keras_norms.layers.BatchNormalization(
            renorm=True, renorm_clipping={"rmax": 3.0, "dmax": 5.0}
        ),
        (6, 4, 3),
    ),
    "batch_norm_cumulative_ghost": (
        lambda: keras_norms.layers.BatchNormalization(
            momentum=None, virtual_batch_size=2
        ),
        (4, 5, 3),
    ),
    "layer_norm": (
        lambda: keras_norms.layers.LayerNormalization(axis=[1, 2]),
        (4, 6, 3),
    ),
    "group_norm": (
        lambda: keras_norms.layers.GroupNormalization(groups=2),
        (4, 5, 5, 6),
    ),
    "instance_norm": (
        lambda: keras_norms.layers.InstanceNormalization(epsilon=1e-2),
        (4, 5, 5, 3),
    ),
    "timestep_batch_norm": (
        lambda: keras_norms.layers.TimestepBatchNormalization(momentum=0.5),
        (4, 5, 3),
    ),
    "timestep_batch_norm_cumulative": (
        lambda: keras_norms.layers.TimestepBatchNormalization(momentum=None),
        (4, 5, 3),
    ),
    "recurrent_batch_norm": (
        lambda: keras_norms.layers.RecurrentBatchNormalization(max_timesteps=7),
        (4, 5, 2, 3),
    ),
    "bn_lstm": (
        lambda: keras_norms.layers.BNLSTM(4, return_sequences=True),
        (3, 5, 2),
    ),
    "layer_norm_lstm": (
        lambda: keras_norms.layers.LayerNormLSTM(
            4, return_sequences=True, carry_normalized_cell_state=True
        ),
        (3, 5, 2),
    ),
    "lrn_across_channels": (
        lambda: keras_norms.layers.LocalResponseNormalization(
            size=3, alpha=0.5, beta=0.75, k=2.0
        ),
        (4, 5, 5, 6),
    ),
    "lrn_within_channel": (
        lambda: keras_norms.layers.LocalResponseNormalization(
            size=3, alpha=0.5, mode="within_channel", axis=1
        ),
        (4, 3, 6, 6),
    ),
    "prelu": (
        lambda: keras_norms.layers.PReLU(shared_axes=[1, 2]),
        (4, 5, 5, 3),
    ),
    "weight_norm_dense": (
        lambda: keras_norms.layers.WeightNormalization(keras.layers.Dense(3)),
        (4, 6),
    ),
    "weight_norm_conv2d": (
        lambda: keras_norms.layers.WeightNormalization(
            keras.layers.Conv2D(4, 3, activation="relu")
        ),
        (4, 6, 6, 2),
    ),
    "rms_norm": (
        lambda: keras_norms.layers.RMSNormalization(axis=[1, 2]),
        (4, 5, 3),
    ),
    "rms_norm_unit_offset": (
        lambda: keras_norms.layers.RMSNormalization(unit_offset=True),
        (4, 6),
    ),
    "spectral_norm_dense": (
        lambda: keras_norms.layers.SpectralNormalization(keras.layers.Dense(3)),
        (4, 6),
    ),
    "spectral_norm_conv2d": (
        lambda: keras_norms.layers.SpectralNormalization(
            keras.layers.Conv2D(4, 3, activation="relu"), power_iterations=2
        ),
        (4, 6, 6, 2),
    ),
}
