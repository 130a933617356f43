"""Keras' activation functions (``keras.activations`` names and defaults) over Ember tensors, and ``get``.

Each is a thin, differentiable composition of :mod:`ember.ops`; Keras' defaults differ from PyTorch's
in places (``leaky_relu`` slope 0.2, ``relu`` with ``max_value``/``threshold``), and those are kept.

>>> import ember
>>> ember.activations.get("relu")(ember.tensor([-1.0, 2.0]))
tensor([0., 2.])
>>> ember.activations.serialize(ember.activations.relu)
'relu'
"""
from __future__ import annotations

import warnings

from . import ops
from .tensor import Tensor

__all__ = ["relu", "leaky_relu", "relu6", "elu", "selu", "celu", "gelu", "glu", "sigmoid", "hard_sigmoid", "silu",
           "swish", "hard_silu", "hard_swish", "tanh", "hard_tanh", "softplus", "softsign", "soft_shrink",
           "hard_shrink", "tanh_shrink", "log_sigmoid", "mish", "exponential", "softmax", "log_softmax", "linear",
           "get", "serialize", "deserialize"]


def _t(x) -> Tensor:
    """Keras activations accept arrays and lists too: convert them to a floating tensor."""
    if isinstance(x, Tensor):
        return x
    from .losses.loss import as_float
    return as_float(x)


def relu(x, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> Tensor:
    """Keras' generalised ReLU: ``x`` above ``threshold`` (else 0), capped at ``max_value``, leaking below.

    Below the threshold the leak is ``negative_slope * (x - threshold)``, exactly as Keras computes it.

    >>> import ember
    >>> ember.activations.relu(ember.tensor([-10.0, -5.0, 0.0, 5.0, 10.0]), max_value=5.0)
    tensor([0., 0., 0., 5., 5.])
    """
    x = _t(x)
    if negative_slope < 0:
        raise ValueError(f"relu: negative_slope must be >= 0, got {negative_slope}")
    if max_value is not None and max_value < 0:
        raise ValueError(f"relu: max_value must be >= 0, got {max_value}")
    if negative_slope and max_value is None and threshold == 0:
        return ops.leaky_relu(x, negative_slope)
    negative_part = ops.relu(threshold - x) if negative_slope else None
    if threshold != 0:
        out = x * (x > threshold).to(x.dtype)
    elif max_value == 6:
        out, max_value = ops.relu6(x), None
    else:
        out = ops.relu(x)
    if max_value is not None:
        out = ops.clamp(out, 0.0, float(max_value))
    if negative_part is not None:
        out = out - negative_slope * negative_part
    return out


def leaky_relu(x, negative_slope: float = 0.2) -> Tensor:
    """``x`` if positive, else ``negative_slope * x`` (Keras' default slope is 0.2)."""
    return ops.leaky_relu(_t(x), negative_slope)


def relu6(x) -> Tensor:
    """``min(max(x, 0), 6)``."""
    return ops.relu6(_t(x))


def elu(x, alpha: float = 1.0) -> Tensor:
    """``x`` if positive, else ``alpha * (exp(x) - 1)``."""
    return ops.elu(_t(x), alpha)


def selu(x) -> Tensor:
    """Scaled ELU with the self-normalising constants (alpha 1.67326, scale 1.05070)."""
    return ops.selu(_t(x))


def celu(x, alpha: float = 1.0) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return ops.celu(_t(x), alpha)


def gelu(x, approximate: bool = False) -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate=True`` uses the tanh formula."""
    return ops.gelu(_t(x), "tanh" if approximate else "none")


def glu(x, axis: int = -1) -> Tensor:
    """Gated linear unit: split ``x`` in two halves ``a, b`` along ``axis`` and return ``a * sigmoid(b)``."""
    x = _t(x)
    n = x.shape[axis]
    if n % 2:
        raise ValueError(f"glu: axis {axis} must have an even size to split in two halves, got shape "
                         f"{tuple(x.shape)}")
    a, b = ops.split(x, n // 2, axis)
    return a * ops.sigmoid(b)


def sigmoid(x) -> Tensor:
    """``1 / (1 + exp(-x))``."""
    return ops.sigmoid(_t(x))


def hard_sigmoid(x) -> Tensor:
    """Keras 3's piecewise-linear sigmoid ``clip(x / 6 + 0.5, 0, 1)`` (i.e. ``relu6(x + 3) / 6``)."""
    return ops.hardsigmoid(_t(x))


def silu(x) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return ops.silu(_t(x))


swish = silu


def hard_silu(x) -> Tensor:
    """``x * hard_sigmoid(x)`` (also called hard swish)."""
    return ops.hardswish(_t(x))


hard_swish = hard_silu


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return ops.tanh(_t(x))


def hard_tanh(x) -> Tensor:
    """``clip(x, -1, 1)``."""
    return ops.hardtanh(_t(x))


def softplus(x) -> Tensor:
    """``log(1 + exp(x))``, without overflow."""
    return ops.softplus(_t(x))


def softsign(x) -> Tensor:
    """``x / (1 + |x|)``."""
    return ops.softsign(_t(x))


def soft_shrink(x, threshold: float = 0.5) -> Tensor:
    """``x - threshold`` above it, ``x + threshold`` below ``-threshold``, else 0."""
    return ops.softshrink(_t(x), threshold)


def hard_shrink(x, threshold: float = 0.5) -> Tensor:
    """``x`` where ``|x| > threshold``, else 0."""
    return ops.hardshrink(_t(x), threshold)


def tanh_shrink(x) -> Tensor:
    """``x - tanh(x)``."""
    return ops.tanhshrink(_t(x))


def log_sigmoid(x) -> Tensor:
    """``log(sigmoid(x))``, stable for very negative ``x``."""
    return ops.logsigmoid(_t(x))


def mish(x) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return ops.mish(_t(x))


def exponential(x) -> Tensor:
    """``exp(x)``."""
    return ops.exp(_t(x))


def _warn_single(x: Tensor, axis) -> None:
    if isinstance(axis, int) and x.ndim and x.shape[axis] == 1:
        warnings.warn(f"You are using a softmax over axis {axis} of a tensor of shape {tuple(x.shape)}. This axis "
                      f"has size 1. The softmax operation will always return the value 1, which is likely not what "
                      f"you intended. Did you mean to use a sigmoid instead?", stacklevel=3)


def softmax(x, axis: int | tuple = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis`` (an int or a tuple of axes).

    >>> import ember
    >>> ember.activations.softmax(ember.tensor([[0.0, 0.0]]))
    tensor([[0.5000, 0.5000]])
    """
    x = _t(x)
    _warn_single(x, axis)
    if isinstance(axis, int):
        return ops.softmax(x, axis)
    return ops.exp(x - ops.logsumexp(x, tuple(axis), keepdim=True))


def log_softmax(x, axis: int | tuple = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis`` (an int or a tuple of axes)."""
    x = _t(x)
    if isinstance(axis, int):
        return ops.log_softmax(x, axis)
    return x - ops.logsumexp(x, tuple(axis), keepdim=True)


def linear(x):
    """The identity: ``x`` unchanged (what ``activation=None`` means)."""
    return x


_ALIASES = {"swish": swish, "hard_swish": hard_swish}
ALL_OBJECTS_DICT: dict = {name: globals()[name] for name in __all__ if name not in ("get", "serialize", "deserialize")}
ALL_OBJECTS_DICT.update(_ALIASES)


def serialize(activation) -> str:
    """The name of a built-in activation (what a layer's config stores), as Keras' ``activations.serialize``."""
    name = getattr(activation, "__name__", None)
    if name in ALL_OBJECTS_DICT and ALL_OBJECTS_DICT[name] is activation:
        return name
    raise ValueError(f"serialize: {activation!r} is not a built-in activation; known activations: "
                     f"{', '.join(sorted(ALL_OBJECTS_DICT))}")


def deserialize(config, custom_objects: dict | None = None):
    """The activation function for a name, or for a Keras dict ``{'class_name': 'function', 'config': name}``."""
    table = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    name = config
    if isinstance(config, dict):
        name = config.get("config") if config.get("class_name") == "function" else config.get("class_name")
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"Could not interpret activation function identifier: {config!r}. Known activations: "
                         f"{', '.join(sorted(table))}")
    return table[name]


def get(identifier):
    """Resolve an activation: None (linear), a name ('relu', 'softmax', ...), a dict, or any callable."""
    if identifier is None:
        return linear
    obj = deserialize(identifier) if isinstance(identifier, (str, dict)) else identifier
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}. Known activations: "
                     f"{', '.join(sorted(ALL_OBJECTS_DICT))}")
