"""Where the output channels are in the kernels of Keras's linear layers.

Shared by `fold_batch_normalization` (which scales each output channel of a
kernel) and `WeightNormalization` (which normalizes each one). Kernel
layouts, with the output-channel axes in brackets:

- ``Dense``: ``(in, [out])``
- ``Conv1D/2D/3D``: ``(*kernel_size, in // groups, [out])``
- ``Conv1D/2D/3DTranspose``: ``(*kernel_size, [out], in)``
- ``DepthwiseConv1D/2D``: ``(*kernel_size, [in, depth_multiplier])``; output
  channel ``c = i * depth_multiplier + m``, which is the row-major
  flattening of the two axes.
"""

import keras

_OUTPUT_AXIS = {
    keras.layers.Dense: -1,
    keras.layers.Conv1D: -1,
    keras.layers.Conv2D: -1,
    keras.layers.Conv3D: -1,
    keras.layers.Conv1DTranspose: -2,
    keras.layers.Conv2DTranspose: -2,
    keras.layers.Conv3DTranspose: -2,
    keras.layers.DepthwiseConv1D: (-2, -1),
    keras.layers.DepthwiseConv2D: (-2, -1),
}

KERNEL_LAYERS = tuple(_OUTPUT_AXIS)
"""The layer classes whose kernel layout is known (exact classes)."""

KERNEL_LAYER_NAMES = ", ".join(cls.__name__ for cls in KERNEL_LAYERS)


def kernel_output_axis(layer):
    """Kernel axis (int) or axes (tuple) of the output channels of ``layer``.

    Subclasses of the known classes are matched too (first known base in
    the MRO). Returns ``None`` for any other layer.
    """
    for cls in type(layer).__mro__:
        if cls in _OUTPUT_AXIS:
            return _OUTPUT_AXIS[cls]
    return None


def output_channel_axis(layer):
    """The channel axis of the *outputs* of ``layer`` (negative or 1)."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return -1
