"""Training-step throughput of BNLSTM against keras.layers.LSTM.

Same units, same data (sequential digits: 64 steps of one pixel), same
optimizer; both through model.fit's compiled train step. Prints samples per
second and the ratio. Run once per backend:

    KERAS_BACKEND=jax python benchmarks/bench_bn_lstm.py
"""

import time

import keras
from sklearn.datasets import load_digits

import keras_norms

UNITS = 64
BATCH = 128


def digits_sequences():
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")[..., None]  # (1797, 64, 1)
    return x, digits.target


def model_with(recurrent_layer):
    model = keras.Sequential(
        [keras.Input((64, 1)), recurrent_layer, keras.layers.Dense(10)]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def samples_per_second(model, x, y, epochs=2):
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, verbose=0)  # compile
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return epochs * len(x) / (time.perf_counter() - start)


def main():
    keras.utils.set_random_seed(0)
    x, y = digits_sequences()
    lstm = samples_per_second(model_with(keras.layers.LSTM(UNITS)), x, y)
    bn_lstm = samples_per_second(
        model_with(keras_norms.layers.BNLSTM(UNITS)), x, y
    )
    print(
        f"backend {keras.backend.backend()}: LSTM {lstm:.0f} samples/s, "
        f"BNLSTM {bn_lstm:.0f} samples/s, BNLSTM/LSTM throughput ratio "
        f"{bn_lstm / lstm:.2f}"
    )


if __name__ == "__main__":
    main()
