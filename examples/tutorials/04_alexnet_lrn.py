"""Tutorial 4: an AlexNet-style CNN with local response normalization.

What it shows:

1. A small AlexNet-style CNN for the 8x8 digits: convolutions, PReLU (He
   et al., 2015) with He init for PReLU, LRN with AlexNet's constants after
   the first two convolutions (Krizhevsky et al., 2012, Section 3.3),
   overlapping max pooling and dropout. The pixels are scaled like
   AlexNet's, 0-255 minus the mean image, so that the LRN term
   alpha * sum(a^2) is of the order of k. The same network is trained with
   and without LRN over several seeds.
2. How active LRN is in the trained networks: the LRN term against k and
   the divisor against k^beta at every position of the test set, and the
   same at initialization for pixels in [0, 1].
3. Porting LRN settings from Caffe, PyTorch, TensorFlow and the AlexNet
   paper, checked numerically against ``torch.nn.functional.
   local_response_norm`` and ``tf.nn.local_response_normalization``
   (each only if importable), and Caffe's ``within_channel`` mode against a
   NumPy loop.

Papers: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NeurIPS 2012; He, Zhang, Ren & Sun,
"Delving Deep into Rectifiers", ICCV 2015.

Run (any backend; ``KERAS_NORMS_SMOKE=1`` for a tiny, fast run)::

    KERAS_BACKEND=torch python examples/tutorials/04_alexnet_lrn.py

Writes docs/img/tutorials/04_alexnet_lrn.png, docs/tutorials/results/
04_alexnet_lrn.json and the page's tables, docs/tutorials/results/
04_tables.md.
"""

import math
import time

import keras
import matplotlib
import matplotlib.ticker
import numpy as np

from keras_norms.initializers import HeNormal
from keras_norms.layers import LocalResponseNormalization
from keras_norms.layers import PReLU

from _common import SMOKE
from _common import digits
from _common import findings_table
from _common import run_time_text
from _common import save_figure
from _common import save_results
from _common import save_sections
from _common import size
from _common import spread

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

START = time.perf_counter()
RESULTS = {}
EPOCHS = size(15, 1)
SEEDS = size([0, 1, 2, 3, 4], [0])
BATCH = 32
LEARNING_RATE = 1e-3
# "Active": LRN changes an output by more than this factor beyond the
# constant 1 / k^beta, which the next layer's weights could absorb.
ACTIVE = 1.10

# --8<-- [start:data]
# AlexNet's input: raw 0-255 pixel values minus the mean training image.
# digits() divides the 0-16 pixel values by 16: multiply them by 255 and
# subtract each pixel's mean over the training set.
x_train, y_train, x_test, y_test = digits("image")  # pixels in [0, 1]
samples = size(len(x_train), 128)
x_train, y_train = x_train[:samples], y_train[:samples]
mean_image = (255.0 * x_train).mean(axis=0)
x_train_255 = 255.0 * x_train - mean_image
x_test_255 = 255.0 * x_test - mean_image
# --8<-- [end:data]


# --8<-- [start:model]
def alexnet_style(lrn=True):
    """conv-PReLU-LRN-pool twice, two more convs, then two Dense layers."""
    # He init for PReLU: Var[w] = 2 / ((1 + a^2) fan_in) with the initial
    # slope a = 0.25. One unseeded object serves every layer: it draws
    # fresh values on each call.
    he = HeNormal(negative_slope=0.25)

    def conv(filters):
        return keras.layers.Conv2D(
            filters, 3, padding="same", kernel_initializer=he
        )

    def prelu():
        # One slope per channel: the paper's channel-wise PReLU.
        return PReLU(shared_axes=[1, 2])

    def overlapping_pool():
        # AlexNet pools 3x3 windows with stride 2.
        return keras.layers.MaxPooling2D(3, strides=2, padding="same")

    layers = [keras.Input((8, 8, 1)), conv(32), prelu()]
    if lrn:
        # The paper's k=2, n=5, alpha=1e-4, beta=0.75.
        layers.append(LocalResponseNormalization.from_alexnet(name="lrn1"))
    layers += [overlapping_pool(), conv(64), prelu()]
    if lrn:
        layers.append(LocalResponseNormalization.from_alexnet(name="lrn2"))
    layers += [
        overlapping_pool(),
        conv(64),
        prelu(),
        conv(64),
        prelu(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, kernel_initializer=he),
        PReLU(),
        keras.layers.Dropout(0.5),
        # Zero weights: both networks start from uniform predictions,
        # whatever the scale of their features.
        keras.layers.Dense(
            10, activation="softmax", kernel_initializer="zeros"
        ),
    ]
    return keras.Sequential(layers)


# --8<-- [end:model]


# --8<-- [start:train]
def train(lrn, seed):
    keras.utils.set_random_seed(seed)
    model = alexnet_style(lrn)
    steps = EPOCHS * math.ceil(len(x_train_255) / BATCH)
    model.compile(
        # Adam's steps do not grow with the gradients, which are large
        # with inputs of this scale; the rate decays to 0 over training.
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps)
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train_255,
        y_train,
        batch_size=BATCH,
        epochs=EPOCHS,
        validation_data=(x_test_255, y_test),
        verbose=0,
    )
    return model, history.history["val_accuracy"]


# --8<-- [end:train]


# --8<-- [start:activity]
def lrn_activity(model, x):
    """How much each LRN layer of ``model`` does on the inputs ``x``.

    The layer divides by ``(k + alpha / n * sum a^2) ** beta``; compare the
    LRN term with ``k`` and the divisor with ``k ** beta``, the constant
    it would be for small activations.
    """
    activity = {}
    for layer in model.layers:
        if not isinstance(layer, LocalResponseNormalization):
            continue
        probe = keras.Model(model.inputs[0], [layer.input, layer.output])
        a, b = (keras.ops.convert_to_numpy(t) for t in probe(x))
        half = layer.size // 2
        squares = np.pad(a**2, [(0, 0)] * 3 + [(half, half)])
        window = sum(
            squares[..., i : i + a.shape[-1]] for i in range(layer.size)
        )
        ratio = layer.alpha / layer.size * window / layer.k
        divisor = (layer.k + layer.k * ratio) ** layer.beta
        relative = divisor / layer.k**layer.beta
        activity[layer.name] = {
            "input std": float(a.std()),
            "input max |a|": float(np.abs(a).max()),
            "median term / k": float(np.median(ratio)),
            "90th percentile term / k": float(np.percentile(ratio, 90)),
            "max divisor / k^beta": float(relative.max()),
            "share of divisor > 1.1 k^beta": float(np.mean(relative > ACTIVE)),
            # The same divisor as the layer's own: its output is a / divisor.
            "max |a / divisor - output|": float(np.abs(a / divisor - b).max()),
            "relative divisor": relative.ravel(),
        }
    return activity


# --8<-- [end:activity]


ARMS = {"with LRN": True, "without LRN": False}
curves = {arm: [] for arm in ARMS}
activity = []
for seed in SEEDS:
    for arm, lrn in ARMS.items():
        model, curve = train(lrn, seed)
        curves[arm].append(curve)
        print(
            f"seed {seed} {arm:12s} test accuracy {curve[-1]:.4f}", flush=True
        )
        if lrn:
            activity.append(lrn_activity(model, x_test_255))
parameters = {
    arm: alexnet_style(lrn).count_params() for arm, lrn in ARMS.items()
}

# At initialization (seed 0): the same network on pixels in [0, 1], as in
# the other tutorials, and on AlexNet's scale.
keras.utils.set_random_seed(0)
untrained = alexnet_style(lrn=True)
at_init = {
    "pixels in [0, 1]": lrn_activity(untrained, x_test),
    "0-255 minus the mean image": lrn_activity(untrained, x_test_255),
}

LAYERS = list(activity[0])
STATISTICS = [s for s in activity[0][LAYERS[0]] if s != "relative divisor"]
RESULTS["training"] = {
    "epochs": EPOCHS,
    "seeds": SEEDS,
    "optimizer": f"Adam, learning rate {LEARNING_RATE:g} with cosine decay "
    f"to 0, batch {BATCH}",
    "training images": len(x_train_255),
    "test images": len(x_test_255),
    "input std (training set)": float(x_train_255.std()),
    "parameters": parameters,
    "final test accuracy": {
        arm: {
            "per seed": [run[-1] for run in runs],
            **spread([r[-1] for r in runs]),
        }
        for arm, runs in curves.items()
    },
}
RESULTS["lrn activity (trained, test set, over seeds)"] = {
    name: {s: spread([a[name][s] for a in activity]) for s in STATISTICS}
    for name in LAYERS
}
RESULTS["lrn activity at initialization (seed 0, test set)"] = {
    scale: {name: {s: values[name][s] for s in STATISTICS} for name in LAYERS}
    for scale, values in at_init.items()
}

# --8<-- [start:port]
# One input, channels last, large enough that the sum of squares matters.
x = np.random.default_rng(0).normal(scale=10.0, size=(2, 6, 6, 16))
x = x.astype("float32")


def ours(layer, inputs=x):
    return keras.ops.convert_to_numpy(layer(inputs))


port = {}
# AlexNet paper: b = a / (k + alpha * sum a^2)^beta, no 1/n.
paper = np.stack(
    [
        (x**2)[..., max(0, i - 2) : i + 3].sum(axis=-1)
        for i in range(x.shape[-1])
    ],
    axis=-1,
)
paper = x / (2.0 + 1e-4 * paper) ** 0.75
port["alexnet_paper_formula"] = {
    "from_alexnet()": np.abs(
        ours(LocalResponseNormalization.from_alexnet()) - paper
    ).max(),
    "copied alpha=1e-4 as is": np.abs(
        ours(LocalResponseNormalization(5, alpha=1e-4, beta=0.75, k=2.0))
        - paper
    ).max(),
}
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    # PyTorch and Caffe: the same numbers as ours, but channels first.
    reference = torch.nn.functional.local_response_norm(
        torch.from_numpy(x).permute(0, 3, 1, 2),
        size=5,
        alpha=5e-4,
        beta=0.75,
        k=2.0,
    )
    reference = reference.permute(0, 2, 3, 1).numpy()
    same = LocalResponseNormalization(5, alpha=5e-4, beta=0.75, k=2.0)
    first = LocalResponseNormalization(5, 5e-4, 0.75, 2.0, axis=1)
    port["torch.nn.functional.local_response_norm"] = {
        "same numbers, channels last": np.abs(ours(same) - reference).max(),
        "same numbers, axis=1 on channels first": np.abs(
            ours(first, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
            - reference
        ).max(),
    }
try:
    import tensorflow as tf
except ImportError:
    tf = None
if tf is not None:
    reference = tf.nn.local_response_normalization(
        x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75
    ).numpy()
    converted = LocalResponseNormalization.from_tensorflow(
        depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75
    )
    port["tf.nn.local_response_normalization"] = {
        "from_tensorflow()": np.abs(ours(converted) - reference).max(),
        "copied alpha=1e-4, size=2 as is": np.abs(
            ours(LocalResponseNormalization(2, alpha=1e-4, beta=0.75, k=2.0))
            - reference
        ).max(),
    }
for source, checks in port.items():
    for check, difference in checks.items():
        print(f"{source:40s} {check:40s} max |diff| = {difference:.3g}")
# --8<-- [end:port]
RESULTS["port_max_abs_difference"] = port

# --8<-- [start:within]
# Caffe's WITHIN_CHANNEL: a size x size spatial window in each channel,
# b = a / (1 + alpha / size^2 * sum a^2)^beta.
within = LocalResponseNormalization(
    size=3, alpha=1e-2, beta=0.75, mode="within_channel"
)
padded = np.pad(x**2, ((0, 0), (1, 1), (1, 1), (0, 0)))
window_sum = sum(
    padded[:, i : i + 6, j : j + 6, :] for i in range(3) for j in range(3)
)
loop = x / (1.0 + 1e-2 / 9 * window_sum) ** 0.75
print(
    "within_channel vs NumPy loop: max |diff| =",
    np.abs(ours(within) - loop).max(),
)
# --8<-- [end:within]
RESULTS["within_channel_max_abs_difference"] = np.abs(ours(within) - loop).max()
RESULTS["port input"] = "x ~ N(0, 10^2), shape (2, 6, 6, 16)"
RESULTS["port output scale (AlexNet formula)"] = {
    "std": float(paper.std()),
    "max |b|": float(np.abs(paper).max()),
}


def findings(results):
    """Krizhevsky et al.'s claim and the conditions for testing it, each
    checked on this run's numbers."""
    accuracy = results["training"]["final test accuracy"]
    with_lrn, without = accuracy["with LRN"], accuracy["without LRN"]
    trained = results["lrn activity (trained, test set, over seeds)"]
    unit = results["lrn activity at initialization (seed 0, test set)"][
        "pixels in [0, 1]"
    ]
    share = "share of divisor > 1.1 k^beta"
    found = {}
    for number, name in enumerate(trained, 1):
        found[f"lrn_is_active_in_layer_{number}"] = {
            "claim": f"LRN is active at `{name}`: in every trained network "
            "the divisor exceeds k^β by more than 10% at more than half of "
            "the test-set positions",
            "holds": trained[name][share]["min"] > 0.5,
        }
    found["lrn_is_inactive_for_pixels_in_0_1"] = {
        "claim": "With pixels in [0, 1] (at initialization) the divisor is "
        "within 0.1% of k^β at every position of both LRN layers",
        "holds": all(
            unit[name]["max divisor / k^beta"] < 1.001 for name in unit
        ),
    }
    found["lrn_raises_mean_accuracy"] = {
        "claim": "The mean test accuracy over the seeds is higher with LRN "
        "than without",
        "holds": with_lrn["mean"] > without["mean"],
    }
    found["lrn_improves_accuracy"] = {
        "claim": "LRN improves accuracy beyond the spread of the seeds: "
        "the mean with LRN is above the best seed without it",
        "holds": with_lrn["mean"] > without["max"],
    }
    found["lrn_lowers_error_as_much_as_in_the_paper"] = {
        "claim": "LRN lowers the mean test error by at least 1.2 points "
        "(the smaller of the paper's two reductions on ImageNet)",
        "holds": with_lrn["mean"] - without["mean"] >= 0.012,
    }
    return found


def tables(results):
    """The page's tables, in Markdown, from the numbers of this run, in
    sections that the page includes one by one."""
    sections = {}
    training = results["training"]
    accuracy = training["final test accuracy"]
    lines = [
        "| network | parameters | test accuracy, mean (min–max) | "
        "per seed | test error, mean |",
        "|---|---|---|---|---|",
    ]
    for arm, values in accuracy.items():
        seeds = ", ".join(f"{v:.3f}" for v in values["per seed"])
        lines.append(
            f"| {arm} | {training['parameters'][arm]:,} | "
            f"{values['mean']:.3f} ({values['min']:.3f}–{values['max']:.3f})"
            f" | {seeds} | {1 - values['mean']:.3f} |"
        )
    sections["accuracy"] = lines

    def activity_table(columns):
        lines = [
            "| | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        rows = {
            "input std": "{:.1f}",
            "input max |a|": "{:.0f}",
            "median term / k": "{:.3g}",
            "90th percentile term / k": "{:.3g}",
            "max divisor / k^beta": "{:.3f}",
            "share of divisor > 1.1 k^beta": "{:.0%}",
        }
        labels = {
            "input std": "std of the LRN input $a$",
            "input max |a|": r"largest $\lvert a\rvert$",
            "median term / k": r"median of $\frac{\alpha}{n}\sum a_j^2 / k$",
            "90th percentile term / k": r"90th percentile of "
            r"$\frac{\alpha}{n}\sum a_j^2 / k$",
            "max divisor / k^beta": r"max of divisor / $k^\beta$",
            "share of divisor > 1.1 k^beta": r"share of positions with "
            r"divisor > 1.1 $k^\beta$",
        }
        for statistic, form in rows.items():
            cells = [cell(statistic, form) for cell in columns.values()]
            lines.append(f"| {labels[statistic]} | " + " | ".join(cells) + " |")
        return lines

    trained = results["lrn activity (trained, test set, over seeds)"]

    def over_seeds(name):
        def cell(statistic, form):
            values = trained[name][statistic]
            low, high = form.format(values["min"]), form.format(values["max"])
            return f"{form.format(values['mean'])} ({low}–{high})"

        return cell

    sections["activity"] = activity_table(
        {f"`{name}`": over_seeds(name) for name in trained}
    )
    init = results["lrn activity at initialization (seed 0, test set)"]

    def single(scale, name):
        def cell(statistic, form):
            return form.format(init[scale][name][statistic])

        return cell

    sections["init"] = activity_table(
        {
            f"`{name}`, {scale}": single(scale, name)
            for scale in init
            for name in init[scale]
        }
    )
    sections["findings"] = findings_table(results["findings"])
    lines = [
        "| reference | our layer | max \\|difference\\| |",
        "|---|---|---|",
    ]
    names = {
        "alexnet_paper_formula": "AlexNet's formula (NumPy)",
        "torch.nn.functional.local_response_norm": "`torch.nn.functional."
        "local_response_norm`",
        "tf.nn.local_response_normalization": "`tf.nn.local_response_"
        "normalization`",
    }
    for source, checks in results["port_max_abs_difference"].items():
        for check, difference in checks.items():
            lines.append(f"| {names[source]} | {check} | {difference:.2g} |")
    scale = results["port output scale (AlexNet formula)"]
    lines += [
        "",
        f"The outputs on this input have a standard deviation of "
        f"{scale['std']:.2g} and reach {scale['max |b|']:.3g} in absolute "
        "value.",
    ]
    sections["port"] = lines
    sections["within"] = [
        "Largest difference from the NumPy loop: "
        f"{results['within_channel_max_abs_difference']:.2g}."
    ]
    sections["run"] = [
        f"Numbers on this page: {results['backend']} backend, "
        f"{training['epochs']} epochs, seeds {training['seeds']}, "
        f"{training['optimizer']}; {training['training images']} training "
        f"and {training['test images']} test images. The whole script took "
        f"{run_time_text(results['run_time_seconds'])} on a 2-core CPU.",
    ]
    return sections


# The figure: test accuracy per epoch, and the distribution of the divisor.
plt.rcParams.update({"font.size": 13})
figure, axes = plt.subplots(1, 2, figsize=(13, 4.8))
for (arm, runs), color in zip(curves.items(), ["C0", "C1"], strict=True):
    runs = np.array(runs)
    epochs = np.arange(1, runs.shape[1] + 1)
    for run in runs:
        axes[0].plot(epochs, run, color=color, alpha=0.3, linewidth=1)
    axes[0].plot(
        epochs, runs.mean(axis=0), color=color, linewidth=2.5, label=arm
    )
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("test accuracy")
axes[0].set_ylim(0.8, 1.0)
axes[0].set_title(f"(a) test accuracy (thin: {len(SEEDS)} seeds, thick: mean)")
axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
# Logarithmic bins: the divisor spans an order of magnitude at lrn1 and
# stays within a few percent of k^beta elsewhere.
bins = np.geomspace(
    1.0,
    max(a[n]["relative divisor"].max() for a in activity for n in LAYERS),
    60,
)
for name, color in zip(LAYERS, ["C2", "C3"], strict=True):
    pooled = np.concatenate([a[name]["relative divisor"] for a in activity])
    axes[1].hist(
        pooled,
        bins=bins,
        histtype="step",
        linewidth=2,
        color=color,
        label=f"{name}, trained",
    )
unit = at_init["pixels in [0, 1]"]
pooled = np.concatenate([unit[name]["relative divisor"] for name in LAYERS])
axes[1].hist(
    pooled,
    bins=bins,
    histtype="step",
    linewidth=2,
    color="gray",
    linestyle="--",
    label="both layers, pixels in [0, 1], untrained",
)
axes[1].axvline(ACTIVE, color="k", linestyle=":", label="1.1 (active)")
axes[1].set_yscale("log")
axes[1].set_xscale("log")
axes[1].xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
axes[1].set_xticks([1, 1.5, 2, 3, 5, 10])
axes[1].xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
axes[1].set_xlabel("divisor / $k^\\beta$")
axes[1].set_ylabel("positions (test set)")
axes[1].set_title("(b) LRN divisor, all seeds")
axes[1].legend(
    loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=11
)
figure.tight_layout()
save_figure(figure, "04_alexnet_lrn")
plt.close(figure)

RESULTS["run_time_seconds"] = time.perf_counter() - START
RESULTS["backend"] = keras.backend.backend()
RESULTS["findings"] = findings(RESULTS)
save_results("04_alexnet_lrn", RESULTS)
save_sections("04_tables.md", tables(RESULTS))
for finding in RESULTS["findings"].values():
    print(f"{'holds' if finding['holds'] else 'FAILS'}: {finding['claim']}")
print(f"done in {RESULTS['run_time_seconds']:.1f} s (smoke={SMOKE})")
