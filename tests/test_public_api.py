"""A snapshot of the public API: the exported names of every public module
and the names under which Keras finds the layers and initializers in saved
models. Users and saved files depend on them: a change here must be
deliberate (and in CHANGELOG.md)."""

import keras
import pytest

import keras_norms

EXPORTS = {
    "keras_norms": [
        "callbacks",
        "convert_normalization",
        "fold_batch_normalization",
        "initializers",
        "layers",
        "ops",
        "recompute_batch_statistics",
        "version",
    ],
    "keras_norms.layers": [
        "BNLSTM",
        "BNLSTMCell",
        "BatchNormalization",
        "GroupNormalization",
        "InstanceNormalization",
        "LayerNormLSTM",
        "LayerNormLSTMCell",
        "LayerNormalization",
        "LocalResponseNormalization",
        "PReLU",
        "RMSNormalization",
        "RecurrentBatchNormalization",
        "SpectralNormalization",
        "TimestepBatchNormalization",
        "WeightNormalization",
    ],
    "keras_norms.initializers": [
        "HeNormal",
        "HeUniform",
        "XavierNormal",
        "XavierUniform",
        "calculate_gain",
        "compute_fans",
    ],
    "keras_norms.callbacks": ["RecomputeBatchStatistics"],
    "keras_norms.ops": [
        "batch_normalization",
        "batch_normalization_training",
        "broadcast_parameter",
        "fold_batch_normalization_weights",
        "group_normalization",
        "kernel_norm",
        "layer_normalization",
        "local_response_norm",
        "moments",
        "moments_and_count",
        "moving_average",
        "normalize",
        "prelu",
        "reference_only",
        "rms_normalization",
        "spectral_normalization",
        "standardize",
        "step_statistics",
        "unbiased_variance",
        "update_step_statistics",
        "weight_normalization",
    ],
}

MODULES = {
    "keras_norms": keras_norms,
    "keras_norms.layers": keras_norms.layers,
    "keras_norms.initializers": keras_norms.initializers,
    "keras_norms.ops": keras_norms.ops,
    "keras_norms.callbacks": keras_norms.callbacks,
}


def test_exported_names():
    for name, module in MODULES.items():
        assert sorted(module.__all__) == EXPORTS[name], name
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.{exported}"


def test_public_attributes_are_all_exported():
    # Nothing public slips out without being in __all__ (and the snapshot).
    for name, module in MODULES.items():
        public = {
            attribute
            for attribute in vars(module)
            if not attribute.startswith("_")
        }
        # Subpackages of keras_norms that are importable but not exported.
        public -= {"distributed", "native", "backend"}
        assert public == set(module.__all__), name


def test_registered_names():
    for module_name in ("keras_norms.layers", "keras_norms.initializers"):
        for name in EXPORTS[module_name]:
            obj = getattr(MODULES[module_name], name)
            if not isinstance(obj, type):
                continue  # functions: calculate_gain, compute_fans
            assert keras.saving.get_registered_name(obj) == (
                f"keras_norms>{name}"
            )
            assert (
                keras.saving.get_registered_object(f"keras_norms>{name}") is obj
            )


def test_version():
    assert keras_norms.version() == keras_norms.__version__
    major, minor, patch = keras_norms.version().split(".")
    assert all(part.isdigit() for part in (major, minor, patch))


def test_old_backend_module_is_deprecated():
    import importlib
    import sys

    sys.modules.pop("keras_norms.backend", None)
    with pytest.warns(DeprecationWarning, match="keras_norms.native"):
        backend = importlib.import_module("keras_norms.backend")
    assert backend.reference_only is keras_norms.ops.reference_only
