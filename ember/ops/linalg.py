"""Matrix products: ``matmul`` (batched, broadcast, 1-D cases), the fused ``linear``, ``einsum``, ``outer``, ``dot``."""
from __future__ import annotations

import string

from .. import dtypes as _dt
from ..autograd.grad_mode import _state
from ..backend import matmul as _matmul
from ._util import Op, OpError, Tensor, _wrap, as_tensor_arg, operands, sum_to, tensor_method

__all__ = ["matmul", "linear", "mm", "bmm", "einsum", "outer", "ger", "dot"]


def _mT(t: Tensor) -> Tensor:
    from .shape import transpose
    return transpose(t, -1, -2)


class MatMul(Op):
    save_inputs = (0, 1)

    def forward(self, a, b):
        return _matmul(self.xp, a, b)

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


@tensor_method()
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """2-D matrix product."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise OpError(f"mm: expected 2-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


@tensor_method()
def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched (3-D) matrix product; the batch sizes must be equal (no broadcasting, as in PyTorch)."""
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise OpError(f"bmm: expected 3-D tensors with the same batch size, got shapes {tuple(input.shape)} and "
                      f"{tuple(mat2.shape)}")
    return matmul(input, mat2)


class Linear(Op):
    """``x @ weight.T + bias`` in one op: one BLAS call, the bias added in place, no transposed copy."""

    save_inputs = (0, 1)

    def forward(self, x, w, b=None):
        out = _matmul(self.xp, x, w.T)
        if b is not None:
            out += b
        return out

    def backward(self, g):
        from .reduce import sum as _sum
        from .shape import reshape
        x, w = self.saved_tensors
        ex, ew = self.edges[0], self.edges[1]
        eb = self.edges[2] if len(self.edges) > 2 else None
        if not _state.enabled:
            # first-order backward (no graph to build): the same three products straight on the arrays,
            # skipping per-op dispatch on the hottest path of training
            gd = g.data
            g2 = gd.reshape(-1, gd.shape[-1])
            xp = self.xp
            return ((_wrap(_matmul(xp, gd, w.data)) if ex else None),
                    (_wrap(_matmul(xp, g2.T, x.data.reshape(-1, x.data.shape[-1]))) if ew else None),
                    (_wrap(g2.sum(0)) if eb else None))
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
    if input.data.dtype != weight.data.dtype and _state.autocast is None:  # autocast casts
        raise OpError(f"linear: input dtype {input.dtype} does not match weight dtype {weight.dtype}; convert the "
                      "input (x.float()) or the module (module.to(dtype))")
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


@tensor_method("outer", "ger")
def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """Outer product of two 1-D tensors: ``out[i, j] = input[i] * vec2[j]``."""
    from .shape import reshape
    if input.ndim != 1 or vec2.ndim != 1:
        raise OpError(f"outer: expected two 1-D tensors, got shapes {tuple(input.shape)} and {tuple(vec2.shape)}")
    return reshape(input, (-1, 1)) * reshape(vec2, (1, -1))


ger = outer


@tensor_method()
def dot(input: Tensor, tensor: Tensor) -> Tensor:
    """Inner product of two 1-D tensors of the same length and dtype (a 0-d tensor)."""
    if input.ndim != 1 or tensor.ndim != 1 or input.shape[0] != tensor.shape[0]:
        raise OpError(f"dot: expected two 1-D tensors of the same length, got shapes {tuple(input.shape)} and "
                      f"{tuple(tensor.shape)}")
    if input.dtype != tensor.dtype:
        raise OpError(f"dot: expected both vectors to have the same dtype, got {input.dtype} and {tensor.dtype}")
    return matmul(input, tensor)


class Einsum(Op):
    """Einstein summation; the gradient of each operand is another einsum (deltas restore repeated indices)."""

    name_ = "einsum"

    def forward(self, *arrays, terms, out):
        sizes = {}
        for term, a in zip(terms, arrays):
            for c, n in zip(term, a.shape):
                sizes[c] = max(sizes.get(c, 1), n)
        self.sizes = sizes
        res = self.xp.einsum(",".join(terms) + "->" + out, *arrays, optimize=len(arrays) > 1)
        if len(arrays) == 1 and getattr(res, "base", None) is not None:
            res = res.copy()   # a single-operand einsum can be a view; results never alias inputs
        return res

    def backward(self, g):
        ops = self.saved_tensors
        terms, out = self.attrs["terms"], self.attrs["out"]
        xp, sizes = self.xp, self.sizes
        pool = [c for c in string.ascii_letters if c not in sizes]
        grads = []
        for i, e in enumerate(self.edges):
            if e is None:
                grads.append(None)
                continue
            target, extra_terms, extra_ops, seen = [], [], [], []
            for c in terms[i]:
                if c in seen:           # a repeated index (a diagonal): a fresh index tied to it by a delta
                    f = pool.pop()
                    target.append(f)
                    extra_terms.append(c + f)
                    extra_ops.append(_wrap(xp.eye(sizes[c], dtype=g.data.dtype)))
                else:
                    seen.append(c)
                    target.append(c)
            present = set(out).union(*(terms[j] for j in range(len(terms)) if j != i), *extra_terms)
            for c in seen:
                if c not in present:    # summed away in this operand only: the gradient is constant along it
                    extra_terms.append(c)
                    extra_ops.append(_wrap(xp.ones(sizes[c], dtype=g.data.dtype)))
            others = [ops[j] for j in range(len(ops)) if j != i]
            in_terms = (out,) + tuple(terms[j] for j in range(len(terms)) if j != i) + tuple(extra_terms)
            r = _apply_einsum(in_terms, "".join(target), [g, *others, *extra_ops])
            grads.append(sum_to(r, ops[i].data.shape))
        return tuple(grads)


_EINSUM_CLASSES: dict = {}


def _apply_einsum(terms, out, tensors):
    n = len(tensors)
    cls = _EINSUM_CLASSES.get(n)
    if cls is None:
        cls = _EINSUM_CLASSES[n] = type("Einsum", (Einsum,), {"save_inputs": tuple(range(n))})
    return cls.apply(*tensors, terms=tuple(terms), out=out)


def _parse_einsum(equation: str, shapes):
    """Explicit subscripts for every operand and the output, with ``...`` spelled out as unused letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")

    def fail(why):
        raise OpError(f"einsum: {why} (equation {equation!r}, operand shapes {[tuple(s) for s in shapes]})")
    if len(terms) != len(shapes):
        fail(f"the equation has {len(terms)} operand(s) but {len(shapes)} were given")
    for t in [*terms, rhs]:
        if t.count("...") > 1 or any(c not in string.ascii_letters for c in t.replace("...", "")):
            fail("subscripts must be letters, with at most one '...' per operand")
    used = set(eq) - set(".,->")
    free = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for t, s in zip(terms, shapes):
        named = len(t.replace("...", ""))
        if ("..." in t and named > len(s)) or ("..." not in t and named != len(s)):
            fail(f"subscripts {t!r} do not match an operand with {len(s)} dims")
        if "..." in t:
            n_ell = max(n_ell, len(s) - named)
    ell = "".join(free[:n_ell])
    out_terms = [t.replace("...", ell[n_ell - (len(s) - len(t) + 3):]) for t, s in zip(terms, shapes)]
    if arrow:
        rhs = rhs.replace("...", ell)
        letters = set("".join(out_terms))
        if len(set(rhs)) != len(rhs) or any(c not in letters for c in rhs):
            fail(f"output subscripts {rhs!r} must be distinct and appear in the inputs")
    else:
        counts = {}
        for c in "".join(terms).replace("...", ""):
            counts[c] = counts.get(c, 0) + 1
        rhs = ell + "".join(sorted(c for c, k in counts.items() if k == 1))
    return out_terms, rhs


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation as ``torch.einsum``: repeated indices, ``...`` broadcasting, implicit output.

    >>> import ember
    >>> ember.einsum("ij,jk->ik", ember.ones(2, 3), ember.ones(3, 2))
    tensor([[3., 3.],
            [3., 3.]])
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise OpError(f"einsum: no operands given for equation {equation!r}")
    ts = [as_tensor_arg(o) for o in operands]
    dt = ts[0].data.dtype
    for t in ts[1:]:
        dt = _dt.result_type(dt, t.data.dtype)
    if any(t.data.dtype != dt for t in ts):
        from .elementwise import cast
        ts = [cast(t, _dt.from_np(dt)) for t in ts]
    terms, out = _parse_einsum(equation, [t.data.shape for t in ts])
    return _apply_einsum(terms, out, ts)
