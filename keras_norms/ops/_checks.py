"""Shape checks that some graphs can only make at run time."""

from keras_norms.native import dispatch


@dispatch("check_dimension", fast_path=False)
def check_dimension(x, axis, predicate, message):
    """``x``, checked to satisfy ``predicate(size of axis)`` at run time.

    For sizes unknown when a graph is traced (TensorFlow: the batch size
    under ``fit``, a time axis declared ``None``). ``predicate`` maps the
    size (a scalar integer tensor) to a boolean tensor; ``message`` is the
    error's text. The reference has nothing to do: elsewhere sizes are
    known when traced, and the caller checks them in Python.
    """
    return x


def check_sequence_length(sequences, max_timesteps, owner, time_axis=1):
    """``sequences`` (batch, time, ...), or with time on ``time_axis``,
    checked to have at most ``max_timesteps`` steps: a layer with per-step
    statistics cannot train on longer ones. In Python where the length is
    known, at run time (in a TensorFlow graph) where it is not."""
    time = sequences.shape[time_axis]
    message = (
        f"{owner} keeps statistics for {max_timesteps} steps and cannot "
        f"train on longer sequences. Received: "
        f"{'more' if time is None else time} steps (max_timesteps="
        f"{max_timesteps})"
    )
    if time is None:
        return check_dimension(
            sequences,
            time_axis,
            lambda size: size <= max_timesteps,
            message,
        )
    if time > max_timesteps:
        raise ValueError(message)
    return sequences
