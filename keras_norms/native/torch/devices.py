"""Which device torch computes a tensor on, for the choices that were
measured on one kind of device only."""


def on_gpu(x):
    """Whether ``x`` lives on a CUDA (or ROCm) GPU.

    torch has no deferred placement: a tensor knows its device, also when
    traced (``torch.compile``'s fake tensors carry the real one).
    """
    return x.device.type == "cuda"
