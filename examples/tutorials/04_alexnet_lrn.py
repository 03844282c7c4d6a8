"""Tutorial 4: an AlexNet-style CNN with local response normalization.

What it shows:

1. A small AlexNet-style CNN for the 8x8 digits (images): convolutions,
   PReLU (He et al., 2015) with He init for PReLU, LRN after the first two
   convolutions (Krizhevsky et al., 2012, Section 3.3), overlapping max
   pooling and dropout; trained with and without LRN over a few seeds.
2. How large the LRN divisor actually is in the trained net.
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
"""

import time

import keras
import matplotlib
import numpy as np

from keras_norms.initializers import HeNormal
from keras_norms.layers import LocalResponseNormalization
from keras_norms.layers import PReLU

from _common import SMOKE
from _common import digits
from _common import save_figure
from _common import save_results
from _common import size

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

START = time.perf_counter()
RESULTS = {}
x_train, y_train, x_test, y_test = digits("image")


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

    layers = [keras.Input((8, 8, 1)), conv(48), prelu()]
    if lrn:
        # The paper's k=2, n=5, alpha=1e-4, beta=0.75.
        layers.append(LocalResponseNormalization.from_alexnet(name="lrn1"))
    layers += [overlapping_pool(), conv(96), prelu()]
    if lrn:
        layers.append(LocalResponseNormalization.from_alexnet(name="lrn2"))
    layers += [
        overlapping_pool(),
        conv(128),
        prelu(),
        conv(96),
        prelu(),
        keras.layers.Flatten(),
        keras.layers.Dense(256, kernel_initializer=he),
        PReLU(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# --8<-- [end:model]

# --8<-- [start:train]
EPOCHS = size(20, 2)
SEEDS = size([0, 1, 2], [0])
curves = {"with LRN": [], "without LRN": []}
trained = None
for seed in SEEDS:
    for name in curves:
        keras.utils.set_random_seed(seed)
        model = alexnet_style(lrn=name == "with LRN")
        history = model.fit(
            x_train,
            y_train,
            batch_size=32,
            epochs=EPOCHS,
            validation_data=(x_test, y_test),
            verbose=0,
        )
        curves[name].append(history.history["val_accuracy"])
        print(
            f"seed {seed} {name:12s} test accuracy "
            f"{history.history['val_accuracy'][-1]:.4f}"
        )
        if name == "with LRN" and trained is None:
            trained = model
# --8<-- [end:train]

RESULTS["training"] = {
    "epochs": EPOCHS,
    "seeds": SEEDS,
    "optimizer": "SGD(learning_rate=0.01, momentum=0.9), batch 32",
    "parameters": trained.count_params(),
}
for name, runs in curves.items():
    final = [run[-1] for run in runs]
    RESULTS["training"][name] = {
        "final_test_accuracy_per_seed": final,
        "final_test_accuracy_mean": float(np.mean(final)),
    }
    print(f"{name:12s} mean final test accuracy {np.mean(final):.4f}")

# --8<-- [start:divisor]
# How much does LRN actually divide by? Feed the trained net's input to
# each LRN layer and compare what goes in with what comes out.
divisors = {}
for layer_name in ("lrn1", "lrn2"):
    lrn = trained.get_layer(layer_name)
    probe = keras.Model(trained.inputs, [lrn.input, lrn.output])
    a, b = (keras.ops.convert_to_numpy(t) for t in probe.predict(x_test))
    nonzero = np.abs(a) > 1e-3  # b = a / divisor
    divisors[layer_name] = (a[nonzero] / b[nonzero]).ravel()
    print(
        f"{layer_name}: divisor (k + alpha/n sum a^2)^beta ranges from "
        f"{divisors[layer_name].min():.4f} to {divisors[layer_name].max():.4f}"
        f" (k^beta = {2.0**0.75:.4f})"
    )
# --8<-- [end:divisor]
RESULTS["lrn_divisor"] = {
    name: {
        "min": d.min(),
        "median": float(np.median(d)),
        "max": d.max(),
        "k_to_the_beta": 2.0**0.75,
    }
    for name, d in divisors.items()
}

figure, axes = plt.subplots(1, 2, figsize=(12, 4))
for (name, runs), color in zip(curves.items(), ["C0", "C1"], strict=True):
    runs = np.array(runs)
    epochs = np.arange(1, runs.shape[1] + 1)
    for run in runs:
        axes[0].plot(epochs, run, color=color, alpha=0.25)
    axes[0].plot(epochs, runs.mean(axis=0), color=color, label=name)
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("test accuracy")
axes[0].set_ylim(0.8, 1.0)
axes[0].set_title(f"Test accuracy (thin: {len(SEEDS)} seeds, thick: mean)")
axes[0].legend()
for name, d in divisors.items():
    axes[1].hist(d, bins=60, histtype="step", label=name)
axes[1].axvline(2.0**0.75, color="gray", linestyle=":", label="$k^\\beta$")
axes[1].set_yscale("log")
axes[1].set_xlabel("LRN divisor $(k + \\alpha/n\\,\\sum a_j^2)^\\beta$")
axes[1].set_ylabel("count (test set, all positions)")
axes[1].set_title("LRN divisor in the trained net (AlexNet constants)")
axes[1].legend()
figure.tight_layout()
save_figure(figure, "04_alexnet_lrn")

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
RESULTS["input_scale"] = "x ~ N(0, 10^2), shape (2, 6, 6, 16)"
RESULTS["run_time_seconds"] = time.perf_counter() - START
save_results("04_alexnet_lrn", RESULTS)
print(f"done in {RESULTS['run_time_seconds']:.1f} s (smoke={SMOKE})")
