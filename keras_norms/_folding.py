"""fold_batch_normalization: a copy of a model with BN folded into kernels.

The math is `keras_norms.ops.fold_batch_normalization_weights`; this module
only finds the foldable (linear layer, BatchNormalization) pairs in a model's
layer graph and rebuilds the model without those BatchNormalization layers.
"""

import keras

from keras_norms import ops as norm_ops
from keras_norms._kernel_layers import KERNEL_LAYER_NAMES
from keras_norms._kernel_layers import KERNEL_LAYERS
from keras_norms._kernel_layers import kernel_output_axis
from keras_norms._kernel_layers import output_channel_axis
from keras_norms._model_rewriting import layer_graph
from keras_norms._model_rewriting import rewrite_model
from keras_norms.layers import BatchNormalization

# Exact classes: a subclass may compute something else (per-step statistics,
# a different call), which folding would silently get wrong.
BATCH_NORMALIZATION_CLASSES = (
    BatchNormalization,
    keras.layers.BatchNormalization,
)


def fold_batch_normalization(
    model: keras.Model, return_report: bool = False
) -> keras.Model | tuple[keras.Model, dict]:
    r"""A copy of ``model`` for inference with BatchNormalization folded in.

    Every batch normalization layer (``keras_norms.layers.BatchNormalization``
    or ``keras.layers.BatchNormalization``) that directly follows a linear
    layer is merged into that layer's kernel and bias. At inference BN is
    the per-channel affine map ``gamma * (x - mean) / sqrt(var + eps) +
    beta``, so a linear layer followed by it is one linear layer with

    $$W' = W \cdot \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}, \qquad
    b' = (b - \mu) \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta$$

    per output channel ($\mu$, $\sigma^2$: BN's moving statistics; without
    ``scale`` $\gamma = 1$, without ``center`` $\beta = 0$, without bias
    $b = 0$; the rewritten layer always gets ``use_bias=True``).

    A BN layer is folded when all of these hold, and is otherwise kept
    unchanged (the report says why):

    - its input is the output of a ``Dense``, ``Conv1D``, ``Conv2D``,
      ``Conv3D``, ``Conv1DTranspose``, ``Conv2DTranspose``,
      ``Conv3DTranspose``, ``DepthwiseConv1D`` or ``DepthwiseConv2D`` (exact
      classes) with a linear activation, no LoRA and no quantization;
    - that output feeds nothing else (no other layer, not a model output);
    - neither layer is called more than once in the model (shared layers);
    - BN's ``axis`` is the layer's channel axis (``-1``, or ``1`` for
      ``data_format="channels_first"``) and BN is not called with
      ``training=True``.

    Nested Sequential / functional models are folded recursively (BN
    pairs inside them; a pair across a model boundary is not folded).

    The original model is not modified: the new model has new layers
    (same classes, configs and names) with copies of the weights. It
    computes what the original computes at inference (``training=False``),
    up to float rounding, with fewer layers and less work. It is meant for
    inference only: training it trains a model without batch
    normalization. If ``model`` is compiled, the copy is compiled with the
    same configuration.

    Args:
        model: A built ``keras.Sequential`` or functional ``keras.Model``.
        return_report: If ``True``, also return a report of what was done.

    Returns:
        The new model (a ``Sequential`` for a ``Sequential``). With
            ``return_report=True``, a tuple ``(model, report)`` where
            ``report`` is a dict: ``report["folded"]`` is a list of
            ``(layer_name, batch_normalization_name)`` pairs that were merged
            (names of the original model; the merged layer keeps
            ``layer_name``) and ``report["not_folded"]`` a list of
            ``(batch_normalization_name, reason)``. Names inside nested
            models are prefixed with ``"model_name/"``.

    Raises:
        TypeError: If ``model`` is not a Keras model, or is (or contains)
            a subclassed model, whose layer graph cannot be rewritten.
        ValueError: If ``model`` is a Sequential model that is not built.

    Reference:
        Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
        Training by Reducing Internal Covariate Shift", ICML 2015,
        Section 3.2.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> model = keras.Sequential([
        ...     keras.Input((8, 8, 3)),
        ...     keras.layers.Conv2D(4, 3, use_bias=False),
        ...     keras_norms.layers.BatchNormalization(),
        ...     keras.layers.ReLU(),
        ... ])
        >>> folded, report = keras_norms.fold_batch_normalization(
        ...     model, return_report=True)
        >>> len(model.layers), len(folded.layers), len(report["folded"])
        (3, 2, 1)
        >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
        >>> bool(np.allclose(model.predict(x, verbose=0),
        ...                  folded.predict(x, verbose=0), atol=1e-5))
        True
    """
    report = {"folded": [], "not_folded": []}
    folded = _fold(model, "", report)
    return (folded, report) if return_report else folded


def _fold(model, prefix, report):
    graph = layer_graph(
        model,
        "fold_batch_normalization",
        "Build the same network with the functional API (or "
        "keras.Sequential), copy the weights, and fold that.",
    )
    plan = _plan(graph, prefix, report)
    clones = []

    def clone_function(layer):
        if id(layer) in plan.batch_normalizations:
            return layer  # Dropped from the graph below; never called.
        if isinstance(layer, keras.Model):
            return _fold(layer, f"{prefix}{layer.name}/", report)
        config = layer.get_config()
        if id(layer) in plan.targets:
            config["use_bias"] = True
        clone = layer.__class__.from_config(config)
        clones.append((layer, clone))
        return clone

    def call_function(layer, *args, **kwargs):
        if id(layer) in plan.batch_normalizations:
            return args[0]
        return layer(*args, **kwargs)

    new_model = rewrite_model(
        model,
        clone_function,
        call_function=call_function,
        dropped=plan.batch_normalizations,
    )
    for layer, clone in clones:
        if id(layer) in plan.targets:
            _assign_folded_weights(layer, plan.targets[id(layer)], clone)
        else:
            clone.set_weights(layer.get_weights())
    return new_model


class _Plan:
    """Which BN layers are folded, and into which layer."""

    def __init__(self):
        self.batch_normalizations = set()  # ids of BN layers to drop
        self.targets = {}  # id(linear layer) -> its BN layer


def _plan(graph, prefix, report):
    nodes = [
        node
        for depth in sorted(graph._nodes_by_depth, reverse=True)
        for node in graph._nodes_by_depth[depth]
    ]
    producers = {}  # id(tensor) -> node computing it
    uses = {}  # id(tensor) -> number of uses (node inputs, model outputs)
    calls = {}  # id(layer) -> number of nodes of the layer in this graph
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for tensor in node.outputs:
            producers[id(tensor)] = node
        for tensor in node.input_tensors:
            uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    for tensor in graph.outputs:
        uses[id(tensor)] = uses.get(id(tensor), 0) + 1

    plan = _Plan()
    for node in nodes:
        bn = node.operation
        if type(bn) not in BATCH_NORMALIZATION_CLASSES:
            continue
        layer, reason = _fold_partner(node, producers, uses, calls)
        if reason is not None:
            report["not_folded"].append((prefix + bn.name, reason))
            continue
        plan.batch_normalizations.add(id(bn))
        plan.targets[id(layer)] = bn
        report["folded"].append((prefix + layer.name, prefix + bn.name))
    return plan


def _fold_partner(node, producers, uses, calls):
    """``(layer, None)`` if the BN of ``node`` folds into ``layer``, else
    ``(None, reason)``."""
    bn = node.operation
    if calls[id(bn)] > 1:
        return None, "it is called more than once in the model"
    if node.arguments.kwargs.get("training") is True:
        return None, "it is called with training=True"
    if len(node.input_tensors) != 1:
        return None, "it is called with more than one input tensor"
    tensor = node.input_tensors[0]
    producer = producers.get(id(tensor))
    if producer is None or producer.is_input:
        return None, "its input is a model input"
    layer = producer.operation
    if type(layer) not in KERNEL_LAYERS:
        return None, (
            f"its input comes from {type(layer).__name__} '{layer.name}', "
            f"not from one of {KERNEL_LAYER_NAMES}"
        )
    if calls[id(layer)] > 1:
        return None, f"'{layer.name}' is called more than once in the model"
    if uses[id(tensor)] > 1:
        return None, (
            f"the output of '{layer.name}' is also used elsewhere in the "
            "model, unnormalized"
        )
    activation = layer.get_config().get("activation")
    if activation not in ("linear", None):
        return None, (
            f"'{layer.name}' has activation {activation!r} between its "
            "linear map and the batch normalization"
        )
    if getattr(layer, "lora_enabled", False):
        return None, f"'{layer.name}' has LoRA enabled"
    if getattr(layer, "quantization_mode", None) is not None:
        return None, f"'{layer.name}' is quantized"
    ndim = len(tensor.shape)
    channel_axis = output_channel_axis(layer) % ndim
    if bn.axis % ndim != channel_axis:
        return None, (
            f"its axis={bn.axis} is not the channel axis {channel_axis} of "
            f"the output of '{layer.name}'"
        )
    return layer, None


def _assign_folded_weights(layer, bn, clone):
    kernel, bias = norm_ops.fold_batch_normalization_weights(
        layer.kernel,
        layer.bias,
        bn.gamma,
        bn.beta,
        bn.moving_mean,
        bn.moving_variance,
        epsilon=bn.epsilon,
        output_axis=kernel_output_axis(layer),
    )
    clone.kernel.assign(kernel)
    clone.bias.assign(bias)
