"""Models with unknown sizes: fit on batches of several shapes, predict on
larger ones, and export a SavedModel that serves the same (TensorFlow and
JAX; Keras cannot export such models on torch)."""

import keras
import numpy as np
import pytest

import keras_norms

from helpers import BACKEND
from helpers import to_numpy

L = keras_norms.layers

# Layers on (batch, None, None, channels) images.
IMAGE_LAYERS = {
    "batch_norm": lambda: L.BatchNormalization(momentum=0.5),
    "layer_norm": lambda: L.LayerNormalization(),
    "group_norm": lambda: L.GroupNormalization(groups=2),
    "lrn": lambda: L.LocalResponseNormalization(size=3),
    "lrn_within": lambda: L.LocalResponseNormalization(
        size=3, mode="within_channel"
    ),
    "prelu": lambda: L.PReLU(shared_axes=[1, 2]),
}
# Layers on (batch, None, features) sequences.
SEQUENCE_LAYERS = {
    "timestep_batch_norm": lambda: L.TimestepBatchNormalization(
        max_timesteps=6, momentum=0.5
    ),
    "recurrent_batch_norm": lambda: L.RecurrentBatchNormalization(
        max_timesteps=6
    ),
    "bn_lstm": lambda: L.BNLSTM(3, max_timesteps=6, return_sequences=True),
}


EXPORT_SKIP = pytest.mark.skipif(
    BACKEND == "torch",
    reason="Keras 3.15 cannot export a model with unknown sizes on torch "
    "(torch.export rejects its dynamic shapes; keras.layers too)",
)


def fit_predict_export(model, shapes, larger, rng, tmp_path, export):
    if export:
        # Keras exports (and the test loads) a SavedModel with TensorFlow,
        # which a JAX-only install does not have.
        tf = pytest.importorskip("tensorflow")
    model.compile("sgd", "mse")
    for shape in shapes:
        x = rng.normal(size=shape).astype("float32")
        target = np.zeros(model.compute_output_shape(shape), "float32")
        model.fit(x, target, epochs=1, verbose=0)
        assert np.all(np.isfinite(to_numpy(model(x, training=False))))
    x = rng.normal(size=larger).astype("float32")
    predicted = model.predict(x, verbose=0)
    assert predicted.shape[:-1] == larger[:-1]
    assert np.all(np.isfinite(predicted))
    if not export:
        return
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    exported = tf.saved_model.load(path)
    np.testing.assert_allclose(
        np.asarray(exported.serve(x)), predicted, rtol=1e-5, atol=1e-5
    )


def images_of_unknown_size(name, rng, tmp_path, export):
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, IMAGE_LAYERS[name]()(inputs))
    shapes = [(4, 5, 6, 4), (3, 7, 4, 4)]
    fit_predict_export(model, shapes, (2, 9, 9, 4), rng, tmp_path, export)


def sequences_of_unknown_length(name, rng, tmp_path, export):
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, SEQUENCE_LAYERS[name]()(inputs))
    # Predict beyond max_timesteps: the last step's statistics.
    shapes = [(4, 3, 4), (4, 6, 4), (5, 5, 4)]
    fit_predict_export(model, shapes, (2, 9, 4), rng, tmp_path, export)


@pytest.mark.parametrize("name", sorted(IMAGE_LAYERS))
def test_images_of_unknown_size(name, rng, tmp_path):
    images_of_unknown_size(name, rng, tmp_path, export=False)


@pytest.mark.parametrize("name", sorted(SEQUENCE_LAYERS))
def test_sequences_of_unknown_length(name, rng, tmp_path):
    sequences_of_unknown_length(name, rng, tmp_path, export=False)


@EXPORT_SKIP
@pytest.mark.parametrize("name", sorted(IMAGE_LAYERS))
def test_export_images_of_unknown_size(name, rng, tmp_path):
    images_of_unknown_size(name, rng, tmp_path, export=True)


@EXPORT_SKIP
@pytest.mark.parametrize("name", sorted(SEQUENCE_LAYERS))
def test_export_sequences_of_unknown_length(name, rng, tmp_path):
    sequences_of_unknown_length(name, rng, tmp_path, export=True)
