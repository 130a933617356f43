"""Dropout: zero random elements during training and rescale the rest (inverted dropout)."""
from __future__ import annotations

from ...ops import random as _ops
from ..module import Module

__all__ = ["Dropout", "dropout"]


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``; identity when not training.

    >>> import ember
    >>> x = ember.ones(4)
    >>> bool((ember.nn.functional.dropout(x, 0.5, training=False) == x).all())
    True
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return _ops.Dropout.apply(input, p=p)


class Dropout(Module):
    """During training, zero each element with probability ``p`` and scale the survivors by ``1/(1-p)``.

    >>> import ember
    >>> ember.nn.Dropout(0.2)
    Dropout(p=0.2, inplace=False)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
