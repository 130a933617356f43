"""Gather and scatter along a dim: ``gather``, ``scatter``, ``scatter_add``, ``index_add`` and friends.

Each is expressed as indexing with an open mesh of index arrays, so ``gather`` is a
``GetItem`` (gradient: scatter-add with ``backend.scatter_add_at``) and the scatters are an
``IndexPut`` (gradient to the source: the matching gather).
"""
from __future__ import annotations

from ..backend import broadcast_shapes
from ._util import OpError, Tensor, _is_scalar, norm_axis, tensor_method
from .index import _check_int_index, _check_range, _dim, _index_put, _rebase, getitem

__all__ = ["gather", "scatter", "scatter_add", "index_add", "index_copy", "index_fill", "take_along_dim"]


def _mesh(index, d: int, xp) -> tuple:
    """Index arrays selecting ``out[i0, .., id, ..] = x[i0, .., index[i0, .., id, ..], ..]``."""
    nd = index.ndim
    return tuple(index if i == d else xp.arange(s).reshape((s,) + (1,) * (nd - 1 - i))
                 for i, s in enumerate(index.shape))


def _check_gather_shapes(op: str, input: Tensor, index: Tensor, d: int, src: Tensor | None = None) -> None:
    ish, xsh = index.data.shape, input.data.shape
    if len(ish) != len(xsh):
        raise OpError(f"{op}: index tensor must have the same number of dimensions as the input: index shape "
                      f"{tuple(ish)}, input shape {tuple(xsh)}")
    for i, (a, b) in enumerate(zip(ish, xsh)):
        if i != d and a > b:
            raise OpError(f"{op}: size does not match at dimension {i}: expected index {list(ish)} to be no larger "
                          f"than the input {list(xsh)} apart from dimension {d}")
    if src is not None:
        ssh = src.data.shape
        if len(ssh) != len(ish) or any(a > b for a, b in zip(ish, ssh)):
            raise OpError(f"{op}: expected index {list(ish)} to be no larger than src {list(ssh)} in every dim")


def _as_1d(t: Tensor) -> Tensor:
    from .shape import reshape
    return reshape(t, (1,)) if t.data.ndim == 0 else t


@tensor_method()
def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """``out[i][j] = input[index[i][j]][j]`` for ``dim=0`` (and likewise for other dims).

    >>> import ember
    >>> ember.tensor([[1, 2], [3, 4]]).gather(1, ember.tensor([[1], [0]]))
    tensor([[2],
            [3]])
    """
    from .shape import reshape
    _check_int_index(index, "gather")
    if input.data.ndim == 0 and index.data.ndim == 0:
        return reshape(gather(_as_1d(input), 0, _as_1d(index)), ())
    d = norm_axis(dim, input.data.ndim, "gather")
    _check_gather_shapes("gather", input, index, d)
    _check_range(index, input.data.shape[d], d, "gather")
    return getitem(input, _mesh(index.data, d, input.xp))


def _scatter(op: str, input: Tensor, dim: int, index: Tensor, src, accumulate: bool) -> Tensor:
    _check_int_index(index, op)
    if input.data.ndim == 0:
        from .shape import reshape
        src1 = _as_1d(src) if isinstance(src, Tensor) else src
        return reshape(_scatter(op, _as_1d(input), 0, _as_1d(index), src1, accumulate), ())
    d = norm_axis(dim, input.data.ndim, op)
    if isinstance(src, Tensor):
        _check_gather_shapes(op, input, index, d, src)
        if src.data.shape != index.data.shape:
            src = getitem(src, tuple(slice(0, s) for s in index.data.shape))
    elif not _is_scalar(src):
        raise OpError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")
    else:
        _check_gather_shapes(op, input, index, d)
    _check_range(index, input.data.shape[d], d, op)
    return _index_put(input, _mesh(index.data, d, input.xp), src, accumulate, op)


@tensor_method()
def scatter(input: Tensor, dim: int, index: Tensor, src=None, value=None, reduce: str | None = None) -> Tensor:
    """Out-of-place ``out[index[i][j]][j] = src[i][j]`` for ``dim=0`` (``src`` may be a number, or pass ``value``).

    With ``reduce='add'`` repeated indices accumulate. Gradient: to ``input``, ``grad`` with the
    written positions zeroed; to ``src``, ``grad.gather(dim, index)``.
    """
    if src is None:
        src = value
    if src is None:
        raise OpError("scatter: expected src (a tensor) or value (a number)")
    if reduce not in (None, "add"):
        raise OpError(f"scatter: reduce={reduce!r} is not supported; use None or 'add'")
    return _scatter("scatter", input, dim, index, src, reduce == "add")


@tensor_method()
def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """Out-of-place ``out[index[i][j]][j] += src[i][j]`` for ``dim=0``; repeated indices accumulate."""
    return _scatter("scatter_add", input, dim, index, src, True)


def _index_dim(op: str, input: Tensor, dim: int, index: Tensor, source=None):
    d = _dim(input, dim, op)
    _check_int_index(index, op, 1)
    _check_range(index, input.data.shape[d], d, op)
    idx = (slice(None),) * d + (index.data.reshape(-1),)
    if isinstance(source, Tensor):
        want = input.data.shape[:d] + (index.data.size,) + input.data.shape[d + 1:]
        if source.data.shape != want:
            raise OpError(f"{op}: source of shape {tuple(source.data.shape)} must have shape {want} (the input "
                          f"{tuple(input.data.shape)} with dim {d} of size len(index) = {index.data.size})")
    return idx


@tensor_method()
def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """Out-of-place ``out[..., index[i], ...] += alpha * source[..., i, ...]`` along ``dim`` (repeats accumulate)."""
    idx = _index_dim("index_add", input, dim, index, source)
    if alpha != 1:
        source = source * alpha
    return _index_put(input, idx, source, True, "index_add")


@tensor_method()
def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """Out-of-place ``out[..., index[i], ...] = source[..., i, ...]`` along ``dim``."""
    idx = _index_dim("index_copy", input, dim, index, source)
    return _index_put(input, idx, source, False, "index_copy")


@tensor_method()
def index_fill(input: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """Out-of-place: the entries ``index`` along ``dim`` set to ``value`` (a number or a 0-d tensor)."""
    if isinstance(value, Tensor) and value.data.ndim:
        raise OpError(f"index_fill: only supports a 0-dimensional value tensor, got shape {tuple(value.data.shape)}")
    idx = _index_dim("index_fill", input, dim, index)
    return _index_put(input, idx, value, False, "index_fill")


@tensor_method()
def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """Gather along ``dim`` with ``indices`` broadcast against ``input`` in the other dims (flattened if None)."""
    from .shape import expand, reshape
    _check_int_index(indices, "take_along_dim")
    if dim is None:
        return gather(reshape(input, (-1,)), 0, reshape(indices, (-1,)))
    if input.data.ndim != indices.data.ndim:
        raise OpError(f"take_along_dim: input {tuple(input.data.shape)} and indices {tuple(indices.data.shape)} "
                      "must have the same number of dims")
    d = norm_axis(dim, input.data.ndim, "take_along_dim")
    xp = input.xp
    xs, js = list(input.data.shape), list(indices.data.shape)
    xs[d] = js[d] = 1
    try:
        b = list(broadcast_shapes(tuple(xs), tuple(js)))
    except ValueError:
        raise OpError(f"take_along_dim: input {tuple(input.data.shape)} and indices {tuple(indices.data.shape)} "
                      f"don't broadcast outside dim {d}") from None
    bx, bj = list(b), list(b)
    bx[d], bj[d] = input.data.shape[d], indices.data.shape[d]
    return gather(expand(input, tuple(bx)), d, Tensor(xp.broadcast_to(indices.data, tuple(bj))))


def _inplace(name: str, fn):
    def method(input: Tensor, *args, **kwargs) -> Tensor:
        input._inplace_check(name)
        return _rebase(input, fn(input, *args, **kwargs))
    method.__name__ = name
    method.__doc__ = f"In-place :func:`{fn.__name__}` (recorded for autograd: the tensor takes the result's node)."
    return tensor_method(name)(method)


scatter_ = _inplace("scatter_", scatter)
scatter_add_ = _inplace("scatter_add_", scatter_add)
index_add_ = _inplace("index_add_", index_add)
index_copy_ = _inplace("index_copy_", index_copy)
index_fill_ = _inplace("index_fill_", index_fill)
