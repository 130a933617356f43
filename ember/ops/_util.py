"""Small helpers shared by op families: operand promotion, axis normalisation, gradient reduction."""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd.node import Op, OpError, describe
from ..backend import ndarray_types
from ..tensor import Tensor, _is_scalar, _wrap

__all__ = ["Op", "OpError", "Tensor", "as_tensor_arg", "operands", "norm_axis", "norm_axes", "sum_to", "tensor_method",
           "describe", "_wrap", "_is_scalar"]

TENSOR_METHODS: dict = {}


def tensor_method(*names):
    """Register a function as ``Tensor.<name>`` for each name (default: the function's own name)."""
    def deco(fn):
        for n in names or (fn.__name__,):
            TENSOR_METHODS[n] = fn
        return fn
    return deco


def as_tensor_arg(x, like: Tensor | None = None) -> Tensor:
    """Turn an array, list or scalar into a Tensor (for ops that need tensor inputs)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, ndarray_types):
        return _wrap(x)
    if like is not None and _is_scalar(x):
        from ..creation import _made        # a constant (of a traced graph too)
        return _made(like.xp.asarray(x, dtype=_dt.promote_scalar(like.data.dtype, x)))
    return Tensor(x)


def operands(a, b, op: str):
    """Promote the two operands of a binary op following PyTorch's rules; scalars stay Python scalars."""
    from .elementwise import cast
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a.data.dtype, b.data.dtype
        if da is db or da == db:
            return a, b
        rt = _dt.result_type(da, db)
        if (a.data.ndim == 0) != (b.data.ndim == 0):
            # as in PyTorch, a 0-d tensor only widens a dimensioned one into a higher category
            zero_d, dimensioned = (da, db) if a.data.ndim == 0 else (db, da)
            if _dt.from_np(zero_d).category <= _dt.from_np(dimensioned).category:
                rt = dimensioned
        return (a if da == rt else cast(a, _dt.from_np(rt))), (b if db == rt else cast(b, _dt.from_np(rt)))
    if ta:
        if _is_scalar(b):
            b = b.item() if hasattr(b, "item") else b     # NumPy scalars promote like Python numbers
            rt = _dt.promote_scalar(a.data.dtype, b)
            return (a if rt == a.data.dtype else cast(a, _dt.from_np(rt))), b
        return operands(a, as_tensor_arg(b), op)
    if tb:
        if _is_scalar(a):
            a = a.item() if hasattr(a, "item") else a
            rt = _dt.promote_scalar(b.data.dtype, a)
            return a, (b if rt == b.data.dtype else cast(b, _dt.from_np(rt)))
        return operands(as_tensor_arg(a), b, op)
    raise OpError(f"{op}: expected at least one tensor operand, got {describe((a, b))}")


def norm_axis(axis: int, ndim: int, op: str) -> int:
    """Turn a possibly negative axis into a positive one, with a clear error when out of range."""
    n = max(ndim, 1)
    if not -n <= axis < n:
        raise OpError(f"{op}: dimension {axis} is out of range for a tensor with {ndim} dims "
                      f"(expected a value in [{-n}, {n - 1}])")
    return axis % n


def norm_axes(dim, ndim: int, op: str):
    """``dim`` (None, int or sequence) as a sorted tuple of positive axes, or None for all axes."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return None
        axes = tuple(sorted(norm_axis(int(d), ndim, op) for d in dim))
        if len(set(axes)) != len(axes):
            raise OpError(f"{op}: dimension repeated in dim={tuple(dim)}")
        return axes
    return (norm_axis(int(dim), ndim, op),)


class SumTo(Op):
    """Sum a broadcast gradient back to an input's shape (the VJP of broadcasting)."""

    def forward(self, g, shape):
        xp = self.xp
        self.in_shape = g.shape
        lead = g.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
        out = g.sum(axis=axes, keepdims=True) if axes else g
        return xp.reshape(out, shape) if lead else out

    def backward(self, grad):
        from .shape import expand
        return expand(grad, self.in_shape)


def sum_to(g: Tensor, shape) -> Tensor:
    """``g`` summed over the axes that broadcasting added or stretched, giving ``shape``."""
    if g.data.shape == shape:
        return g
    return SumTo.apply(g, shape=tuple(shape))
