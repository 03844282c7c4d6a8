"""Speed and memory of every keras_norms layer against Keras core and the
backend's native kernels, in one process, interleaved.

Run once per backend (Keras reads ``KERAS_BACKEND`` once per process):

    KERAS_BACKEND=torch python benchmarks/bench_layers.py
    KERAS_BACKEND=jax python benchmarks/bench_layers.py --tiny   # CI smoke

What is timed: one training step of the layer alone, forward and backward
(gradients to the input and to every trainable weight, against a random
upstream gradient), compiled the way users run it: ``jax.jit`` of the
layer's ``stateless_call`` on JAX, ``tf.function`` on TensorFlow, eager on
torch. For every size the candidates (ours, Keras core, natives) run one
after the other in each of ``--repeats`` rounds, so that a slow phase of
the machine hits them all; a ratio is the median over rounds of the
per-round ratio ours / theirs (> 1: ours is slower).

Natives are the fused kernels a hand-written model would call:
``torch.nn.functional.batch_norm`` / ``group_norm`` / ``layer_norm`` /
``rms_norm`` / ``local_response_norm`` (in torch's channels-first layout
where it has one), TensorFlow's fused batch norm and
``tf.nn.local_response_normalization``. JAX has none.

Memory: on JAX the compiled program's temporary memory (XLA
``memory_analysis``); on torch the peak of the memory allocated during one
step (torch profiler on CPU, the CUDA allocator's peak on a GPU), outputs
and gradients included. Results go to ``benchmarks/results/<backend>.json``
(``--output``); ``benchmarks/render_results.py`` turns the files into the
docs page.

Device: the backend's default, a GPU when it sees one. There the batch
sizes are 4x larger (a step of the CPU sizes is mostly launch overhead),
torch steps wait for the GPU before the clock is read, and the results go
to ``benchmarks/results/<backend>_gpu.json``: the CPU figures stay.
"""

import argparse
import json
import os
import platform
import statistics
import time

import keras
import numpy as np

import keras_norms

BACKEND = keras.backend.backend()
RESULTS = os.path.join(os.path.dirname(__file__), "results")


# --- The device: each backend's default, a GPU when it has one ------------


def torch_device():
    from keras.src.backend.torch.core import get_device

    return get_device()


def _gpu_name():
    """The name of the GPU the backend computes on by default, or None."""
    if BACKEND == "jax":
        import jax

        device = jax.devices()[0]
        return device.device_kind if device.platform == "gpu" else None
    if BACKEND == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", gpus[0].name)
    import torch

    # Keras's torch device: CUDA when torch sees one (KERAS_TORCH_DEVICE
    # may say otherwise).
    device = torch.device(torch_device())
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


GPU = _gpu_name()
# On a GPU the sizes are 4x larger (in the batch), so that a step is not
# all launch overhead; results go to their own files (``<backend>_gpu``).
SCALE = 4 if GPU else 1
RESULTS_SUFFIX = "_gpu" if GPU else ""


def synchronized(step):
    """``step`` that returns only when the device has finished it (torch
    on CUDA runs asynchronously; JAX and TensorFlow steps already wait)."""
    if GPU is None or BACKEND != "torch":
        return step
    import torch

    def step_and_wait():
        step()
        torch.cuda.synchronize()

    return step_and_wait


# --- One training step of a Keras layer, compiled per backend -------------


def keras_layer_step(layer, x, rng):
    """A no-argument function running forward + backward of ``layer``,
    against a random upstream gradient of the output's shape.

    ``x`` reaches the layer in the layer's compute dtype, as a preceding
    layer under the same dtype policy would deliver it (float16 or
    bfloat16 under the mixed policies)."""
    layer.build(x.shape)
    output_shape = layer.compute_output_shape(x.shape)
    upstream = rng.normal(size=output_shape).astype("float32")
    x = keras.ops.cast(x, layer.compute_dtype)
    upstream = keras.ops.cast(upstream, layer.compute_dtype)
    # LayerNormalization-like layers take no `training` argument.
    layer.call_kwargs = (
        {"training": True} if layer._call_has_training_arg else {}
    )
    if BACKEND == "jax":
        return _jax_layer_step(layer, x, upstream)
    if BACKEND == "tensorflow":
        return _tensorflow_layer_step(layer, x, upstream)
    return _torch_layer_step(layer, x, upstream)


def _jax_layer_step(layer, x, upstream):
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(trainable, x, non_trainable):
        y, non_trainable = layer.stateless_call(
            trainable, non_trainable, x, **layer.call_kwargs
        )
        return jnp.sum(y * upstream), non_trainable

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    compiled = grad.lower(trainable, x, non_trainable).compile()

    def step():
        jax.block_until_ready(compiled(trainable, x, non_trainable))

    step.temporary_bytes = _temporary_bytes(compiled)
    return step


def _temporary_bytes(compiled):
    try:
        return int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # not every XLA client reports it
        return None


def _tensorflow_layer_step(layer, x, upstream):
    import tensorflow as tf

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, **layer.call_kwargs) * upstream)
        return tape.gradient(loss, [x] + layer.trainable_variables)

    def step():
        run()[0].numpy()

    return step


def _torch_layer_step(layer, x, upstream):

    x = x.detach().requires_grad_(True)
    weights = [v.value for v in layer.trainable_variables]

    def step():
        for tensor in [x] + weights:
            tensor.grad = None
        (layer(x, **layer.call_kwargs) * upstream).sum().backward()

    return _with_torch_peak_bytes(step)


def _with_torch_peak_bytes(step):
    """Attach the peak of the memory allocated during one step, above the
    start (on CPU from the torch profiler's allocations and frees in time
    order; on CUDA from the allocator's peak statistics)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    step = synchronized(step)
    step()  # warm-up
    if GPU is not None:
        import torch

        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        step.temporary_bytes = torch.cuda.max_memory_allocated() - start
        return step
    # Each event's memory counts at its start, so an allocation can be
    # missed when events start out of their allocations' order (one
    # reading of 0.02 MiB for a step whose output alone is 2 MiB): the
    # largest of three readings.
    peaks = []
    for _ in range(3):
        with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True
        ) as p:
            step()
        current = peak = 0
        for event in sorted(p.events(), key=lambda e: e.time_range.start):
            current += event.self_cpu_memory_usage
            peak = max(peak, current)
        peaks.append(peak)
    step.temporary_bytes = max(peaks)
    return step


# --- Native kernels ---------------------------------------------------------


def native_step(kind, x, upstream, **options):
    """Forward + backward of the backend's fused kernel, or None."""
    if BACKEND == "torch":
        return _torch_native(kind, x, upstream, **options)
    if BACKEND == "tensorflow":
        return _tensorflow_native(kind, x, upstream, **options)
    return None


def _torch_native(kind, x, upstream, groups=None, size=5):
    import torch
    import torch.nn.functional as F

    if kind in ("layer_norm", "rms_norm"):
        first = x  # normalizes the trailing axis: same layout as Keras
        up = upstream
    else:  # torch's layout: channels first
        first = np.ascontiguousarray(np.moveaxis(x, -1, 1))
        up = np.ascontiguousarray(np.moveaxis(upstream, -1, 1))
    channels = x.shape[-1]
    device = torch_device()
    t = torch.tensor(first, requires_grad=True, device=device)
    up = torch.tensor(up, device=device)
    weight = torch.ones(channels, requires_grad=True, device=device)
    bias = torch.zeros(channels, requires_grad=True, device=device)
    mean = torch.zeros(channels, device=device)
    var = torch.ones(channels, device=device)
    kernels = {
        "batch_norm": lambda: F.batch_norm(
            t, mean, var, weight, bias, True, 0.01, 1e-3
        ),
        "group_norm": lambda: F.group_norm(t, groups, weight, bias, 1e-3),
        "layer_norm": lambda: F.layer_norm(t, (channels,), weight, bias, 1e-3),
        "rms_norm": lambda: F.rms_norm(t, (channels,), weight, 1e-6),
        "local_response_norm": lambda: F.local_response_norm(
            t, size, 1e-4, 0.75, 2.0
        ),
    }
    if kind not in kernels:
        return None
    kernel = kernels[kind]

    def step():
        for tensor in (t, weight, bias):
            tensor.grad = None
        (kernel() * up).sum().backward()

    return _with_torch_peak_bytes(step)


def _tensorflow_native(kind, x, upstream, size=5, **_):
    import tensorflow as tf

    channels = x.shape[-1]
    if x.ndim not in (2, 4):
        return None
    shape4 = x.shape if x.ndim == 4 else (x.shape[0], 1, 1, channels)
    t = tf.constant(x.reshape(shape4))
    up = tf.constant(upstream.reshape(shape4))
    scale, offset = tf.ones((channels,)), tf.zeros((channels,))
    if kind == "batch_norm":

        def kernel(t):
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                t, scale, offset, epsilon=1e-3, is_training=True
            )
            return y

    elif kind == "local_response_norm" and x.ndim == 4:
        radius = size // 2

        def kernel(t):
            return tf.nn.local_response_normalization(
                t, radius, 2.0, 1e-4 / size, 0.75
            )

    else:
        return None

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch([t, scale, offset])
            loss = tf.reduce_sum(kernel(t) * up)
        return tape.gradient(loss, [t, scale, offset])

    def step():
        run()[0].numpy()

    return step


# --- The cases ----------------------------------------------------------------

L = keras_norms.layers
K = keras.layers


def conv_sizes(tiny):
    if tiny:
        return [(2, 4, 4, 8)]
    return [
        (SCALE * b, s, s, c)
        for b, s, c in ((8, 14, 32), (32, 28, 64), (64, 28, 128))
    ]


def dense_sizes(tiny):
    if tiny:
        return [(4, 8)]
    return [(SCALE * b, c) for b, c in ((64, 256), (256, 1024), (1024, 1024))]


def sequence_sizes(tiny, features=64):
    if tiny:
        return [(2, 3, 4)]
    return [(SCALE * 32, t, features) for t in (16, 64, 256)]


def cases(tiny):
    """(name, sizes, ours, core, native kind, native options, axis)."""
    return [
        ("BN conv NHWC", conv_sizes(tiny), lambda: L.BatchNormalization(),
         lambda: K.BatchNormalization(), "batch_norm", {}, -1),
        ("BN conv NCHW", conv_sizes(tiny),
         lambda: L.BatchNormalization(axis=1),
         lambda: K.BatchNormalization(axis=1), "batch_norm", {}, 1),
        ("BN dense", dense_sizes(tiny), lambda: L.BatchNormalization(),
         lambda: K.BatchNormalization(), "batch_norm", {}, -1),
        ("LN", sequence_sizes(tiny, 256 if not tiny else 4),
         lambda: L.LayerNormalization(),
         lambda: K.LayerNormalization(), "layer_norm", {}, -1),
        ("GN", conv_sizes(tiny),
         lambda: L.GroupNormalization(groups=4),
         lambda: K.GroupNormalization(groups=4), "group_norm",
         {"groups": 4}, -1),
        ("LRN across", conv_sizes(tiny),
         lambda: L.LocalResponseNormalization(k=2.0), None,
         "local_response_norm", {"size": 5}, -1),
        ("LRN within", conv_sizes(tiny),
         lambda: L.LocalResponseNormalization(
             k=2.0, size=3, mode="within_channel"), None, None, {}, -1),
        ("PReLU", conv_sizes(tiny), lambda: L.PReLU(),
         lambda: K.PReLU(), None, {}, -1),
        ("TimestepBN", sequence_sizes(tiny),
         lambda: L.TimestepBatchNormalization(),
         lambda: K.BatchNormalization(), None, {}, -1),
        ("BNLSTM", sequence_sizes(tiny, 32 if not tiny else 4),
         lambda: L.BNLSTM(64 if not tiny else 4, return_sequences=True),
         lambda: K.LSTM(64 if not tiny else 4, return_sequences=True),
         None, {}, -1),
        ("LayerNormLSTM", sequence_sizes(tiny, 32 if not tiny else 4),
         lambda: L.LayerNormLSTM(64 if not tiny else 4,
                                 return_sequences=True),
         lambda: K.LSTM(64 if not tiny else 4, return_sequences=True),
         None, {}, -1),
        ("RMS", sequence_sizes(tiny, 256 if not tiny else 4),
         lambda: L.RMSNormalization(),
         lambda: K.RMSNormalization(), "rms_norm", {}, -1),
        # Keras's writes W / sigma into the kernel and skips sigma in the
        # gradient; ours divides at each call and differentiates through
        # sigma (docs/spectral_normalization.md): the same forward work.
        ("Spectral Dense", dense_sizes(tiny),
         lambda: L.SpectralNormalization(K.Dense(256 if not tiny else 4)),
         lambda: K.SpectralNormalization(K.Dense(256 if not tiny else 4)),
         None, {}, -1),
    ]  # fmt: skip


# The normalization layers with a Keras core peer, also measured under the
# mixed-precision policies (where accelerator users train). Natives are
# compared in float32 only.
MIXED_PRECISION_CASES = (
    "BN conv NHWC", "BN conv NCHW", "BN dense", "LN", "GN", "RMS",
    "TimestepBN",
)  # fmt: skip
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


# --- Measurement --------------------------------------------------------------


def interleaved(steps, repeats):
    """Seconds of each step per round, the steps taking turns."""
    for step in steps.values():
        step()  # warm-up: tracing, compilation, allocators
        step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def to_layout(x, axis):
    return x if axis == -1 else np.ascontiguousarray(np.moveaxis(x, -1, 1))


def run_case(case, repeats, rng, policy="float32"):
    name, sizes, ours, core, native_kind, native_options, axis = case
    rows = []
    for size in sizes:
        x = rng.normal(size=size).astype("float32")
        upstream = rng.normal(size=size).astype("float32")
        xl = to_layout(x, axis)
        keras.config.set_dtype_policy(policy)
        try:
            steps = {"ours": keras_layer_step(ours(), xl, rng)}
            if core is not None:
                steps["core"] = keras_layer_step(core(), xl, rng)
        finally:
            keras.config.set_dtype_policy("float32")
        if native_kind is not None and policy == "float32":
            native = native_step(native_kind, x, upstream, **native_options)
            if native is not None:
                steps["native"] = native
        times = interleaved(steps, repeats)
        row = {
            "layer": name,
            "shape": list(size),
            "policy": policy,
            "median_ms": {
                k: 1e3 * statistics.median(v) for k, v in times.items()
            },
        }
        for other in ("core", "native"):
            if other in times:
                row[f"vs_{other}"] = statistics.median(
                    a / b
                    for a, b in zip(times["ours"], times[other], strict=True)
                )
        memory = {
            k: getattr(s, "temporary_bytes", None) for k, s in steps.items()
        }
        if any(v is not None for v in memory.values()):
            row["temporary_MiB"] = {
                k: v / 2**20 for k, v in memory.items() if v is not None
            }
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


def _format_row(row):
    ms = "  ".join(f"{k} {v:7.2f} ms" for k, v in row["median_ms"].items())
    ratios = "  ".join(
        f"{k} {row[k]:.2f}" for k in ("vs_core", "vs_native") if k in row
    )
    memory = row.get("temporary_MiB")
    memory = (
        "  MiB " + " ".join(f"{k} {v:.1f}" for k, v in memory.items())
        if memory
        else ""
    )
    shape = str(tuple(row["shape"]))
    policy = row.get("policy", "float32")
    return f"{row['layer']:<13} {shape:<18} {policy:<14} {ms}  {ratios}{memory}"


def run_information(repeats):
    """Where and when a benchmark ran, for its results file."""
    return {
        "backend": BACKEND,
        "keras": keras.__version__,
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "device": "CPU" if GPU is None else f"GPU: {GPU}",
        "date": time.strftime("%Y-%m-%d"),
        "repeats": repeats,
    }


def parse_arguments(description, repeats, what):
    """The command line both benchmark scripts take; announces the run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--tiny", action="store_true", help="CI smoke run")
    parser.add_argument("--only", help=f"run {what} whose name contains this")
    parser.add_argument("--output", help="JSON path (default: results/)")
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help="dtype policies, comma-separated (the mixed ones apply to the "
        "normalization layers with a Keras core peer)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.repeats = min(args.repeats, 2)
    print(
        f"backend {BACKEND}, keras {keras.__version__}, {args.repeats} rounds"
    )
    return args


def main():
    args = parse_arguments(__doc__.split("\n")[0], 21, "layers")
    rng = np.random.default_rng(0)
    rows = []
    for policy in args.policies.split(","):
        for case in cases(args.tiny):
            if args.only and args.only.lower() not in case[0].lower():
                continue
            if policy != "float32" and case[0] not in MIXED_PRECISION_CASES:
                continue
            rows += run_case(case, args.repeats, rng, policy)
    write_results({"rows": rows}, f"{BACKEND}{RESULTS_SUFFIX}.json", args)


def write_results(result, name, args):
    """Write ``result`` with the run's information to ``--output``, or to
    ``results/<name>`` for a complete full-size run (a partial or tiny
    run does not overwrite the results page's numbers)."""
    output = args.output
    partial = args.only or args.policies != ",".join(POLICIES)
    if output is None and not args.tiny and not partial:
        os.makedirs(RESULTS, exist_ok=True)
        output = os.path.join(RESULTS, name)
    if output:
        with open(output, "w") as f:
            json.dump({**run_information(args.repeats), **result}, f, indent=1)
        print(f"wrote {output}")


if __name__ == "__main__":
    main()
