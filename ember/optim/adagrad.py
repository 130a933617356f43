"""Adagrad: per-coordinate step sizes shrinking with the sum of squared gradients."""
from __future__ import annotations

from ..backend import array_module
from ..tensor import _wrap
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

    # ------------------------------------------------------------ graph mode (ember.jit of a whole step)
    def _graph_scalars(self, state: dict, group: dict, w) -> dict:
        if "step" not in state:
            state.update(step=0, sum=array_module(w).full(w.shape, group["initial_accumulator_value"], w.dtype))
        state["step"] += 1
        return {"clr": group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])}

    def _graph_update(self, p, state: dict, group: dict, scalars: dict) -> list:
        """The same update as :meth:`_step_group`, as Ember ops (new parameter and accumulator)."""
        g = -p.grad if group["maximize"] else p.grad
        if group["weight_decay"]:
            g = g + p * group["weight_decay"]
        s = _wrap(state["sum"])
        new_s = s + g * g
        return [(s, new_s), (p, p - g / (new_s.sqrt() + group["eps"]) * scalars["clr"])]
