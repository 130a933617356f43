"""Adam and AdamW: adaptive moment estimation, with optional AMSGrad and decoupled weight decay.

The step is the hot path of training, so it runs as in-place ufuncs on the backend arrays
with one preallocated scratch buffer per parameter (about a dozen passes over memory and no
allocation); with numba installed (``pip install ember-dl[fast]``) CPU arrays take a fused
one-pass kernel instead (:mod:`ember.optim._fused`).
"""
from __future__ import annotations

from ..backend import array_module
from ..tensor import _wrap
from . import _fused
from .optimizer import Optimizer, _check

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's update rule and defaults.

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g²``,
    ``p -= lr / (1-b1^t) * m / (sqrt(v / (1-b2^t)) + eps)``; ``amsgrad`` uses the running max of ``v``;
    ``weight_decay`` adds ``wd * p`` to ``g`` (L2), or with ``decoupled_weight_decay`` scales
    ``p *= 1 - lr * wd`` first (AdamW).

    >>> import ember
    >>> w = ember.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.9000, -0.9000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        _check(type(self).__name__, lr=lr, eps=eps, weight_decay=weight_decay)
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{type(self).__name__}: invalid betas {tuple(betas)} (each must be in [0, 1))")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _step_group(self, group: dict) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        amsgrad, maximize, decoupled = group["amsgrad"], group["maximize"], group["decoupled_weight_decay"]
        for p, w, g, xp, state in self._updates(group, exp_avg=0.0, exp_avg_sq=0.0):
            step = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            vmax = self._buffer(state, "max_exp_avg_sq", w) if amsgrad else None
            bc1 = 1 - b1 ** step
            bc2_sqrt = (1 - b2 ** step) ** 0.5
            # p -= lr/bc1 * m / (sqrt(v)/bc2_sqrt + eps)  ==  p -= (lr*bc2_sqrt/bc1) * m / (sqrt(v) + eps*bc2_sqrt)
            step_size, eps_hat = lr * bc2_sqrt / bc1, eps * bc2_sqrt
            if _fused.adam(w, g, m, v, vmax, b1, b2, step_size, eps_hat, wd, lr, maximize, decoupled):
                continue
            if decoupled and wd:
                w *= 1 - lr * wd
            g = self._grad(state, w, g, 0.0 if decoupled else wd, maximize)
            tmp = self._buffer(state, "_tmp", w)
            xp.subtract(g, m, out=tmp)          # m = lerp(m, g, 1 - b1)
            tmp *= 1 - b1
            m += tmp
            v *= b2                             # v = b2 v + (1 - b2) g²
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            if amsgrad:
                xp.maximum(vmax, v, out=vmax)
                v = vmax
            xp.sqrt(v, out=tmp)
            tmp += eps_hat
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            w -= tmp


    # ------------------------------------------------------------ graph mode (see Optimizer._traced_step)
    def _graph_scalars(self, state: dict, group: dict, w) -> dict:
        xp = array_module(w)
        if "step" not in state:
            state.update(step=0, exp_avg=xp.zeros_like(w), exp_avg_sq=xp.zeros_like(w))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(w)
        state["step"] += 1
        (b1, b2), lr, step = group["betas"], group["lr"], state["step"]
        bc2_sqrt = (1 - b2 ** step) ** 0.5
        return {"step_size": lr * bc2_sqrt / (1 - b1 ** step), "eps_hat": group["eps"] * bc2_sqrt,
                "decay": 1 - lr * group["weight_decay"]}

    def _graph_update(self, p, state: dict, group: dict, scalars: dict) -> list:
        from ..ops.elementwise import maximum
        (b1, b2), wd = group["betas"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        w = p * scalars["decay"] if decoupled and wd else p
        g = -p.grad if group["maximize"] else p.grad
        if wd and not decoupled:
            g = g + w * wd
        m, v = _wrap(state["exp_avg"]), _wrap(state["exp_avg_sq"])
        m_new = m + (g - m) * (1 - b1)
        v_new = v * b2 + g * g * (1 - b2)
        out = [(m, m_new), (v, v_new)]
        if group["amsgrad"]:
            vmax = _wrap(state["max_exp_avg_sq"])
            v_new = maximum(vmax, v_new)
            out.append((vmax, v_new))
        out.append((p, w - m_new / (v_new.sqrt() + scalars["eps_hat"]) * scalars["step_size"]))
        return out


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` before the step."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
