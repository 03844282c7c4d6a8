"""Cross-replica collectives for synchronized batch normalization.

`cross_replica_all_gather()` returns a function that stacks a tensor from
every replica along a new first axis (differentiable), or ``None`` when no
multi-replica computation is running. The layers call it when built with
``synchronized=True`` and pass the result to `keras_norms.ops.standardize`,
which makes ONE such call per normalization.

- TensorFlow: inside a `tf.distribute` strategy's replica context
  (e.g. MirroredStrategy under ``model.fit``): ``ReplicaContext.all_gather``.
- PyTorch: when ``torch.distributed`` is initialized with more than one
  process (DDP, or your own loop; gloo on CPU, NCCL on GPU):
  ``torch.distributed.all_gather``, with a backward pass that all-reduces
  the gradient (supported by every process-group backend).
- JAX: under ``keras.distribution.DataParallel`` the model runs as one
  SPMD program on global arrays, so the ordinary statistics already are
  the global ones and no explicit collective is needed (XLA inserts the
  reductions). Inside your own ``jax.pmap`` / ``shard_map`` the layer
  cannot know the axis name: call `keras_norms.ops.standardize` (or
  ``batch_normalization_training``) with
  ``all_gather=lambda t: jax.lax.all_gather(t, "your_axis")``.
"""

from keras_norms.native import dispatch


@dispatch("cross_replica_all_gather", fast_path=False)
def cross_replica_all_gather():
    """The gather function of the active multi-replica context, or None.

    The reference knows no multi-replica context: None (also on JAX, see
    above). The TensorFlow and torch versions are in
    ``keras_norms/native/<backend>/distributed.py``.
    """
    return None
