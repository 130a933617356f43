"""Shape ops: views and rearrangements of data, each with the inverse rearrangement as gradient."""
from __future__ import annotations

import operator

from ._util import Op, OpError, Tensor, norm_axis, tensor_method

__all__ = ["reshape", "view", "expand", "broadcast_to", "transpose", "permute", "unsqueeze", "squeeze"]


def _as_view(out: Tensor, base: Tensor, kind: str, arg) -> Tensor:
    """Remember that ``out`` views ``base``'s memory, so that an in-place op on ``out`` that records a
    gradient rewrites ``base`` too (see ``index._rebase``), as in PyTorch."""
    if out is not base and out.data.base is not None and _root(out.data) is _root(base.data):
        out._view_of = (base, kind, arg)
    return out


def _root(a):
    return a if a.base is None else a.base


def _shape_args(shape: tuple, op: str = "size", *, lowest: int | None = 0) -> tuple[int, ...]:
    """Sizes given as ints or as one tuple/list/``ember.Size`` (``f(2, 3)`` or ``f((2, 3))``), as a tuple of ints.

    ``shape`` is the caller's ``*args`` tuple. A value that is not an integer (``2.5``, ``True``, ``'3'``) raises a
    TypeError naming ``op``, as PyTorch; one below ``lowest`` raises an OpError (reshape and expand pass ``lowest=-1``
    for their -1; dim lists pass None, since negative dims count from the end).
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = tuple(s if type(s) is int else _size_int(s, op, shape) for s in shape)
    if lowest is not None:
        for i, s in enumerate(out):
            if s < lowest:
                kind = "non-negative" if lowest == 0 else f">= {lowest}"
                raise OpError(f"{op}: invalid size {s} at index {i} of {list(out)}: sizes must be {kind}")
    return out


def _size_int(s, op: str, shape) -> int:
    if not isinstance(s, bool):
        try:
            return operator.index(s)
        except TypeError:
            pass
    raise TypeError(f"{op}: sizes must be integers, got {s!r} ({type(s).__name__}) in {list(shape)}")


class Reshape(Op):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return reshape(g, self.in_shape)


@tensor_method()
def reshape(input: Tensor, *shape) -> Tensor:
    """Same data with a new shape (one dim may be -1)."""
    shape = _shape_args(shape, "reshape", lowest=-1)
    if shape == input.data.shape:
        return input
    size = input.data.size
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if shape.count(-1) > 1 or (-1 in shape and (known == 0 or size % known)) or (-1 not in shape and known != size):
        raise OpError(f"reshape: shape {list(shape)} is invalid for a tensor of {size} elements "
                      f"(shape {tuple(input.data.shape)})")
    return _as_view(Reshape.apply(input, shape=shape), input, "reshape", shape)


class ViewDtype(Op):
    """The same bytes read as another dtype (``torch.Tensor.view(dtype)``); not differentiable, as in PyTorch."""

    differentiable = False
    name_ = "view"

    def forward(self, x, dtype):
        return x.view(dtype.np)


def _view_dtype(input: Tensor, dtype) -> Tensor:
    from .. import dtypes as _dt
    dtype = _dt.as_dtype(dtype)
    x = input.data
    old, new = x.dtype.itemsize, dtype.itemsize
    if old != new:
        what = f"to view {input.dtype} as {dtype} (different element sizes)"
        if x.ndim == 0:
            raise OpError(f"view: a 0-dim tensor has no last dim to resize {what}")
        if x.shape[-1] != 1 and x.strides[-1] != old:
            raise OpError(f"view: the last dim must be contiguous {what}, but its stride is "
                          f"{x.strides[-1] // old} elements")
        if new > old and x.shape[-1] % (new // old):
            raise OpError(f"view: size of the last dim must be divisible by {new // old} {what}, "
                          f"but got {x.shape[-1]} (shape {tuple(x.shape)})")
    return ViewDtype.apply(input, dtype=dtype)


@tensor_method()
def view(input: Tensor, *shape, dtype=None) -> Tensor:
    """``view(*shape)``: alias of :func:`reshape` (a view when possible); ``view(dtype)``: the same bits as ``dtype``.

    With a dtype of another element size the last dim shrinks or grows by the ratio, as in PyTorch.

    >>> import ember
    >>> ember.tensor([1.0, 2.0]).view(ember.int32)
    tensor([1065353216, 1073741824], dtype=ember.int32)
    """
    if dtype is not None:
        return _view_dtype(input, dtype)
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)) and not hasattr(shape[0], "__index__"):
        return _view_dtype(input, shape[0])
    return reshape(input, *shape)


class Expand(Op):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return self.xp.broadcast_to(x, shape)

    def backward(self, g):
        from ._util import sum_to
        return sum_to(g, self.in_shape)


@tensor_method("expand")
def expand(input: Tensor, *shape) -> Tensor:
    """Broadcast to ``shape`` without copying (-1 keeps a dim)."""
    shape = _shape_args(shape, "expand", lowest=-1)
    lead = len(shape) - input.data.ndim
    if lead < 0:
        raise OpError(f"expand: the target shape {list(shape)} has fewer dims than the tensor "
                      f"{tuple(input.data.shape)}")
    shape = tuple(input.data.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    if shape == input.data.shape:
        return input
    for i, s in enumerate(input.data.shape):
        if s != 1 and s != shape[i + lead]:
            raise OpError(f"expand: the size of dim {i} ({s}) must match the target shape {list(shape)} "
                          "or be 1")
    return Expand.apply(input, shape=shape)


@tensor_method()
def broadcast_to(input: Tensor, shape) -> Tensor:
    return expand(input, tuple(shape))


class Permute(Op):
    def forward(self, x, axes):
        return x.transpose(axes)

    def backward(self, g):
        axes = self.attrs["axes"]
        inv = [0] * len(axes)
        for i, a in enumerate(axes):
            inv[a] = i
        return Permute.apply(g, axes=tuple(inv))


@tensor_method()
def permute(input: Tensor, *dims) -> Tensor:
    """Reorder dims: ``x.permute(0, 2, 1)``."""
    dims = _shape_args(dims, "permute", lowest=None)
    nd = input.data.ndim
    if len(dims) != nd:
        raise OpError(f"permute: got {len(dims)} dims {list(dims)} for a tensor with {nd} dims")
    axes = tuple(norm_axis(d, nd, "permute") for d in dims)
    if len(set(axes)) != nd:
        raise OpError(f"permute: dims {list(dims)} repeat a dimension")
    return _as_view(Permute.apply(input, axes=axes), input, "permute", axes)


@tensor_method()
def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dims."""
    nd = input.data.ndim
    if nd < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return input
    d0, d1 = norm_axis(dim0, nd, "transpose"), norm_axis(dim1, nd, "transpose")
    if d0 == d1:
        return input
    axes = list(range(nd))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return _as_view(Permute.apply(input, axes=tuple(axes)), input, "permute", tuple(axes))


@tensor_method()
def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim``."""
    nd = input.data.ndim
    d = norm_axis(dim, nd + 1, "unsqueeze")
    shape = input.data.shape
    return reshape(input, shape[:d] + (1,) + shape[d:])


@tensor_method()
def squeeze(input: Tensor, dim=None) -> Tensor:
    """Remove size-1 dims (all, or those in ``dim``)."""
    shape = input.data.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        axes = {norm_axis(d, len(shape), "squeeze") for d in dims} if shape else set()
        new = tuple(s for i, s in enumerate(shape) if not (i in axes and s == 1))
    return reshape(input, new) if new != shape else input


@tensor_method()
def view_as(input: Tensor, other: Tensor) -> Tensor:
    """``input`` reshaped to ``other``'s shape."""
    return reshape(input, tuple(other.data.shape))


@tensor_method()
def reshape_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, tuple(other.data.shape))


@tensor_method()
def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, tuple(other.data.shape))


@tensor_method()
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes shape (1,)).

    >>> import ember
    >>> ember.zeros(2, 3, 4).flatten(1).shape
    ember.Size([2, 12])
    """
    shape = input.data.shape
    if not shape:
        norm_axis(start_dim, 0, "flatten")
        norm_axis(end_dim, 0, "flatten")
        return reshape(input, (1,))
    s, e = norm_axis(start_dim, len(shape), "flatten"), norm_axis(end_dim, len(shape), "flatten")
    if s > e:
        raise OpError(f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim}) "
                      f"for a tensor of shape {tuple(shape)}")
    n = 1
    for d in shape[s:e + 1]:
        n *= d
    return reshape(input, shape[:s] + (n,) + shape[e + 1:])


@tensor_method()
def ravel(input: Tensor) -> Tensor:
    return reshape(input, (-1,))


@tensor_method()
def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one entry may be -1)."""
    shape = input.data.shape
    d = norm_axis(dim, len(shape), "unflatten")
    sizes = tuple(int(s) for s in sizes)
    known = 1
    for s in sizes:
        known *= s if s != -1 else 1
    if not sizes or sizes.count(-1) > 1 or (-1 not in sizes and known != shape[d]) or \
            (-1 in sizes and (known == 0 or shape[d] % known)):
        raise OpError(f"unflatten: sizes {list(sizes)} don't multiply to the size {shape[d]} of dim {dim} "
                      f"(tensor shape {tuple(shape)})")
    return reshape(input, shape[:d] + sizes + shape[d + 1:])


@tensor_method()
def repeat(input: Tensor, *sizes) -> Tensor:
    """Tile the tensor ``sizes[i]`` times along each dim (extra leading sizes add dims), as ``torch.repeat``.

    >>> import ember
    >>> ember.tensor([1, 2]).repeat(2, 2)
    tensor([[1, 2, 1, 2],
            [1, 2, 1, 2]])
    """
    sizes = _shape_args(sizes, "repeat")
    shape = input.data.shape
    if len(sizes) < len(shape):
        raise OpError(f"repeat: number of repeat dims {list(sizes)} can not be smaller than the number of dims "
                      f"of the tensor {tuple(shape)}")
    if any(s < 0 for s in sizes):
        raise OpError(f"repeat: repeat sizes must be non-negative, got {list(sizes)}")
    shape = (1,) * (len(sizes) - len(shape)) + tuple(shape)
    inter = tuple(v for s in shape for v in (1, s))
    target = tuple(v for r, s in zip(sizes, shape) for v in (r, s))
    out = expand(reshape(input, inter), target)
    return reshape(out, tuple(r * s for r, s in zip(sizes, shape)))


@tensor_method()
def tile(input: Tensor, dims) -> Tensor:
    """Like :func:`repeat`, but fewer ``dims`` than tensor dims are padded with leading 1s (``torch.tile``)."""
    dims = _shape_args((dims,) if isinstance(dims, int) else tuple(dims), "tile")
    dims = (1,) * (input.data.ndim - len(dims)) + dims
    return repeat(input, dims)


class Flip(Op):
    def forward(self, x, axes):
        return self.xp.flip(x, axis=axes)

    def backward(self, g):
        return Flip.apply(g, axes=self.attrs["axes"])


@tensor_method()
def flip(input: Tensor, dims) -> Tensor:
    """Reverse the order of elements along ``dims``."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    axes = tuple(norm_axis(d, input.data.ndim, "flip") for d in dims)
    if len(set(axes)) != len(axes):
        raise OpError(f"flip: dims {list(dims)} repeat a dimension")
    if not axes or not input.data.ndim:
        return input
    return Flip.apply(input, axes=axes)


@tensor_method()
def fliplr(input: Tensor) -> Tensor:
    if input.data.ndim < 2:
        raise OpError(f"fliplr: input must be >= 2-d, got shape {tuple(input.data.shape)}")
    return flip(input, (1,))


@tensor_method()
def flipud(input: Tensor) -> Tensor:
    if input.data.ndim < 1:
        raise OpError("flipud: input must be >= 1-d, got a 0-d tensor")
    return flip(input, (0,))


class Roll(Op):
    def forward(self, x, shifts, axes):
        return self.xp.roll(x, shifts, axis=axes)

    def backward(self, g):
        return Roll.apply(g, shifts=tuple(-s for s in self.attrs["shifts"]), axes=self.attrs["axes"])


@tensor_method()
def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Shift elements cyclically along ``dims`` (without dims: over the flattened tensor, shape kept)."""
    shifts = (shifts,) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    if dims is None:
        if len(shifts) != 1:
            raise OpError(f"roll: without dims, shifts must be a single int, got {list(shifts)}")
        return Roll.apply(input, shifts=shifts, axes=None)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(dims) != len(shifts):
        raise OpError(f"roll: shifts {list(shifts)} and dims {list(dims)} must have the same length")
    axes = tuple(norm_axis(d, input.data.ndim, "roll") for d in dims)
    return Roll.apply(input, shifts=shifts, axes=axes)


class Clone(Op):
    def forward(self, x, contiguous=False):
        return self.xp.ascontiguousarray(x) if contiguous else x.copy()

    def backward(self, g):
        return g


@tensor_method()
def clone(input: Tensor, memory_format=None) -> Tensor:
    """A copy of the data that stays in the graph (the gradient passes through unchanged)."""
    return Clone.apply(input)


@tensor_method()
def contiguous(input: Tensor, memory_format=None) -> Tensor:
    """``input`` itself when its data is C-contiguous, else a contiguous copy (in the graph)."""
    if input.data.flags.c_contiguous:
        return input
    return Clone.apply(input, contiguous=True)


@tensor_method()
def is_contiguous(input: Tensor, memory_format=None) -> bool:
    return bool(input.data.flags.c_contiguous)


@tensor_method("movedim", "moveaxis")
def movedim(input: Tensor, source, destination) -> Tensor:
    """Move dims ``source`` to positions ``destination``; the others keep their order."""
    nd = input.data.ndim
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise OpError(f"movedim: source {list(src)} and destination {list(dst)} must have the same length")
    src = tuple(norm_axis(d, nd, "movedim") for d in src)
    dst = tuple(norm_axis(d, nd, "movedim") for d in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise OpError(f"movedim: repeated dim in source {list(src)} or destination {list(dst)}")
    rest = iter(d for d in range(nd) if d not in src)
    placed = dict(zip(dst, src))
    axes = tuple(placed[i] if i in placed else next(rest) for i in range(nd))
    if axes == tuple(range(nd)):
        return input
    return _as_view(Permute.apply(input, axes=axes), input, "permute", axes)


moveaxis = movedim
tensor_method("swapaxes", "swapdims")(transpose)
swapaxes = swapdims = transpose


@tensor_method()
def t(input: Tensor) -> Tensor:
    """Transpose a tensor of at most 2 dims (0-d and 1-d are returned as is)."""
    if input.data.ndim > 2:
        raise OpError(f"t() expects a tensor with <= 2 dimensions, but the tensor has shape {tuple(input.data.shape)}")
    return transpose(input, 0, -1) if input.data.ndim == 2 else input


def _reverse_dims(input: Tensor) -> Tensor:
    nd = input.data.ndim
    if nd < 2:
        return input
    axes = tuple(range(nd - 1, -1, -1))
    return _as_view(Permute.apply(input, axes=axes), input, "permute", axes)


def _matrix_transpose(input: Tensor) -> Tensor:
    if input.data.ndim < 2:
        raise OpError(f"mT: tensor of shape {tuple(input.data.shape)} must have at least 2 dims")
    return transpose(input, -2, -1)


Tensor.T = property(_reverse_dims, doc="All dims reversed (the transpose of a matrix).")
Tensor.mT = property(_matrix_transpose, doc="The last two dims swapped (a batch of matrices transposed).")

from .join import *  # noqa: E402,F401,F403  (cat, stack, split, chunk, unbind, pad)
from .join import __all__ as _join_all  # noqa: E402

__all__ += ["view_as", "reshape_as", "expand_as", "flatten", "ravel", "unflatten", "repeat", "tile", "flip",
            "fliplr", "flipud", "roll", "clone", "contiguous", "movedim", "moveaxis", "swapaxes", "swapdims",
            "t"] + _join_all
