"""Tutorial 3: recurrent batch normalization (Cooijmans et al., 2016).

Sequential digits: each 8x8 digit of scikit-learn read one pixel per time
step (64 steps), classified from the last hidden state.

1. BNLSTM against keras.layers.LSTM: training curves.
2. Why the statistics are kept per time step: the BNLSTM's moving means of
   its input term differ from step to step.
3. Gradient flow through time at initialization: the norm of the loss's
   gradient with respect to each input step, with gamma 0.1 (the paper's
   choice) and gamma 1.0.
4. Masks and sequences longer than in training.

    KERAS_BACKEND=torch python \
        examples/tutorials/03_recurrent_batch_normalization.py

Writes docs/img/tutorials/03_*.png and docs/tutorials/results/
03_recurrent_batch_normalization.json (KERAS_NORMS_SMOKE=1: tiny run).
"""

import time

import keras
import matplotlib
import numpy as np

import keras_norms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _common import digits  # noqa: E402
from _common import save_figure  # noqa: E402
from _common import save_results  # noqa: E402
from _common import size  # noqa: E402

UNITS = size(48, 8)
EPOCHS = size(12, 1)
BATCH_SIZE = 64


# --8<-- [start:models]
def build(recurrent, gamma=0.1, momentum=0.99):
    """``recurrent``: "lstm" or "bnlstm"; the BNLSTM's normalizations
    start with ``gamma`` (0.1 in the paper)."""
    if recurrent == "lstm":
        layer = keras.layers.LSTM(UNITS)
    else:
        layer = keras_norms.layers.BNLSTM(
            UNITS,
            gamma_initializer=keras.initializers.Constant(gamma),
            momentum=momentum,
        )
    return keras.Sequential(
        [
            keras.Input((64, 1)),
            layer,
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


# --8<-- [end:models]


class PopulationAccuracy(keras.callbacks.Callback):
    """Test accuracy after each epoch with the population statistics of
    the current weights (Algorithm 2, recomputed over the training set)
    rather than the moving averages, which lag (see below)."""

    def __init__(self, x_train, x_test, y_test):
        super().__init__()
        self.x_train, self.x_test, self.y_test = x_train, x_test, y_test
        self.accuracy = []

    def on_epoch_end(self, epoch, logs=None):
        keras_norms.recompute_batch_statistics(
            self.model, self.x_train, batch_size=BATCH_SIZE, verbose=0
        )
        predictions = self.model.predict(self.x_test, verbose=0)
        self.accuracy.append(
            float(np.mean(predictions.argmax(axis=1) == self.y_test))
        )


def train(recurrent, data, momentum=0.99, population=False):
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(0)
    model = build(recurrent, momentum=momentum)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [PopulationAccuracy(x_train, x_test, y_test)]
    history = model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        validation_data=(x_test, y_test),
        callbacks=callbacks if population else [],
        verbose=0,
    )
    history = history.history
    if population:
        history["population_accuracy"] = callbacks[0].accuracy
    return model, history


# --8<-- [start:lag]
def moving_average_lag(data):
    """Test accuracy of a BNLSTM trained without recomputing: from its
    moving averages, after recomputing, and with cumulative averages."""
    x_train, _, x_test, y_test = data
    model, _ = train("bnlstm", data)
    moving = model.evaluate(x_test, y_test, verbose=0)[1]
    keras_norms.recompute_batch_statistics(
        model, x_train, batch_size=BATCH_SIZE, verbose=0
    )
    recomputed = model.evaluate(x_test, y_test, verbose=0)[1]
    cumulative_model, _ = train("bnlstm", data, momentum=None)
    cumulative = cumulative_model.evaluate(x_test, y_test, verbose=0)[1]
    return {
        "moving averages (momentum 0.99)": float(moving),
        "recomputed (Algorithm 2)": float(recomputed),
        "cumulative averages (momentum None)": float(cumulative),
    }


# --8<-- [end:lag]


# --8<-- [start:gradients]
def input_gradient_norms(model, x, y):
    """Norm over the batch of d loss / d x_t for every step t: how much
    the last step's loss still reaches back to step t."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(y, model(x, training=True))
        gradient = tape.gradient(loss, x).numpy()
    elif backend == "jax":
        import jax

        def loss_of(inputs):
            # Training-mode BN in a pure function: the stateless call.
            outputs, _ = model.stateless_call(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                inputs,
                training=True,
            )
            return loss_fn(y, outputs)

        gradient = np.asarray(jax.grad(loss_of)(x))
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        loss_fn(torch.tensor(y), model(x, training=True)).backward()
        gradient = x.grad.numpy()
    return np.linalg.norm(gradient[..., 0], axis=0)  # one norm per step


# --8<-- [end:gradients]


def main():
    start = time.time()
    x_train, y_train, x_test, y_test = digits("sequence")
    samples = size(len(x_train), 256)  # a subset for the smoke run
    x_train, y_train = x_train[:samples], y_train[:samples]
    data = x_train, y_train, x_test, y_test
    histories, models = {}, {}
    for recurrent in ("lstm", "bnlstm"):
        models[recurrent], histories[recurrent] = train(
            recurrent, data, population=recurrent == "bnlstm"
        )

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    epochs = np.arange(1, EPOCHS + 1)
    for recurrent, color in (("lstm", "tab:gray"), ("bnlstm", "tab:blue")):
        name = "BNLSTM" if recurrent == "bnlstm" else "LSTM"
        axes[0].plot(
            epochs, histories[recurrent]["loss"], color=color, label=name
        )
        accuracy = histories[recurrent].get(
            "population_accuracy", histories[recurrent]["val_accuracy"]
        )
        axes[1].plot(epochs, accuracy, color=color, label=name)
    axes[0].set(xlabel="epoch", ylabel="training loss", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    for axis in axes:
        axis.legend()
    figure.tight_layout()
    save_figure(figure, "03_training_curves")
    plt.close(figure)

    # Per-step statistics: the input term's moving mean at every step.
    cell = models["bnlstm"].layers[0].cell
    moving_mean = keras.ops.convert_to_numpy(
        cell.input_normalization.moving_mean
    )
    moving_variance = keras.ops.convert_to_numpy(
        cell.input_normalization.moving_variance
    )
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for unit in range(4):
        axes[0].plot(moving_mean[:, unit], label=f"feature {unit}")
        axes[1].plot(moving_variance[:, unit], label=f"feature {unit}")
    axes[0].set(xlabel="time step", ylabel="moving mean", title="mean")
    axes[1].set(xlabel="time step", ylabel="moving variance", title="variance")
    axes[0].legend(fontsize=8)
    figure.suptitle("BNLSTM input term W_x x_t: statistics per time step")
    figure.tight_layout()
    save_figure(figure, "03_per_step_statistics")
    plt.close(figure)

    # Gradient flow at initialization, gamma 0.1 vs 1.0, on N(0, 1)
    # sequences: the digits' first pixels are 0 in every sample, and a
    # step without variance scales its gradient by 1 / sqrt(epsilon).
    # Relative to the last step, so that gamma's direct scaling of each
    # input's own gradient cancels: what remains is the recurrence.
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(size(256, 32), 64, 1)).astype("float32")
    labels = rng.integers(0, 10, len(noise))
    norms = {}
    for gamma in (0.1, 1.0):
        keras.utils.set_random_seed(0)
        model = build("bnlstm", gamma=gamma)
        values = input_gradient_norms(model, noise, labels)
        norms[gamma] = values / values[-1]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for gamma, values in norms.items():
        axis.semilogy(values, label=f"gamma = {gamma}")
    axis.set(
        xlabel="input step t",
        ylabel="|d loss / d x_t| / |d loss / d x_63|",
        title="Gradient reaching each step, at initialization",
    )
    axis.legend()
    save_figure(figure, "03_gradient_flow")
    plt.close(figure)

    # --8<-- [start:masks]
    # Masks: the first 40 pixels, padded with zeros to 64 steps and masked,
    # give the same prediction as the 40 pixels alone.
    model = models["bnlstm"]
    short = x_test[:32, :40]
    padded = np.concatenate([short, np.zeros((32, 24, 1), "float32")], 1)
    masked = keras.Sequential(
        [keras.Input((64, 1)), keras.layers.Masking(0.0), *model.layers]
    )
    # (Masking drops every step whose pixel is 0, also inside the digit,
    # so compare with the same mask on the unpadded steps.)
    unpadded = keras.Sequential(
        [keras.Input((40, 1)), keras.layers.Masking(0.0), *model.layers]
    )
    difference = np.max(
        np.abs(
            masked.predict(padded, verbose=0)
            - unpadded.predict(short, verbose=0)
        )
    )
    # Longer than in training: steps past 64 use step 63's statistics.
    longer = np.concatenate([x_test[:32], x_test[:32, :16]], axis=1)
    longer_outputs = model.predict(longer, verbose=0)
    # --8<-- [end:masks]

    results = {
        "units": UNITS,
        "epochs": EPOCHS,
        "final test accuracy": {
            "lstm": float(histories["lstm"]["val_accuracy"][-1]),
            "bnlstm (population statistics)": float(
                histories["bnlstm"]["population_accuracy"][-1]
            ),
        },
        "test accuracy per epoch": {
            "lstm": histories["lstm"]["val_accuracy"],
            "bnlstm (population statistics)": histories["bnlstm"][
                "population_accuracy"
            ],
        },
        "bnlstm test accuracy without recomputing during training": (
            moving_average_lag(data)
        ),
        "final training loss": {
            name: float(histories[name]["loss"][-1]) for name in histories
        },
        "input-term moving mean, spread over steps (feature 0)": float(
            np.ptp(moving_mean[:, 0])
        ),
        "gradient norm relative to the last step": {
            str(gamma): {
                f"step {t}": float(values[t]) for t in (0, 16, 32, 48, 63)
            }
            for gamma, values in norms.items()
        },
        "max |masked padded - unpadded|": float(difference),
        "80-step sequences at inference": list(longer_outputs.shape),
        "run time (s)": round(time.time() - start, 1),
    }
    save_results("03_recurrent_batch_normalization", results)
    print(results)


if __name__ == "__main__":
    main()
