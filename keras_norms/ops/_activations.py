"""Parametric activations."""

from keras import ops


def prelu(x, alpha):
    r"""Parametric ReLU (He et al., 2015): ``max(0, x) + alpha * min(0, x)``.

    $$f(x) = \max(0, x) + a \min(0, x)$$

    Args:
        x (tensor): Input tensor.
        alpha (tensor): The negative slope ``a``: a number or a tensor
            broadcastable to ``x`` (e.g. one slope per channel). It is cast to
            the dtype of ``x``.

    Returns:
        (tensor): A tensor of the shape and dtype of ``x``.

    Reference:
        He, Zhang, Ren & Sun, "Delving Deep into Rectifiers: Surpassing
        Human-Level Performance on ImageNet Classification", ICCV 2015.

    Examples:
        >>> import numpy as np, keras_norms
        >>> y = keras_norms.ops.prelu(np.array([-2.0, 3.0], "float32"), 0.25)
        >>> [float(v) for v in np.asarray(y)]
        [-0.5, 3.0]
    """
    x = ops.convert_to_tensor(x)
    alpha = ops.cast(alpha, x.dtype)
    # relu(x) + (-a) * relu(-x): max/min with a Python 0 would promote
    # float64 to float32 on the torch backend. The slope is negated, not
    # the product: the gradient of a subtraction negates the upstream
    # gradient at full size (one more full-size pass on TensorFlow).
    return ops.relu(x) + (-alpha) * ops.relu(-x)
