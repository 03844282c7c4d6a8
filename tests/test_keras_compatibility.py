"""Keras's own tests for the layers we replace, run against our classes.

The test files ship inside the installed ``keras`` package
(``keras/src/layers/.../*_test.py``), so they follow the version pinned in
constraints.txt. Nothing is copied: each Keras test module is imported and
the name it reaches the layer through (``layers`` or ``prelu``) is replaced
by a namespace that answers with our class for the layer under test and
with Keras's module for everything else. The test classes are then
collected from here by pytest.

Two kinds of exceptions, each listed in one place with its reason:

- ``keras_compatibility_allowlist.txt``: tests that assert the *wording*
  of an error message. Those still run, and still require the same
  exception class as Keras raises; only the message pattern is not
  checked.
- ``DELIBERATE_DIFFERENCES`` below: tests that assert a behaviour of
  Keras's layer that ours changes on purpose. They run as strict
  ``xfail``: should one start passing, the suite fails, and the entry (and
  the documented difference) must go.
"""

import functools
import importlib
import pathlib
import types
import unittest

import keras
import pytest

import keras_norms

# The wheels of Keras 3.14 and older ship no test modules (3.15.1 does).
pytest.importorskip(
    "keras.src.layers.normalization.batch_normalization_test",
    reason=f"Keras {keras.__version__} does not ship its test modules",
)

# Keras test module -> (the module-level name it reaches layers through,
# {class name: our class}).
SUITES = {
    "keras.src.layers.normalization.batch_normalization_test": (
        "layers",
        {"BatchNormalization": keras_norms.layers.BatchNormalization},
    ),
    "keras.src.layers.normalization.layer_normalization_test": (
        "layers",
        {"LayerNormalization": keras_norms.layers.LayerNormalization},
    ),
    "keras.src.layers.normalization.group_normalization_test": (
        "layers",
        {"GroupNormalization": keras_norms.layers.GroupNormalization},
    ),
    "keras.src.layers.activations.prelu_test": (
        "prelu",
        {"PReLU": keras_norms.layers.PReLU},
    ),
    "keras.src.layers.normalization.rms_normalization_test": (
        "layers",
        {"RMSNormalization": keras_norms.layers.RMSNormalization},
    ),
    "keras.src.layers.normalization.spectral_normalization_test": (
        "layers",
        {"SpectralNormalization": keras_norms.layers.SpectralNormalization},
    ),
}

# Keras tests ("Class.test_method") of behaviour ours changes on purpose,
# with the reason; each is documented in docs/keras_compatibility.md.
DELIBERATE_DIFFERENCES = {
    "SpectralNormalizationTest.test_apply_layer": (
        "Keras's wrapper computes with the raw kernel at inference until a "
        "training call has written W/sigma into it (the test expects 4.0 "
        "from a kernel of ones, whose sigma is 2); ours divides by sigma "
        "at every call and gives 2.0 in both calls"
    ),
}

ALLOWLIST_FILE = pathlib.Path(__file__).with_name(
    "keras_compatibility_allowlist.txt"
)


def _read_allowlist():
    """{"Class.test_method": reason} from the allow-list file."""
    allowed = {}
    for line in ALLOWLIST_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"{ALLOWLIST_FILE.name}: no reason for {test_id}")
        allowed[test_id] = reason.strip()
    return allowed


ALLOWED_MESSAGE_DIFFERENCES = _read_allowlist()


class _Swapped(types.ModuleType):
    """A module stand-in: our classes by name, the original otherwise."""

    def __init__(self, original, replacements):
        super().__init__(original.__name__)
        self._original = original
        self._replacements = replacements

    def __getattr__(self, name):
        if name in self._replacements:
            return self._replacements[name]
        return getattr(self._original, name)


def _expected_failure(test_class, method_name, reason):
    """``test_class.method_name`` as a strict xfail with ``reason``."""
    original = getattr(test_class, method_name)

    @functools.wraps(original)
    def method(self):
        return original(self)

    return pytest.mark.xfail(strict=True, reason=reason)(method)


def _wording_insensitive(test_class):
    """Subclass whose allow-listed tests check the exception class only,
    and whose deliberately different tests are strict xfails."""

    def assertRaisesRegex(self, expected_exception, expected_regex, *a, **k):
        test_id = f"{test_class.__name__}.{self._testMethodName}"
        if test_id in ALLOWED_MESSAGE_DIFFERENCES:
            return self.assertRaises(expected_exception, *a, **k)
        return super(cls, self).assertRaisesRegex(
            expected_exception, expected_regex, *a, **k
        )

    namespace = {"assertRaisesRegex": assertRaisesRegex, "__module__": __name__}
    for test_id, reason in DELIBERATE_DIFFERENCES.items():
        class_name, _, method_name = test_id.partition(".")
        if class_name == test_class.__name__:
            namespace[method_name] = _expected_failure(
                test_class, method_name, reason
            )
    cls = type(test_class.__name__, (test_class,), namespace)
    return cls


def _load_suites():
    collected = {}
    for module_name, (attribute, replacements) in SUITES.items():
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        if not isinstance(original, _Swapped):
            setattr(module, attribute, _Swapped(original, replacements))
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, unittest.TestCase)
                and obj.__module__ == module.__name__
            ):
                collected[name] = _wording_insensitive(obj)
    return collected


globals().update(_load_suites())


def test_allowlist_names_existing_tests():
    """A stale allow-list or deliberate-difference entry would hide
    nothing; keep the lists exact."""
    known = set()
    for name, obj in list(globals().items()):
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
            known.update(
                f"{name}.{method}"
                for method in unittest.TestLoader().getTestCaseNames(obj)
            )
    stale = set(ALLOWED_MESSAGE_DIFFERENCES) - known
    assert not stale, f"allow-list entries without a test: {sorted(stale)}"
    stale = set(DELIBERATE_DIFFERENCES) - known
    assert not stale, f"deliberate differences without a test: {sorted(stale)}"
