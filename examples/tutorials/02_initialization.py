"""Tutorial 2: Xavier and He initialization in deep tanh, ReLU and PReLU nets.

What it shows:

1. The variance of the pre-activations (forward) and of the gradients
   (backward) layer by layer at initialization, in 30-layer tanh, ReLU and
   PReLU stacks, for Glorot's "standard" init, Xavier (Glorot & Bengio,
   2010) and He (He et al., 2015) with ``mode="fan_in"`` / ``"fan_out"``
   and the PReLU slope (``negative_slope``).
2. A 30-layer ReLU MLP on the 8x8 digits that trains with He init and
   stalls with Xavier init (the experiment of He et al., Fig. 3), plus the
   same net with ``keras_norms.layers.PReLU`` and
   ``HeNormal(negative_slope=0.25)``.
3. The trap of one unseeded initializer object shared by several layers.

Papers: Glorot & Bengio, "Understanding the difficulty of training deep
feedforward neural networks", AISTATS 2010; He, Zhang, Ren & Sun, "Delving
Deep into Rectifiers", ICCV 2015.

Run (any backend; ``KERAS_NORMS_SMOKE=1`` for a tiny, fast run)::

    KERAS_BACKEND=torch python examples/tutorials/02_initialization.py
"""

import time

import keras
import matplotlib
import numpy as np

import keras_norms
from keras_norms.initializers import HeNormal
from keras_norms.initializers import XavierUniform
from keras_norms.initializers import calculate_gain

from _common import SMOKE
from _common import digits
from _common import finding
from _common import findings_table
from _common import run_time_text
from _common import save_figure
from _common import save_results
from _common import save_sections
from _common import size

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

START = time.perf_counter()
keras.utils.set_random_seed(0)
RESULTS = {}

# --8<-- [start:stack]
DEPTH = size(30, 10)
# Glorot & Bengio's derivation is for layers of equal width (their
# networks have 1000 units per layer): the tanh stack keeps one width.
EQUAL_WIDTHS = [64] + [size(256, 32)] * DEPTH
# For the rectifiers, alternating wide and narrow layers, so that fan_in
# and fan_out differ and He et al.'s two modes can be told apart.
ALTERNATING_WIDTHS = [64] + [size(384, 96), size(96, 24)] * (DEPTH // 2)
SLOPE = 0.25  # PReLU's initial slope (He et al.)

ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1.0 - np.tanh(y) ** 2),
    "relu": (lambda y: np.maximum(y, 0), lambda y: (y > 0) * 1.0),
    "prelu": (
        lambda y: np.where(y > 0, y, SLOPE * y),
        lambda y: np.where(y > 0, 1.0, SLOPE),
    ),
}


def variances(initializer, activation, widths, batch=512):
    """Per-layer Var[y_l] (forward) and Var[dL/dx_l] (backward) at init.

    ``y_l = x_l W_l`` is layer l's pre-activation and ``x_l`` its input.
    The backward pass starts from a unit-variance gradient at the output,
    as in He et al.'s derivation; it is written out in NumPy so that every
    backend gives the same numbers for the same weights.
    """
    f, df = ACTIVATIONS[activation]
    kernels = [
        keras.ops.convert_to_numpy(initializer((n_in, n_out))).astype("f8")
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True)
    ]
    x = np.random.default_rng(0).standard_normal((batch, widths[0]))
    pre = []
    for w in kernels:
        pre.append(x @ w)
        x = f(pre[-1])
    grad = np.random.default_rng(1).standard_normal(x.shape)
    grads = []
    for w, y in zip(kernels[::-1], pre[::-1], strict=True):
        grad = (grad * df(y)) @ w.T  # dL/dx_l
        grads.append(grad.var())
    return [y.var() for y in pre], grads[::-1]


# --8<-- [end:stack]

# --8<-- [start:inits]
INITS = {
    # Glorot's baseline: U[-1/sqrt(n_in), 1/sqrt(n_in)], variance 1/(3 n_in).
    "standard U(±1/√n_in)": keras.initializers.VarianceScaling(
        1.0 / 3.0, "fan_in", "uniform", seed=0
    ),
    "XavierUniform": XavierUniform(),
    "XavierUniform(gain=5/3)": XavierUniform(gain=calculate_gain("tanh")),
    "HeNormal(fan_in)": HeNormal(mode="fan_in"),
    "HeNormal(fan_out)": HeNormal(mode="fan_out"),
    "HeNormal(fan_in, negative_slope=0.25)": HeNormal(negative_slope=SLOPE),
}
WIDTHS = {"tanh": EQUAL_WIDTHS, "relu": ALTERNATING_WIDTHS}
WIDTHS["prelu"] = ALTERNATING_WIDTHS
PANELS = {
    "tanh": [
        "standard U(±1/√n_in)",
        "XavierUniform",
        "XavierUniform(gain=5/3)",
    ],
    "relu": ["XavierUniform", "HeNormal(fan_in)", "HeNormal(fan_out)"],
    "prelu": [
        "XavierUniform",
        "HeNormal(fan_in)",
        "HeNormal(fan_in, negative_slope=0.25)",
    ],
}
# --8<-- [end:inits]

figure, axes = plt.subplots(2, 3, figsize=(15, 9), sharex=True)
RESULTS["variance_per_layer"] = {}
for column, (activation, names) in enumerate(PANELS.items()):
    widths = WIDTHS[activation]
    for name in names:
        forward, backward = variances(INITS[name], activation, widths)
        layers = np.arange(1, len(forward) + 1)
        axes[0, column].semilogy(layers, forward, marker=".", label=name)
        axes[1, column].semilogy(layers, backward, marker=".", label=name)
        RESULTS["variance_per_layer"][f"{activation} / {name}"] = {
            "forward_first": forward[0],
            "forward_last": forward[-1],
            "backward_first": backward[0],
            "backward_last": backward[-1],
        }
        print(
            f"{activation:5s} {name:40s} Var[y] layer 1 {forward[0]:9.3g} "
            f"layer {len(forward)} {forward[-1]:9.3g} | Var[dx] layer 1 "
            f"{backward[0]:9.3g} layer {len(forward)} {backward[-1]:9.3g}"
        )
    shape = (
        f"width {widths[1]}"
        if len(set(widths[1:])) == 1
        else f"widths {widths[1]}/{widths[2]}"
    )
    axes[0, column].set_title(f"{activation} stack ({shape}): forward")
    axes[1, column].set_title(f"{activation} stack ({shape}): backward")
    axes[0, column].set_ylabel("Var of pre-activation $y_l$")
    axes[1, column].set_ylabel("Var of gradient $\\partial L/\\partial x_l$")
    axes[1, column].set_xlabel("layer $l$")
    # Below the panel: the curves fill the panels.
    axes[1, column].legend(
        fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.18)
    )
figure.suptitle(f"Variance per layer at initialization ({DEPTH} Dense layers)")
figure.tight_layout()
save_figure(figure, "02_variance_per_layer")

# Training a 30-layer ReLU MLP: He trains, Xavier stalls (He et al. Fig. 3).
x_train, y_train, x_test, y_test = digits("flat")
# Centre the pixels, so that the first layer sees zero-mean inputs.
mean = x_train.mean(axis=0)
x_train, x_test = x_train - mean, x_test - mean


# --8<-- [start:deep_mlp]
def deep_mlp(kernel_initializer, activation="relu", depth=30, width=128):
    """``depth`` Dense layers (the last is the 10-way softmax)."""
    model = keras.Sequential([keras.Input((64,))])
    for _ in range(depth - 1):
        model.add(
            keras.layers.Dense(width, kernel_initializer=kernel_initializer)
        )
        if activation == "prelu":
            # The paper's channel-shared variant would be shared_axes=[1].
            model.add(keras_norms.layers.PReLU())
        else:
            model.add(keras.layers.Activation(activation))
    model.add(keras.layers.Dense(10, kernel_initializer=kernel_initializer))
    model.add(keras.layers.Activation("softmax"))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.002, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# --8<-- [end:deep_mlp]


def signal_reaching_softmax(model, x):
    """Var of the softmax's input over Var of the network's input, at
    initialization."""
    logits = keras.Model(model.inputs, model.layers[-2].output)
    return float(
        np.var(keras.ops.convert_to_numpy(logits.predict(x, verbose=0)))
        / np.var(x)
    )


# --8<-- [start:train]
EPOCHS = size(15, 2)
TRAINED = {
    # One unseeded keras_norms initializer may serve every layer: it draws
    # fresh values on each call (see the last section).
    "ReLU, XavierUniform": ("relu", XavierUniform()),
    "ReLU, HeNormal": ("relu", HeNormal()),
    "PReLU, HeNormal(negative_slope=0.25)": (
        "prelu",
        HeNormal(negative_slope=SLOPE),
    ),
}
histories, signal = {}, {}
for name, (activation, initializer) in TRAINED.items():
    keras.utils.set_random_seed(1)
    model = deep_mlp(initializer, activation, depth=DEPTH)
    signal[name] = signal_reaching_softmax(model, x_test)
    history = model.fit(
        x_train,
        y_train,
        batch_size=32,
        epochs=EPOCHS,
        validation_data=(x_test, y_test),
        verbose=0,
    )
    histories[name] = history.history
    print(
        f"{name:40s} train loss {history.history['loss'][-1]:.3f}  "
        f"test accuracy {history.history['val_accuracy'][-1]:.3f}"
    )
# --8<-- [end:train]

RESULTS["deep_mlp"] = {
    "depth": DEPTH,
    "width": 128,
    "epochs": EPOCHS,
    "optimizer": "SGD(learning_rate=0.002, momentum=0.9), batch 32",
    **{
        name: {
            "train_loss": h["loss"],
            "test_accuracy": h["val_accuracy"],
            "softmax input variance / input variance, at init": signal[name],
        }
        for name, h in histories.items()
    },
}
figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for name, h in histories.items():
    epochs = np.arange(1, len(h["loss"]) + 1)
    axes[0].plot(epochs, h["loss"], label=name)
    axes[1].plot(epochs, h["val_accuracy"], label=name)
axes[0].set_ylabel("training loss")
axes[1].set_ylabel("test accuracy")
for axis in axes:
    axis.set_xlabel("epoch")
axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1))
figure.suptitle(f"{DEPTH}-layer MLP on the 8x8 digits, SGD with momentum")
figure.tight_layout()
save_figure(figure, "02_deep_mlp_training")

# --8<-- [start:gain]
# PReLU with slope a keeps E[x^2] = (1 + a^2) Var[y] / 2, hence the gain.
print("calculate_gain('relu')             =", calculate_gain("relu"))
print(
    "calculate_gain('leaky_relu', 0.25) =", calculate_gain("leaky_relu", 0.25)
)
std = np.std(
    keras.ops.convert_to_numpy(HeNormal(negative_slope=0.25)((4096, 256)))
)
print("std of HeNormal(negative_slope=0.25) for fan_in 4096:", std)
print(
    "  expected calculate_gain('leaky_relu', 0.25) / sqrt(4096):",
    calculate_gain("leaky_relu", 0.25) / 64,
)
# --8<-- [end:gain]
RESULTS["gain"] = {
    "relu": calculate_gain("relu"),
    "leaky_relu_0.25": calculate_gain("leaky_relu", 0.25),
    "measured_std_fan_in_4096": std,
    "expected_std_fan_in_4096": calculate_gain("leaky_relu", 0.25) / 64,
}


# --8<-- [start:shared]
def kernels_identical(initializer):
    """Do two Dense layers built with the same initializer object agree?"""
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(16, kernel_initializer=initializer),
            keras.layers.Dense(16, kernel_initializer=initializer),
        ]
    )
    first, second = (
        keras.ops.convert_to_numpy(layer.kernel) for layer in model.layers
    )
    return bool(np.array_equal(first, second))


shared = {
    "keras.initializers.HeNormal()": keras.initializers.HeNormal(),
    "keras_norms.initializers.HeNormal()": HeNormal(),
    "keras_norms.initializers.HeNormal(seed=1)": HeNormal(seed=1),
}
for name, initializer in shared.items():
    print(
        f"{name:42s} shared by two layers -> identical kernels: "
        f"{kernels_identical(initializer)}"
    )

# The fixes: one object per layer, or a distinct seed per layer.
model = keras.Sequential(
    [keras.Input((16,))]
    + [
        keras.layers.Dense(16, kernel_initializer=HeNormal(seed=i))
        for i in range(3)
    ]
)
# --8<-- [end:shared]
RESULTS["shared_initializer_identical_kernels"] = {
    name: kernels_identical(initializer) for name, initializer in shared.items()
}
RESULTS["run_time_seconds"] = time.perf_counter() - START


def change(entry, direction):
    """last / first layer's variance, forward or backward."""
    return entry[f"{direction}_last"] / entry[f"{direction}_first"]


def within(ratio, factor=10.0):
    return 1 / factor <= ratio <= factor


def findings(results):
    per_layer = results["variance_per_layer"]
    mlp = results["deep_mlp"]

    return {
        "xavier_tanh_backward": finding(
            "tanh, equal widths: Xavier keeps the variance of the "
            "gradients within a factor of 10 over the stack",
            within(change(per_layer["tanh / XavierUniform"], "backward")),
        ),
        "xavier_vs_standard": finding(
            "tanh, equal widths: Xavier loses at least 100 times less of "
            "the forward variance over the stack than the standard "
            "initialization",
            change(per_layer["tanh / XavierUniform"], "forward")
            >= 100
            * change(per_layer["tanh / standard U(±1/√n_in)"], "forward"),
        ),
        "standard_tanh": finding(
            "tanh, equal widths: the standard initialization loses more "
            "than a factor of 1000 of the forward variance over the stack",
            change(per_layer["tanh / standard U(±1/√n_in)"], "forward") < 1e-3,
        ),
        "xavier_relu": finding(
            "ReLU: Xavier loses more than a factor of 1000 of the forward "
            "variance over the stack",
            change(per_layer["relu / XavierUniform"], "forward") < 1e-3,
        ),
        "he_fan_in": finding(
            "ReLU: He (fan_in) keeps the forward variance within a factor "
            "of 10",
            within(change(per_layer["relu / HeNormal(fan_in)"], "forward")),
        ),
        "he_fan_out": finding(
            "ReLU: He (fan_out) keeps the backward variance within a "
            "factor of 10",
            within(change(per_layer["relu / HeNormal(fan_out)"], "backward")),
        ),
        "prelu_slope": finding(
            "PReLU: negative_slope=0.25 keeps the forward variance within "
            "a factor of 10, closer to flat than He's ReLU formula",
            within(
                change(
                    per_layer["prelu / HeNormal(fan_in, negative_slope=0.25)"],
                    "forward",
                )
            )
            and abs(
                np.log(
                    change(
                        per_layer[
                            "prelu / HeNormal(fan_in, negative_slope=0.25)"
                        ],
                        "forward",
                    )
                )
            )
            < abs(
                np.log(change(per_layer["prelu / HeNormal(fan_in)"], "forward"))
            ),
        ),
        "xavier_stalls": finding(
            f"A {mlp['depth']}-layer ReLU MLP with Xavier stays at chance "
            "(final training loss within 1% of ln 10)",
            abs(mlp["ReLU, XavierUniform"]["train_loss"][-1] / np.log(10) - 1)
            < 0.01,
        ),
        "he_trains": finding(
            f"The same {mlp['depth']}-layer MLP with He trains (final test "
            "accuracy above 0.9)",
            mlp["ReLU, HeNormal"]["test_accuracy"][-1] > 0.9,
        ),
        "shared": finding(
            "One unseeded Keras initializer shared by two layers gives them "
            "identical kernels; keras_norms' does not",
            results["shared_initializer_identical_kernels"][
                "keras.initializers.HeNormal()"
            ]
            and not results["shared_initializer_identical_kernels"][
                "keras_norms.initializers.HeNormal()"
            ],
        ),
    }


def tables(results):
    """The page's tables, from this run's numbers, by section."""
    sections = {}
    per_layer = results["variance_per_layer"]
    last = DEPTH
    lines = [
        f"| stack / initializer | Var[$y_1$] | Var[$y_{{{last}}}$] | "
        f"Var[$\\partial L/\\partial x_1$] | "
        f"Var[$\\partial L/\\partial x_{{{last}}}$] |",
        "|---|---|---|---|---|",
    ]
    for key, entry in per_layer.items():
        stack, name = key.split(" / ", 1)
        cells = [
            f"{entry[k]:.2g}"
            for k in (
                "forward_first",
                "forward_last",
                "backward_first",
                "backward_last",
            )
        ]
        lines.append(f"| {stack} / `{name}` | " + " | ".join(cells) + " |")
    sections["variance"] = lines
    mlp = results["deep_mlp"]
    lines = [
        f"| {mlp['depth']} layers of {mlp['width']} units, "
        f"{mlp['optimizer']}, {mlp['epochs']} epochs | softmax input / "
        "input variance at init | final training loss | final test "
        "accuracy |",
        "|---|---|---|---|",
    ]
    for name in TRAINED:
        entry = mlp[name]
        lines.append(
            f"| {name} | "
            f"{entry['softmax input variance / input variance, at init']:.2g}"
            f" | {entry['train_loss'][-1]:.3f} | "
            f"{entry['test_accuracy'][-1]:.3f} |"
        )
    sections["mlp"] = lines
    gain = results["gain"]
    sections["gain"] = [
        f"The standard deviation of `HeNormal(negative_slope=0.25)` for "
        f"fan-in 4096 was measured at {gain['measured_std_fan_in_4096']:.6f}"
        f" against $1.372 / 64 = {gain['expected_std_fan_in_4096']:.6f}$ "
        "expected.",
    ]
    lines = [
        "| initializer object passed to two `Dense` layers | "
        "identical kernels? |",
        "|---|---|",
    ]
    for name, identical in results[
        "shared_initializer_identical_kernels"
    ].items():
        lines.append(f"| `{name}` | {'**yes**' if identical else 'no'} |")
    sections["shared"] = lines
    sections["findings"] = findings_table(results["findings"])
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend, one seed; "
        f"the whole script took {run_time_text(results['run_time_seconds'])}"
        " on a 2-core CPU.",
    ]
    return sections


RESULTS["findings"] = findings(RESULTS)
save_results("02_initialization", RESULTS)
save_sections("02_tables.md", tables(RESULTS))
print(f"done in {RESULTS['run_time_seconds']:.1f} s (smoke={SMOKE})")
