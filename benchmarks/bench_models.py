"""Whole models: a training step with Keras core's normalization layers
against the same model converted to keras-norms' layers, and inference
before and after folding batch normalization. One process per backend,
interleaved:

    KERAS_BACKEND=jax python benchmarks/bench_models.py
    KERAS_BACKEND=jax python benchmarks/bench_models.py --tiny   # CI smoke

- **Training step**: ``model.train_on_batch`` (SGD, sparse cross-entropy),
  compiled the way ``fit`` compiles it on each backend, for
  ``keras.applications.ResNet50`` (``weights=None``, 64x64 inputs, batch
  16, 10 classes; built locally, nothing downloaded) and for a small conv
  net (3 x Conv-norm-ReLU on 32x28x28x16) with batch, group and layer
  normalization. The keras-norms model is
  ``keras_norms.convert_normalization(core_model)``: the same graph and
  weights, only the normalization layers differ.
- **Memory**: on JAX the temporary memory of the compiled gradient of the
  training loss (XLA ``memory_analysis``); on torch the peak of the memory
  allocated during one ``train_on_batch`` (torch profiler on CPU, the CUDA
  allocator's peak on a GPU); on TensorFlow the same peak from its
  allocator's statistics, which its default CPU allocator does not keep:
  on CPU they are read in a second process that runs the training steps
  once more with TensorFlow's BFC allocator
  (``TF_CPU_ALLOCATOR_USE_BFC=true``), so that the timings stay those of
  the default allocator.
- **Folding**: ``predict_on_batch`` latency of ResNet50, MobileNetV2,
  DenseNet121 and EfficientNetB0 (64x64, batch 16), converted, with random
  moving statistics, against ``fold_batch_normalization`` of it, with the
  report's counts and the largest output difference.

Ratios are medians over rounds of the per-round ratio (the candidates take
turns within a round). Results go to
``benchmarks/results/models_<backend>.json``; ``render_results.py`` puts
them on the results page. On a GPU (the backend's default device when it
sees one; see ``bench_layers.py``) the batches are 4x larger, the inputs
are copied to the GPU once, not at every step, and the results go to
``models_<backend>_gpu.json``.
"""

import json
import os
import statistics
import subprocess
import sys

import keras
import numpy as np
from bench_layers import BACKEND
from bench_layers import GPU
from bench_layers import RESULTS_SUFFIX
from bench_layers import SCALE
from bench_layers import _with_torch_peak_bytes
from bench_layers import interleaved
from bench_layers import parse_arguments
from bench_layers import write_results

import keras_norms

CLASSES = 10


# --- Models -----------------------------------------------------------------


def conv_net(norm, input_shape):
    """3 x Conv-norm-ReLU with Keras core's ``norm`` layers, and a head."""
    layers = [keras.Input(input_shape[1:])]
    for _ in range(3):
        layers += [
            keras.layers.Conv2D(input_shape[-1], 3, padding="same"),
            norm(),
            keras.layers.ReLU(),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(CLASSES),
    ]
    return keras.Sequential(layers)


CONV_NET_NORMS = {
    "BN": keras.layers.BatchNormalization,
    "GN": lambda: keras.layers.GroupNormalization(groups=4),
    "LN": keras.layers.LayerNormalization,
}

APPLICATIONS = {
    "ResNet50": keras.applications.ResNet50,
    "MobileNetV2": keras.applications.MobileNetV2,
    "DenseNet121": keras.applications.DenseNet121,
    "EfficientNetB0": keras.applications.EfficientNetB0,
}


def application(name, size):
    return APPLICATIONS[name](
        weights=None,
        input_shape=(size, size, 3),
        classes=CLASSES,
        classifier_activation=None,  # logits, as the loss expects
    )


def training_cases(tiny):
    """(name, input shape, a function building the Keras core model)."""
    conv_shape = (2, 8, 8, 8) if tiny else (SCALE * 32, 28, 28, 16)
    cases = [
        (
            f"conv net {norm}",
            conv_shape,
            lambda n=norm: conv_net(CONV_NET_NORMS[n], conv_shape),
        )
        for norm in CONV_NET_NORMS
    ]
    # Left out of the smoke run: compiling it takes a minute on JAX, and
    # it runs the same code as the conv nets.
    if not tiny:
        cases.append(
            (
                "ResNet50",
                (SCALE * 16, 64, 64, 3),
                lambda: application("ResNet50", 64),
            )
        )
    return cases


def on_device(array):
    """``array`` as a tensor on the GPU, copied once instead of at every
    step (the host-to-GPU copy is not what is measured); on CPU as it is,
    as the CPU figures were measured."""
    return array if GPU is None else keras.ops.convert_to_tensor(array)


# --- Training step ----------------------------------------------------------


def training_step(model, x, y):
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    def step():
        keras.ops.convert_to_numpy(
            model.train_on_batch(x, y, return_dict=True)["loss"]
        )

    if BACKEND == "torch":
        return _with_torch_peak_bytes(step)
    if BACKEND == "jax":
        step.temporary_bytes = _jax_gradient_temporary_bytes(model, x, y)
    if BACKEND == "tensorflow":
        step.temporary_bytes = _tensorflow_peak_bytes(step)
    return step


# Where TensorFlow keeps allocator statistics: a GPU, or the CPU with its
# BFC allocator (read when TensorFlow starts).
_TENSORFLOW_STATISTICS = GPU is not None or (
    os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() in ("true", "1")
)


def _tensorflow_peak_bytes(step):
    """The peak of the memory TensorFlow's allocator holds during one step,
    above the start (None without allocator statistics): the largest of
    five readings, since the peak moves with the order in which
    TensorFlow's threads happen to run the step's operations."""
    if not _TENSORFLOW_STATISTICS:
        return None
    import tensorflow as tf

    device = "GPU:0" if GPU is not None else "CPU:0"
    step()  # warm-up: tracing, compilation
    peaks = []
    for _ in range(5):
        start = tf.config.experimental.get_memory_info(device)["current"]
        tf.config.experimental.reset_memory_stats(device)
        step()
        info = tf.config.experimental.get_memory_info(device)
        peaks.append(info["peak"] - start)
    return max(peaks)


def _tensorflow_memory_in_subprocess(args):
    """``{model: {"ours": bytes, "core": bytes}}`` of the training cases,
    from this script run again with the BFC allocator (``--memory``)."""
    command = [sys.executable, __file__, "--memory"]
    command += ["--tiny"] if args.tiny else []
    command += ["--only", args.only] if args.only else []
    output = subprocess.run(
        command,
        env=dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def add_memory(row, memory):
    """``row`` with the steps' memory (bytes by candidate) and its ratio."""
    row["temporary_MiB"] = {k: v / 2**20 for k, v in memory.items()}
    row["memory_vs_core"] = memory["ours"] / memory["core"]


def _jax_gradient_temporary_bytes(model, x, y):
    """XLA's temporary memory for the gradient of the training loss."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(
            trainable, non_trainable, x, training=True
        )
        log_probabilities = jax.nn.log_softmax(logits)
        picked = jnp.take_along_axis(log_probabilities, y[:, None], axis=1)
        return -jnp.mean(picked), non_trainable

    gradient = jax.jit(jax.value_and_grad(loss, has_aux=True))
    compiled = gradient.lower(trainable, non_trainable, x, y).compile()
    try:
        return int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # not every XLA client reports it
        return None


def training_steps(case, rng):
    """The training steps of one case: ``{"ours": step, "core": step}``,
    the Keras core model and its conversion, on the same random batch."""
    _, shape, build = case
    core = build()
    ours = keras_norms.convert_normalization(core)
    x = on_device(rng.normal(size=shape).astype("float32"))
    y = on_device(rng.integers(0, CLASSES, size=shape[0]).astype("int32"))
    return {
        "ours": training_step(ours, x, y),
        "core": training_step(core, x, y),
    }


def run_training_case(case, repeats, rng):
    name, shape, _ = case
    steps = training_steps(case, rng)
    times = interleaved(steps, repeats)
    row = {
        "model": name,
        "shape": list(shape),
        "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "vs_core": statistics.median(
            a / b for a, b in zip(times["ours"], times["core"], strict=True)
        ),
    }
    memory = {k: getattr(s, "temporary_bytes", None) for k, s in steps.items()}
    if all(v is not None for v in memory.values()):
        add_memory(row, memory)
    print(
        f"{name:<16} {str(tuple(shape)):<18} "
        + "  ".join(f"{k} {v:8.2f} ms" for k, v in row["median_ms"].items())
        + f"  vs core {row['vs_core']:.2f}"
        + (
            f"  memory vs core {row['memory_vs_core']:.2f}"
            if "memory_vs_core" in row
            else ""
        ),
        flush=True,
    )
    return row


# --- Folding ----------------------------------------------------------------


def folding_cases(tiny):
    """(name, input shape, a function building the Keras core model)."""
    if tiny:
        shape = (2, 8, 8, 3)
        return [
            (
                "conv net BN",
                shape,
                lambda: conv_net(CONV_NET_NORMS["BN"], shape),
            )
        ]
    return [
        (
            name,
            (SCALE * 16, 64, 64, 3),
            lambda name=name: application(name, 64),
        )
        for name in APPLICATIONS
    ]


def randomize_statistics(model, rng):
    """Moving statistics that are not the initial 0 / 1, so that folding
    has something to fold."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras_norms.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))


def run_folding_case(case, repeats, rng):
    name, shape, build = case
    model = keras_norms.convert_normalization(build())
    randomize_statistics(model, rng)
    folded, report = keras_norms.fold_batch_normalization(
        model, return_report=True
    )
    x = on_device(rng.normal(size=shape).astype("float32"))

    def predictor(m):
        def step():
            return keras.ops.convert_to_numpy(m.predict_on_batch(x))

        return step

    steps = {"original": predictor(model), "folded": predictor(folded)}
    difference = float(np.max(np.abs(steps["original"]() - steps["folded"]())))
    times = interleaved(steps, repeats)
    row = {
        "model": name,
        "shape": list(shape),
        "folded": len(report["folded"]),
        "not_folded": len(report["not_folded"]),
        "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "speedup": statistics.median(
            a / b
            for a, b in zip(times["original"], times["folded"], strict=True)
        ),
        "max_difference": difference,
    }
    print(
        f"fold {name:<15} folded {row['folded']:3d}, not folded "
        f"{row['not_folded']:3d}  "
        + "  ".join(f"{k} {v:8.2f} ms" for k, v in row["median_ms"].items())
        + f"  speed-up {row['speedup']:.2f}  max |diff| {difference:.1e}",
        flush=True,
    )
    return row


def training_memory(case, rng):
    """``(model, {"ours": bytes, "core": bytes})`` of one training case."""
    steps = training_steps(case, rng)
    return case[0], {k: step.temporary_bytes for k, step in steps.items()}


def main():
    memory_only = "--memory" in sys.argv
    if memory_only:
        sys.argv.remove("--memory")
    args = parse_arguments(__doc__.split("\n")[0], 15, "models")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)

    def selected(name):
        return not args.only or args.only.lower() in name.lower()

    if memory_only:  # (the subprocess of _tensorflow_memory_in_subprocess)
        print(
            json.dumps(
                dict(
                    training_memory(case, rng)
                    for case in training_cases(args.tiny)
                    if selected(case[0])
                )
            )
        )
        return
    training = [
        run_training_case(case, args.repeats, rng)
        for case in training_cases(args.tiny)
        if selected(case[0])
    ]
    if BACKEND == "tensorflow" and not _TENSORFLOW_STATISTICS and training:
        memory = _tensorflow_memory_in_subprocess(args)
        for row in training:
            add_memory(row, memory[row["model"]])
            print(
                f"{row['model']:<16} memory vs core "
                f"{row['memory_vs_core']:.2f} (BFC allocator)"
            )
    folding = [
        run_folding_case(case, args.repeats, rng)
        for case in folding_cases(args.tiny)
        if selected(case[0])
    ]
    write_results(
        {"training": training, "folding": folding},
        f"models_{BACKEND}{RESULTS_SUFFIX}.json",
        args,
    )


if __name__ == "__main__":
    main()
