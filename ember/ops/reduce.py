"""Reductions over any axes with ``keepdim``: sum, mean, and (below) the rest of the family."""
from __future__ import annotations

from ._util import Op, Tensor, norm_axes, tensor_method

__all__ = ["sum", "mean"]


def _kept_shape(shape, axes):
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Op):
    def forward(self, x, axes, keepdim, dtype=None):
        self.in_shape = x.shape
        return x.sum(axis=axes, keepdims=keepdim, dtype=dtype)

    def backward(self, g):
        from .shape import expand, reshape
        a = self.attrs
        if not a["keepdim"]:
            g = reshape(g, _kept_shape(self.in_shape, a["axes"]))
        return expand(g, self.in_shape)


class Mean(Op):
    def forward(self, x, axes, keepdim):
        self.in_shape = x.shape
        return x.mean(axis=axes, keepdims=keepdim)

    def backward(self, g):
        from .shape import expand, reshape
        a = self.attrs
        n = 1
        for i, s in enumerate(self.in_shape):
            if a["axes"] is None or i in a["axes"]:
                n *= s
        if not a["keepdim"]:
            g = reshape(g, _kept_shape(self.in_shape, a["axes"]))
        return expand(g / n, self.in_shape)


@tensor_method()
def sum(input: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Sum over ``dim`` (int, tuple or None for all); bool and integer tensors sum to int64 as in PyTorch."""
    from .. import dtypes as _dt
    axes = norm_axes(dim, input.data.ndim, "sum")
    if dtype is not None:
        dtype = _dt.as_dtype(dtype).np
    elif input.data.dtype.kind in "bui":
        dtype = _dt.int64.np
    return Sum.apply(input, axes=axes, keepdim=keepdim, dtype=dtype)


@tensor_method()
def mean(input: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Mean over ``dim``; needs a floating tensor (as PyTorch) unless ``dtype`` is given."""
    from .elementwise import cast
    from ._util import OpError
    if dtype is not None:
        input = cast(input, dtype)
    if input.data.dtype.kind != "f":
        raise OpError(f"mean: expected a floating point tensor, got {input.dtype}; pass dtype=ember.float32 "
                      "or call .float() first")
    axes = norm_axes(dim, input.data.ndim, "mean")
    return Mean.apply(input, axes=axes, keepdim=keepdim)
