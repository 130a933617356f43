"""Indexing: ``x[idx]``, ``x[idx] = v``, index_put, masks, with scatter-add as the gradient of a gather.

``x[idx] = v`` is recorded as an out-of-place ``IndexPut`` whose result takes over
``x``'s data and graph node (``x`` is *rebased*, as PyTorch does); without a graph it
writes into ``x``'s array directly, so earlier views of ``x`` see the change.
"""
from __future__ import annotations

from ..autograd.grad_mode import _state
from ..backend import broadcast_shapes, scatter_add_at
from ._util import Op, OpError, Tensor, _is_scalar, _wrap, sum_to, tensor_method
from .shape import _root, permute, reshape

__all__ = ["getitem", "setitem", "index_put", "nonzero", "select", "narrow", "take", "index_select", "masked_fill",
           "masked_select", "one_hot", "IndexOpError"]


class IndexOpError(OpError, IndexError):
    """An index out of range (or of the wrong kind): an ``OpError`` that is also an ``IndexError``."""


def _raw_index(idx):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(_raw_index(i) for i in idx)
    if isinstance(idx, list) and any(isinstance(i, Tensor) for i in idx):
        return [_raw_index(i) for i in idx]
    return idx


def _index_error(op: str, input: Tensor, index, e: Exception):
    cause = e.__cause__ if isinstance(e, OpError) and e.__cause__ is not None else e
    cls = IndexOpError if isinstance(cause, IndexError) else OpError
    return cls(f"{op}: indexing a tensor of shape {tuple(input.data.shape)} with {index!r}: {cause}")


class GetItem(Op):
    def forward(self, x, index):
        self.in_shape = x.shape
        return x[index]

    def backward(self, g):
        return IndexBackward.apply(g, index=self.attrs["index"], shape=self.in_shape)


class IndexBackward(Op):
    """Scatter-add ``g`` into zeros of the input's shape at ``index`` (repeated indices accumulate)."""

    def forward(self, g, index, shape):
        xp = self.xp
        out = xp.zeros(shape, g.dtype)
        if _is_basic(index):
            out[index] = g
        else:
            scatter_add_at(xp, out, index, g)
        return out

    def backward(self, gg):
        return GetItem.apply(gg, index=self.attrs["index"])


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


@tensor_method("__getitem__")
def getitem(input: Tensor, index) -> Tensor:
    """``x[index]`` with NumPy/PyTorch semantics (basic slices are views)."""
    idx = _raw_index(index)
    try:
        out = GetItem.apply(input, index=idx)
    except (OpError, IndexError, ValueError, TypeError) as e:
        raise _index_error("index", input, index, e) from None
    if _is_basic(idx):
        out._view_of = (input, "index", idx)   # so that a recorded write into the view also rewrites the base
    return out


class IndexPut(Op):
    """``out = x.copy(); out[index] = v`` (or ``+= v`` with repeats accumulating when ``accumulate``)."""

    def forward(self, x, v, index, accumulate=False):
        self.v_shape = getattr(v, "shape", ())
        out = x.copy()
        if accumulate:
            scatter_add_at(self.xp, out, index, v)
        else:
            out[index] = v
        return out

    def backward(self, g):
        ex, ev = self.edges
        index, acc = self.attrs["index"], self.attrs["accumulate"]
        gx = (g if acc else IndexPut.apply(g, 0, index=index, accumulate=False)) if ex else None
        gv = sum_to(GetItem.apply(g, index=index), self.v_shape) if ev else None
        return gx, gv


def _put_value(input: Tensor, idx, value, op: str):
    """``value`` as a Tensor of ``input``'s dtype, leading size-1 dims beyond the indexed shape dropped."""
    from .elementwise import cast
    from .shape import reshape
    xp = input.xp
    if _is_scalar(value):
        return value
    if not isinstance(value, Tensor):
        value = _wrap(xp.asarray(value, dtype=input.data.dtype))
    if value.data.dtype != input.data.dtype:
        value = cast(value, input.dtype)
    if value.data.ndim:
        target = xp.broadcast_to(xp.zeros((), bool), input.data.shape)[idx].shape
        extra = value.data.ndim - len(target)
        vshape = value.data.shape
        if extra > 0 and all(s == 1 for s in vshape[:extra]):
            value, vshape = reshape(value, vshape[extra:]), vshape[extra:]
        try:
            fits = broadcast_shapes(vshape, target) == tuple(target)
        except ValueError:
            fits = False
        if not fits:
            raise OpError(f"{op}: shape mismatch: value tensor of shape {list(value.data.shape)} cannot be broadcast "
                          f"to indexing result of shape {list(target)}")
    return value


def _index_put(input: Tensor, idx, values, accumulate: bool, op: str, shown=None) -> Tensor:
    try:
        values = _put_value(input, idx, values, op)
        return IndexPut.apply(input, values, index=idx, accumulate=bool(accumulate))
    except (IndexError, TypeError) as e:
        raise _index_error(op, input, shown if shown is not None else idx, e) from None
    except OpError as e:
        if isinstance(e.__cause__, (IndexError, TypeError)):
            raise _index_error(op, input, shown if shown is not None else idx, e) from None
        raise


def _rebase(x: Tensor, out: Tensor) -> Tensor:
    """Make ``x`` hold ``out``: its data, and its graph node when one was recorded (an in-place op's result).

    When ``x`` views a tensor that still shares its memory (a basic index, ``reshape``, ``permute``...),
    the write is recorded on that base too, and ``x`` becomes the same view of the new base, as in PyTorch.
    """
    if out.requires_grad:
        parent = getattr(x, "_view_of", None)
        view_of = None
        if parent is not None and _root(parent[0].data) is _root(x.data):
            base, kind, arg = parent
            if kind == "index":
                setitem(base, arg, out)
                out = getitem(base, arg)
            elif kind == "reshape":
                _rebase(base, reshape(out, base.data.shape))
                out = reshape(base, arg)
            else:   # permute
                inverse = [0] * len(arg)
                for i, a in enumerate(arg):
                    inverse[a] = i
                _rebase(base, permute(out, inverse))
                out = permute(base, arg)
            view_of = parent
        x.data, x._node, x._idx, x.requires_grad = out.data, out._node, out._idx, True
        x._view_of = view_of
    elif _writeable(x.data) and x.data.shape == out.data.shape:
        x.data[...] = out.data
        if _state.tracer is not None:
            _state.tracer.alias(x, out)          # graph mode: x's array now holds out's value
    else:
        x.data = out.data
    return x._bump()


def _writeable(a) -> bool:
    return getattr(a.flags, "writeable", True)   # CuPy arrays have no read-only flag


def _records(*tensors) -> bool:
    return _state.enabled and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


@tensor_method("__setitem__")
def setitem(input: Tensor, index, value) -> None:
    """``x[index] = value``: in place, recorded for autograd (value broadcasts to the indexed region)."""
    input._inplace_check("setitem")
    idx = _raw_index(index)
    if _records(input, value) or _state.tracer is not None:     # recorded, or traced by graph mode
        _rebase(input, _index_put(input, idx, value, False, "setitem", shown=index))
        return
    if not _writeable(input.data):
        raise OpError(f"setitem: the tensor of shape {tuple(input.data.shape)} is an expanded view whose elements "
                      "share memory; clone() it before writing into it")
    try:
        input.data[idx] = value.data if isinstance(value, Tensor) else value
    except (IndexError, ValueError, TypeError) as e:
        raise _index_error("setitem", input, index, e) from None
    input._bump()


def index_put(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """Out-of-place ``input[indices] = values`` (``+=`` with repeated indices accumulating when ``accumulate``)."""
    if not isinstance(indices, (tuple, list)):
        raise OpError(f"index_put: indices must be a tuple of tensors, got {type(indices).__name__}")
    return _index_put(input, _raw_index(tuple(indices)), values, accumulate, "index_put")


@tensor_method()
def index_put_(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    input._inplace_check("index_put_")
    return _rebase(input, index_put(input, indices, values, accumulate))


tensor_method("index_put")(index_put)


@tensor_method()
def nonzero(input: Tensor, as_tuple: bool = False):
    """Indices of non-zero elements: an (n, ndim) int64 tensor, or a tuple of 1-D tensors."""
    idx = input.xp.nonzero(input.data)
    if as_tuple:
        return tuple(Tensor(i.astype("int64")) for i in idx)
    return Tensor(input.xp.stack(idx, axis=1).astype("int64"))


def _dim(input: Tensor, dim: int, op: str) -> int:
    from ._util import norm_axis
    if input.data.ndim == 0:
        raise IndexOpError(f"{op}: cannot index a 0-d tensor along dim {dim}")
    return norm_axis(dim, input.data.ndim, op)


@tensor_method()
def select(input: Tensor, dim: int, index: int) -> Tensor:
    """The slice ``index`` along ``dim``, that dim removed."""
    d = _dim(input, dim, "select")
    n = input.data.shape[d]
    if not -n <= index < n:
        raise IndexOpError(f"select: index {index} is out of range for dim {dim} of size {n} "
                           f"(tensor shape {tuple(input.data.shape)})")
    return getitem(input, (slice(None),) * d + (int(index),))


@tensor_method()
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """Elements ``start .. start + length`` along ``dim`` (a view)."""
    d = _dim(input, dim, "narrow")
    n = input.data.shape[d]
    start = int(start) + n if start < 0 else int(start)
    if not 0 <= start <= n or length < 0 or start + length > n:
        raise IndexOpError(f"narrow: start {start} and length {length} exceed dim {dim} of size {n} "
                           f"(tensor shape {tuple(input.data.shape)})")
    return getitem(input, (slice(None),) * d + (slice(start, start + int(length)),))


def _check_int_index(index: Tensor, op: str, max_ndim: int | None = None) -> None:
    if index.data.dtype.kind not in "iu":
        raise OpError(f"{op}: index must be an integer tensor, got dtype {index.dtype}")
    if max_ndim is not None and index.data.ndim > max_ndim:
        raise IndexOpError(f"{op}: index must be at most {max_ndim}-D, got shape {tuple(index.data.shape)}")


def _check_range(index: Tensor, n: int, dim: int, op: str, negative: bool = False) -> None:
    a = index.data
    if not a.size:
        return
    lo = -n if negative else 0
    bad = (a < lo) | (a >= n)
    if bad.any():
        v = int(a[bad].reshape(-1)[0])
        raise IndexOpError(f"{op}: index {v} is out of bounds for dimension {dim} with size {n}")


@tensor_method()
def take(input: Tensor, index: Tensor) -> Tensor:
    """Elements of the flattened ``input`` at ``index`` (negative indices count from the end)."""
    from .shape import reshape
    _check_int_index(index, "take")
    _check_range(index, input.data.size, 0, "take", negative=True)
    return getitem(reshape(input, (-1,)), index)


@tensor_method()
def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries ``index`` (1-D) along ``dim``; repeated indices accumulate in the gradient."""
    from .shape import reshape
    if input.data.ndim == 0:
        _check_int_index(index, "index_select", 1)
        _check_range(index, 1, 0, "index_select")
        return reshape(index_select(reshape(input, (1,)), 0, index), ())
    d = _dim(input, dim, "index_select")
    _check_int_index(index, "index_select", 1)
    _check_range(index, input.data.shape[d], d, "index_select")
    return getitem(input, (slice(None),) * d + (index.data.reshape(-1),))


def _mask(mask, op: str) -> Tensor:
    if not isinstance(mask, Tensor):
        mask = Tensor(mask)
    if mask.data.dtype.kind != "b":
        raise OpError(f"{op}: expected a boolean mask, got dtype {mask.dtype}")
    return mask


@tensor_method()
def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """``value`` where ``mask`` is True, else ``input`` (broadcast); the dtype stays ``input``'s."""
    from .elementwise import cast
    from .where import where
    mask = _mask(mask, "masked_fill")
    if isinstance(value, Tensor):
        if value.data.ndim:
            raise OpError(f"masked_fill: only supports a 0-dimensional value tensor, got shape "
                          f"{tuple(value.data.shape)}")
        value = cast(value, input.dtype)
    elif _is_scalar(value):
        value = _wrap(input.xp.asarray(value, dtype=input.data.dtype))
    else:
        raise OpError(f"masked_fill: value must be a number or a 0-d tensor, got {type(value).__name__}")
    try:
        broadcast_shapes(mask.data.shape, input.data.shape)
    except ValueError:
        raise OpError(f"masked_fill: mask of shape {tuple(mask.data.shape)} does not broadcast with the input "
                      f"of shape {tuple(input.data.shape)}") from None
    return where(mask, value, input)


@tensor_method()
def masked_fill_(input: Tensor, mask: Tensor, value) -> Tensor:
    input._inplace_check("masked_fill_")
    out = masked_fill(input, mask, value)
    if out.data.shape != input.data.shape:
        raise OpError(f"masked_fill_: mask of shape {tuple(mask.data.shape)} is not broadcastable to the tensor "
                      f"of shape {tuple(input.data.shape)}")
    return _rebase(input, out)


@tensor_method()
def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    """The 1-D tensor of ``input``'s elements where ``mask`` (broadcast with it) is True."""
    from .shape import expand
    mask = _mask(mask, "masked_select")
    xp = input.xp
    try:
        shape = broadcast_shapes(mask.data.shape, input.data.shape)
    except ValueError:
        raise OpError(f"masked_select: mask of shape {tuple(mask.data.shape)} does not broadcast with the input "
                      f"of shape {tuple(input.data.shape)}") from None
    return getitem(expand(input, shape), xp.broadcast_to(mask.data, shape))


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dim of ``num_classes`` (inferred as max + 1 when -1).

    >>> import ember
    >>> ember.one_hot(ember.tensor([0, 2]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    a = tensor.data
    xp = tensor.xp
    if a.dtype.kind not in "iu":
        raise OpError(f"one_hot: expected an integer (int64) index tensor, got dtype {tensor.dtype}")
    if num_classes == -1:
        if not a.size:
            raise OpError("one_hot: can not infer the total number of classes from an empty tensor")
        num_classes = int(a.max()) + 1
    if a.size and a.min() < 0:
        raise OpError(f"one_hot: class values must be non-negative, got {int(a.min())}")
    if a.size and a.max() >= num_classes:
        raise OpError(f"one_hot: class values must be smaller than num_classes={num_classes}, got {int(a.max())}")
    return _wrap((a[..., None] == xp.arange(num_classes)).astype("int64"))


from .scatter import *  # noqa: E402,F401,F403  (gather, scatter, scatter_add, index_add, take_along_dim)
from .scatter import __all__ as _scatter_all  # noqa: E402

__all__ += _scatter_all
