"""Reshaping layers: ``Flatten`` and ``Unflatten``."""
from __future__ import annotations

from ..module import Module

__all__ = ["Flatten", "Unflatten"]


def _dim(d: int, nd: int, who: str) -> int:
    n = max(nd, 1)
    if not -n <= d < n:
        raise IndexError(f"{who}: dimension {d} is out of range for an input with {nd} dims")
    return d % n


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dims ``start_dim..end_dim`` into one (``torch.flatten``)."""
    from ...ops.shape import reshape
    shape = tuple(input.shape)
    if not shape:
        return reshape(input, (1,))
    s, e = _dim(start_dim, len(shape), "flatten"), _dim(end_dim, len(shape), "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
    n = 1
    for d in shape[s:e + 1]:
        n *= d
    return reshape(input, shape[:s] + (n,) + shape[e + 1:])


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch dim).

    >>> import ember
    >>> ember.nn.Flatten()(ember.ones(2, 3, 4)).shape
    ember.Size([2, 12])
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (the inverse of Flatten).

    >>> import ember
    >>> ember.nn.Unflatten(1, (3, 4))(ember.ones(2, 12)).shape
    ember.Size([2, 3, 4])
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        from ...ops.shape import reshape
        shape = tuple(input.shape)
        d = _dim(self.dim, len(shape), "Unflatten")
        sizes = self.unflattened_size
        known = 1
        for s in sizes:
            if s != -1:
                known *= s
        if (-1 not in sizes and known != shape[d]) or (-1 in sizes and (known == 0 or shape[d] % known)):
            raise ValueError(f"Unflatten: unflattened_size {sizes} does not match dim {self.dim} of size {shape[d]} "
                             f"(input shape {shape})")
        return reshape(input, shape[:d] + sizes + shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
