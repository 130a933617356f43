"""Indexing: slices, integer arrays and boolean masks, with scatter-add as the gradient."""
from __future__ import annotations

from ._util import Op, OpError, Tensor, tensor_method

__all__ = ["getitem", "nonzero"]


def _raw_index(idx):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(_raw_index(i) for i in idx)
    if isinstance(idx, list) and any(isinstance(i, Tensor) for i in idx):
        return [_raw_index(i) for i in idx]
    return idx


class GetItem(Op):
    def forward(self, x, index):
        self.in_shape, self.in_dtype = x.shape, x.dtype
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
            xp.add.at(out, index, g)
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
        return GetItem.apply(input, index=idx)
    except OpError as e:
        raise OpError(f"indexing a tensor of shape {tuple(input.data.shape)} with {index!r}: {e.__cause__}") from None


@tensor_method()
def nonzero(input: Tensor, as_tuple: bool = False):
    """Indices of non-zero elements: an (n, ndim) int64 tensor, or a tuple of 1-D tensors."""
    idx = input.xp.nonzero(input.data)
    if as_tuple:
        return tuple(Tensor(i.astype("int64")) for i in idx)
    return Tensor(input.xp.stack(idx, axis=1).astype("int64"))
