"""Ops that draw random numbers inside their forward, so that a traced graph draws afresh at every run.

They carry ``random = True``: graph passes (:mod:`ember.graph.passes`) never merge two of them or fold one
into a constant.
"""
from __future__ import annotations

from ..backend import rng
from ._util import Op, _wrap

__all__: list = []


class Dropout(Op):
    """``x * mask`` with ``mask`` = 0 with probability ``p``, else ``1 / (1 - p)`` (inverted dropout).

    The mask is drawn from Ember's generator (``ember.manual_seed``) and kept for the backward (``g * mask``).
    Memory: one input-sized mask. (Graph mode's compiled variant makes the same numbers in one pass.)
    """

    random = True

    def forward(self, x, p):
        u = rng().random(x.shape, dtype="float32" if x.dtype.itemsize <= 4 else "float64")
        self.mask = self.xp.asarray(u >= p, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - p))
        return x * self.mask

    def backward(self, g):
        return (g * _wrap(self.mask),)


class DropoutMask(Op):
    """A ``shape`` mask in ``like``'s dtype: 0 with probability ``rate``, else ``1 / (1 - rate)`` (Keras RNN
    dropout, one mask for every time step). Uniform draws in float64, as ``ember.rand``. Memory: the mask."""

    random = True
    differentiable = False

    def forward(self, like, shape, rate):
        dtype = like.dtype
        keep = self.xp.asarray(rng().random(shape, dtype="float64").astype(dtype, copy=False)) >= rate
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))
