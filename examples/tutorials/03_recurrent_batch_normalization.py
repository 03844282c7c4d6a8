"""Tutorial 3: recurrent batch normalization (Cooijmans et al., 2016).

Sequential digits: each 8x8 digit of scikit-learn read one pixel per time
step (64 steps), classified from the last hidden state.

1. BNLSTM against keras.layers.LSTM, several seeds: training loss and test
   accuracy per epoch; the BNLSTM evaluated with the population statistics
   of its current weights and with its moving averages.
2. Why the statistics are kept per time step: the BNLSTM's statistics of
   its input term, step by step.
3. The paper's argument for gamma = 0.1, tested as made: the gradient of
   the loss with respect to each hidden state h_t of a batch-normalized
   tanh RNN at initialization, with gamma 0.1 and 1.
4. Masks (sequences of different lengths, padded) and sequences longer
   than in training.

    KERAS_BACKEND=torch python \
        examples/tutorials/03_recurrent_batch_normalization.py

Writes docs/img/tutorials/03_*.png, docs/tutorials/results/
03_recurrent_batch_normalization.json and the page's tables,
docs/tutorials/results/03_tables.md (KERAS_NORMS_SMOKE=1: tiny run).
"""

import time

import keras
import matplotlib
import numpy as np

import keras_norms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _common import digits  # noqa: E402
from _common import finding  # noqa: E402
from _common import findings_table  # noqa: E402
from _common import run_time_text  # noqa: E402
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import save_sections  # noqa: E402
from _common import size  # noqa: E402
from _common import spread  # noqa: E402

UNITS = size(48, 8)
EPOCHS = size(12, 2)
BATCH_SIZE = 64
SEEDS = size((0, 1, 2, 3, 4), (0, 1))
# The gradient experiment (no training): a tanh RNN of RNN_UNITS units.
RNN_UNITS = size(100, 16)
GAMMAS = (0.1, 1.0)
GRADIENT_BATCH = size(128, 32)
# The gradient's decay is measured from step FROM_STEP on: the first steps
# of the digits are blank in every sample (see the page).
FROM_STEP = 8
INFERENCE_CHECK = "inference: padded with mask vs each sequence alone, no mask"

plt.rcParams.update({"font.size": 13})


# --8<-- [start:models]
def build(recurrent, momentum=0.99):
    """``recurrent``: "lstm" or "bnlstm" (its gammas start at 0.1, the
    paper's choice)."""
    if recurrent == "lstm":
        layer = keras.layers.LSTM(UNITS)
    else:
        layer = keras_norms.layers.BNLSTM(UNITS, momentum=momentum)
    return keras.Sequential(
        [
            keras.Input((64, 1)),
            layer,
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


# --8<-- [end:models]


# --8<-- [start:population]
class PopulationAccuracy(keras.callbacks.Callback):
    """Test accuracy after each epoch with the population statistics of
    the current weights (Algorithm 2 of Ioffe & Szegedy, over the training
    set). The moving averages are put back afterwards, so that training
    goes on exactly as without this callback."""

    def __init__(self, x_train, x_test, y_test):
        super().__init__()
        self.x_train, self.x_test, self.y_test = x_train, x_test, y_test
        self.accuracy = []

    def on_epoch_end(self, epoch, logs=None):
        variables = self.model.non_trainable_variables
        saved = [keras.ops.convert_to_numpy(v) for v in variables]
        keras_norms.recompute_batch_statistics(
            self.model, self.x_train, batch_size=BATCH_SIZE, verbose=0
        )
        self.accuracy.append(accuracy(self.model, self.x_test, self.y_test))
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


# --8<-- [end:population]


def accuracy(model, x, y):
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(predictions.argmax(axis=1) == y))


def train(recurrent, data, seed, momentum=0.99):
    """Train one model; returns it and its per-epoch curves."""
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = build(recurrent, momentum=momentum)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    population = PopulationAccuracy(x_train, x_test, y_test)
    history = model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        validation_data=(x_test, y_test),
        callbacks=[population] if recurrent == "bnlstm" else [],
        verbose=0,
    ).history
    curves = {
        "training loss": history["loss"],
        # The LSTM has no statistics; the BNLSTM's validation accuracy is
        # the one with its moving averages.
        "test accuracy": population.accuracy or history["val_accuracy"],
    }
    if recurrent == "bnlstm":
        curves["test accuracy, moving averages"] = history["val_accuracy"]
    return model, curves


# --8<-- [start:tanh_rnn]
class BNTanhCell(keras.layers.Layer):
    """h_t = tanh(BN(W_h h_{t-1}) + BN(W_x x_t) + b), every BN with the
    batch statistics of its own step (training mode, as at the start of
    training) and gamma = ``gamma``.

    The last ``units`` features of each input step are a probe added to
    h_t: zero, so it changes nothing, but the loss's gradient with respect
    to it is d loss / d h_t. Besides h_t, the cell outputs tanh'(a_t) and
    the BN gain gamma / std_batch(W_h h_{t-1}) of every unit.
    """

    def __init__(self, units, gamma, **kwargs):
        super().__init__(**kwargs)
        self.units, self.gamma = units, gamma
        self.state_size = units
        self.output_size = 3 * units

    def build(self, input_shape):
        features = input_shape[-1] - self.units
        self.kernel = self.add_weight(
            (features, self.units), initializer="glorot_uniform"
        )
        self.recurrent_kernel = self.add_weight(
            (self.units, self.units), initializer="orthogonal"
        )
        gamma = keras.initializers.Constant(self.gamma)
        self.gamma_x = self.add_weight((self.units,), initializer=gamma)
        self.gamma_h = self.add_weight((self.units,), initializer=gamma)
        self.bias = self.add_weight((self.units,), initializer="zeros")

    def call(self, inputs, states):
        x, probe = inputs[:, : -self.units], inputs[:, -self.units :]
        h = states[0] if isinstance(states, (list, tuple)) else states
        ops = keras.ops
        # keras_norms.ops.standardize: (z - mean) / sqrt(var + eps) * gamma
        # over the batch axis, with the gradient through the statistics.
        recurrent, _, variance, _ = keras_norms.ops.standardize(
            ops.matmul(h, self.recurrent_kernel), axes=0, scale=self.gamma_h
        )
        inputs_term = keras_norms.ops.standardize(
            ops.matmul(x, self.kernel), axes=0, scale=self.gamma_x
        )[0]
        activation = ops.tanh(recurrent + inputs_term + self.bias)
        h = activation + probe
        derivative = 1 - activation**2
        gain = ops.broadcast_to(
            self.gamma_h / ops.sqrt(variance + 1e-3), ops.shape(h)
        )
        return ops.concatenate([h, derivative, gain], axis=-1), [h]


def hidden_state_gradients(x, labels, gamma, seed):
    """At initialization: |d loss / d h_t| for every step t (the norm over
    the batch and the units), and the mean tanh'(a_t) and BN gain per
    step. The loss: softmax cross-entropy of a Dense layer on h_T."""
    keras.utils.set_random_seed(seed)
    cell = BNTanhCell(RNN_UNITS, gamma)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    classifier = keras.layers.Dense(10)
    probe = np.zeros(x.shape[:2] + (RNN_UNITS,), "float32")
    inputs = np.concatenate([x, probe], axis=-1)
    outputs = rnn(inputs)  # builds the layers
    classifier(outputs[:, -1, :RNN_UNITS])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss_of(inputs):
        h_last = rnn(inputs)[:, -1, :RNN_UNITS]
        return loss_fn(labels, classifier(h_last))

    gradient = gradient_of(loss_of, inputs)[..., -RNN_UNITS:]
    outputs = keras.ops.convert_to_numpy(outputs)
    units = RNN_UNITS
    return {
        "gradient norm": np.linalg.norm(gradient, axis=(0, 2)),
        "tanh'": outputs[..., units : 2 * units].mean(axis=(0, 2)),
        "BN gain": outputs[0, :, 2 * units :].mean(axis=-1),
    }


# --8<-- [end:tanh_rnn]


# --8<-- [start:gradient]
def gradient_of(loss_of, x):
    """d loss_of(x) / d x with the active backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_of(x)
        return tape.gradient(loss, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(loss_of)(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    loss_of(x).backward()
    return x.grad.numpy()


# --8<-- [end:gradient]


# --8<-- [start:masks]
def mask_checks(layer, classifier, x_test):
    """Sequences of different lengths, zero-padded to 64 steps with a
    mask, against the same sequences unpadded and without any mask."""
    rng = np.random.default_rng(0)
    count = 16
    lengths = rng.integers(24, 64, count)
    padded = np.zeros((count, 64, 1), "float32")
    mask = np.zeros((count, 64), bool)
    for i, length in enumerate(lengths):
        padded[i, :length] = x_test[i, :length]
        mask[i, :length] = True

    def predict(x, mask=None, training=False):
        outputs = classifier(layer(x, mask=mask, training=training))
        return keras.ops.convert_to_numpy(outputs)

    # Inference: each sequence alone, at its own length, no mask.
    alone = np.concatenate(
        [
            predict(x_test[i : i + 1, :length])
            for i, length in enumerate(lengths)
        ]
    )
    inference = np.max(np.abs(predict(padded, mask) - alone))

    # Training mode: the batch statistics of each step. Whatever stands in
    # the padded steps must change neither the outputs nor the moving
    # statistics; without the mask it changes both.
    noise = padded + np.where(
        mask[..., None], 0, rng.normal(0, 3, padded.shape)
    ).astype("float32")

    def training_step(x, mask):
        variables = layer.non_trainable_variables
        saved = [keras.ops.convert_to_numpy(v) for v in variables]
        outputs = predict(x, mask, training=True)
        updated = [keras.ops.convert_to_numpy(v) for v in variables]
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)
        return outputs, updated

    def difference(a, b):
        outputs = np.max(np.abs(a[0] - b[0]))
        statistics = max(
            np.max(np.abs(u - v)) for u, v in zip(a[1], b[1], strict=True)
        )
        return float(outputs), float(statistics)

    zeros_masked = training_step(padded, mask)
    return {
        INFERENCE_CHECK: float(inference),
        "training: zeros vs noise in the padding, with mask": difference(
            zeros_masked, training_step(noise, mask)
        ),
        "training: zeros vs noise in the padding, no mask": difference(
            training_step(padded, None), training_step(noise, None)
        ),
        "lengths": lengths.tolist(),
    }


# --8<-- [end:masks]


def curves_figure(curves):
    epochs = np.arange(1, EPOCHS + 1)
    lines = {
        ("lstm", "test accuracy"): ("LSTM", "tab:gray", "-"),
        ("bnlstm", "test accuracy"): (
            "BNLSTM, population statistics",
            "tab:blue",
            "-",
        ),
        ("bnlstm", "test accuracy, moving averages"): (
            "BNLSTM, moving averages",
            "tab:blue",
            ":",
        ),
    }
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for (model, curve), (label, color, style) in lines.items():
        for axis, key in zip(axes, ("training loss", curve), strict=True):
            if key == "training loss" and curve != "test accuracy":
                continue
            values = np.array(curves[model][key])  # (seeds, epochs)
            axis.plot(epochs, values.mean(0), style, color=color, label=label)
            axis.fill_between(
                epochs, values.min(0), values.max(0), color=color, alpha=0.2
            )
    axes[0].set(xlabel="epoch", ylabel="training loss")
    axes[1].set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
    handles, labels = axes[1].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 0.0)
    )
    figure.suptitle("Mean over the seeds; shaded: minimum to maximum")
    figure.tight_layout()
    save_figure(figure, "03_training_curves")
    plt.close(figure)


def statistics_figure(moving_mean, moving_variance):
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for unit in range(4):
        axes[0].plot(moving_mean[:, unit], label=f"feature {unit}")
        axes[1].semilogy(moving_variance[:, unit], label=f"feature {unit}")
    axes[0].set(xlabel="time step", ylabel="population mean")
    axes[1].set(xlabel="time step", ylabel="population variance (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0.0)
    )
    figure.suptitle(r"BNLSTM input term $W_x x_t$, statistics per time step")
    figure.tight_layout()
    save_figure(figure, "03_per_step_statistics")
    plt.close(figure)


def gradient_figure(gradients):
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    colors = {0.1: "tab:blue", 1.0: "tab:red"}
    for axis, (inputs, by_gamma) in zip(axes, gradients.items(), strict=True):
        for gamma, runs in by_gamma.items():
            norms = np.array([run["gradient norm"] for run in runs])
            steps = np.arange(norms.shape[1])
            geometric = np.exp(np.log(norms).mean(0))
            axis.semilogy(
                steps, geometric, color=colors[gamma], label=f"γ = {gamma}"
            )
            axis.fill_between(
                steps,
                norms.min(0),
                norms.max(0),
                color=colors[gamma],
                alpha=0.25,
            )
        axis.set(xlabel="time step t", title=inputs)
    axes[0].set_ylabel("|d loss / d h_t|")
    axes[1].tick_params(labelleft=True)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 0.0)
    )
    figure.suptitle(
        "BN tanh RNN at initialization; line: geometric mean over the "
        "seeds, shaded: minimum to maximum",
        fontsize=12,
    )
    figure.tight_layout()
    save_figure(figure, "03_gradient_flow")
    plt.close(figure)


def main():
    start = time.time()
    x_train, y_train, x_test, y_test = digits("sequence")
    samples = size(len(x_train), 128)  # subsets for the smoke run
    tests = size(len(x_test), 64)
    x_train, y_train = x_train[:samples], y_train[:samples]
    x_test, y_test = x_test[:tests], y_test[:tests]
    data = x_train, y_train, x_test, y_test

    # 1. BNLSTM against LSTM; the lag of the moving averages.
    curves = {"lstm": {}, "bnlstm": {}}
    final = {"moving averages": [], "recomputed": [], "cumulative": []}
    models = {}
    for seed in SEEDS:
        for recurrent in ("lstm", "bnlstm"):
            model, run = train(recurrent, data, seed)
            for key, values in run.items():
                curves[recurrent].setdefault(key, []).append(values)
            models.setdefault(recurrent, model)  # seed 0's, for below
            print(f"{recurrent}, seed {seed}: {run['test accuracy'][-1]:.3f}")
        final["moving averages"].append(accuracy(model, x_test, y_test))
        final["recomputed"].append(curves["bnlstm"]["test accuracy"][-1][-1])
        # momentum=None: cumulative averages of the batch statistics.
        cumulative, _ = train("bnlstm", data, seed, momentum=None)
        final["cumulative"].append(accuracy(cumulative, x_test, y_test))
    curves_figure(curves)

    # 2. Per-step statistics of seed 0's BNLSTM, recomputed (population).
    model = models["bnlstm"]
    keras_norms.recompute_batch_statistics(
        model, x_train, batch_size=BATCH_SIZE, verbose=0
    )
    normalization = model.layers[0].cell.input_normalization
    moving_mean = keras.ops.convert_to_numpy(normalization.moving_mean)
    moving_variance = keras.ops.convert_to_numpy(normalization.moving_variance)
    statistics_figure(moving_mean, moving_variance)

    # 3. Gradient flow in a BN tanh RNN at initialization.
    rng = np.random.default_rng(0)
    inputs = {
        "N(0, 1) inputs, 8 features": rng.normal(
            size=(GRADIENT_BATCH, 64, 8)
        ).astype("float32"),
        "digits, one pixel per step": x_train[:GRADIENT_BATCH],
    }
    labels = {
        "N(0, 1) inputs, 8 features": rng.integers(0, 10, GRADIENT_BATCH),
        "digits, one pixel per step": y_train[:GRADIENT_BATCH],
    }
    gradients = {
        name: {
            gamma: [
                hidden_state_gradients(x, labels[name], gamma, seed)
                for seed in SEEDS
            ]
            for gamma in GAMMAS
        }
        for name, x in inputs.items()
    }
    gradient_figure(gradients)

    # 4. Masks and longer sequences, with seed 0's trained BNLSTM.
    masks = mask_checks(model.layers[0], model.layers[1], x_test)
    longer = np.concatenate([x_test[:32], x_test[:32, :16]], axis=1)
    longer_shape = list(model.predict(longer, verbose=0).shape)

    results = {
        "units": UNITS,
        "epochs": EPOCHS,
        "seeds": list(SEEDS),
        "curves per seed": curves,
        "final": {
            "test accuracy": {
                "lstm": spread(
                    [c[-1] for c in curves["lstm"]["test accuracy"]]
                ),
                "bnlstm": spread(final["recomputed"]),
            },
            "test accuracy after epoch 1": {
                name: spread([c[0] for c in curves[name]["test accuracy"]])
                for name in curves
            },
            "training loss": {
                name: spread([c[-1] for c in curves[name]["training loss"]])
                for name in curves
            },
        },
        "per seed": {
            "lstm test accuracy": [
                c[-1] for c in curves["lstm"]["test accuracy"]
            ],
            "bnlstm test accuracy": final["recomputed"],
            "lstm test accuracy after epoch 1": [
                c[0] for c in curves["lstm"]["test accuracy"]
            ],
            "bnlstm test accuracy after epoch 1": [
                c[0] for c in curves["bnlstm"]["test accuracy"]
            ],
            "lstm training loss": [
                c[-1] for c in curves["lstm"]["training loss"]
            ],
            "bnlstm training loss": [
                c[-1] for c in curves["bnlstm"]["training loss"]
            ],
        },
        "bnlstm inference statistics": {
            key: spread(values) for key, values in final.items()
        },
        "input-term statistics over the steps (seed 0, features 0-3)": {
            "mean, max - min over the steps": float(
                np.max(np.ptp(moving_mean[:, :4], axis=0))
            ),
            **variance_summary(moving_variance[:, :4]),
        },
        "gradient flow": {
            name: {
                str(gamma): gradient_summary(runs) for gamma, runs in g.items()
            }
            for name, g in gradients.items()
        },
        "masks": masks,
        "80-step sequences at inference": longer_shape,
        "run time (s)": round(time.time() - start, 1),
    }
    results["findings"] = findings(results)
    save_results("03_recurrent_batch_normalization", results)
    save_sections("03_tables.md", tables(results))
    for item in results["findings"].values():
        print(
            ("holds: " if item["holds"] else "does not hold: ") + item["claim"]
        )


def variance_summary(variance):
    """Steps whose variance is 0 (blank in every training digit), and the
    range of the variance over the other steps."""
    blank = np.all(variance < 1e-10, axis=1)
    rest = variance[~blank]
    return {
        "steps with variance 0": int(blank.sum()),
        "variance, smallest other": float(rest.min()),
        "variance, largest": float(rest.max()),
        "variance, max / min over the other steps": float(
            np.max(rest.max(0) / rest.min(0))
        ),
    }


def gradient_summary(runs):
    """Over the seeds: |d loss / d h_t| at four steps (with every seed's
    value); over steps FROM_STEP to 63, the mean tanh'(a_t) and BN gain and
    the geometric mean factor by which the gradient changes per step."""
    norms = np.array([run["gradient norm"] for run in runs])
    summary = {
        f"|dL/dh_{t}|": {
            **spread(norms[:, t]),
            "per seed": norms[:, t].tolist(),
        }
        for t in (63, 32, FROM_STEP, 0)
    }
    summary["mean tanh derivative"] = spread(
        [run["tanh'"][FROM_STEP:].mean() for run in runs]
    )
    summary["mean BN gain"] = spread(
        [run["BN gain"][FROM_STEP:].mean() for run in runs]
    )
    summary["gradient factor per step"] = spread(
        (norms[:, FROM_STEP] / norms[:, -1])
        ** (1 / (norms.shape[1] - 1 - FROM_STEP))
    )
    return summary


def findings(results):
    """The paper's claims, each checked on this run's numbers per seed:
    one model "beats" the other when every seed of it is above every
    seed of the other; overlapping ranges decide nothing."""
    per_seed = results["per seed"]

    def beats(higher, lower):
        return min(per_seed[higher]) > max(per_seed[lower])

    checks = {
        "faster_start": finding(
            "BNLSTM learns faster: after the first epoch, every BNLSTM seed "
            "has a higher test accuracy than every LSTM seed",
            beats(
                "bnlstm test accuracy after epoch 1",
                "lstm test accuracy after epoch 1",
            ),
        ),
        "lower_loss": finding(
            "BNLSTM trains faster: after the last epoch, every BNLSTM seed "
            "has a lower training loss than every LSTM seed",
            max(per_seed["bnlstm training loss"])
            < min(per_seed["lstm training loss"]),
        ),
        "generalizes_better": finding(
            "BNLSTM generalizes better: after the last epoch, every BNLSTM "
            "seed has a higher test accuracy than every LSTM seed",
            beats("bnlstm test accuracy", "lstm test accuracy"),
        ),
    }
    statistics = results[
        "input-term statistics over the steps (seed 0, features 0-3)"
    ]
    checks["statistics_differ"] = finding(
        "The per-step statistics differ between steps: the population "
        "variance of the input term changes tenfold or more over the steps "
        "(those not blank in every digit)",
        statistics["variance, max / min over the other steps"] >= 10,
    )
    for name, by_gamma in results["gradient flow"].items():
        small, large = by_gamma["0.1"], by_gamma["1.0"]
        key = "random" if name.startswith("N(0") else "digits"
        checks[f"saturation_{key}"] = finding(
            f"{name}: γ = 1 saturates tanh: the mean tanh'(a_t) of every "
            "γ = 1 seed is below that of every γ = 0.1 seed",
            large["mean tanh derivative"]["max"]
            < small["mean tanh derivative"]["min"],
        )
        first = {g: by_gamma[g][f"|dL/dh_{FROM_STEP}|"] for g in by_gamma}
        checks[f"vanishes_{key}"] = finding(
            f"{name}: with γ = 1 the gradient vanishes: the norm of "
            f"d loss / d h_{FROM_STEP} is at least ten times smaller than "
            "with γ = 0.1 (every seed against every seed)",
            10 * first["1.0"]["max"] < first["0.1"]["min"],
        )
        last = small["|dL/dh_63|"]["per seed"]
        kept = all(
            a >= 0.1 * b
            for a, b in zip(first["0.1"]["per seed"], last, strict=True)
        )
        checks[f"kept_{key}"] = finding(
            f"{name}: with γ = 0.1 the gradient is kept: the norm of "
            f"d loss / d h_{FROM_STEP} is at least a tenth of that of "
            "d loss / d h_63 in every seed",
            kept,
        )
    masks = results["masks"]
    checks["masks"] = finding(
        "Padded, masked steps change neither the outputs (inference and "
        "training) nor the moving statistics (differences below 1e-5)",
        masks[INFERENCE_CHECK] < 1e-5
        and max(masks["training: zeros vs noise in the padding, with mask"])
        < 1e-5,
    )
    return checks


def cell(statistic, form="{:.3f}"):
    text = form.format(statistic["mean"])
    low, high = form.format(statistic["min"]), form.format(statistic["max"])
    return f"{text} ({low}–{high})"


def tables(results):
    """The page's tables, from this run's numbers."""
    sections = {}
    seeds = results["seeds"]
    sections["run"] = [
        f"Numbers on this page: {keras.backend.backend()} backend, "
        f"{results['units']} units, {results['epochs']} epochs with Adam "
        f"(3e-3), batch {BATCH_SIZE}, seeds {', '.join(map(str, seeds))}. "
        f"The whole script took {run_time_text(results['run time (s)'])} "
        "on a 2-core CPU.",
    ]
    final = results["final"]
    lines = [
        "| | LSTM | BNLSTM |",
        "|---|---|---|",
    ]
    rows = {
        "test accuracy after epoch 1": "test accuracy after epoch 1",
        "test accuracy": f"test accuracy after epoch {results['epochs']}",
        "training loss": f"training loss after epoch {results['epochs']}",
    }
    for key, label in rows.items():
        lines.append(
            f"| {label} | {cell(final[key]['lstm'])} | "
            f"{cell(final[key]['bnlstm'])} |"
        )
    per_seed = results["per seed"]
    lines.append(
        "| final test accuracy, per seed | "
        + " | ".join(
            ", ".join(f"{v:.3f}" for v in per_seed[f"{name} test accuracy"])
            for name in ("lstm", "bnlstm")
        )
        + " |"
    )
    sections["accuracy"] = lines

    inference = results["bnlstm inference statistics"]
    labels = {
        "moving averages": "moving averages (Keras's `momentum=0.99`)",
        "recomputed": "recomputed after training (Algorithm 2)",
        "cumulative": "cumulative averages (`momentum=None`)",
    }
    lines = [
        "| statistics used at inference | test accuracy, mean (min–max) |",
        "|---|---|",
    ]
    for key, label in labels.items():
        lines.append(f"| {label} | {cell(inference[key])} |")
    sections["lag"] = lines

    statistics = results[
        "input-term statistics over the steps (seed 0, features 0-3)"
    ]
    ratio = statistics["variance, max / min over the other steps"]
    sections["statistics"] = [
        "| input term, features 0–3, over the 64 steps | |",
        "|---|---|",
        "| largest spread of a feature's mean (max − min) | "
        f"{statistics['mean, max - min over the steps']:.3g} |",
        "| steps blank in every training digit (variance 0) | "
        f"{statistics['steps with variance 0']} |",
        "| smallest variance over the other steps | "
        f"{statistics['variance, smallest other']:.2g} |",
        f"| largest variance | {statistics['variance, largest']:.2g} |",
        "| largest ratio of a feature's variances over those steps "
        f"(max / min) | {ratio:.3g} |",
    ]

    steps = (63, 32, FROM_STEP, 0)
    lines = [
        "| inputs | γ | "
        + " | ".join(f"\\|dL/dh_{t}\\|" for t in steps)
        + " | mean tanh'(a_t) | mean BN gain γ/σ_t"
        + " | gradient factor per step |",
        "|---|---|" + "---|" * (len(steps) + 3),
    ]
    for name, by_gamma in results["gradient flow"].items():
        for gamma, entry in by_gamma.items():
            lines.append(
                f"| {name} | {gamma} | "
                + " | ".join(
                    cell(entry[f"|dL/dh_{t}|"], "{:.2g}") for t in steps
                )
                + f" | {cell(entry['mean tanh derivative'], '{:.2f}')} | "
                f"{cell(entry['mean BN gain'], '{:.2f}')} | "
                f"{cell(entry['gradient factor per step'], '{:.3f}')} |"
            )
    sections["gradients"] = lines

    masks = results["masks"]
    sections["masks"] = [
        "| check | max \\|difference\\| of the outputs | of the moving "
        "statistics |",
        "|---|---|---|",
        "| inference: padded with a mask vs each sequence alone, unpadded, "
        "no mask | "
        f"{masks[INFERENCE_CHECK]:.2g} | – |",
        "| training: zeros vs noise in the padded steps, with the mask | "
        + " | ".join(
            f"{v:.2g}"
            for v in masks["training: zeros vs noise in the padding, with mask"]
        )
        + " |",
        "| training: zeros vs noise in the padded steps, no mask | "
        + " | ".join(
            f"{v:.2g}"
            for v in masks["training: zeros vs noise in the padding, no mask"]
        )
        + " |",
        "",
        f"Sequence lengths: {', '.join(map(str, masks['lengths']))}. "
        "An 80-step batch at inference gives outputs of shape "
        f"{tuple(results['80-step sequences at inference'])}.",
    ]
    sections["findings"] = findings_table(results["findings"])
    return sections


if __name__ == "__main__":
    main()
