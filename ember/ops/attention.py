"""Attention ops: ``scaled_dot_product_attention`` (boolean/additive masks, causal, dropout, grouped-query).

One fused op computes ``softmax(q @ k^T * scale + mask) @ v``: the score matrix is built,
masked, normalised and used in place, and only the probabilities are kept for the gradient
(no separate softmax / matmul nodes, no copies of the scores). Its first-order backward works
straight on the arrays; under ``create_graph=True`` it recomputes the probabilities with
differentiable Ember ops, so second derivatives work.
"""
from __future__ import annotations

import math

from ..autograd.grad_mode import _state
from ..backend import broadcast_shapes, device_of, rng
from ..backend import matmul as _matmul
from ..dtypes import is_float
from ._util import Op, OpError, Tensor, _wrap, describe, sum_to

__all__ = ["scaled_dot_product_attention"]


def _sum_to_shape(xp, a, shape):
    """``a`` summed over the leading/stretched axes that broadcasting added to reach it from ``shape``."""
    if a.shape == tuple(shape):
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and a.shape[i + lead] != 1)
    out = a.sum(axis=axes, keepdims=True) if axes else a
    return out.reshape(shape)


def _softmax_rows(xp, s, shift=None):
    """Softmax over the last axis of the fresh score array ``s``, in place.

    A row whose scores are all ``-inf`` (every key masked out) becomes all zeros, as in PyTorch's
    ``scaled_dot_product_attention`` (not NaN). Returns ``(p, valid)`` with ``valid`` the boolean
    ``(..., L, 1)`` array of rows that kept a key, or None when every row did. ``shift`` replaces
    :func:`_shift_rows` (graph mode's compiled row kernel, with the same results).
    """
    dead = (shift or _shift_rows)(xp, s)
    xp.exp(s, out=s)
    den = s.sum(axis=-1, keepdims=True)
    if dead is not None:
        den = xp.where(dead, 1, den)
    s /= den
    return s, (~dead if dead is not None else None)


def _shift_rows(xp, s):
    """Subtract each row's maximum from ``s`` in place (a row of only ``-inf`` is left as it is); returns the
    boolean ``(..., L, 1)`` array of such dead rows, or None when there is none."""
    m = s.max(axis=-1, keepdims=True)
    dead = m == -math.inf
    # on the host the check is free and skips two small passes; on a GPU it would wait for the device (and
    # break a CUDA Graph capture), so the masked form always runs there
    any_dead = bool(dead.any()) if device_of(dead).type == "cpu" else True
    if any_dead:
        m = xp.where(dead, 0, m)
    s -= m
    return dead if any_dead else None


def _swap(a):
    return a.swapaxes(-1, -2)


class ScaledDotProductAttention(Op):
    """``p = softmax(q @ k^T * scale + bias + mask)``, ``out = (p * keep) @ v`` (and ``p * keep`` when asked).

    Inputs: ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)``, an optional additive float ``mask``
    (differentiable) and an optional boolean ``allowed`` mask (True: attend). ``bias`` is 0/-inf from
    ``allowed`` and from ``causal``; the dropout multiplier ``keep`` (0 or ``1/(1-p)``) is drawn here, so
    that a traced graph draws afresh at every run (``random``).

    Memory: the ``(..., L, S)`` probability matrix and the scaled query (kept for the backward) plus, with
    dropout, an ``(..., L, S)`` multiplier; the backward allocates two more ``(..., L, S)`` arrays.
    """

    inline_backward = False     # graph mode replays the fused array backward, not the recorded composite

    name_ = "scaled_dot_product_attention"
    save_inputs = (0, 1, 2, 3)
    save_output = True            # the single-output form; with the weights, ``self.out`` (see ``_out``)
    materialize_grads = False

    random = True                 # with dropout_p > 0: graph passes must not merge or fold it
    keeps_dropped_probs = False   # eager recomputes ``p * keep`` in the backward rather than hold it

    def forward(self, q, k, v, mask=None, allowed=None, *, scale, causal, dropout_p, need_weights):
        xp = self.xp
        dtype = q.dtype
        L, S = q.shape[-2], k.shape[-2]
        bias = None
        if causal:
            bias = xp.triu(xp.full((L, S), -math.inf, dtype=dtype), 1)
        if allowed is not None:
            bias = xp.where(allowed, dtype.type(0), dtype.type(-math.inf))
        self.bias = bias
        keep = None
        if dropout_p > 0.0:
            batch = broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
            for extra in (bias, mask):
                if extra is not None:
                    batch = broadcast_shapes(batch, extra.shape[:-2])
            keep = self._keep(xp, tuple(batch) + (L, S), dropout_p, dtype)
        # scale the (L, E) query rather than the (L, S) scores: a smaller pass, and a contiguous operand for BLAS
        qs = q * q.dtype.type(scale)
        s = _matmul(xp, qs, _swap(k))
        for add in (bias, mask):
            if add is not None:
                if broadcast_shapes(s.shape, add.shape) == s.shape:
                    s += add
                else:
                    s = s + add
        p, pd, self.valid = self._softmax(xp, s, keep)
        self.p, self.keep, self.qs = p, keep, qs
        # kept only where it is not also handed out as the weights (which the caller may change in place)
        self.pd = pd if keep is not None and self.keeps_dropped_probs and not need_weights else None
        out = _matmul(xp, pd, v)
        if need_weights:
            self.out = out
            return out, (pd if keep is not None else p.copy())    # never hand out the array kept for the backward
        return out

    def _keep(self, xp, shape, dropout_p, dtype):
        """The dropout multiplier of ``shape``: ``1 / (1 - p)`` where a uniform draw (float32 for a 16/32-bit
        ``dtype``, else float64) is ``>= p``, else 0 (graph mode's compiled variant overrides it)."""
        u = rng().random(shape, dtype="float32" if dtype.itemsize <= 4 else "float64")
        return xp.multiply(u >= dropout_p, dtype.type(1.0 / (1.0 - dropout_p)), dtype=dtype)

    def _softmax(self, xp, s, keep):
        """``(p, p * keep, valid)``: :func:`_softmax_rows` of the fresh scores ``s`` (in place) and the
        probabilities with dropout (``p`` itself without); graph mode's compiled variant overrides it."""
        p, valid = _softmax_rows(xp, s)
        return p, (p * keep if keep is not None else p), valid

    def _score_grad(self, xp, dp, rowdot, keep, p):
        """``(dp * keep - rowdot) * p`` in place on ``dp`` (graph mode's compiled variant overrides it)."""
        if keep is not None:
            dp *= keep
        dp -= rowdot
        dp *= p
        return dp

    def _out(self):
        """The forward's output array (version-checked against in-place changes where Op keeps it)."""
        return self.out if self.attrs["need_weights"] else self.output.data

    def backward(self, g, gw=None):
        q, k, v, mask = self.saved_tensors
        if not _state.enabled:
            return self._backward_arrays(g, gw, q.data, k.data, v.data, mask)
        return self._backward_graph(g, gw, q, k, v, mask)

    def _edges(self):
        e = list(self.edges) + [None] * (5 - len(self.edges))
        return e[0], e[1], e[2], e[3]

    def _backward_arrays(self, g, gw, q, k, v, mask):
        """First-order gradients on the arrays (no graph is being built)."""
        xp = self.xp
        p, keep, scale = self.p, self.keep, self.attrs["scale"]
        eq, ek, ev, em = self._edges()
        pd = self.pd if self.pd is not None else p * keep if keep is not None else p
        gv = rowdot = None
        if g is not None:
            gd = g.data
            if 0 in gd.strides[-2:]:
                gd = xp.ascontiguousarray(gd)          # a broadcast gradient (from .sum()) would miss BLAS
            if ev:
                gv = _wrap(_sum_to_shape(xp, _matmul(xp, _swap(pd), gd), v.shape))
            dp = _matmul(xp, gd, _swap(v))
            # sum_j dP_ij P_ij = g_i . out_i (out = P @ v): an (L, Ev) product instead of an (L, S) one
            rowdot = xp.einsum("...i,...i->...", gd, self._out())[..., None]
            if gw is not None:
                dp += gw.data
                rowdot = rowdot + xp.einsum("...i,...i->...", gw.data, pd)[..., None]
        else:
            dp = gw.data.copy()
            rowdot = xp.einsum("...i,...i->...", dp, pd)[..., None]
        dp = self._score_grad(xp, dp, rowdot, keep, p)                  # the score gradient, unscaled
        gm = _wrap(_sum_to_shape(xp, dp, mask.shape)) if em else None
        if eq:
            gq = _matmul(xp, dp, k)
            gq *= gq.dtype.type(scale)
            gq = _wrap(_sum_to_shape(xp, gq, q.shape))
        else:
            gq = None
        gk = _wrap(_sum_to_shape(xp, _matmul(xp, _swap(dp), self.qs), k.shape)) if ek else None
        return gq, gk, gv, gm, None

    def _backward_graph(self, g, gw, q, k, v, mask):
        """The same gradients with differentiable ops, the probabilities recomputed (double backward)."""
        from .elementwise import cast
        from .linalg import matmul
        from .reduce import sum as _sum
        from .shape import transpose
        from .softmax import softmax
        from .where import where
        scale, bias = self.attrs["scale"], self.bias
        eq, ek, ev, em = self._edges()
        s = matmul(q, transpose(k, -1, -2)) * scale
        if bias is not None:
            s = s + _wrap(bias)
        if mask is not None:
            s = s + mask
        valid = None
        if self.valid is not None:
            valid = _wrap(self.valid)
            s = where(valid, s, 0.0)
        p = softmax(s, -1)
        if valid is not None:
            p = where(valid, p, 0.0)
        keep = _wrap(self.keep) if self.keep is not None else None
        gv = dp = None
        if g is not None:
            if ev:
                pd = p * keep if keep is not None else p
                gv = sum_to(matmul(transpose(pd, -1, -2), g), v.data.shape)
            dp = matmul(g, transpose(v, -1, -2))
        if gw is not None:
            dp = gw if dp is None else dp + gw
        if keep is not None:
            dp = dp * keep
        ds = p * (dp - _sum(dp * p, -1, keepdim=True))
        gm = sum_to(cast(ds, mask.dtype), mask.data.shape) if em else None
        gq = sum_to(matmul(ds, k) * scale, q.data.shape) if eq else None
        gk = sum_to(matmul(transpose(ds, -1, -2), q) * scale, k.data.shape) if ek else None
        return gq, gk, gv, gm, None


# ---------------------------------------------------------------- argument handling
def _check(query: Tensor, key: Tensor, value: Tensor, attn_mask, dropout_p: float, is_causal: bool, op: str):
    shapes = f"query {describe((query,))}, key {describe((key,))}, value {describe((value,))}"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise OpError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.data.ndim < 2:
            raise OpError(f"{op}: expected query, key and value with at least 2 dims (..., L, E); got {shapes}")
        if not is_float(t.data.dtype):
            raise OpError(f"{op}: expected floating point query, key and value; got {shapes}")
    if not query.data.dtype == key.data.dtype == value.data.dtype:
        raise OpError(f"{op}: query, key and value must have the same dtype; got {shapes}")
    if query.data.shape[-1] != key.data.shape[-1]:
        raise OpError(f"{op}: query and key must have the same embedding size (last dim); got {shapes}")
    if key.data.shape[-2] != value.data.shape[-2]:
        raise OpError(f"{op}: key and value must have the same sequence length (dim -2); got {shapes}")
    try:
        batch = broadcast_shapes(query.data.shape[:-2], key.data.shape[:-2], value.data.shape[:-2])
    except ValueError:
        raise OpError(f"{op}: the batch dims of query, key and value do not broadcast; got {shapes}") from None
    if not 0.0 <= dropout_p < 1.0:
        raise OpError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    scores = tuple(batch) + (query.data.shape[-2], key.data.shape[-2])
    if attn_mask is not None:
        if is_causal:
            raise OpError(f"{op}: explicit attn_mask should not be set when is_causal=True (pass one or the other)")
        if not isinstance(attn_mask, Tensor):
            raise OpError(f"{op}: attn_mask must be a Tensor, got {type(attn_mask).__name__}")
        kind = attn_mask.data.dtype.kind
        if kind != "b" and attn_mask.data.dtype != query.data.dtype:
            raise OpError(f"{op}: attn_mask must be boolean or have the query's dtype {query.dtype}; got "
                          f"{describe((attn_mask,))}")
        try:
            ok = broadcast_shapes(attn_mask.data.shape, scores) == scores
        except ValueError:
            ok = False
        if not ok:
            raise OpError(f"{op}: attn_mask of shape {tuple(attn_mask.data.shape)} does not broadcast to the "
                          f"attention weights' shape {scores} (batch..., L, S); {shapes}")


def _gqa(query: Tensor, key: Tensor, value: Tensor, op: str):
    """Repeat each key/value head ``Hq / Hkv`` times (``repeat_interleave`` on dim -3), as PyTorch's enable_gqa."""
    from .shape import expand, reshape, unsqueeze
    if query.data.ndim < 3:
        return key, value
    hq = query.data.shape[-3]
    out = []
    for name, t in (("key", key), ("value", value)):
        if t.data.ndim < 3 or t.data.shape[-3] == hq:
            out.append(t)
            continue
        h = t.data.shape[-3]
        if hq % h:
            raise OpError(f"{op}: with enable_gqa=True the query heads ({hq}) must be a multiple of the {name} "
                          f"heads ({h}); got query {describe((query,))}, {name} {describe((t,))}")
        shape = tuple(t.data.shape)
        t = expand(unsqueeze(t, -3), shape[:-2] + (hq // h,) + shape[-2:])
        out.append(reshape(t, shape[:-3] + (hq,) + shape[-2:]))
    return out[0], out[1]


def _attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p: float = 0.0,
               is_causal: bool = False, scale=None, need_weights: bool = False):
    """The shared core of :func:`scaled_dot_product_attention` and ``MultiheadAttention`` (which needs the weights)."""
    allowed = mask = None
    if attn_mask is not None:
        if attn_mask.data.dtype.kind == "b":
            allowed = attn_mask
        else:
            mask = attn_mask
    scale = 1.0 / math.sqrt(query.data.shape[-1]) if scale is None else float(scale)
    return ScaledDotProductAttention.apply(query, key, value, mask, allowed, scale=scale, causal=bool(is_causal),
                                           dropout_p=float(dropout_p), need_weights=need_weights)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(query @ key^T * scale + mask) @ value``, as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        query: ``(..., L, E)``; key: ``(..., S, E)``; value: ``(..., S, Ev)``; the batch dims ``...``
            (e.g. batch and heads) broadcast.
        attn_mask: boolean (True = the query may attend to that key) or a float mask added to the
            scores; it broadcasts to ``(..., L, S)``.
        dropout_p: dropout on the attention probabilities (applied whenever > 0: this function has no
            training flag, as in PyTorch), drawn from Ember's RNG.
        is_causal: mask out keys after each query (``j > i``, top-left aligned); not with ``attn_mask``.
        scale: defaults to ``1 / sqrt(E)``.
        enable_gqa: grouped-query attention: ``key``/``value`` may have fewer heads (dim -3) than
            ``query``, each one shared by ``Hq / Hkv`` consecutive query heads.

    Returns ``(..., L, Ev)``. A query whose keys are all masked out gets zeros (and zero gradients),
    as in PyTorch. Memory: the ``(..., L, S)`` probabilities are kept for the backward (twice that with
    dropout); one fused op, no intermediate score tensors.

    >>> import ember
    >>> q = k = v = ember.ones(2, 4, 5, 8)
    >>> ember.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    ember.Size([2, 4, 5, 8])
    """
    op = "scaled_dot_product_attention"
    if enable_gqa and all(isinstance(t, Tensor) for t in (query, key, value)):
        key, value = _gqa(query, key, value, op)
    _check(query, key, value, attn_mask, float(dropout_p), is_causal, op)
    return _attention(query, key, value, attn_mask, float(dropout_p), is_causal, scale)
