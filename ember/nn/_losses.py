"""Regression, binary and divergence losses, composed from differentiable Ember ops.

Each takes ``reduction='mean' | 'sum' | 'none'`` as in PyTorch.
"""
from __future__ import annotations

import warnings

from ..backend import broadcast_shapes, errstate
from ..dtypes import is_float
from ..ops._util import Op, OpError, Tensor, as_tensor_arg, describe
from ._util import check_reduction

__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div"]


def _weight(weight, input: Tensor, who: str, name: str = "weight") -> Tensor:
    """``weight`` (a Tensor, array or list) as a Tensor that broadcasts to the input's shape."""
    w = as_tensor_arg(weight, input)
    shape = tuple(input.shape)
    try:
        ok = broadcast_shapes(tuple(w.shape), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise OpError(f"{who}: {name} of shape {tuple(w.shape)} cannot be broadcast to the input's shape {shape}")
    return w


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    from ..ops.reduce import mean, sum
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


def _pair(input, target, who: str, strict: bool = False):
    """Check a (input, target) pair of floating tensors; PyTorch broadcasts different shapes with a warning."""
    if not isinstance(input, Tensor):
        raise OpError(f"{who}: expected input to be an ember.Tensor, got {type(input).__name__}")
    target = as_tensor_arg(target, input)
    if not is_float(input.data.dtype) or not is_float(target.data.dtype):
        raise OpError(f"{who}: expected floating point input and target, got {describe((input, target))}")
    if tuple(input.shape) != tuple(target.shape):
        if strict:
            raise OpError(f"{who}: target of shape {tuple(target.shape)} must have the same shape as input "
                          f"{tuple(input.shape)}")
        warnings.warn(f"{who}: using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}); the two are broadcast, which is likely not what you want.",
                      stacklevel=3)
        try:
            broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise OpError(f"{who}: target of shape {tuple(target.shape)} cannot be broadcast with input of shape "
                          f"{tuple(input.shape)}") from None
    return input, target


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(input - target)^2``.

    >>> import ember
    >>> ember.nn.functional.mse_loss(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 4.0]))
    tensor(2.)
    """
    check_reduction(reduction, "mse_loss")
    input, target = _pair(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|input - target|``."""
    from ..ops import abs
    check_reduction(reduction, "l1_loss")
    input, target = _pair(input, target, "l1_loss")
    return _reduce(abs(input - target), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``."""
    from ..ops import abs
    from ..ops.where import where
    check_reduction(reduction, "huber_loss")
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    input, target = _pair(input, target, "huber_loss")
    d = input - target
    ad = abs(d)
    return _reduce(where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (plain L1 when beta is 0)."""
    from ..ops import abs
    from ..ops.where import where
    check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    input, target = _pair(input, target, "smooth_l1_loss")
    d = input - target
    ad = abs(d)
    if beta == 0:
        return _reduce(ad, reduction)
    return _reduce(where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta), reduction)


class BinaryCrossEntropy(Op):
    """Elementwise ``-(y log x + (1-y) log(1-x))`` with logs clamped at -100, and PyTorch's gradients:
    ``(x - y) / max(x (1 - x), 1e-12)`` for x (finite at 0 and 1) and ``-logit(x)`` for y."""

    name_ = "binary_cross_entropy"
    save_inputs = (0, 1)

    def forward(self, x, y):
        xp = self.xp
        with errstate(xp, divide="ignore"):
            lx = xp.maximum(xp.log(x), -100)
            l1x = xp.maximum(xp.log1p(-x), -100)
        return -(y * lx + (1 - y) * l1x)

    def backward(self, g):
        from ..ops.elementwise import maximum
        from ..ops.unary import log
        x, y = self.saved_tensors
        ex, ey = self.edges
        gx = g * (x - y) / maximum(x * (1 - x), 1e-12) if ex else None
        gy = None
        if ey:
            gy = g * (log(1 - x) - log(x))   # -logit(x), unclamped as in PyTorch
        return gx, gy


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy between probabilities ``input`` in [0, 1] and ``target`` (same shape).

    >>> import ember
    >>> ember.nn.functional.binary_cross_entropy(ember.tensor([0.5, 0.5]), ember.tensor([1.0, 0.0]))
    tensor(0.6931)
    """
    check_reduction(reduction, "binary_cross_entropy")
    input, target = _pair(input, target, "binary_cross_entropy", strict=True)
    x = input.data
    if x.size and bool(((x < 0) | (x > 1)).any()):
        raise OpError(f"binary_cross_entropy: all elements of input should be between 0 and 1 (got values in "
                      f"[{float(x.min())}, {float(x.max())}]); use binary_cross_entropy_with_logits for logits")
    loss = BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        loss = loss * _weight(weight, input, "binary_cross_entropy")
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula: ``(1-y) x + (1 + (pw-1) y) softplus(-x)``.

    >>> import ember
    >>> ember.nn.functional.binary_cross_entropy_with_logits(ember.tensor([0.0]), ember.tensor([1.0]))
    tensor(0.6931)
    """
    from ..ops.activation import softplus
    check_reduction(reduction, "binary_cross_entropy_with_logits")
    input, target = _pair(input, target, "binary_cross_entropy_with_logits", strict=True)
    sp = softplus(-input)
    if pos_weight is not None:
        pw = _weight(pos_weight, input, "binary_cross_entropy_with_logits", "pos_weight")
        loss = (1 - target) * input + (1 + (pw - 1) * target) * sp
    else:
        loss = (1 - target) * input + sp
    if weight is not None:
        loss = loss * _weight(weight, input, "binary_cross_entropy_with_logits")
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL divergence ``target * (log target - input)`` with ``input`` log-probabilities.

    ``reduction='batchmean'`` divides the sum by the batch size (the mathematically correct KL);
    ``log_target=True`` takes the target as log-probabilities too.
    """
    from ..ops.reduce import sum
    from ..ops.unary import exp, log
    from ..ops.where import where
    check_reduction(reduction, "kl_div", ("mean", "batchmean", "sum", "none"))
    input, target = _pair(input, target, "kl_div")
    if log_target:
        loss = exp(target) * (target - input)
    else:
        pos = target > 0
        loss = where(pos, target * log(where(pos, target, 1.0)), 0.0) - target * input
    if reduction == "batchmean":
        total = sum(loss)
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)
