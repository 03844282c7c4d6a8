"""The choices that depend on the device, with the device helper told that
a GPU computes (this machine, and CI, have none).

Some fast-path choices were measured on CPU only and apply there only
(docs/benchmarks.md, "On a GPU"): a GPU gets the standard path. Each test
checks which path ran, so that it fails if the choice stops depending on
the device, and that both paths give the reference's numbers.
(TensorFlow's eager choices are also checked in test_fast_paths.py.)
"""

import types

import numpy as np
import pytest

from keras_norms import ops as norm_ops

import reference
from helpers import BACKEND
from helpers import to_numpy
from helpers import value_and_gradients

TORCH_ONLY = pytest.mark.skipif(
    BACKEND != "torch", reason="torch's device helper and LRN layout"
)
TENSORFLOW_ONLY = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="TensorFlow's device helper and fused batch norm threshold",
)


# --- torch ------------------------------------------------------------------


@TORCH_ONLY
def test_torch_on_gpu_reads_the_tensor_device():
    import torch

    from keras_norms.native.torch.devices import on_gpu

    assert not on_gpu(torch.zeros(2))
    assert not on_gpu(torch.zeros(2, device="meta"))
    # A CUDA device can be named without a GPU; a tensor cannot be made.
    assert on_gpu(types.SimpleNamespace(device=torch.device("cuda", 0)))


@TORCH_ONLY
@pytest.mark.parametrize("size", [3, 4])
@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("gpu", [False, True])
def test_torch_local_response_window_depends_on_the_device(
    rng, fast_calls, monkeypatch, gpu, axis, size
):
    from keras import ops

    from keras_norms.native.torch import local_response

    monkeypatch.setattr(local_response, "on_gpu", lambda x: gpu)
    pool_sizes = []

    def average_pool(inputs, pool_size, **kwargs):
        pool_sizes.append(pool_size)
        return ops.average_pool(inputs, pool_size, **kwargs)

    monkeypatch.setattr(
        local_response, "ops", types.SimpleNamespace(average_pool=average_pool)
    )
    x = rng.normal(size=(2, 7, 5, 5) if axis == 1 else (2, 5, 5, 7))
    x = x.astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    arguments = dict(size=size, alpha=0.5, k=1.5, axis=axis)

    def loss(x):
        y = norm_ops.local_response_norm(x, **arguments)
        return ops.sum(ops.multiply(y, upstream))

    value, (gradient,) = value_and_gradients(loss, x)
    assert fast_calls == ["channel_window_mean"]
    # On CPU the window sum of strided views (no pooling); on a GPU
    # torch's own layout, a (size, 1) window over (outer, 1, channels,
    # inner).
    assert pool_sizes == ([(size, 1)] if gpu else [])
    with norm_ops.reference_only():
        slow_value, (slow_gradient,) = value_and_gradients(loss, x)
    np.testing.assert_allclose(value, slow_value, rtol=1e-5)
    np.testing.assert_allclose(gradient, slow_gradient, rtol=1e-5, atol=1e-6)
    x64 = x.astype("float64")
    y = reference.lrn_across_channels(x64, size, 0.5, 0.75, 1.5, axis=axis)
    np.testing.assert_allclose(value, np.sum(y * upstream), rtol=1e-5)


# --- TensorFlow -------------------------------------------------------------


def _report_a_gpu(monkeypatch, tf):
    """TensorFlow's list of logical devices shows a GPU (soft placement
    runs what is placed there on the CPU)."""
    gpu = tf.config.LogicalDevice(name="/device:GPU:0", device_type="GPU")
    original = tf.config.list_logical_devices

    def listed(device_type=None):
        if device_type == "GPU":
            return [gpu]
        return original(device_type)

    monkeypatch.setattr(tf.config, "list_logical_devices", listed)


@TENSORFLOW_ONLY
def test_tensorflow_on_gpu_reads_the_device_string_or_the_visible_gpus(
    monkeypatch,
):
    import tensorflow as tf

    from keras_norms.native.tensorflow.devices import on_gpu

    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    assert on_gpu(tf.constant(1.0)) == has_gpu  # eager: placed already
    seen = {}

    @tf.function
    def traced(x):
        seen["argument"] = on_gpu(x)  # no device in the graph
        with tf.device("/GPU:0"):
            seen["gpu scope"] = on_gpu(tf.identity(x))
        with tf.device("/CPU:0"):
            seen["cpu scope"] = on_gpu(tf.identity(x))
        return x

    traced(tf.constant(1.0))
    assert seen == {
        "argument": has_gpu,
        "gpu scope": True,
        "cpu scope": False,
    }
    _report_a_gpu(monkeypatch, tf)

    @tf.function
    def traced_with_a_gpu(x):
        seen["argument"] = on_gpu(x)
        return x

    traced_with_a_gpu(tf.constant(1.0))
    assert seen["argument"]


@TENSORFLOW_ONLY
@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize(
    "shape, axis",
    [((4, 6, 6, 8), -1), ((2, 8, 96, 96), 1)],
    ids=["NHWC", "NCHW"],
)
def test_tensorflow_fused_batch_norm_on_a_gpu_when_traced(
    rng, fast_calls, monkeypatch, gpu, shape, axis
):
    # Traced, the input names no device: the visible GPUs decide.
    import tensorflow as tf

    if gpu:
        _report_a_gpu(monkeypatch, tf)
    elif tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU: the CPU choice is not made")
    x = (3.0 + rng.normal(size=shape)).astype("float32")
    gamma = rng.uniform(0.5, 1.5, 8).astype("float32")
    beta = rng.normal(size=8).astype("float32")

    @tf.function
    def batch_norm(x):
        return norm_ops.batch_normalization_training(
            x, axis=axis, offset=beta, scale=gamma
        )[:3]

    fast = batch_norm(tf.constant(x))
    # On a GPU the fused kernel at every size and in both layouts. On CPU
    # the closed form: NHWC's 288 values are under the size threshold, and
    # NCHW (147456 values, over it) is transposed by TensorFlow's kernel.
    assert fast_calls == (
        ["batch_normalization_training"] if gpu else ["custom_gradient"]
    )
    with norm_ops.reference_only():
        slow = norm_ops.batch_normalization_training(
            x, axis=axis, offset=beta, scale=gamma
        )[:3]
    expected = reference.batch_norm_train(x, axis, gamma, beta)[:3]
    for got, ref, want in zip(fast, slow, expected, strict=True):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            to_numpy(got), to_numpy(ref), rtol=1e-5, atol=1e-5
        )


@TENSORFLOW_ONLY
@pytest.mark.parametrize("gpu", [False, True])
def test_tensorflow_local_response_layout_when_traced(
    rng, fast_calls, monkeypatch, gpu
):
    import tensorflow as tf

    if gpu:
        _report_a_gpu(monkeypatch, tf)
    elif tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU: the CPU choice is not made")
    x = rng.normal(size=(2, 5, 5, 7)).astype("float32")
    y = tf.function(
        lambda x: norm_ops.local_response_norm(x, size=3, alpha=0.5, k=1.5)
    )(tf.constant(x))
    # The transposed layout on CPU; the reference layout on a GPU.
    assert fast_calls == ([] if gpu else ["channel_window_mean"])
    np.testing.assert_allclose(
        to_numpy(y),
        reference.lrn_across_channels(x.astype("float64"), 3, 0.5, 0.75, 1.5),
        rtol=1e-5,
    )
