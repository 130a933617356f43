"""Gradient clipping: rescale gradients by their total norm, or clamp them elementwise, in place."""
from __future__ import annotations

import math
from typing import Iterable

from ember.backend import array_module, errstate
from ember.tensor import Tensor, _wrap

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad.data for p in parameters if p.grad is not None]


def _norm(xp, g, norm_type: float):
    """The ``norm_type``-norm of one gradient array, as a 0-d array of its dtype."""
    if norm_type == 2.0:
        flat = g.reshape(-1)
        return xp.sqrt(xp.dot(flat, flat))
    a = xp.abs(g)
    if norm_type == math.inf:
        return a.max() if a.size else xp.zeros((), g.dtype)
    if norm_type == -math.inf:
        return a.min() if a.size else xp.asarray(math.inf, g.dtype)
    if norm_type == 0:
        return xp.asarray(xp.count_nonzero(a), g.dtype)
    return xp.sum(a ** norm_type) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale all gradients together so that their combined norm is at most ``max_norm``; returns that norm.

    The norm is taken over all gradients as if concatenated into one vector (``norm_type``
    may be ``inf``). Gradients are multiplied by ``min(1, max_norm / (total_norm + 1e-6))``.

    >>> import ember
    >>> w = ember.tensor([3.0, 4.0], requires_grad=True)
    >>> w.grad = ember.tensor([3.0, 4.0])
    >>> clip_grad_norm_([w], max_norm=1.0)
    tensor(5.)
    >>> w.grad
    tensor([0.6000, 0.8000])
    """
    grads = _grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return _wrap(array_module(None).zeros((), "float32"))
    xp = array_module(grads[0])
    norms = xp.stack([_norm(xp, g, norm_type) for g in grads])
    total = _norm(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite "
                           f"({float(total)}), so it cannot be clipped; set error_if_nonfinite=False to scale "
                           "anyway")
    coef = min(max_norm / (float(total) + 1e-6), 1.0)
    if coef != 1.0:  # NaN too, as PyTorch (an infinite norm scales the gradients to 0 and NaN, silently)
        with errstate(xp, invalid="ignore"):
            for g in grads:
                g *= coef
    return _wrap(xp.asarray(total))


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient elementwise into ``[-clip_value, clip_value]``, in place.

    >>> import ember
    >>> w = ember.zeros(3, requires_grad=True)
    >>> w.grad = ember.tensor([-5.0, 0.5, 5.0])
    >>> clip_grad_value_([w], 1.0)
    >>> w.grad
    tensor([-1.0000,  0.5000,  1.0000])
    """
    clip_value = float(clip_value)
    for g in _grads(parameters):
        array_module(g).clip(g, -clip_value, clip_value, out=g)
