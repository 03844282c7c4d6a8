"""The profiles behind the targets the results page shows as missed.

    KERAS_BACKEND=jax python benchmarks/profile_misses.py
    KERAS_BACKEND=torch python benchmarks/profile_misses.py
    KERAS_BACKEND=tensorflow python benchmarks/profile_misses.py

JAX (XLA's CPU backend): for each case the compiled training step's
temporary memory, ours and Keras core's, the full-size buffers of the
step's top-level computation (the intermediates XLA materializes; a
``wrapped_broadcast`` of input size is a per-slice statistic broadcast
to the input's shape), and the same memory compiled without XLA's
YNNPACK fusions (``--xla_cpu_experimental_ynn_fusion_type=``, in a
subprocess: XLA reads its flags once). Then a sum over the leading axis
into many outputs, as XLA's reduction and as a matrix product, with and
without those fusions, per-step batch normalization's output fusion
with its parameters flattened and in three dimensions, and the largest
XLA operations of a BNLSTM training step (JAX's profiler).

torch: the operators of one training step of layer normalization, batch
normalization of a dense layer and of channels-first images, group
normalization and the BNLSTM, by self CPU time (torch profiler); then
the tensors autograd keeps for the backward pass of the BNLSTM, the
LayerNormLSTM and Keras's LSTM, by operation and shape; then, for the
small inputs, the wall time of a training step against the torch
operators' time and the step's Python calls, ours and Keras core's.

TensorFlow: the time loops of the BNLSTM, the LayerNormLSTM and Keras's
LSTM (kernels per step and the longest chain of dependent kernels, in
the forward loop and its gradient); then the kernels of one training
step (``tf.function``, forward and backward), ours and Keras core's, by
op type with their time and count (TensorFlow's profiler, its trace read
back from the XPlane file):
group normalization, local response normalization against TensorFlow's
fused kernel, per-step batch normalization against Keras's batch
normalization, and the BNLSTM against Keras's LSTM.

Machine otherwise idle for the timings; the memory figures do not depend
on the load.
"""

import json
import os
import re
import subprocess
import sys
import time

import keras
import numpy as np

import keras_norms

BACKEND = keras.backend.backend()
NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="

# (name, dtype policy, input shape, ours, Keras core's)
JAX_CASES = [
    (
        "GN",
        "float32",
        (64, 28, 28, 128),
        lambda: keras_norms.layers.GroupNormalization(groups=4),
        lambda: keras.layers.GroupNormalization(groups=4),
    ),
    (
        "TimestepBN",
        "float32",
        (32, 64, 64),
        lambda: keras_norms.layers.TimestepBatchNormalization(),
        lambda: keras.layers.BatchNormalization(),
    ),
    (
        "BN conv NHWC",
        "mixed_float16",
        (64, 28, 28, 128),
        lambda: keras_norms.layers.BatchNormalization(),
        lambda: keras.layers.BatchNormalization(),
    ),
    (
        "TimestepBN",
        "mixed_float16",
        (32, 256, 64),
        lambda: keras_norms.layers.TimestepBatchNormalization(),
        lambda: keras.layers.BatchNormalization(),
    ),
]


def _jax_compiled_step(layer, shape):
    import jax
    import jax.numpy as jnp

    layer.build(shape)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), layer.compute_dtype)
    upstream = jnp.asarray(rng.normal(size=shape), layer.compute_dtype)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    kwargs = {"training": True} if layer._call_has_training_arg else {}

    def loss(trainable, x, non_trainable, upstream):
        y, non_trainable = layer.stateless_call(
            trainable, non_trainable, x, **kwargs
        )
        return jnp.sum(y * upstream), non_trainable

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    return step.lower(trainable, x, non_trainable, upstream).compile()


def _full_size_buffers(compiled, shape):
    """The top-level instructions producing an array of the input's size."""
    text = compiled.as_text()
    entry = text[text.index("\nENTRY") :]
    size = int(np.prod(shape))
    names = []
    for line in entry.splitlines()[1:]:
        match = re.match(r"\s*(?:ROOT )?%(\S+) = \w+\[([\d,]*)\]", line)
        if match and match.group(2):
            dims = [int(d) for d in match.group(2).split(",")]
            if int(np.prod(dims)) == size and "parameter(" not in line:
                names.append(match.group(1))
    return names


def jax_memory(case_index):
    """One case's temporary memory (KiB) and materialized buffers."""
    name, policy, shape, ours, core = JAX_CASES[case_index]
    result = {}
    for who, build in (("ours", ours), ("core", core)):
        keras.config.set_dtype_policy(policy)
        try:
            layer = build()
        finally:
            keras.config.set_dtype_policy("float32")
        compiled = _jax_compiled_step(layer, shape)
        result[who] = {
            "temporary_KiB": compiled.memory_analysis().temp_size_in_bytes
            / 1024,
            "full_size_buffers": _full_size_buffers(compiled, shape),
        }
    return result


def _best_ms(function, *arguments, repeats=10):
    import jax

    jax.block_until_ready(function(*arguments))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def leading_sum_ms():
    """A (32, 65536) float32 array summed over axis 0: XLA's reduction and
    the same sum as a matrix product (what our CPU override runs)."""
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(np.random.default_rng(0).normal(size=(32, 65536)))
    x = x.astype("float32")
    reduction = jax.jit(lambda x: jnp.sum(x, axis=0))
    product = jax.jit(lambda x: jnp.ones((32,), x.dtype) @ x)
    return {
        "reduction": _best_ms(reduction, x),
        "product": _best_ms(product, x),
    }


def flattened_parameter_ms():
    """Per-step batch normalization's output fusion on (32, 256, 64), ms:
    gamma (64,) broadcast over the 256 steps and flattened to the data's
    (32, 16384) layout, against the same fusion in three dimensions, with
    float16 and float32 data (float32 statistics)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    gamma = jnp.asarray(rng.normal(size=(64,)), "float32")
    statistic = jnp.asarray(rng.normal(size=(256, 64)), "float32")

    def flattened(x, upstream):
        scale = jnp.broadcast_to(gamma, (256, 64)).reshape(-1)
        y = (x.astype("float32") - statistic.reshape(-1)) * scale + scale
        return (y.astype(x.dtype) * upstream).astype("float32")

    def three_dimensional(x, upstream):
        y = (x.astype("float32") - statistic) * gamma + gamma
        return (y.astype(x.dtype) * upstream).astype("float32")

    times = {}
    for dtype in ("float16", "float32"):
        x = jnp.asarray(rng.normal(size=(32, 256, 64)), dtype)
        upstream = jnp.asarray(rng.normal(size=(32, 256, 64)), dtype)
        times[dtype] = {
            "flattened": _best_ms(
                jax.jit(flattened), x.reshape(32, -1), upstream.reshape(32, -1)
            ),
            "three_dimensional": _best_ms(
                jax.jit(three_dimensional), x, upstream
            ),
        }
    return times


def bn_lstm_operations(steps=256, top=10):
    """The XLA operations of a BNLSTM(64) training step on (32, steps, 32)
    by time (ms per step, executions per step), from JAX's profiler: the
    two while loops (the forward and backward time loops, their bodies'
    operations included) and the largest operations, inside them or not."""
    import gzip
    import tempfile
    from collections import Counter

    import jax
    import jax.numpy as jnp

    shape = (32, steps, 32)
    layer = keras_norms.layers.BNLSTM(64, return_sequences=True)
    layer.build(shape)
    rng = np.random.default_rng(0)
    upstream = jnp.asarray(rng.normal(size=(32, steps, 64)), "float32")

    def loss(trainable, x, non_trainable):
        y, non_trainable = layer.stateless_call(
            trainable, non_trainable, x, training=True
        )
        return jnp.sum(y * upstream), non_trainable

    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    arguments = (
        [v.value for v in layer.trainable_variables],
        jnp.asarray(rng.normal(size=shape), "float32"),
        [v.value for v in layer.non_trainable_variables],
    )
    total_ms = _best_ms(compiled, *arguments, repeats=5)
    runs = 3
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory, create_perfetto_trace=True):
            for _ in range(runs):
                jax.block_until_ready(compiled(*arguments))
        path = next(
            os.path.join(root, name)
            for root, _, names in os.walk(directory)
            for name in names
            if name.endswith(".trace.json.gz")
        )
        with gzip.open(path) as file:
            events = json.load(file)["traceEvents"]
    durations, counts = Counter(), Counter()
    for event in events:
        name = event.get("name", "")
        # XLA's operations (thunks), not the Python and runtime frames.
        if event.get("ph") != "X" or not re.match(r"^[\w.-]+$", name):
            continue
        if name.startswith(("ThunkExecutor", "PjitFunction")):
            continue
        durations[name] += event["dur"] / 1e3 / runs
        counts[name] += 1 / runs
    operations = [
        (name, ms, round(counts[name]))
        for name, ms in durations.most_common(top)
    ]
    return {"total_ms": total_ms, "operations": operations}


def _in_subprocess_without_ynn(what):
    environment = dict(os.environ, XLA_FLAGS=NO_YNN, KERAS_BACKEND="jax")
    output = subprocess.run(
        [sys.executable, __file__, "--json", what],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def jax_report():
    for index, (name, policy, shape, _, _) in enumerate(JAX_CASES):
        default = jax_memory(index)
        without = _in_subprocess_without_ynn(f"memory {index}")
        print(f"{name}, {policy}, input {shape}:")
        for who in ("ours", "core"):
            buffers = default[who]["full_size_buffers"]
            print(
                f"  {who}: temporary {default[who]['temporary_KiB']:.0f} KiB "
                f"({without[who]['temporary_KiB']:.0f} KiB without YNN "
                f"fusions); full-size buffers: {', '.join(buffers)}"
            )
    default = leading_sum_ms()
    without = _in_subprocess_without_ynn("leading_sum")
    print(
        "sum of (32, 65536) over axis 0, ms: reduction "
        f"{default['reduction']:.2f} ({without['reduction']:.2f} without "
        f"YNN fusions), matrix product {default['product']:.2f} "
        f"({without['product']:.2f})"
    )
    for dtype, ms in flattened_parameter_ms().items():
        print(
            f"per-step BN output fusion, {dtype}: gamma broadcast and "
            f"flattened {ms['flattened']:.2f} ms, in three dimensions "
            f"{ms['three_dimensional']:.2f} ms"
        )
    profile = bn_lstm_operations()
    print(
        "BNLSTM(64) training step on (32, 256, 32): "
        f"{profile['total_ms']:.1f} ms; its largest operations (ms, runs):"
    )
    for name, ms, count in profile["operations"]:
        print(f"  {name}: {ms:.2f} ({count})")


def torch_layer_calls(steps=200):
    """Where a small input's training step goes, ours against Keras
    core's: the wall time, the torch operators' self time (torch
    profiler) and the Python calls of one step (cProfile)."""
    import cProfile
    import pstats

    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    cases = [
        (
            "BN dense",
            (64, 256),
            keras_norms.layers.BatchNormalization,
            keras.layers.BatchNormalization,
        ),
        (
            "TimestepBN vs BN",
            (32, 16, 64),
            keras_norms.layers.TimestepBatchNormalization,
            keras.layers.BatchNormalization,
        ),
        (
            "RMS",
            (32, 16, 256),
            keras_norms.layers.RMSNormalization,
            keras.layers.RMSNormalization,
        ),
    ]
    for name, shape, ours, core in cases:
        figures = []
        for build in (ours, core):
            layer = build()
            layer.build(shape)
            x = torch.randn(*shape, requires_grad=True)
            upstream = torch.randn(*shape)
            kwargs = {"training": True} if layer._call_has_training_arg else {}

            def step(layer=layer, x=x, upstream=upstream, kwargs=kwargs):
                x.grad = None
                (layer(x, **kwargs) * upstream).sum().backward()

            for _ in range(20):  # warm-up
                step()
            best = []
            for _ in range(7):
                start = time.perf_counter()
                for _ in range(20):
                    step()
                best.append(time.perf_counter() - start)
            wall_ms = 1e3 * min(best)
            with profile(activities=[ProfilerActivity.CPU]) as trace:
                for _ in range(20):
                    step()
            operator_ms = sum(
                event.self_cpu_time_total
                for event in trace.key_averages()
                if event.key.startswith("aten::")
            )
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(steps):
                step()
            profiler.disable()
            calls = pstats.Stats(profiler).total_calls / steps
            figures.append((wall_ms / 20, operator_ms / 20 / 1e3, calls))
        (wall, operators, calls), (core_wall, core_operators, core_calls) = (
            figures
        )
        print(
            f"{name} {shape}, one training step, ours / core: wall "
            f"{wall:.3f} / {core_wall:.3f} ms, torch operators' self time "
            f"{operators:.3f} / {core_operators:.3f} ms, Python calls "
            f"{calls:.0f} / {core_calls:.0f}"
        )


def torch_report():
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    cases = [
        (
            "LN (32, 256, 256)",
            keras_norms.layers.LayerNormalization(),
            (32, 256, 256),
        ),
        (
            "BN dense (1024, 1024)",
            keras_norms.layers.BatchNormalization(),
            (1024, 1024),
        ),
        (
            "BN conv NCHW (64, 128, 28, 28)",
            keras_norms.layers.BatchNormalization(axis=1),
            (64, 128, 28, 28),
        ),
        (
            "GN (64, 28, 28, 128), 4 groups",
            keras_norms.layers.GroupNormalization(groups=4),
            (64, 28, 28, 128),
        ),
        (
            "BNLSTM(64) (32, 64, 32)",
            keras_norms.layers.BNLSTM(64, return_sequences=True),
            (32, 64, 32),
        ),
    ]
    for name, layer, shape in cases:
        x = torch.randn(*shape, requires_grad=True)
        kwargs = {"training": True} if layer._call_has_training_arg else {}
        output_shape = layer.compute_output_shape(shape)
        upstream = torch.randn(*output_shape)

        def step(layer=layer, x=x, kwargs=kwargs, upstream=upstream):
            x.grad = None
            (layer(x, **kwargs) * upstream).sum().backward()

        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as trace:
            for _ in range(5):
                step()
        print(f"{name}, 5 training steps:")
        print(
            trace.key_averages().table(
                sort_by="self_cpu_time_total", row_limit=12
            )
        )
    torch_recurrent_memory()
    torch_layer_calls()


def _torch_saved_tensors(layer, shape):
    """What autograd keeps for the backward pass of one forward pass:
    ``(total MiB, {(operation, shape): (MiB, count)})``, each storage
    counted once (torch keeps these until the backward pass; they are
    most of a recurrent layer's peak)."""
    import collections

    import torch

    layer.build(shape)
    x = torch.randn(*shape, requires_grad=True)
    outputs = layer(x, training=True)
    sizes, counts = collections.Counter(), collections.Counter()
    seen, visited, pending = set(), set(), [outputs.grad_fn]
    # A tensor saved through hooks (the shifted normalizations save their
    # source and shift) is recomputed on each access: kept alive here, so
    # that its storage is not reused by the next and counted once.
    alive = []
    while pending:
        node = pending.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        for attribute in dir(node):
            if not attribute.startswith("_saved_"):
                continue
            try:
                value = getattr(node, attribute)
            except RuntimeError:  # already freed, or not a tensor
                continue
            values = value if isinstance(value, (tuple, list)) else [value]
            for tensor in values:
                if not isinstance(tensor, torch.Tensor):
                    continue
                storage = tensor.untyped_storage()
                if storage.data_ptr() in seen:
                    continue
                seen.add(storage.data_ptr())
                alive.append(tensor)
                key = (type(node).__name__, tuple(tensor.shape))
                sizes[key] += storage.nbytes() / 2**20
                counts[key] += 1
        pending.extend(next_node for next_node, _ in node.next_functions)
    return sum(sizes.values()), {
        key: (sizes[key], counts[key]) for key in sizes
    }


def torch_recurrent_memory(shape=(32, 256, 32)):
    for name, layer in (
        ("LSTM(64)", keras.layers.LSTM(64, return_sequences=True)),
        ("BNLSTM(64)", keras_norms.layers.BNLSTM(64, return_sequences=True)),
        (
            "LayerNormLSTM(64)",
            keras_norms.layers.LayerNormLSTM(64, return_sequences=True),
        ),
    ):
        total, parts = _torch_saved_tensors(layer, shape)
        top = sorted(parts.items(), key=lambda item: -item[1][0])[:6]
        print(
            f"{name} on {shape}: {total:.1f} MiB saved for the backward "
            "pass; the largest (MiB, tensors): "
            + ", ".join(
                f"{operation} {list(size)} {mib:.1f} ({count})"
                for (operation, size), (mib, count) in top
            )
        )


def _tensorflow_native_lrn(x):
    """TensorFlow's fused LRN kernel with our layer's defaults (size 5,
    alpha 1e-4 over the window, beta 0.75) and k=2."""
    import tensorflow as tf

    return tf.nn.local_response_normalization(x, 2, 2.0, 1e-4 / 5, 0.75)


# (name, input shape, ours, Keras core's or the native kernel)
TENSORFLOW_CASES = [
    (
        "GN",
        (64, 28, 28, 128),
        lambda: keras_norms.layers.GroupNormalization(groups=4),
        lambda: keras.layers.GroupNormalization(groups=4),
    ),
    (
        "LRN across vs tf.nn.local_response_normalization",
        (64, 28, 28, 128),
        lambda: keras_norms.layers.LocalResponseNormalization(k=2.0),
        lambda: keras.layers.Lambda(_tensorflow_native_lrn),
    ),
    (
        "TimestepBN vs BN",
        (32, 256, 64),
        lambda: keras_norms.layers.TimestepBatchNormalization(),
        lambda: keras.layers.BatchNormalization(),
    ),
    (
        "BNLSTM(64) vs LSTM(64)",
        (32, 64, 32),
        lambda: keras_norms.layers.BNLSTM(64, return_sequences=True),
        lambda: keras.layers.LSTM(64, return_sequences=True),
    ),
]


def _tensorflow_kernel_times(layer, shape, repeats=5):
    """{op type: (ms per step, kernels per step)} of one training step."""
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    layer.build(shape)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape), tf.float32)
    upstream = tf.constant(
        rng.normal(size=layer.compute_output_shape(shape)), tf.float32
    )

    @tf.function
    def step(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        return tape.gradient(loss, [x] + layer.trainable_variables)

    step(x, upstream)
    directory = tempfile.mkdtemp()
    tf.profiler.experimental.start(directory)
    for _ in range(repeats):
        step(x, upstream)
    tf.profiler.experimental.stop()
    (path,) = glob.glob(f"{directory}/**/*.xplane.pb", recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    times, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                # Kernels are named "op_name:OpType"; the executor's own
                # events ("ExecutorState::Process") are not kernels.
                name = names[event.metadata_id]
                if ":" not in name or "::" in name:
                    continue
                kind = name.rsplit(":", 1)[1]
                times[kind] += event.duration_ps / 1e9 / repeats
                counts[kind] += 1 / repeats
    return {kind: (times[kind], counts[kind]) for kind in times}


def tensorflow_loop_bodies(shape=(32, 16, 32)):
    """``{body: (kernels, longest chain)}`` of the while loops of one
    training step: the forward loop and its gradient. TensorFlow runs a
    body kernel by kernel, two at a time on two cores, so a step takes
    about its longest chain of dependent kernels times the cost of one."""
    import functools

    import tensorflow as tf

    free = {"Const", "Identity", "NoOp", "Placeholder"}
    report = {}
    for name, build in (
        ("LSTM", lambda: keras.layers.LSTM(64, return_sequences=True)),
        (
            "BNLSTM",
            lambda: keras_norms.layers.BNLSTM(64, return_sequences=True),
        ),
        (
            "LayerNormLSTM",
            lambda: keras_norms.layers.LayerNormLSTM(64, return_sequences=True),
        ),
    ):
        layer = build()
        layer.build(shape)
        x = tf.zeros(shape)

        @tf.function
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True))
            return tape.gradient(loss, [x] + layer.trainable_variables)

        library = step.get_concrete_function(x).graph.as_graph_def().library
        for function in library.function:
            body = function.signature.name
            # The "_rewritten" copies are the same bodies.
            if "while_body" not in body or body.endswith("_rewritten"):
                continue
            nodes = {node.name: node for node in function.node_def}

            @functools.cache
            def chain(node_name, nodes=nodes):
                node = nodes[node_name]
                longest = 0
                for source in node.input:
                    source = source.lstrip("^").split(":")[0]
                    if source in nodes:
                        longest = max(longest, chain(source))
                return longest + (node.op not in free)

            kind = "backward" if "_grad_" in body else "forward"
            report[f"{name} {kind}"] = (
                sum(node.op not in free for node in function.node_def),
                max(chain(node) for node in nodes),
            )
    return report


def tensorflow_report():
    print("Time loops' bodies (kernels per step, longest chain of dependent")
    print("kernels), a training step on (32, 16, 32):")
    for body, (kernels, longest) in tensorflow_loop_bodies().items():
        print(f"  {body}: {kernels} kernels, chain {longest}")
    for name, shape, ours, core in TENSORFLOW_CASES:
        print(f"{name}, input {shape}, one training step:")
        for who, build in (("ours", ours), ("core", core)):
            kernels = _tensorflow_kernel_times(build(), shape)
            total = sum(ms for ms, _ in kernels.values())
            count = sum(n for _, n in kernels.values())
            top = sorted(kernels.items(), key=lambda item: -item[1][0])[:8]
            print(
                f"  {who}: {count:.0f} kernels, {total:.1f} ms of kernel "
                "time; by type: "
                + ", ".join(f"{k} {ms:.1f} ms ({n:.0f})" for k, (ms, n) in top)
            )


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--json":
        what = sys.argv[2]
        if what == "leading_sum":
            print(json.dumps(leading_sum_ms()))
        else:
            print(json.dumps(jax_memory(int(what.split()[1]))))
        return
    print(f"backend {BACKEND}, keras {keras.__version__}")
    if BACKEND == "jax":
        jax_report()
    elif BACKEND == "torch":
        torch_report()
    else:
        tensorflow_report()


if __name__ == "__main__":
    main()
