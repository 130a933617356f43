"""Graph-mode variants of the ops that have compiled row kernels (:mod:`ember.graph.kernels`).

:func:`use_compiled_kernels` swaps a graph's attention, dropout, cross-entropy and normalization nodes for
these subclasses (in place; ``ember.jit`` does it for NumPy graphs when numba is installed). Each keeps its
op's contract: the same outputs to the bit, the same state for its backward and the same random draws, so
a jitted step gives eager mode's numbers. It hands the arrays it can take (float32/float64 NumPy) to a
kernel; anything else (other dtypes, CuPy arrays, non-contiguous inputs) takes the op's own path.

>>> import ember
>>> q = ember.randn(2, 4, 8)
>>> g = ember.graph.trace(lambda q: ember.nn.functional.scaled_dot_product_attention(q, q, q), q)
>>> [n.op.__name__ for n in use_compiled_kernels(g).nodes]
['CompiledAttention']
"""
from __future__ import annotations

import math

import numpy

from ..autograd.grad_mode import _state
from ..backend import STRICT, rng
from ..nn._cross_entropy import CrossEntropy
from ..ops._util import _wrap
from ..ops.attention import ScaledDotProductAttention, _softmax_rows
from ..ops.normalization import Normalize, _plane
from ..ops.random import Dropout
from . import kernels
from .ir import Graph

__all__ = ["use_compiled_kernels", "CompiledAttention", "CompiledDropout", "CompiledCrossEntropy",
           "CompiledNormalize"]

_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def _usable(*arrays) -> bool:
    """Non-empty NumPy float32/float64 arrays of one dtype (None skipped): what the kernels take."""
    arrays = [a for a in arrays if a is not None]
    return (kernels.available and not STRICT and all(type(a) is numpy.ndarray and a.size for a in arrays)
            and arrays[0].dtype in _FLOATS and all(a.dtype == arrays[0].dtype for a in arrays))


def _rows(a, k: int):
    """``a`` as a C-contiguous (rows, k) array (a view when it already is one)."""
    return numpy.ascontiguousarray(a).reshape(-1, k)


def _pcg64_generator(dtype, shape):
    """Ember's CPU generator when :mod:`ember.graph.pcg64` can make its draws for a ``dtype`` array of
    ``shape`` (float32/float64, at least 1024 elements, numba, a PCG64 generator), else None."""
    if not (kernels.available and not STRICT and dtype in _FLOATS and math.prod(shape) >= 1024):
        return None
    from . import pcg64
    generator = rng()
    return generator if pcg64.supported(generator) else None


def _mask_of(keep, scale):
    """The float multiplier eager mode's dropout makes (``1 / (1 - p)`` where kept, else 0), from the boolean
    pattern ``keep`` and ``scale`` (``1 / (1 - p)`` in the mask's dtype): the same values."""
    return numpy.multiply(keep, scale, dtype=scale.dtype)


_BITS = {numpy.dtype(numpy.float32): (numpy.int32, 0x7FFFFFFF, 0x7F800000),
         numpy.dtype(numpy.float64): (numpy.int64, 2**63 - 1, 0x7FF0000000000000)}


def _shift_rows(x, z, keep_dead: bool):
    """:func:`ember.graph.kernels.shift_rows` of the (R, S) rows ``x`` into ``z``; returns the (R,) dead
    rows (all ``-inf``, kept as they are with ``keep_dead``)."""
    ints, magnitude, inf = _BITS[x.dtype]
    m, nan, dead = numpy.empty(x.shape[0], x.dtype), numpy.empty(x.shape[0], bool), numpy.zeros(x.shape[0], bool)
    kernels.kernel(kernels.row_max)(x, x.view(ints), ints(magnitude), ints(inf), m, nan)
    kernels.kernel(kernels.shift_rows)(x, z, m, nan, dead, keep_dead)
    return dead


class CompiledAttention(ScaledDotProductAttention):
    """``scaled_dot_product_attention`` whose softmax (row maxima, then after NumPy's ``exp`` the row sums,
    division and dropout product in one pass: :mod:`ember.graph.rowsums`), dropout pattern and score
    gradient are compiled, and which keeps ``p * keep`` for its backward (one (..., L, S) pass less a step;
    eager mode recomputes it to hold less memory). Unless the weights are asked for, the dropout pattern is
    kept as booleans, a quarter of the float multiplier's memory traffic: the kernels multiply by
    ``1 / (1 - p)`` or 0 where eager multiplies by the mask that holds those values."""

    keeps_dropped_probs = True

    def _keep_scale(self, dtype):
        return dtype.type(1.0 / (1.0 - self.attrs["dropout_p"]))

    def _float_keep(self, keep, dtype):
        """The float multiplier eager mode draws, from a boolean pattern (the same values)."""
        return keep if keep is None or keep.dtype != bool else _mask_of(keep, self._keep_scale(dtype))

    def _softmax(self, xp, s, keep):
        if not (_usable(s) and s.flags.c_contiguous and (keep is None or keep.flags.c_contiguous
                                                           and keep.shape == s.shape)):   # not broadcast by v
            return super()._softmax(xp, s, self._float_keep(keep, s.dtype))
        S = s.shape[-1]
        rows = s.reshape(-1, S)
        dead = _shift_rows(rows, rows, True)
        from . import rowsums
        if S > rowsums.MAX_ROW or not rowsums.matches_numpy():       # NumPy's sum; the rest as eager
            p, valid = _softmax_rows(xp, s, lambda xp, s: dead.reshape(s.shape[:-1] + (1,)) if dead.any()
                                     else None)
            return p, (p * self._float_keep(keep, s.dtype) if keep is not None else p), valid
        numpy.exp(s, out=s)
        pd = numpy.empty_like(s) if keep is not None else s
        any_dead = bool(dead.any())
        rowsums.softmax_finish_rows(rows, dead if any_dead else dead[:0], rows[:0] if keep is None else
                                    keep.reshape(-1, S), self._keep_scale(s.dtype), pd.reshape(-1, S))
        return s, pd, (~dead.reshape(s.shape[:-1] + (1,)) if any_dead else None)

    def _keep(self, xp, shape, dropout_p, dtype):
        generator = _pcg64_generator(dtype, shape)
        if generator is None:
            return super()._keep(xp, shape, dropout_p, dtype)
        from . import pcg64
        keep = pcg64.dropout_mask(generator, shape, dtype, dropout_p)
        return self._float_keep(keep, dtype) if self.attrs["need_weights"] else keep

    def _score_grad(self, xp, dp, rowdot, keep, p):
        if not (_usable(dp, p, rowdot) and dp.flags.c_contiguous and dp.shape == p.shape
                and (keep is None or keep.shape == p.shape) and rowdot.size * dp.shape[-1] == dp.size):
            return super()._score_grad(xp, dp, rowdot, self._float_keep(keep, dp.dtype), p)
        k = dp.shape[-1]
        kernels.kernel(kernels.softmax_grad_rows)(dp.reshape(-1, k), _rows(p, k),
                                                  None if keep is None else _rows(keep, k),
                                                  self._keep_scale(dp.dtype),
                                                  numpy.ascontiguousarray(rowdot).reshape(-1))
        return dp

    def _backward_graph(self, g, gw, q, k, v, mask):
        self.keep = self._float_keep(self.keep, q.data.dtype)
        return super()._backward_graph(g, gw, q, k, v, mask)


class CompiledNormalize(Normalize):
    """Layer, group and instance norm whose elementwise steps (the scaling and affine of the forward, the
    last three steps of the input gradient) are one row pass each; the sums stay NumPy's."""

    def _scale_shift(self, xp, xhat, rstd, w, b, view, rep):
        if not (_usable(xhat, rstd, w, b) and xhat.flags.c_contiguous):
            return None
        k = view[2]
        none = numpy.zeros((1, 1), xhat.dtype)
        w_plane, b_plane = (none if v is None else numpy.ascontiguousarray(_plane(xp, v, view, rep)) for v in (w, b))
        y = numpy.empty_like(xhat)
        kernels.kernel(kernels.scale_shift_rows)(xhat.reshape(-1, k), rstd.reshape(-1), w_plane, b_plane,
                                                 w is not None, b is not None, y.reshape(-1, k))
        return y

    def _finish_dx(self, xp, gh, xhat, rstd, c1, c2):
        if not (_usable(gh, xhat, rstd, c1, c2) and gh.flags.c_contiguous and xhat.flags.c_contiguous):
            return super()._finish_dx(xp, gh, xhat, rstd, c1, c2)
        k = gh.shape[-1]
        kernels.kernel(kernels.finish_dx_rows)(gh.reshape(-1, k), xhat.reshape(-1, k), rstd.reshape(-1),
                                               numpy.ascontiguousarray(c1).reshape(-1),
                                               numpy.ascontiguousarray(c2).reshape(-1))
        return gh


class CompiledDropout(Dropout):
    """Dropout whose draws, pattern and product are one compiled pass (:func:`ember.graph.pcg64.dropout`:
    the same numbers from the same generator, the uniforms never stored), keeping the pattern as booleans
    for the backward (``g * where(keep, 1 / (1 - p), 0)``, eager's ``g * mask``)."""

    keep = None

    def forward(self, x, p):
        generator = _pcg64_generator(x.dtype, x.shape)
        if generator is None or type(x) is not numpy.ndarray:
            return super().forward(x, p)
        from . import pcg64
        out, self.keep = pcg64.dropout(generator, numpy.ascontiguousarray(x), p)
        self.scale = x.dtype.type(1.0 / (1.0 - p))
        return out

    def backward(self, g):
        if self.keep is None:
            return super().backward(g)
        gd = g.data
        if _state.enabled or not (_usable(gd) and gd.dtype == self.scale.dtype and gd.shape == self.keep.shape):
            self.mask = _mask_of(self.keep, self.scale)
            return super().backward(g)
        gd = numpy.ascontiguousarray(gd)
        out = numpy.empty_like(gd)
        kernels.kernel(kernels.keep_product)(gd.reshape(-1), self.keep.reshape(-1), self.scale, out.reshape(-1))
        return (_wrap(out),)


class CompiledCrossEntropy(CrossEntropy):
    """Cross-entropy of (N, C) logits and class indices (no class weights or label smoothing) whose row
    maximum and target bookkeeping are row passes, and whose gradient, when every target counts, is one row
    pass over the softmax; ``exp``, ``log`` and the sums stay NumPy's."""

    def forward(self, x, t, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        if (weight is not None or label_smoothing or x.ndim != 2 or t.ndim != 1 or 0 in x.shape
                or not (_usable(x) and x.flags.c_contiguous and t.dtype.kind in "iu")):
            return super().forward(x, t, weight, ignore_index, label_smoothing, reduction)
        z = numpy.empty_like(x)
        _shift_rows(x, z, False)
        logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
        n = t.shape[0]
        tc, valid = numpy.empty(n, t.dtype), numpy.empty(n, bool)
        wt, loss = numpy.empty(n, x.dtype), numpy.empty(n, x.dtype)
        kernels.kernel(kernels.pick_targets)(logp, t, ignore_index, x.dtype.type(1), tc, valid, wt, loss)
        self.tc, self.valid, self.wt, self.logp = tc, valid, wt, logp
        return self._reduce(loss, wt, reduction)

    def backward(self, g):
        a = self.attrs
        if (self.edges[0] is None or _state.enabled or a.get("weight") is not None or a["label_smoothing"]
                or a["reduction"] == "none" or self.logp.ndim != 2 or not _usable(self.logp, g.data)
                or not bool(self.valid.all())):
            return super().backward(g)
        scale = g.data / self.denom if a["reduction"] == "mean" else g.data
        one = self.logp.dtype.type
        p = numpy.exp(self.logp)
        kernels.kernel(kernels.cross_entropy_grad_rows)(p, self.tc, one(1), one(scale))
        return _wrap(p), None


_VARIANTS = {ScaledDotProductAttention: CompiledAttention, Dropout: CompiledDropout,
             CrossEntropy: CompiledCrossEntropy, Normalize: CompiledNormalize}


def use_compiled_kernels(graph: Graph) -> Graph:
    """Give each node of an op with a compiled variant that variant (in place; a backward node replays the
    variant's backward, as it replays the forward node's op). A no-op without numba."""
    if kernels.available:
        for n in graph.nodes:
            n.op = _VARIANTS.get(n.op, n.op)
    return graph
