"""BNLSTM learns faster than a plain LSTM on sequential digits.

scikit-learn's 8x8 digits read pixel by pixel are a 64-step sequence task
(the small cousin of sequential MNIST in Cooijmans et al., 2016). Same
seed, units, optimizer and epochs for both; the claim tested is the
paper's: the batch-normalized LSTM's training loss falls faster. Runs on
every backend, in 15-30 seconds each.
"""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import keras_norms

pytestmark = [pytest.mark.slow]


def _training_losses(make_recurrent_layer, x, y):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64, 1)), make_recurrent_layer(), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    return np.array(history.history["loss"])


def test_bn_lstm_training_loss_falls_faster_than_lstm():
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")[..., None]
    lstm = _training_losses(lambda: keras.layers.LSTM(32), x, digits.target)
    bn_lstm = _training_losses(
        lambda: keras_norms.layers.BNLSTM(32), x, digits.target
    )
    print(f"LSTM losses {lstm.round(3)}; BNLSTM losses {bn_lstm.round(3)}")
    assert np.all(np.isfinite(bn_lstm))
    # Lower loss over the run (area under the curve), with a margin.
    assert bn_lstm.mean() < 0.95 * lstm.mean()
    assert bn_lstm[-1] < lstm[-1]
