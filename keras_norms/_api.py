"""Registration of public objects under the ``keras_norms`` package name."""

import keras

PACKAGE = "keras_norms"


def export(cls):
    """Register ``cls`` so saved models find it as ``keras_norms>Name``."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
