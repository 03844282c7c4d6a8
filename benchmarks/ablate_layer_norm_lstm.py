"""Where LayerNormLSTM's training step spends its time: the same layer with
its per-step layer normalization computed by plain keras.ops ("plain") and
removed ("no_ln", not a usable model), against keras.layers.LSTM ("core"),
interleaved as in bench_layers.py. Medians in ms.

    KERAS_BACKEND=jax python benchmarks/ablate_layer_norm_lstm.py
"""

import statistics

import keras
import numpy as np
from bench_layers import interleaved
from bench_layers import keras_layer_step
from keras import ops

import keras_norms
from keras_norms.layers._layer_norm_lstm import LayerNormLSTMCell


class _PlainCell(LayerNormLSTMCell):
    def _normalize(self, layer, x):
        mean = ops.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
        inverse = ops.rsqrt(variance + self.norm_epsilon) * layer.gamma
        return centered * inverse + layer.beta


class _NoNormalizationCell(LayerNormLSTMCell):
    def _normalize(self, layer, x):
        return x


def _layer(cell_class=None):
    layer = keras_norms.layers.LayerNormLSTM(64, return_sequences=True)
    if cell_class is not None:
        layer.cell.__class__ = cell_class
    return layer


def main():
    rng = np.random.default_rng(0)
    print(f"backend {keras.backend.backend()}, (32, T, 32), 64 units")
    for steps_in_time in (16, 64):
        x = rng.normal(size=(32, steps_in_time, 32)).astype("float32")
        steps = {
            "core": keras_layer_step(
                keras.layers.LSTM(64, return_sequences=True), x, rng
            ),
            "ours": keras_layer_step(_layer(), x, rng),
            "plain": keras_layer_step(_layer(_PlainCell), x, rng),
            "no_ln": keras_layer_step(_layer(_NoNormalizationCell), x, rng),
        }
        times = interleaved(steps, 15)
        medians = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        print(
            f"T={steps_in_time}: "
            + "  ".join(f"{k} {v:.2f}" for k, v in medians.items())
        )


if __name__ == "__main__":
    main()
