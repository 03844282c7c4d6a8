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

import functools

from keras import backend


def cross_replica_all_gather():
    """The gather function of the active multi-replica context, or None."""
    name = backend.backend()
    if name == "tensorflow":
        return _tensorflow_all_gather()
    if name == "torch":
        return _torch_all_gather()
    return None


def _tensorflow_all_gather():
    import tensorflow as tf

    if (
        not tf.distribute.has_strategy()
        or tf.distribute.in_cross_replica_context()
    ):
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None

    def all_gather(tensor):
        return context.all_gather(tensor[None], axis=0)

    return all_gather


def _torch_all_gather():
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    if dist.get_world_size() < 2:
        return None

    return _torch_all_gather_function()


@functools.cache
def _torch_all_gather_function():
    """Differentiable all-gather, defined once (not on every call)."""
    import torch
    import torch.distributed as dist

    class AllGather(torch.autograd.Function):
        @staticmethod
        def forward(context, tensor):
            tensor = tensor.contiguous()
            parts = [
                torch.empty_like(tensor) for _ in range(dist.get_world_size())
            ]
            dist.all_gather(parts, tensor)
            return torch.stack(parts)

        @staticmethod
        def backward(context, gradient):
            # Every replica's loss depends on our slice: sum their gradients.
            gradient = gradient.contiguous()
            dist.all_reduce(gradient, op=dist.ReduceOp.SUM)
            return gradient[dist.get_rank()]

    return AllGather.apply
