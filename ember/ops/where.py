"""Selection ops: ``where``."""
from __future__ import annotations

from .. import dtypes as _dt
from ..creation import _made
from ._util import Op, Tensor, _is_scalar, as_tensor_arg, sum_to, tensor_method

__all__ = ["where"]


class Where(Op):
    """Select from two arrays by a boolean mask; each gradient is ``g`` where its side was chosen, else 0."""

    save_inputs = (0,)

    def forward(self, cond, a, b):
        self.shapes = getattr(a, "shape", ()), getattr(b, "shape", ())
        return self.xp.where(cond, a, b)

    def backward(self, g):
        (cond,) = self.saved_tensors
        _, ea, eb = self.edges
        ga = sum_to(Where.apply(cond, g, 0.0), self.shapes[0]) if ea else None
        gb = sum_to(Where.apply(cond, 0.0, g), self.shapes[1]) if eb else None
        return None, ga, gb


@tensor_method("where")
def _where_method(self, condition, other) -> Tensor:
    """``x.where(condition, y)`` is ``where(condition, x, y)``, as in PyTorch."""
    return where(condition, self, other)


def where(condition, input=None, other=None) -> Tensor:
    """Pick ``input`` where ``condition`` holds, else ``other`` (broadcast; scalars allowed)."""
    cond = as_tensor_arg(condition)
    if input is None and other is None:
        from .index import nonzero
        return nonzero(cond, as_tuple=True)
    if cond.data.dtype.kind != "b":
        cond = Tensor(cond.data.astype(bool))
    ta, tb = isinstance(input, Tensor), isinstance(other, Tensor)
    if ta and tb:
        from ._util import operands
        a, b = operands(input, other, "where")
    elif ta:
        a, b = input, (other if _is_scalar(other) else as_tensor_arg(other, input))
        if _is_scalar(b):                       # a constant (of a traced graph too)
            b = _made(input.xp.asarray(b, dtype=_dt.promote_scalar(input.data.dtype, b)))
    elif tb:
        a, b = (input if _is_scalar(input) else as_tensor_arg(input, other)), other
        if _is_scalar(a):
            a = _made(other.xp.asarray(a, dtype=_dt.promote_scalar(other.data.dtype, a)))
    else:
        a = as_tensor_arg(input)
        b = as_tensor_arg(other, a)
    return Where.apply(cond, a, b)
