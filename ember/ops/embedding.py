"""Embedding lookup: ``embedding`` is a row gather whose gradient is a scatter-add into the table
(``EmbeddingGrad``), whose own gradient is the gather again, so every order of derivative stays in these two ops.
"""
from __future__ import annotations

from ..backend import scatter_add_at
from ._util import Op, OpError, Tensor

__all__ = ["embedding"]


# ---------------------------------------------------------------- embedding
class Embedding(Op):
    """``out = weight[indices]``: rows of the table, one per index.

    Memory: the output, ``indices.size * embedding_dim`` elements; only the indices are kept for the gradient.
    """

    name_ = "embedding"
    save_inputs = (1,)

    def forward(self, weight, indices, *, num, padding_idx, scale_grad_by_freq):
        return weight[indices]

    def backward(self, g):
        (indices,) = self.saved_tensors
        return EmbeddingGrad.apply(g, indices, **self.attrs), None


def _freq_scale(xp, indices, num, dtype):
    """``1 / count(index)`` for every position (PyTorch's ``scale_grad_by_freq``)."""
    counts = xp.bincount(indices.reshape(-1), minlength=num)
    return (1.0 / counts[indices]).astype(dtype)[..., None]


class EmbeddingGrad(Op):
    """``gw[indices[k]] += g[k]`` into a zero table of ``num`` rows; the ``padding_idx`` row stays zero.

    Memory: the dense gradient table, ``num_embeddings * embedding_dim`` elements.
    """

    name_ = "embedding_backward"
    save_inputs = (1,)

    def forward(self, g, indices, *, num, padding_idx, scale_grad_by_freq):
        xp = self.xp
        dim = g.shape[-1]
        if scale_grad_by_freq:
            g = g * _freq_scale(xp, indices, num, g.dtype)
        out = xp.zeros((num, dim), dtype=g.dtype)
        scatter_add_at(xp, out, indices.reshape(-1), g.reshape(-1, dim))
        if padding_idx is not None:
            out[padding_idx] = 0
        return out

    def backward(self, gg):
        a = self.attrs
        xp = gg.xp
        (idx,) = self.saved_tensors
        if a["padding_idx"] is not None:
            keep = xp.ones((a["num"], 1), dtype=gg.data.dtype)
            keep[a["padding_idx"]] = 0
            gg = gg * Tensor(keep)
        out = Embedding.apply(gg, idx, num=a["num"], padding_idx=None, scale_grad_by_freq=False)
        if a["scale_grad_by_freq"]:
            out = out * Tensor(_freq_scale(xp, idx.data, a["num"], gg.data.dtype))
        return out, None


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Look up rows of ``weight`` (num_embeddings, embedding_dim) at the integer ``input`` (any shape).

    Output: ``input.shape + (embedding_dim,)``. The gradient w.r.t. ``weight`` is a scatter-add of the
    upstream gradient (repeated indices accumulate); the ``padding_idx`` row gets none. With ``max_norm``,
    the rows looked up whose ``norm_type``-norm exceeds it are rescaled *in place* to that norm first, as
    in PyTorch. Memory: the output; the backward allocates a dense (num_embeddings, embedding_dim) table.

    >>> import ember
    >>> w = ember.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    >>> ember.nn.functional.embedding(ember.tensor([[2, 1]]), w)
    tensor([[[3., 4.],
             [1., 2.]]])
    """
    if not isinstance(input, Tensor):
        input = Tensor(input)
    if not isinstance(weight, Tensor) or weight.data.ndim != 2:
        raise OpError(f"embedding: weight must be a 2-D tensor (num_embeddings, embedding_dim), got "
                      f"{tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__}")
    if input.data.dtype.kind not in "iu":
        raise OpError(f"embedding: indices must be an integer tensor (Long or Int), got dtype {input.dtype} "
                      f"with shape {tuple(input.data.shape)}")
    if sparse:
        raise OpError("embedding: sparse=True gradients are not supported in Ember; use sparse=False (dense)")
    num = weight.data.shape[0]
    idx = input.data
    if idx.size and (bool((idx < 0).any()) or bool((idx >= num).any())):
        bad = idx[(idx < 0) | (idx >= num)].reshape(-1)[0]
        from .index import IndexOpError
        raise IndexOpError(f"embedding: index {int(bad)} is out of range for a table of {num} rows "
                           f"(weight shape {tuple(weight.data.shape)}, indices shape {tuple(idx.shape)})")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise OpError(f"embedding: padding_idx {padding_idx} must be within the {num} rows of the table")
        padding_idx = int(padding_idx) % num
    if max_norm is not None:
        _renorm_rows(weight, idx, float(max_norm), float(norm_type))
    return Embedding.apply(weight, input, num=num, padding_idx=padding_idx,
                          scale_grad_by_freq=bool(scale_grad_by_freq))


def _renorm_rows(weight: Tensor, idx, max_norm: float, norm_type: float) -> None:
    """Rescale, in place and outside autograd, the rows at ``idx`` whose norm exceeds ``max_norm``."""
    xp = weight.xp
    rows = xp.unique(idx.reshape(-1))
    w = weight.data
    sel = w[rows]
    norms = (xp.abs(sel) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
    w[rows] = sel * scale[:, None]
