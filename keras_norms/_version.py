"""The package version: its one source (pyproject.toml reads it)."""

__version__ = "0.2.0"


def version() -> str:
    """The installed keras-norms version, e.g. ``"0.2.0"``.

    Examples:
        >>> import keras_norms
        >>> keras_norms.version() == keras_norms.__version__
        True
    """
    return __version__
