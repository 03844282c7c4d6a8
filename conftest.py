"""Collection rules for the whole repository (pytest's rootdir).

The test run covers tests/, every docstring example in keras_norms
(``--doctest-modules``) and every Python block of README.md and docs/
(``--markdown-docs``, pytest-markdown-docs). Not collected: each backend's
own fast-path package, importable only with that backend (the fast-path
tests cover them), the multi-replica scripts in tests/distributed/ (the
tests start them as subprocesses), and the tutorial pages, whose code is
included from
examples/tutorials/*.py, which `make tutorials-smoke` runs.
"""

collect_ignore = [
    # Scripts that the tests start as subprocesses (they run on import).
    "tests/distributed",
    "tests/load_and_predict.py",
    "keras_norms/native/jax",
    "keras_norms/native/tensorflow",
    "keras_norms/native/torch",
    "docs/tutorials",
]
