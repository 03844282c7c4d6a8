"""`cross_replica_all_gather` with ``torch.distributed``."""

import functools

import torch
import torch.distributed as dist


def cross_replica_all_gather():
    if not (dist.is_available() and dist.is_initialized()):
        return None
    if dist.get_world_size() < 2:
        return None
    return _all_gather_function()


@functools.cache
def _all_gather_function():
    """Differentiable all-gather, defined once (not on every call)."""

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
