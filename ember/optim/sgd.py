"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from ..backend import array_module
from ..tensor import _wrap
from .optimizer import Optimizer, _check

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD, PyTorch's update rule: ``b = momentum * b + (1 - dampening) * g``; ``p -= lr * (g + momentum * b)``
    with ``nesterov`` else ``p -= lr * b`` (``b = g`` on the first step; ``g`` includes ``weight_decay * p``).

    >>> import ember
    >>> w = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([0.8000, 1.6000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        _check("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _step_group(self, group: dict) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        for p, w, g, xp, state in self._updates(group, count_steps=False):
            g = self._grad(state, w, g, group["weight_decay"], group["maximize"])
            tmp = self._buffer(state, "_tmp", w)
            if momentum:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= momentum
                    if dampening:
                        xp.multiply(g, 1 - dampening, out=tmp)
                        buf += tmp
                    else:
                        buf += g
                if group["nesterov"]:
                    xp.multiply(buf, momentum, out=tmp)
                    tmp += g
                    g = tmp
                else:
                    g = buf
            xp.multiply(g, lr, out=tmp)
            w -= tmp

    # ------------------------------------------------------------ graph mode (see Optimizer._traced_step)
    def _graph_scalars(self, state: dict, group: dict, w) -> dict:
        first = False
        if group["momentum"] and "momentum_buffer" not in state:
            state["momentum_buffer"] = array_module(w).zeros_like(w)
            first = True                          # PyTorch seeds the buffer with g itself: weight 1, not 1 - dampening
        return {"lr": group["lr"], "g_weight": 1.0 if first else 1.0 - group["dampening"]}

    def _graph_update(self, p, state: dict, group: dict, scalars: dict) -> list:
        momentum = group["momentum"]
        g = -p.grad if group["maximize"] else p.grad
        if group["weight_decay"]:
            g = g + p * group["weight_decay"]
        out = []
        if momentum:
            buf = _wrap(state["momentum_buffer"])
            new_buf = buf * momentum + g * scalars["g_weight"]
            out.append((buf, new_buf))
            g = g + new_buf * momentum if group["nesterov"] else new_buf
        out.append((p, p - g * scalars["lr"]))
        return out
