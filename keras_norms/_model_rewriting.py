"""Rebuilding a Sequential or functional model with some layers replaced.

Shared by the model-level functions that return a rewritten copy of a model
(`fold_batch_normalization`, `convert_normalization`): they read the layer
graph here and rebuild the model through `rewrite_model`.
"""

import keras


def layer_graph(model, function_name, advice):
    """The functional graph of ``model`` (for a Sequential: its inner one).

    ``function_name`` and ``advice`` (what to do instead) go into the error
    raised for a subclassed model, whose graph cannot be read.
    """
    # Imported here: keras.src is private, and only needed for this check.
    from keras.src.models.functional import Functional

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{function_name} expects a keras.Model (Sequential or "
            f"functional). Received: model of class {type(model).__name__}"
        )
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if not model.built or graph is None:
            raise ValueError(
                f"Sequential model '{model.name}' is not built: its layers "
                "have no weights yet. Start it with keras.Input(...) or call "
                "it on data first."
            )
        return graph
    if not isinstance(model, Functional):
        raise TypeError(
            f"{function_name} can rewrite only Sequential and functional "
            "models, whose layer graph it can read; received a subclassed "
            f"model of class {type(model).__name__} ('{model.name}'). "
            f"{advice}"
        )
    return model


def rewrite_model(model, clone_function, call_function=None, dropped=()):
    """A new model with the graph of ``model``, layers from ``clone_function``.

    ``call_function(layer, *args, **kwargs)`` calls a layer in the new graph
    (by default: ``layer(*args, **kwargs)``); layers whose id is in
    ``dropped`` are left out of a Sequential model (for a functional one,
    ``call_function`` must pass their input through). A compiled model's
    copy is compiled with the same configuration.
    """
    if isinstance(model, keras.Sequential):
        inputs = model.inputs[0]
        layers = [
            clone_function(layer)
            for layer in model.layers
            if id(layer) not in dropped
        ]
        new_model = keras.Sequential(
            [
                keras.Input(
                    batch_shape=inputs.shape,
                    dtype=inputs.dtype,
                    name=inputs.name,
                )
            ]
            + layers,
            name=model.name,
            trainable=model.trainable,
        )
    else:
        new_model = keras.models.clone_model(
            model, clone_function=clone_function, call_function=call_function
        )
    # clone_model compiles the copy of a compiled model from Keras 3.9 on;
    # Keras 3.8 leaves it uncompiled (and Sequential is built uncompiled).
    if model.compiled and not new_model.compiled:
        new_model.compile_from_config(model.get_compile_config())
    return new_model
