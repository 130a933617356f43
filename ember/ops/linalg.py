"""Matrix products: ``matmul`` (batched, broadcast, 1-D cases) and the fused ``linear``."""
from __future__ import annotations

from ._util import Op, OpError, Tensor, operands, sum_to, tensor_method

__all__ = ["matmul", "linear", "mm", "bmm"]


def _mT(t: Tensor) -> Tensor:
    from .shape import transpose
    return transpose(t, -1, -2)


class MatMul(Op):
    save_inputs = (0, 1)

    def forward(self, a, b):
        return self.xp.matmul(a, b)

    def backward(self, g):
        from .shape import reshape, unsqueeze
        a, b = self.saved_tensors
        ea, eb = self.edges
        sa, sb = a.data.shape, b.data.shape
        ga = gb = None
        if len(sa) == 1 and len(sb) == 1:
            return (g * b if ea else None), (g * a if eb else None)
        if len(sa) == 1:
            g2 = unsqueeze(g, -2)
            a2 = reshape(a, (1, sa[0]))
            if ea:
                ga = reshape(sum_to(matmul(g2, _mT(b)), (1, sa[0])), sa)
            if eb:
                gb = sum_to(matmul(_mT(a2), g2), sb)
            return ga, gb
        if len(sb) == 1:
            g2 = unsqueeze(g, -1)
            b2 = reshape(b, (sb[0], 1))
            if ea:
                ga = sum_to(matmul(g2, _mT(b2)), sa)
            if eb:
                gb = reshape(sum_to(matmul(_mT(a), g2), (sb[0], 1)), sb)
            return ga, gb
        if ea:
            ga = sum_to(matmul(g, _mT(b)), sa)
        if eb:
            gb = sum_to(matmul(_mT(a), g), sb)
        return ga, gb


def _check_matmul(a: Tensor, b: Tensor, op: str):
    sa, sb = a.data.shape, b.data.shape
    if len(sa) == 0 or len(sb) == 0:
        raise OpError(f"{op}: both arguments need at least 1 dimension, got shapes {tuple(sa)} and {tuple(sb)}")
    ka = sa[-1]
    kb = sb[-2] if len(sb) > 1 else sb[0]
    if ka != kb:
        raise OpError(f"{op}: cannot multiply shapes {tuple(sa)} and {tuple(sb)} ({a.dtype} and {b.dtype}): the last "
                      f"dim of the first ({ka}) must equal the {'second-to-last' if len(sb) > 1 else 'only'} dim of "
                      f"the second ({kb})")


@tensor_method("matmul", "__matmul__")
def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics: 1-D vectors, batches and broadcast batch dims.

    >>> import ember
    >>> ember.ones(2, 3) @ ember.ones(3)
    tensor([3., 3.])
    """
    a, b = operands(input, other, "matmul")
    _check_matmul(a, b, "matmul")
    return MatMul.apply(a, b)


@tensor_method("__rmatmul__")
def _rmatmul(self, other):
    return matmul(other, self)


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """2-D matrix product."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise OpError(f"mm: expected 2-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched (3-D) matrix product."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise OpError(f"bmm: expected 3-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


class Linear(Op):
    """``x @ weight.T + bias`` in one op: one BLAS call, the bias added in place, no transposed copy."""

    save_inputs = (0, 1)

    def forward(self, x, w, b=None):
        out = self.xp.matmul(x, w.T)
        if b is not None:
            out += b
        return out

    def backward(self, g):
        from .reduce import sum as _sum
        from .shape import reshape
        x, w = self.saved_tensors
        ex, ew = self.edges[0], self.edges[1]
        eb = self.edges[2] if len(self.edges) > 2 else None
        gx = matmul(g, w) if ex else None
        gw = gb = None
        if ew:
            g2 = g if g.data.ndim == 2 else reshape(g, (-1, g.data.shape[-1]))
            x2 = x if x.data.ndim == 2 else reshape(x, (-1, x.data.shape[-1]))
            gw = matmul(_mT(g2), x2)
        if eb:
            gb = _sum(g, tuple(range(g.data.ndim - 1))) if g.data.ndim > 1 else g
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` (PyTorch's ``F.linear``); weight has shape (out_features, in_features)."""
    if input.data.ndim == 0 or weight.data.ndim != 2 or input.data.shape[-1] != weight.data.shape[1]:
        raise OpError(f"linear: input of shape {tuple(input.data.shape)} ({input.dtype}) does not fit a weight of "
                      f"shape {tuple(weight.data.shape)}: expected the input's last dim to be in_features="
                      f"{weight.data.shape[1] if weight.data.ndim == 2 else '?'}")
    if input.data.dtype != weight.data.dtype:
        raise OpError(f"linear: input dtype {input.dtype} does not match weight dtype {weight.dtype}; convert the "
                      "input (x.float()) or the module (module.to(dtype))")
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)
