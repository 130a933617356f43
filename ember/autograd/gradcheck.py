"""Finite-difference checks of gradients: ``gradcheck`` and ``gradgradcheck`` (use float64 inputs)."""
from __future__ import annotations

import warnings

from ..tensor import Tensor, _wrap
from .engine import grad as _grad

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytical gradient differs from the finite-difference one."""


def _outputs(func, inputs):
    out = func(*inputs)
    return (out,) if isinstance(out, Tensor) else tuple(o for o in out if isinstance(o, Tensor))


def _numerical_jacobian(func, inputs, i, eps):
    """d(outputs)/d(inputs[i]) by central differences, one column per input element."""
    x = inputs[i]
    flat = x.data.reshape(-1)
    cols = []
    for k in range(flat.size):   # grad mode stays on: gradgradcheck's func itself takes gradients
        orig = flat[k].item()
        flat[k] = orig + eps
        plus = [o.data.astype("float64").reshape(-1).copy() for o in _outputs(func, inputs)]
        flat[k] = orig - eps
        minus = [o.data.astype("float64").reshape(-1).copy() for o in _outputs(func, inputs)]
        flat[k] = orig
        cols.append([(p - m) / (2 * eps) for p, m in zip(plus, minus)])
    return cols


def gradcheck(func, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0) -> bool:
    """Compare ``func``'s autograd gradients with central finite differences.

    Every input that requires grad is perturbed element by element; every output
    element's gradient is computed with ``autograd.grad``. Inputs should be float64.

    >>> import ember
    >>> x = ember.randn(3, dtype=ember.float64, requires_grad=True)
    >>> ember.autograd.gradcheck(lambda t: (t * t).sum(), (x,))
    True
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in diff_idx:
        if inputs[i].data.dtype.kind == "f" and inputs[i].data.dtype.itemsize < 8:
            warnings.warn("gradcheck: input is not float64; finite differences will be imprecise", stacklevel=2)
    outs = _outputs(func, inputs)
    for i in diff_idx:
        numeric = _numerical_jacobian(func, inputs, i, eps)
        x = inputs[i]
        for oi, out in enumerate(outs):
            xp = out.xp
            n_out = out.data.size
            analytic = xp.zeros((n_out, x.data.size))
            if out.requires_grad:
                for r in range(n_out):
                    go = xp.zeros(out.data.size, out.data.dtype)
                    go[r] = 1
                    (g,) = _grad(out, x, _wrap(go.reshape(out.data.shape)), retain_graph=True, allow_unused=True)
                    if g is not None:
                        analytic[r] = g.data.reshape(-1)
            num = xp.stack([c[oi] for c in numeric], axis=1) if numeric else xp.zeros((n_out, 0))
            bad = ~xp.isclose(analytic, num, rtol=rtol, atol=atol, equal_nan=False)
            if bad.any():
                r, c = [int(v[0]) for v in xp.nonzero(bad)]
                msg = (f"gradcheck: Jacobian mismatch for output {oi} with respect to input {i} at "
                       f"(output element {r}, input element {c}): analytical {analytic[r, c]:.8g} vs numerical "
                       f"{num[r, c]:.8g}; {int(bad.sum())} of {bad.size} entries differ (atol={atol}, rtol={rtol})")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck of the (create_graph) gradient of ``func``."""
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    outs = _outputs(func, inputs)
    if grad_outputs is None:
        from ..backend import rng
        grad_outputs = [_wrap(rng().standard_normal(o.data.shape).astype(o.data.dtype)) for o in outs]
    gos = list(grad_outputs)

    def first_grads(*xs):
        return _grad(_outputs(func, xs), [x for x in xs if isinstance(x, Tensor) and x.requires_grad], gos,
                     create_graph=True, allow_unused=True, materialize_grads=True)
    if not diff:
        return True
    return gradcheck(first_grads, inputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
