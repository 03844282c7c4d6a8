"""convert_normalization: a copy of a model with Keras's normalization layers
swapped for keras-norms' (or back)."""

import warnings

import keras
import numpy as np

from keras_norms import layers as norm_layers
from keras_norms._model_rewriting import layer_graph
from keras_norms._model_rewriting import rewrite_model
from keras_norms.native import dispatch

# The classes both packages have; Keras 3.8 lacks some (RMSNormalization).
CLASS_NAMES = tuple(
    name
    for name in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
    )
    if getattr(keras.layers, name, None) is not None
)
# Same name, same weights, different function: kept, both ways.
NOT_CONVERTED = {
    "SpectralNormalization": (
        "Keras's SpectralNormalization computes with the kernel as stored "
        "(raw W until its first training call), ours with W / sigma at "
        "every call: the same weights give different outputs"
    ),
}
TARGETS = ("keras_norms", "keras")


def convert_normalization(
    model: keras.Model,
    to: str = "keras_norms",
    return_report: bool = False,
    **overrides,
) -> keras.Model | tuple[keras.Model, dict]:
    r"""A copy of ``model`` with its normalization layers swapped.

    With ``to="keras_norms"`` every ``keras.layers.BatchNormalization``,
    ``LayerNormalization``, ``GroupNormalization`` and ``RMSNormalization``
    (those the installed Keras has; exact classes, not subclasses) becomes
    the ``keras_norms.layers`` class of the same name, with the same
    config, name and weights. The new model computes what the original
    computes, and the converted layers take keras-norms' extra arguments
    through ``overrides``.

    With ``to="keras"`` it goes the other way. A layer of ours is converted
    only when Keras's class computes the same thing, in training and at
    inference; otherwise it is kept, unchanged, and listed in
    ``report["kept"]`` with the reason (a warning names it too):

    - classes Keras does not have (``LocalResponseNormalization``,
      ``BNLSTM``, ``WeightNormalization``, ``InstanceNormalization``, ...);
    - arguments Keras's class does not have, set to anything but their
      default (``unbiased_moving_variance=True``, ``momentum=None``,
      ``virtual_batch_size=8``, ``unit_offset=True``, ...);
    - ``synchronized=True`` on a backend other than TensorFlow (Keras
      synchronizes only under ``tf.distribute``).

    ``SpectralNormalization`` is kept in both directions (and reported):
    Keras's computes with the kernel as stored, ours with $W / \sigma$ at
    every call, so the same weights give different outputs; build the
    wrapper you want in the model's code.

    Overrides are constructor arguments of the converted layers. A keyword
    ``argument=value`` applies to every converted layer whose class takes
    that argument (``synchronized=True`` to the batch normalization layers,
    ``epsilon=1e-5`` to all of them). A keyword named after a class, with a
    dict of arguments, applies to that class only, and wins over the
    first form: ``BatchNormalization={"momentum": None}``. An argument that
    none of the classes it targets takes is an error. Weights that an
    override adds start from their initializer (``momentum=None`` adds a
    ``batch_count`` of 0: the cumulative average starts afresh); an
    override that removes a weight (``center=False``) is an error.

    Nested Sequential and functional models are converted recursively. The
    original model is not modified; layers that are not converted are
    copied (same class, config and weights). If ``model`` is compiled, the
    copy is compiled with the same configuration.

    Args:
        model: A built ``keras.Sequential`` or functional ``keras.Model``.
        to: ``"keras_norms"`` (Keras's classes to ours) or ``"keras"``
            (ours to Keras's).
        return_report: If ``True``, also return a report of what was done.
        **overrides: Constructor arguments for the converted layers:
            ``argument=value``, or ``ClassName={"argument": value}`` for
            one class (``BatchNormalization``, ``LayerNormalization``,
            ``GroupNormalization``, ``RMSNormalization``).

    Returns:
        The new model (a ``Sequential`` for a ``Sequential``). With
            ``return_report=True``, a tuple ``(model, report)`` where
            ``report["converted"]`` maps each class name to the list of the
            names of the converted layers, and ``report["kept"]`` is a list
            of ``(layer_name, reason)`` for the layers of the other package
            that were kept (``SpectralNormalization``; and, for
            ``to="keras"``, every layer of ours that stays). Names inside
            nested models are prefixed with ``"model_name/"``.

    Raises:
        TypeError: If ``model`` is not a Keras model, or is (or contains)
            a subclassed model, whose layer graph cannot be rewritten; if
            an override is taken by none of the classes it targets.
        ValueError: If ``to`` is not ``"keras_norms"`` or ``"keras"``, if
            a Sequential model is not built, or if an override removes a
            weight.

    Examples:
        >>> import numpy as np, keras, keras_norms
        >>> model = keras.Sequential([
        ...     keras.Input((8, 8, 3)),
        ...     keras.layers.Conv2D(4, 3),
        ...     keras.layers.BatchNormalization(),
        ... ])
        >>> ours, report = keras_norms.convert_normalization(
        ...     model, return_report=True, unbiased_moving_variance=True)
        >>> type(ours.layers[1]).__module__.split(".")[0]
        'keras_norms'
        >>> report["converted"]["BatchNormalization"] == [model.layers[1].name]
        True
        >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
        >>> bool(np.allclose(model.predict(x, verbose=0),
        ...                  ours.predict(x, verbose=0), atol=1e-5))
        True
    """
    if to not in TARGETS:
        raise ValueError(
            f'Argument `to` must be "keras_norms" or "keras". Received: '
            f"to={to!r}"
        )
    per_class = _overrides_per_class(to, overrides)
    report = {"converted": {name: [] for name in CLASS_NAMES}, "kept": []}
    converted = _convert(model, to, per_class, "", report)
    if report["kept"]:
        kept = ", ".join(f"'{name}'" for name, _ in report["kept"])
        warnings.warn(
            f'convert_normalization(to="{to}") kept {kept} unchanged; '
            "return_report=True says why.",
            stacklevel=2,
        )
    return (converted, report) if return_report else converted


def _public_name(to, name):
    package = "keras_norms.layers" if to == "keras_norms" else "keras.layers"
    return f"{package}.{name}"


def _classes(name, to):
    """(source class, target class) of the class named ``name``."""
    ours = getattr(norm_layers, name)
    theirs = getattr(keras.layers, name)
    return (theirs, ours) if to == "keras_norms" else (ours, theirs)


_DEFAULT_CONFIGS = {}


def _default_config(cls):
    """The config of ``cls`` with every argument at its default."""
    if cls not in _DEFAULT_CONFIGS:
        config = cls().get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        _DEFAULT_CONFIGS[cls] = config
    return _DEFAULT_CONFIGS[cls]


def _accepted(cls):
    """The constructor arguments of ``cls`` an override may set."""
    return set(_default_config(cls)) | {"dtype", "trainable"}


def _overrides_per_class(to, overrides):
    """{class name: {argument: value}} from ``convert_normalization``'s
    keyword arguments, validated against the target classes."""
    targets = {name: _classes(name, to)[1] for name in CLASS_NAMES}
    per_class = {name: {} for name in CLASS_NAMES}
    for key, value in overrides.items():
        if key in targets:
            continue
        taking = [n for n, cls in targets.items() if key in _accepted(cls)]
        if not taking:
            raise TypeError(
                f"convert_normalization: no class it converts to "
                f"({', '.join(CLASS_NAMES)}, to={to!r}) takes the argument "
                f"`{key}`. Received: {key}={value!r}"
            )
        for name in taking:
            per_class[name][key] = value
    for name, cls in targets.items():
        if name not in overrides:
            continue
        arguments = overrides[name]
        if not isinstance(arguments, dict):
            raise TypeError(
                f"convert_normalization: the override `{name}` must be a "
                "dict of constructor arguments for that class. Received: "
                f"{name}={arguments!r}"
            )
        unknown = sorted(set(arguments) - _accepted(cls))
        if unknown:
            raise TypeError(
                f"convert_normalization: {_public_name(to, name)} "
                f"takes no argument `{unknown[0]}`. Received: "
                f"{name}={arguments!r}"
            )
        per_class[name].update(arguments)
    return per_class


def _convert(model, to, per_class, prefix, report):
    graph = layer_graph(
        model,
        "convert_normalization",
        "Build the same network with the functional API (or "
        "keras.Sequential) and convert that, or create the keras_norms "
        "layers in your model's own __init__.",
    )
    del graph  # Only checked: clone_model walks the same graph.
    copies = []

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return _convert(
                layer, to, per_class, f"{prefix}{layer.name}/", report
            )
        cls, config = _conversion(layer, to, per_class, prefix, report)
        clone = cls.from_config(config)
        copies.append((layer, clone, cls is not type(layer)))
        return clone

    new_model = rewrite_model(model, clone_function)
    for layer, clone, converted in copies:
        if converted:
            _copy_weights(layer, clone)
        else:
            clone.set_weights(layer.get_weights())
    return new_model


def _conversion(layer, to, per_class, prefix, report):
    """(class, config) of the layer that replaces ``layer``."""
    config = layer.get_config()
    name = type(layer).__name__
    if name in CLASS_NAMES and type(layer) is _classes(name, to)[0]:
        target = _classes(name, to)[1]
        config = {**config, **per_class[name]}
        reason = _reason_not_convertible(layer, config, to)
        if reason is None:
            if to == "keras":
                for key in set(config) - _accepted(target) - {"name"}:
                    del config[key]
            report["converted"][name].append(prefix + layer.name)
            return target, config
        report["kept"].append((prefix + layer.name, reason))
        return type(layer), layer.get_config()
    if name in NOT_CONVERTED and type(layer) in (
        getattr(keras.layers, name, None),
        getattr(norm_layers, name),
    ):
        report["kept"].append((prefix + layer.name, NOT_CONVERTED[name]))
    elif to == "keras" and type(layer).__module__.startswith("keras_norms."):
        report["kept"].append(
            (
                prefix + layer.name,
                f"Keras has no counterpart of keras_norms.layers.{name}",
            )
        )
    return type(layer), config


def _reason_not_convertible(layer, config, to):
    """Why ours cannot become Keras's without changing what it computes,
    or None."""
    if to != "keras":
        return None
    source, target = _classes(type(layer).__name__, to)
    keras_arguments = _accepted(target)
    defaults = _default_config(source)
    for key, default in defaults.items():
        if key not in keras_arguments and config.get(key) != default:
            return (
                f"keras.layers.{type(layer).__name__} has no argument "
                f"`{key}` (it has {key}={config.get(key)!r})"
            )
    if "momentum" in config and config["momentum"] is None:
        return (
            "momentum=None (the cumulative average of the batch statistics): "
            "Keras's momentum must be a number"
        )
    if config.get("synchronized") and not _keras_synchronizes():
        return (
            "synchronized=True: Keras synchronizes batch statistics only on "
            "TensorFlow (under tf.distribute), not on this backend"
        )
    return None


@dispatch("keras_synchronizes_batch_statistics", fast_path=False)
def _keras_synchronizes():
    """Whether ``keras.layers.BatchNormalization(synchronized=True)``
    synchronizes on the running backend (TensorFlow's override: yes)."""
    return False


def _copy_weights(layer, clone):
    """Each weight of ``layer`` into the weight of the same name of
    ``clone``; weights only ``clone`` has keep their initial values."""
    targets = {weight.name: weight for weight in clone.weights}
    for weight in layer.weights:
        target = targets.get(weight.name)
        if target is None:
            raise ValueError(
                f"convert_normalization: the converted layer '{clone.name}' "
                f"has no weight '{weight.name}' to take the original's "
                "(an override removed it?). Converted config: "
                f"{clone.get_config()}"
            )
        # A copy: on JAX an assigned array is shared, and a jitted call that
        # donates one model's buffers would delete the other's.
        target.assign(np.array(keras.ops.convert_to_numpy(weight.value)))
