"""Joining, splitting and padding: ``cat``, ``stack``, ``split``, ``chunk``, ``unbind``, ``pad``.

Splits are slices of the input (each piece has its own gradient); non-constant
padding is a gather with index arrays, so its gradient is the indexing scatter-add.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ._util import Op, OpError, Tensor, norm_axis, tensor_method

__all__ = ["cat", "concat", "concatenate", "stack", "hstack", "vstack", "split", "chunk", "unbind", "pad"]


def _slice_dim(input: Tensor, d: int, start: int, stop: int) -> Tensor:
    from .index import getitem
    return getitem(input, (slice(None),) * d + (slice(start, stop),))


class Cat(Op):
    def forward(self, *arrays, axis):
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        axis, grads, start = self.attrs["axis"], [], 0
        for e, n in zip(self.edges, self.sizes):
            grads.append(_slice_dim(g, axis, start, start + n) if e is not None else None)
            start += n
        return tuple(grads)


def _tensor_list(tensors, op: str) -> list:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise OpError(f"{op}: expected a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise OpError(f"{op}: expected a non-empty list of tensors")
    bad = [i for i, t in enumerate(tensors) if not isinstance(t, Tensor)]
    if bad:
        raise OpError(f"{op}: element {bad[0]} of the list is a {type(tensors[bad[0]]).__name__}, not a Tensor")
    return list(tensors)


def _promote(tensors: list) -> list:
    """Cast every tensor to the common dtype (PyTorch's promotion across the whole list)."""
    from .elementwise import cast
    rt = tensors[0].data.dtype
    for t in tensors[1:]:
        rt = _dt.result_type(rt, t.data.dtype)
    return [t if t.data.dtype == rt else cast(t, _dt.from_np(rt)) for t in tensors]


@tensor_method()
def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim; dtypes are promoted as in PyTorch.

    >>> import ember
    >>> ember.cat([ember.zeros(2, 3), ember.ones(1, 3)]).shape
    ember.Size([3, 3])
    """
    tensors = _tensor_list(tensors, "cat")
    # PyTorch (legacy) skips 1-D empty tensors when joining tensors of other shapes
    kept = [t for t in tensors if t.data.shape != (0,)] or tensors[:1]
    for i, t in enumerate(kept):
        if t.data.ndim == 0:
            raise OpError(f"cat: zero-dimensional tensor (at position {i}) cannot be concatenated")
    ref = kept[0].data.shape
    d = norm_axis(dim, len(ref), "cat")
    for i, t in enumerate(kept[1:], 1):
        s = t.data.shape
        if len(s) != len(ref):
            raise OpError(f"cat: tensors must have the same number of dims: got shape {tuple(ref)} and "
                          f"{tuple(s)} (tensor number {i})")
        for k in range(len(ref)):
            if k != d and s[k] != ref[k]:
                raise OpError(f"cat: sizes of tensors must match except in dimension {d}: expected size {ref[k]} "
                              f"but got size {s[k]} in dim {k} for tensor number {i} in the list "
                              f"(shapes {tuple(ref)} and {tuple(s)})")
    kept = _promote(kept)
    if len(kept) == 1:
        return kept[0]
    return Cat.apply(*kept, axis=d)


concat = concatenate = cat


@tensor_method()
def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dim ``dim``."""
    from .shape import unsqueeze
    tensors = _tensor_list(tensors, "stack")
    ref = tensors[0].data.shape
    for i, t in enumerate(tensors[1:], 1):
        if t.data.shape != ref:
            raise OpError(f"stack expects each tensor to be equal size, but got {list(ref)} at entry 0 and "
                          f"{list(t.data.shape)} at entry {i}")
    d = norm_axis(dim, len(ref) + 1, "stack")
    return cat([unsqueeze(t, d) for t in tensors], d)


def hstack(tensors) -> Tensor:
    """Join along dim 1 (dim 0 for 1-D tensors); 0-d tensors count as 1-D."""
    from .shape import reshape
    tensors = [t if t.data.ndim else reshape(t, (1,)) for t in _tensor_list(tensors, "hstack")]
    return cat(tensors, 0 if tensors[0].data.ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    """Join along dim 0 after making every tensor at least 2-D (a vector becomes one row)."""
    from .shape import reshape
    tensors = [t if t.data.ndim >= 2 else reshape(t, (1, -1)) for t in _tensor_list(tensors, "vstack")]
    return cat(tensors, 0)


@tensor_method()
def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes.

    >>> import ember
    >>> [p.shape[0] for p in ember.arange(5).split(2)]
    [2, 2, 1]
    """
    shape = tensor.data.shape
    if not shape:
        raise OpError("split: expected a tensor with at least one dimension, got a 0-d tensor")
    d = norm_axis(dim, len(shape), "split")
    n = shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise OpError(f"split: split sizes {sizes} must be non-negative and sum exactly to {n} "
                          f"(the size of dim {d} of the tensor of shape {tuple(shape)})")
    else:
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n > 0):
            raise OpError(f"split: split_size must be positive (0 only for an empty dim), got {size} for dim {d} "
                          f"of size {n}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
    if len(sizes) == 1:
        return (_slice_dim(tensor, d, 0, n),)
    return Split.apply(tensor, sizes=tuple(sizes), dim=d)


class Split(Op):
    """Cut ``x`` along ``dim`` into views of the given sizes; one node for all pieces, so the
    backward is a single concatenation of their gradients (unused pieces contribute zeros)."""

    def forward(self, x, sizes, dim):
        cuts, start = [], 0
        for s in sizes[:-1]:
            start += s
            cuts.append(start)
        return tuple(self.xp.split(x, cuts, axis=dim))

    def backward(self, *grads):
        return cat(list(grads), self.attrs["dim"])


@tensor_method()
def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """At most ``chunks`` pieces of equal size ``ceil(n / chunks)`` along ``dim`` (the last may be smaller)."""
    if chunks <= 0:
        raise OpError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    shape = input.data.shape
    if not shape:
        raise OpError("chunk: expected a tensor with at least one dimension, got a 0-d tensor")
    d = norm_axis(dim, len(shape), "chunk")
    n = shape[d]
    if n == 0:
        return tuple(_slice_dim(input, d, 0, 0) for _ in range(chunks))
    return split(input, -(-n // chunks), d)


@tensor_method()
def unbind(input: Tensor, dim: int = 0) -> tuple:
    """The slices along ``dim``, with that dim removed (one split node: the backward is one stack)."""
    from .shape import squeeze
    shape = input.data.shape
    if not shape:
        raise OpError("unbind: expected a tensor with at least one dimension, got a 0-d tensor")
    d = norm_axis(dim, len(shape), "unbind")
    if shape[d] == 0:
        return ()
    return tuple(squeeze(p, d) for p in split(input, 1, d))


class ConstantPad(Op):
    """Crop negative pads, then pad with ``value``; the gradient is the same op with the pads negated."""

    def forward(self, x, pads, value):
        crop = tuple(slice(max(-b, 0), s - max(-a, 0)) for (b, a), s in zip(pads, x.shape))
        widths = tuple((max(b, 0), max(a, 0)) for b, a in pads)
        return self.xp.pad(x[crop], widths, mode="constant", constant_values=value)

    def backward(self, g):
        return ConstantPad.apply(g, pads=tuple((-b, -a) for b, a in self.attrs["pads"]), value=0)


_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left, right, top, bottom, ...)`` from the last dim backwards.

    ``mode`` is 'constant' (negative pads crop), 'reflect', 'replicate' or 'circular'.

    >>> import ember
    >>> ember.pad(ember.ones(2, 3), (1, 2)).shape
    ember.Size([2, 6])
    """
    pad = tuple(int(p) for p in pad)
    shape = input.data.shape
    nd, k = len(shape), len(pad) // 2
    if len(pad) % 2 or k > nd:
        raise OpError(f"pad: padding {list(pad)} must have an even length of at most 2 * ndim = {2 * nd} "
                      f"for a tensor of shape {tuple(shape)}")
    if mode not in _MODES:
        raise OpError(f"pad: mode must be one of {sorted(_MODES)}, got {mode!r}")
    pairs = [(0, 0)] * (nd - k) + [(pad[2 * i], pad[2 * i + 1]) for i in range(k)][::-1]
    for dim, ((b, a), s) in enumerate(zip(pairs, shape)):
        if s + b + a < 0 or (mode == "constant" and (max(-b, 0) + max(-a, 0) > s)):
            raise OpError(f"pad: the size {s} of dim {dim}, padded by ({b}, {a}), gives a negative size "
                          f"(tensor shape {tuple(shape)})")
        if mode != "constant" and (b or a):
            if b < 0 or a < 0:
                raise OpError(f"pad: negative padding {list(pad)} is only supported in 'constant' mode")
            limit = {"reflect": s - 1, "circular": s}.get(mode)        # replicate repeats the edge any number
            if (limit is not None and (b > limit or a > limit)) or s == 0:
                raise OpError(f"pad: {mode} padding ({b}, {a}) of dim {dim} must be at most {limit} for a tensor "
                              f"of shape {tuple(shape)}")
    if mode == "constant":
        if all(p == (0, 0) for p in pairs):
            return input
        return ConstantPad.apply(input, pads=tuple(pairs), value=0 if value is None else value)
    from .index import getitem
    xp = input.xp
    index = [Ellipsis]
    for j, ((b, a), s) in enumerate(zip(pairs[nd - k:], shape[nd - k:])):
        src = xp.pad(xp.arange(s), (b, a), mode=_MODES[mode])
        index.append(src.reshape((-1,) + (1,) * (k - 1 - j)))
    return getitem(input, tuple(index))
