"""Backend-neutral test helpers: conversion, gradients, float64 on JAX."""

import contextlib
import functools

import keras
import numpy as np

BACKEND = keras.backend.backend()
# Keras's (major, minor): tests of behaviour that changed in Keras skip or
# adapt on the versions before the change (`make test-oldest`: Keras 3.8).
KERAS_VERSION = tuple(int(part) for part in keras.__version__.split(".")[:2])


def multi_process_unavailable(scripts, otherwise):
    """Why the multi-process run of ``scripts[BACKEND]`` cannot happen here
    (``otherwise`` if this backend has none), or None."""
    if BACKEND not in scripts:
        return otherwise
    if BACKEND == "jax":
        return _jax_multi_process_unavailable()
    return None


def _jax_multi_process_unavailable():
    """Why ``model.fit`` under DataParallel cannot run across JAX processes
    on CPU here (each process feeding its own shard), or None."""
    import jax

    if "jax_cpu_collectives_implementation" not in jax.config.values:
        return f"jax {jax.__version__}: no collectives between CPU processes"
    # Keras 3.11 (keras-team/keras#21430) lets fit take arrays already
    # sharded over the processes (DataParallel(auto_shard_dataset=False));
    # before, only tf.data datasets (checked: 3.10 refuses, 3.11 runs it).
    if KERAS_VERSION < (3, 11):
        return (
            f"Keras {keras.__version__}: fit under a multi-process "
            "distribution takes only tf.data datasets (Keras >= 3.11 "
            "takes per-process arrays)"
        )
    return None


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@contextlib.contextmanager
def float64_enabled():
    """Let float64 tensors exist (JAX truncates to float32 by default)."""
    if BACKEND == "jax":
        import jax

        # jax.enable_x64 is new in jax 0.8; older jax (down to the 0.4.30
        # that pyproject.toml allows) has it in jax.experimental only.
        enable_x64 = getattr(jax, "enable_x64", None)
        if enable_x64 is None:
            from jax.experimental import enable_x64
        with enable_x64(True):
            yield
    else:
        yield


def value_and_gradients(fn, *arrays, compiled=False):
    """Value of scalar ``fn(*tensors)`` and its gradients, as NumPy arrays.

    ``arrays`` are NumPy arrays; they are converted to backend tensors of
    their own dtype (use `float64_enabled` for float64 on JAX). An input
    the value does not depend on (e.g. through ``stop_gradient`` only)
    gets a zero gradient on every backend, as JAX gives. ``compiled``:
    traced as in training (``jax.jit``, ``tf.function``; torch runs
    eagerly either way).
    """
    if BACKEND == "jax":
        import jax

        tensors = [keras.ops.convert_to_tensor(a, a.dtype) for a in arrays]
        function = jax.value_and_grad(fn, argnums=tuple(range(len(arrays))))
        if compiled:
            function = jax.jit(function)
        value, grads = function(*tensors)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        def function(*tensors):
            with tf.GradientTape() as tape:
                for t in tensors:
                    tape.watch(t)
                value = fn(*tensors)
            return value, tape.gradient(
                value,
                list(tensors),
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        if compiled:
            function = tf.function(function)
        value, grads = function(*[tf.constant(a) for a in arrays])
    else:
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
        value = fn(*tensors)
        value.backward()
        grads = [
            torch.zeros_like(t) if t.grad is None else t.grad for t in tensors
        ]
    return to_numpy(value), [to_numpy(g) for g in grads]


def save_and_load(model, tmp_path, name="model.keras"):
    path = str(tmp_path / name)
    model.save(path)
    return keras.saving.load_model(path)


def assert_same_weights(model, loaded):
    """The loaded model has the same weights, by name and value, in the
    same order."""
    for before, after in zip(model.weights, loaded.weights, strict=True):
        assert before.name == after.name
        np.testing.assert_array_equal(to_numpy(before), to_numpy(after))


def sequences_with_step_statistics(rng, batch, time=6, features=3):
    """``(batch, time, features)`` float32 data whose mean and spread
    change with the step (step ``t``: mean ``-t``, std ``1 + t``)."""
    steps = np.arange(time)[None, :, None]
    return (
        rng.normal(size=(batch, time, features)) * (1 + steps) - steps
    ).astype("float32")


def skip_unless_channels_first_convolutions_run():
    """TensorFlow's own CPU kernels have no channels-first (NCHW)
    convolution; its oneDNN kernels do, and TensorFlow enables them by
    default on some CPUs only (not on the AMD EPYC of this project's
    machines; TF_ENABLE_ONEDNN_OPTS=1 turns them on). Eager calls then
    fail inside TensorFlow, for Keras's layers as for ours."""
    if BACKEND == "tensorflow" and not _tensorflow_runs_nchw_convolutions():
        import pytest

        pytest.skip("TensorFlow on this CPU has no NCHW convolution kernel")


@functools.cache
def _tensorflow_runs_nchw_convolutions():
    import tensorflow as tf

    layer = keras.layers.Conv2D(1, 1, data_format="channels_first")
    try:
        layer(np.ones((1, 1, 2, 2), "float32"))
    except tf.errors.UnimplementedError:
        return False
    return True
