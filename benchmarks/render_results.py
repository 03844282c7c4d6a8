"""Turn ``benchmarks/results/<backend>.json`` into the docs results page.

    python benchmarks/render_results.py

writes ``docs/benchmarks.md`` (the tables, the machine, the command and
the date of each run, each layer's targets against the run),
``docs/generated/speed_summary.md`` (ours against Keras core in one
paragraph, which the home page includes too) and
``docs/img/benchmark_cost.png`` (cost per step against input size, for
each layer and backend). Run
``benchmarks/bench_layers.py`` under each backend first.
"""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "docs")
BACKENDS = ("torch", "tensorflow", "jax")

INTRODUCTION = """# Benchmarks

How much a training step of each layer costs next to Keras core's layer and
the backend's own fused kernel, measured in one process per backend with
`benchmarks/bench_layers.py` (`make bench` runs it under the three
backends and renders this page).

- **What is timed**: forward and backward of the layer alone (gradients to
  the input and every trainable weight, against a random upstream
  gradient), compiled the way users run it: `jax.jit` on JAX,
  `tf.function` on TensorFlow, eager on torch.
- **Ratios**: in each round the candidates run one after the other; a
  ratio is the median over rounds of ours / theirs (below 1: ours is
  faster). Only these same-process, interleaved ratios are comparable
  across runs; the milliseconds depend on the machine and its load.
- **Natives**: `torch.nn.functional.batch_norm` / `group_norm` /
  `layer_norm` / `rms_norm` / `local_response_norm` (on channels-first
  data, their layout, where they have one), TensorFlow's fused batch norm
  and `tf.nn.local_response_normalization`. JAX has none.
- **Memory**, in MiB: on JAX the compiled step's temporary memory from
  XLA's `memory_analysis`; on torch the peak of the memory allocated during
  one step (torch profiler; outputs and gradients included).
- The smallest sizes measure mostly the per-call overhead of a Keras layer
  (about 0.5 ms on torch, paid by Keras core's layers too), which a bare
  kernel call does not have.

![Cost per training step against input size](img/benchmark_cost.png)
"""


def load(prefix="", suffix=""):
    results = {}
    for backend in BACKENDS:
        path = os.path.join(HERE, "results", f"{prefix}{backend}{suffix}.json")
        if os.path.exists(path):
            with open(path) as f:
                results[backend] = json.load(f)
    return results


def fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def policy_of(row):
    return row.get("policy", "float32")


def float32_rows(result):
    return [row for row in result["rows"] if policy_of(row) == "float32"]


def memory_text(row):
    memory = row.get("temporary_MiB", {})
    if not memory:
        return "–"
    return " / ".join(
        fmt(memory.get(who), 1) for who in ("ours", "core", "native")
    )


def table(result, heading=None):
    lines = [
        heading or f"## {result['backend']}",
        "",
        f"Keras {result['keras']}, {result['machine']}, "
        f"{result.get('device', 'CPU')}, {result['date']}, "
        f"{result['repeats']} rounds: `KERAS_BACKEND={result['backend']} "
        "python benchmarks/bench_layers.py`",
        "",
        "| layer | input | ours ms | core ms | native ms | vs core | "
        "vs native | MiB ours / core / native |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in float32_rows(result):
        ms = row["median_ms"]
        lines.append(
            f"| {row['layer']} | {'×'.join(map(str, row['shape']))} | "
            f"{fmt(ms.get('ours'))} | {fmt(ms.get('core'))} | "
            f"{fmt(ms.get('native'))} | {fmt(row.get('vs_core'))} | "
            f"{fmt(row.get('vs_native'))} | {memory_text(row)} |"
        )
    mixed = [row for row in result["rows"] if policy_of(row) != "float32"]
    if mixed:
        lines += [
            "",
            f"Under the mixed-precision policies ({result['backend']}; the "
            "input in the policy's compute dtype):",
            "",
            "| layer | input | policy | ours ms | core ms | vs core | "
            "MiB ours / core |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in mixed:
            ms = row["median_ms"]
            lines.append(
                f"| {row['layer']} | {'×'.join(map(str, row['shape']))} | "
                f"`{policy_of(row)}` | {fmt(ms.get('ours'))} | "
                f"{fmt(ms.get('core'))} | {fmt(row.get('vs_core'))} | "
                f"{memory_text(row)} |"
            )
    return "\n".join(lines) + "\n"


def run_line(result, script):
    device = result.get("device", "CPU")
    device = "" if device == "CPU" else f"{device}, "
    return (
        f"{result['backend']}: Keras {result['keras']}, {result['machine']}, "
        f"{device}{result['date']}, {result['repeats']} rounds, "
        f"`KERAS_BACKEND={result['backend']} python benchmarks/{script}`"
    )


def ratio_range(values):
    """``"0.38–0.85"`` for the values, ``"0.49"`` for one, ``"–"`` for none."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    low, high = fmt(min(values)), fmt(max(values))
    return low if low == high else f"{low}–{high}"


def larger_sizes(rows, count=2):
    """The ``count`` rows of the largest inputs."""
    return sorted(rows, key=lambda row: math.prod(row["shape"]))[-count:]


def memory_ratio(row):
    memory = row.get("temporary_MiB", {})
    if memory.get("ours") is None or not memory.get("core"):
        return None
    return memory["ours"] / memory["core"]


def inverse(value):
    return None if value is None else 1 / value


# The targets of each layer and how a row of the results measures them:
# (measure, target, groups), each group (layer names, value of a row,
# largest sizes only, and optionally the dtype policy: float32 if not
# given). Several groups are shown separated by " / ".
BN_LAYERS = ("BN conv NHWC", "BN conv NCHW", "BN dense")
TARGETS = (
    ("BN vs core", "≤ 1.0", [(BN_LAYERS, "vs_core", False)]),
    ("GN vs core", "≤ 1.0", [(("GN",), "vs_core", False)]),
    ("LN vs core", "≤ 1.0", [(("LN",), "vs_core", False)]),
    ("RMS vs core", "≤ 1.0", [(("RMS",), "vs_core", False)]),
    *(
        (
            f"BN / LN / GN / RMS / TimestepBN vs core, `{policy}`",
            "≤ 1.0",
            [(BN_LAYERS, "vs_core", False, policy)]
            + [
                ((layer,), "vs_core", False, policy)
                for layer in ("LN", "GN", "RMS", "TimestepBN")
            ],
        )
        for policy in ("mixed_bfloat16", "mixed_float16")
    ),
    ("PReLU vs core", "≤ 1.0", [(("PReLU",), "vs_core", False)]),
    ("TimestepBN vs core BN", "≤ 1.0", [(("TimestepBN",), "vs_core", False)]),
    (
        "BN vs native, NHWC / NCHW / dense (two larger sizes)",
        "≤ 1.2",
        [
            (("BN conv NHWC",), "vs_native", True),
            (("BN conv NCHW",), "vs_native", True),
            (("BN dense",), "vs_native", True),
        ],
    ),
    (
        "GN / LN / RMS vs native (two larger sizes)",
        "≤ 1.2",
        [
            (("GN",), "vs_native", True),
            (("LN",), "vs_native", True),
            (("RMS",), "vs_native", True),
        ],
    ),
    (
        "LRN across vs native (two larger sizes)",
        "≤ 0.5",
        [(("LRN across",), "vs_native", True)],
    ),
    (
        "BNLSTM / LSTM throughput (1 / time ratio)",
        "≥ 0.6",
        [(("BNLSTM",), "throughput", False)],
    ),
    (
        "LayerNormLSTM / LSTM throughput (1 / time ratio)",
        "≥ 0.6",
        [(("LayerNormLSTM",), "throughput", False)],
    ),
    (
        "temporary memory vs core: BN / LN",
        "≤ 1.0",
        [
            (BN_LAYERS, "memory", False),
            (("LN",), "memory", False),
        ],
    ),
    (
        "temporary memory vs core: GN / TimestepBN / BNLSTM",
        "≤ 1.0",
        [
            (("GN",), "memory", False),
            (("TimestepBN",), "memory", False),
            (("BNLSTM",), "memory", False),
        ],
    ),
)

VALUES = {
    "vs_core": lambda row: row.get("vs_core"),
    "vs_native": lambda row: row.get("vs_native"),
    "throughput": lambda row: inverse(row.get("vs_core")),
    "memory": memory_ratio,
}


def targets_table(results):
    """Each target against the ratios of the run, computed from the JSON."""
    lines = [
        "| measure | target | " + " | ".join(results) + " |",
        "|---|---|" + "---|" * len(results),
    ]
    for measure, target, groups in TARGETS:
        cells = []
        for result in results.values():
            parts = []
            for layers, value, largest, *policy in groups:
                policy = policy[0] if policy else "float32"
                rows = [
                    r
                    for r in result["rows"]
                    if r["layer"] in layers and policy_of(r) == policy
                ]
                if not rows:
                    parts.append(None)
                    continue
                if largest:
                    rows = [
                        row
                        for layer in layers
                        for row in larger_sizes(
                            [r for r in rows if r["layer"] == layer]
                        )
                    ]
                parts.append(ratio_range(VALUES[value](r) for r in rows))
            if all(part is None for part in parts):
                cells.append("not run")
            else:
                cells.append(" / ".join(part or "not run" for part in parts))
        lines.append(f"| {measure} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


NAMES = {"torch": "torch", "tensorflow": "TensorFlow", "jax": "JAX"}


def joined(parts):
    """``"a, b and c"``."""
    parts = list(parts)
    if len(parts) < 2:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def speed_summary(results):
    """One paragraph on ours against Keras core, for the home page and the
    results page (``docs/generated/speed_summary.md``)."""
    counts = []
    for backend, result in results.items():
        ratios = [r["vs_core"] for r in result["rows"] if r.get("vs_core")]
        faster = sum(ratio <= 1.0 for ratio in ratios)
        counts.append(
            f"{faster} of {len(ratios)} on {NAMES.get(backend, backend)}"
        )
    batch_norm = joined(
        ratio_range(
            row["vs_core"]
            for row in float32_rows(result)
            if row["layer"].startswith("BN ")
        )
        + f" on {NAMES.get(backend, backend)}"
        for backend, result in results.items()
    )
    dates = sorted({result["date"] for result in results.values()})
    return (
        "Of the layer, input-size and dtype-policy combinations measured "
        "against Keras core (float32, and `mixed_bfloat16` and "
        "`mixed_float16` for the normalization layers), a training step of "
        "ours took at most as long as Keras core's (time ratio ours / core "
        f"≤ 1) in {joined(counts)} (benchmark run of {joined(dates)}). For "
        f"batch normalization in float32 the ratio was {batch_norm} (below "
        "1: ours is faster).\n"
    )


def training_table(model_results, only=None):
    """Training step of whole models, Keras core's layers vs converted."""
    lines = [
        "| backend | model | input | ours ms | core ms | ours / core | "
        "memory MiB ours / core | memory ours / core |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, result in model_results.items():
        for row in result["training"]:
            if only and row["model"] != only:
                continue
            ms, memory = row["median_ms"], row.get("temporary_MiB")
            lines.append(
                f"| {backend} | {row['model']} | "
                f"{'×'.join(map(str, row['shape']))} | {fmt(ms['ours'])} | "
                f"{fmt(ms['core'])} | {fmt(row['vs_core'])} | "
                + (
                    f"{fmt(memory['ours'], 1)} / {fmt(memory['core'], 1)} | "
                    if memory
                    else "– | "
                )
                + f"{fmt(row.get('memory_vs_core'))} |"
            )
    return "\n".join(lines) + "\n"


def folding_table(model_results):
    lines = [
        "| backend | model | input | BN folded | BN not folded | "
        "original ms | folded ms | speed-up | max abs difference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, result in model_results.items():
        for row in result["folding"]:
            ms = row["median_ms"]
            lines.append(
                f"| {backend} | {row['model']} | "
                f"{'×'.join(map(str, row['shape']))} | {row['folded']} | "
                f"{row['not_folded']} | {fmt(ms['original'])} | "
                f"{fmt(ms['folded'])} | {fmt(row['speedup'])} | "
                f"{row['max_difference']:.1e} |"
            )
    return "\n".join(lines) + "\n"


GPU_INTRODUCTION = """## On a GPU

The scripts run unchanged on a machine with a GPU: each backend computes
on its default device (the GPU when it sees one), the batch sizes are 4x
larger, torch steps wait for the GPU before the clock is read, and the
results go to `benchmarks/results/<backend>_gpu.json` and
`models_<backend>_gpu.json`, which this section shows.

What has and has not been measured on a GPU:

- **The correctness tests** (against the NumPy oracle, on three
  backends) run on CPU only. `tests/test_devices.py` checks, on CPU, with
  the device helper reporting a GPU, that the choices below switch and
  still give the reference's numbers.
- **The fast-path choices that depend on the device** were measured on
  CPU and apply there only; on a GPU each takes the standard path, an
  unmeasured default:
    - TensorFlow's fused batch normalization declines inputs under 2^17
      values on CPU (its fixed cost exceeds the closed form's there) and
      channels-first (NCHW) inputs, which its CPU kernel transposes; on a
      GPU it runs at every size and in both layouts (cuDNN's kernel).
    - Local response normalization on TensorFlow pools a transposed
      layout on CPU (TensorFlow's CPU pooling is vectorized over
      channels); on a GPU it takes the reference layout.
    - Local response normalization on torch sums the channel window as
      strided views on CPU (torch's CPU pooling is 5-8x slower on these
      shapes); on a GPU it pools in torch's own layout, that of
      `torch.nn.functional.local_response_norm`.
- **The other fast paths** do the same on every device, also unmeasured
  on a GPU: torch's fused batch, group, layer and RMS normalization
  kernels (with the stability shift), the closed-form gradients on JAX
  and TensorFlow, and the torch time loop.

"""


def gpu_section(results, model_results):
    if not results and not model_results:
        return (
            GPU_INTRODUCTION
            + "No GPU figures have been measured yet: nothing above or here "
            "was measured on a GPU, the figures above are all from the CPU "
            "named with each run. Run `make bench` on a machine with a GPU "
            "to add them here.\n"
        )
    page = GPU_INTRODUCTION + "\n".join(
        table(r, f"### {r['backend']} on a GPU") for r in results.values()
    )
    if model_results:
        runs = "\n".join(
            f"- {run_line(r, 'bench_models.py')}"
            for r in model_results.values()
        )
        page += (
            f"\n### Whole models on a GPU\n\n{runs}\n\n"
            f"{training_table(model_results)}\n"
            f"{folding_table(model_results)}"
        )
    return page


def models_section(model_results):
    runs = "\n".join(
        f"- {run_line(r, 'bench_models.py')}" for r in model_results.values()
    )
    speedups = ", ".join(
        f"{backend} {min(r['speedup'] for r in result['folding']):.2f}–"
        f"{max(r['speedup'] for r in result['folding']):.2f}"
        for backend, result in model_results.items()
        if result["folding"]
    )
    return f"""## Whole models

A training step (`train_on_batch`: forward, backward and an SGD update) of
a model built with Keras core's layers, against the same model converted
with `keras_norms.convert_normalization` (same graph and weights; only the
normalization layers differ), measured with `benchmarks/bench_models.py`.
ResNet50 is `keras.applications.ResNet50(weights=None)` at 64×64 with 10
classes; the conv net is 3 × Conv–norm–ReLU. Memory as above (JAX: the
compiled gradient of the loss; torch: the peak during one step;
TensorFlow: the peak its allocator holds during one step, read on CPU in a
second run of the steps with TensorFlow's BFC allocator, the one that
keeps statistics, while the times are the default allocator's).

{runs}

{training_table(model_results)}
### Folding batch normalization for inference

`predict_on_batch` latency of each model (converted, with random moving
statistics) before and after `keras_norms.fold_batch_normalization`, with
the report's counts. DenseNet121's batch normalization layers that follow
a concatenation have no single linear layer to fold into. Speed-up
(original / folded time) over the four models: {speedups}.

{folding_table(model_results)}"""


def plot(results, path):
    layers = []
    for result in results.values():
        for row in float32_rows(result):
            if row["layer"] not in layers:
                layers.append(row["layer"])
    columns = 3
    rows = math.ceil(len(layers) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5.5 * columns, 4.2 * rows), squeeze=False
    )
    colors = {"torch": "C3", "tensorflow": "C1", "jax": "C0"}
    styles = {"ours": "-", "core": "--", "native": ":"}
    for index, layer in enumerate(layers):
        ax = axes[index // columns][index % columns]
        for backend, result in results.items():
            rows_of_layer = [
                r for r in float32_rows(result) if r["layer"] == layer
            ]
            sizes = [math.prod(r["shape"]) for r in rows_of_layer]
            for who, style in styles.items():
                times = [r["median_ms"].get(who) for r in rows_of_layer]
                if None in times or not times:
                    continue
                ax.plot(
                    sizes,
                    times,
                    style,
                    marker="o",
                    color=colors[backend],
                    label=f"{backend} {who}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(layer)
        ax.set_xlabel("input elements")
        ax.set_ylabel("ms per step")
        ax.grid(True, which="both", alpha=0.3)
        # Minor labels on short log ranges overlap the major ones.
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    for index in range(len(layers), rows * columns):
        axes[index // columns][index % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower right", ncol=3, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    results = load()
    if not results:
        raise SystemExit("No results: run benchmarks/bench_layers.py first.")
    os.makedirs(os.path.join(DOCS, "img"), exist_ok=True)
    plot(results, os.path.join(DOCS, "img", "benchmark_cost.png"))
    # The reading of the figures (targets met or not, and why) is written
    # by hand next to this script.
    with open(os.path.join(HERE, "analysis.md")) as f:
        analysis = f.read()
    tables = "\n".join(table(r) for r in results.values())
    os.makedirs(os.path.join(DOCS, "generated"), exist_ok=True)
    with open(os.path.join(DOCS, "generated", "speed_summary.md"), "w") as f:
        f.write(speed_summary(results))
    page = (
        f"{INTRODUCTION}\n## Reading the figures\n\n"
        '--8<-- "docs/generated/speed_summary.md"\n\n'
        'Each layer\'s targets against this run. "Core" is the Keras\n'
        'layer the user would otherwise use; "native" the bare fused\n'
        "kernel, with no Keras layer around it.\n\n"
        f"{targets_table(results)}\n{analysis}\n{tables}"
    )
    model_results = load("models_")
    if model_results:
        page += "\n" + models_section(model_results)
        # The ResNet50 rows, which the existing-models guide includes.
        with open(os.path.join(DOCS, "generated", "resnet50.md"), "w") as f:
            f.write(
                training_table(model_results, only="ResNet50")
                + "\n\n"
                + "\n".join(
                    f"- {run_line(r, 'bench_models.py')}"
                    for r in model_results.values()
                )
                + "\n"
            )
    page += "\n" + gpu_section(load(suffix="_gpu"), load("models_", "_gpu"))
    with open(os.path.join(DOCS, "benchmarks.md"), "w") as f:
        f.write(page)
    print(
        "wrote docs/benchmarks.md, docs/generated/*.md and "
        "docs/img/benchmark_cost.png"
    )


if __name__ == "__main__":
    main()
