"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

from ..backend import array_module
from ..tensor import _wrap
from .optimizer import Optimizer, _check

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's update rule: ``s = alpha s + (1-alpha) g²``, ``p -= lr g / (sqrt(s) + eps)``.

    ``centered`` subtracts the squared running mean of ``g`` from ``s``; ``momentum`` accumulates
    ``b = momentum b + g / (sqrt(s) + eps)`` and steps ``p -= lr b``.

    >>> import ember
    >>> w = ember.tensor([1.0], requires_grad=True)
    >>> opt = RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([0.9000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, maximize: bool = False):
        _check("RMSprop", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _step_group(self, group: dict) -> None:
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        for p, w, g, xp, state in self._updates(group, square_avg=0.0):
            g = self._grad(state, w, g, group["weight_decay"], group["maximize"])
            tmp = self._buffer(state, "_tmp", w)
            sq = state["square_avg"]
            sq *= alpha
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - alpha
            sq += tmp
            if group["centered"]:
                ga = self._buffer(state, "grad_avg", w)
                xp.subtract(g, ga, out=tmp)
                tmp *= 1 - alpha
                ga += tmp
                xp.multiply(ga, ga, out=tmp)
                xp.subtract(sq, tmp, out=tmp)
                xp.sqrt(tmp, out=tmp)
            else:
                xp.sqrt(sq, out=tmp)
            tmp += eps
            xp.divide(g, tmp, out=tmp)
            if momentum > 0:
                buf = self._buffer(state, "momentum_buffer", w)
                buf *= momentum
                buf += tmp
                xp.multiply(buf, lr, out=tmp)
            else:
                tmp *= lr
            w -= tmp

    # ------------------------------------------------------------ graph mode (ember.jit of a whole step)
    def _graph_scalars(self, state: dict, group: dict, w) -> dict:
        xp = array_module(w)
        if "step" not in state:
            state.update(step=0, square_avg=xp.zeros_like(w))
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = xp.zeros_like(w)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = xp.zeros_like(w)
        state["step"] += 1
        return {"lr": group["lr"]}

    def _graph_update(self, p, state: dict, group: dict, scalars: dict) -> list:
        """The same update as :meth:`_step_group`, as Ember ops (new parameter and state tensors)."""
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        g = -p.grad if group["maximize"] else p.grad
        if group["weight_decay"]:
            g = g + p * group["weight_decay"]
        sq = _wrap(state["square_avg"])
        new_sq = sq * alpha + g * g * (1 - alpha)
        out = [(sq, new_sq)]
        if group["centered"]:
            ga = _wrap(state["grad_avg"])
            new_ga = ga + (g - ga) * (1 - alpha)
            out.append((ga, new_ga))
            step = g / ((new_sq - new_ga * new_ga).sqrt() + eps)
        else:
            step = g / (new_sq.sqrt() + eps)
        if momentum > 0:
            buf = _wrap(state["momentum_buffer"])
            step = buf * momentum + step
            out.append((buf, step))
        out.append((p, p - step * scalars["lr"]))
        return out
