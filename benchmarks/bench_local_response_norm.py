"""Time forward + backward of our LRN against the backend's own kernel.

Run under the backend to compare with:

    KERAS_BACKEND=torch python benchmarks/bench_local_response_norm.py
    KERAS_BACKEND=tensorflow python benchmarks/bench_local_response_norm.py

torch: ``keras_norms.ops.local_response_norm`` vs
``torch.nn.functional.local_response_norm`` (channels-first, its layout),
for our op on channels-first (axis=1) and channels-last (axis=-1) inputs.
tensorflow: vs ``tf.nn.local_response_normalization`` (channels-last, its
only layout), both inside ``tf.function``. The ratio is ours / native
(below 1: ours is faster). Under JAX, which has no LRN kernel, only our
timings are printed.

Each timing is the median of ``--repeats`` runs of one forward and
backward pass (gradient of the sum of the outputs).
"""

import argparse
import statistics
import time

import keras
import numpy as np

from keras_norms import ops as norm_ops

SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0


def median_seconds(step, repeats):
    step()  # warm-up: tracing, compilation, allocator
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_steps(x_last):
    import torch

    def make(fn, array):
        tensor = torch.tensor(array, requires_grad=True)

        def step():
            tensor.grad = None
            fn(tensor).sum().backward()

        return step

    x_first = np.ascontiguousarray(np.moveaxis(x_last, -1, 1))
    native = make(
        lambda t: torch.nn.functional.local_response_norm(
            t, SIZE, ALPHA, BETA, K
        ),
        x_first,
    )
    ours = {
        "channels_first": make(
            lambda t: norm_ops.local_response_norm(
                t, SIZE, ALPHA, BETA, K, axis=1
            ),
            x_first,
        ),
        "channels_last": make(
            lambda t: norm_ops.local_response_norm(t, SIZE, ALPHA, BETA, K),
            x_last,
        ),
    }
    return native, ours


def tensorflow_steps(x_last):
    import tensorflow as tf

    x = tf.constant(x_last)

    def make(fn):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(fn(x))
            return tape.gradient(loss, x)

        return lambda: step().numpy()

    # TensorFlow's radius r and undivided alpha: size = 2r + 1,
    # alpha_tf = alpha / size (see LocalResponseNormalization.from_tensorflow).
    native = make(
        lambda t: tf.nn.local_response_normalization(
            t, SIZE // 2, bias=K, alpha=ALPHA / SIZE, beta=BETA
        )
    )
    ours = {
        "channels_last": make(
            lambda t: norm_ops.local_response_norm(t, SIZE, ALPHA, BETA, K)
        )
    }
    return native, ours


def jax_steps(x_last):
    import jax

    def make(fn, array):
        grad = jax.jit(jax.grad(lambda t: fn(t).sum()))
        tensor = jax.numpy.asarray(array)
        return lambda: grad(tensor).block_until_ready()

    x_first = np.ascontiguousarray(np.moveaxis(x_last, -1, 1))
    ours = {
        "channels_first": make(
            lambda t: norm_ops.local_response_norm(
                t, SIZE, ALPHA, BETA, K, axis=1
            ),
            x_first,
        ),
        "channels_last": make(
            lambda t: norm_ops.local_response_norm(t, SIZE, ALPHA, BETA, K),
            x_last,
        ),
    }
    return None, ours


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape",
        type=int,
        nargs=4,
        default=(32, 27, 27, 96),
        help="channels-last input shape (AlexNet's second LRN by default)",
    )
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    backend = keras.backend.backend()
    x_last = np.random.default_rng(0).normal(size=args.shape).astype("float32")
    steps = {
        "torch": torch_steps,
        "tensorflow": tensorflow_steps,
        "jax": jax_steps,
    }[backend]
    native, ours = steps(x_last)
    print(
        f"backend={backend} shape={tuple(args.shape)} (channels-last) "
        f"size={SIZE} forward+backward, median of {args.repeats}"
    )
    native_time = None
    if native is not None:
        native_time = median_seconds(native, args.repeats)
        print(f"  native                 {native_time * 1e3:8.2f} ms")
    for layout, step in ours.items():
        seconds = median_seconds(step, args.repeats)
        line = f"  ours ({layout:14s})  {seconds * 1e3:8.2f} ms"
        if native_time is not None:
            line += f"   ours/native = {seconds / native_time:.2f}"
        print(line)


if __name__ == "__main__":
    main()
