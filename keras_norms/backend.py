"""Deprecated: the backend-specific code is in `keras_norms.native`.

`reference_only` is `keras_norms.ops.reference_only`.
"""

import warnings

from keras_norms.native import reference_only as reference_only

warnings.warn(
    "keras_norms.backend is deprecated and will be removed: use "
    "keras_norms.ops.reference_only (backend-specific code lives in "
    "keras_norms.native).",
    DeprecationWarning,
    stacklevel=2,
)
