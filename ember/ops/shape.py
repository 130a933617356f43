"""Shape ops: views and rearrangements of data, each with the inverse rearrangement as gradient."""
from __future__ import annotations

from ._util import Op, OpError, Tensor, norm_axis, tensor_method

__all__ = ["reshape", "view", "expand", "broadcast_to", "transpose", "permute", "unsqueeze", "squeeze"]


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


class Reshape(Op):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return reshape(g, self.in_shape)


@tensor_method()
def reshape(input: Tensor, *shape) -> Tensor:
    """Same data with a new shape (one dim may be -1)."""
    shape = _shape_args(shape)
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
    return Reshape.apply(input, shape=shape)


@tensor_method()
def view(input: Tensor, *shape) -> Tensor:
    """Alias of :func:`reshape` (Ember's reshape already returns a view when it can)."""
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)):
        from .elementwise import cast
        return cast(input, shape[0])
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
    shape = _shape_args(shape)
    lead = len(shape) - input.data.ndim
    if lead < 0:
        raise OpError(f"expand: the target shape {list(shape)} has fewer dims than the tensor {tuple(input.data.shape)}")
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
    dims = _shape_args(dims)
    nd = input.data.ndim
    if len(dims) != nd:
        raise OpError(f"permute: got {len(dims)} dims {list(dims)} for a tensor with {nd} dims")
    axes = tuple(norm_axis(d, nd, "permute") for d in dims)
    if len(set(axes)) != nd:
        raise OpError(f"permute: dims {list(dims)} repeat a dimension")
    return Permute.apply(input, axes=axes)


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
    return Permute.apply(input, axes=tuple(axes))


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
