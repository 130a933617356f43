"""PyTorch's ``torch.nn.functional`` names: the ops behind the layers, and the loss functions.

Activation, softmax, shape, convolution, pooling, normalization, attention and recurrent ops
live in :mod:`ember.ops`; they are forwarded here by name on first use, so ``F.relu`` is exactly
``ember.ops.activation.relu`` and ``F.conv2d`` is ``ember.ops.conv.conv2d``.

>>> import ember
>>> import ember.nn.functional as F
>>> F.mse_loss(ember.tensor([1.0, 3.0]), ember.tensor([1.0, 1.0]))
tensor(2.)
"""
from __future__ import annotations

import importlib

from ..ops.linalg import linear
from ._cross_entropy import cross_entropy, nll_loss
from ._losses import (binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss, kl_div, l1_loss, mse_loss,
                      smooth_l1_loss)
from .modules.dropout import dropout

# ops forwarded from ember.ops by name (resolved lazily: the op families are developed independently)
_FORWARDED = ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid", "tanh",
              "softplus", "softsign", "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink",
              "softshrink", "hardshrink", "threshold", "prelu", "softmax", "log_softmax", "one_hot", "pad")
# every public name (``__all__``) of these op families is forwarded too
_SEARCH = ("activation", "softmax", "index", "join", "conv", "pool", "normalization", "attention", "rnn",
           "embedding", "resize")

__all__ = ["linear", "dropout", "softmin", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "huber_loss",
           "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]


def softmin(input, dim=None, dtype=None):
    """``softmax(-input)`` along ``dim``."""
    from ..ops.softmax import softmax
    return softmax(-input, dim, dtype)


def _families():
    return [importlib.import_module(f"ember.ops.{fam}") for fam in _SEARCH]


def _resolve(name: str):
    for mod in _families():
        if name in _FORWARDED or name in getattr(mod, "__all__", ()):
            fn = getattr(mod, name, None)
            if fn is not None:
                return fn
    if name in _FORWARDED:
        return getattr(importlib.import_module("ember.ops"), name, None)
    return None


def __getattr__(name: str):
    fn = _resolve(name)
    if fn is not None:
        globals()[name] = fn
        return fn
    raise AttributeError(f"module 'ember.nn.functional' has no attribute {name!r}")


def __dir__():
    public = {n for mod in _families() for n in getattr(mod, "__all__", ())}
    return sorted(set(globals()) | set(_FORWARDED) | public)
