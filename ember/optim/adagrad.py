"""Adagrad: per-coordinate step sizes shrinking with the sum of squared gradients."""
from __future__ import annotations

from .optimizer import Optimizer, _check

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), PyTorch's update rule: ``s += g²``, ``p -= clr g / (sqrt(s) + eps)``
    with ``clr = lr / (1 + (t - 1) lr_decay)``.

    >>> import ember
    >>> w = ember.tensor([1.0], requires_grad=True)
    >>> opt = Adagrad([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([0.9000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False):
        _check("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
               initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _step_group(self, group: dict) -> None:
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        for p, w, g, xp, state in self._updates(group, sum=group["initial_accumulator_value"]):
            step = state["step"]
            g = self._grad(state, w, g, group["weight_decay"], group["maximize"])
            clr = lr / (1 + (step - 1) * lr_decay)
            tmp = self._buffer(state, "_tmp", w)
            s = state["sum"]
            xp.multiply(g, g, out=tmp)
            s += tmp
            xp.sqrt(s, out=tmp)
            tmp += eps
            xp.divide(g, tmp, out=tmp)
            tmp *= clr
            w -= tmp
