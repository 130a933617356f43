"""Row kernels for graph mode: the steps of attention, normalization and cross-entropy that NumPy does
slowly, as compiled numba loops with NumPy's results to the bit (dropout's draws: :mod:`ember.graph.pcg64`).

NumPy takes a maximum along a short last axis (a softmax over 64 keys) at a few elements per nanosecond,
half the time of the whole softmax, and each further step is another pass over the array with its own
temporaries. Here the row maxima are one vectorised pass and their subtraction another; the attention
score gradient ``(dp * keep - rowdot) * p``, a norm's scaling and affine, cross-entropy's bookkeeping and
its gradient ``(softmax - one_hot) * scale`` are one pass each. Every value is the same float operation
NumPy applies (a maximum, then one rounding per ``-``, ``*``), so a jitted step gives eager mode's numbers
exactly; ``exp`` stays with NumPy, whose vectorised ``exp`` a loop here would not reproduce, and so do the
sums, except where :mod:`ember.graph.rowsums` has checked that it adds in NumPy's order. The sources
are fixed functions of this module (never generated), compiled on first use and cached on disk; they run
in the calling thread (spreading rows over numba's OpenMP pool was measured and dropped: its workers spin
against OpenBLAS's and oneDNN's, and a 2-core Transformer step went from about 27 ms to about 45 ms,
eager steps included).

>>> import numpy
>>> s, dead, m = numpy.array([[1., 3.], [-numpy.inf, -numpy.inf]]), numpy.zeros(2, bool), numpy.empty(2)
>>> nan = numpy.empty(2, bool)
>>> if available:
...     kernel(row_max)(s, s.view(numpy.int64), numpy.int64(2**63 - 1), numpy.int64(0x7FF0000000000000), m, nan)
...     kernel(shift_rows)(s, s, m, nan, dead, True)
...     print(s, dead)
[[ -2.   0.]
 [-inf -inf]] [False  True]
"""
from __future__ import annotations

import math

from .fusion import available

__all__ = ["available", "kernel", "row_max", "shift_rows", "softmax_grad_rows", "keep_product", "scale_shift_rows",
           "finish_dx_rows",
           "pick_targets", "cross_entropy_grad_rows"]

_compiled: dict = {}


def kernel(fn):
    """The numba-compiled ``fn`` (one of this module's kernels): compiled once per process, cached on disk."""
    compiled = _compiled.get(fn.__name__)
    if compiled is None:
        import numba
        compiled = _compiled[fn.__name__] = numba.njit(nogil=True, cache=True, error_model="numpy",
                                                       fastmath=getattr(fn, "fastmath", False))(fn)
    return compiled


def row_max(x, bits, magnitude, inf, m, nan):
    """``m[r] = x[r].max()`` for (R, S) rows, and ``nan[r]``: whether the row holds a NaN (then ``m[r]`` is
    meaningless; :func:`shift_rows` gives such a row NumPy's NaN maximum). Compiled assuming no NaN, so the
    loop vectorises; the NaN test reads the integer ``bits`` of ``x`` (``x.view`` of the same width: NaN
    when ``bits & magnitude > inf``), which that assumption leaves alone."""
    R, S = x.shape
    for r in range(R):
        row, b = x[r], bits[r]
        a = row[0]
        for j in range(1, S):
            v = row[j]
            a = v if v > a else a
        m[r] = a
        nans = 0
        for j in range(S):                 # a loop of its own: in the one above it halved the speed
            nans += (b[j] & magnitude) > inf
        nan[r] = nans > 0


row_max.fastmath = {"nnan", "nsz"}


def shift_rows(x, z, m, nan, dead, keep_dead):
    """``z = x - x.max(axis=1, keepdims=True)`` for (R, S) rows (``z`` may be ``x``: in place) from the row
    maxima ``m`` and NaN flags of :func:`row_max`, with NumPy's NaN-propagating maximum. With ``keep_dead``,
    a row of only ``-inf`` is left as it is and sets ``dead[r]`` (attention's convention: such a row's
    softmax is zeros); without, it becomes NaN as in NumPy."""
    R, S = x.shape
    for r in range(R):
        mr = math.nan if nan[r] else m[r]
        if keep_dead and mr == -math.inf:
            dead[r] = True
            continue
        for j in range(S):
            z[r, j] = x[r, j] - mr


def softmax_grad_rows(dp, p, keep, scale, rowdot):
    """The attention score gradient in place: ``dp = (dp * where(keep, scale, 0) - rowdot) * p`` per (R, S)
    row, each step rounded as NumPy's (``keep``, the dropout pattern, boolean or the multiplier itself, may
    be None)."""
    R, S = dp.shape
    zero = scale - scale
    for r in range(R):
        c = rowdot[r]
        if keep is None:
            for j in range(S):
                dp[r, j] = (dp[r, j] - c) * p[r, j]
        else:
            for j in range(S):
                dp[r, j] = (dp[r, j] * (scale if keep[r, j] else zero) - c) * p[r, j]


def keep_product(g, keep, scale, out):
    """``out = g * where(keep, scale, 0)`` over flat arrays: dropout's gradient from its boolean pattern, as
    NumPy rounds ``g * mask``."""
    zero = scale - scale
    for i in range(g.shape[0]):
        out[i] = g[i] * (scale if keep[i] else zero)


def scale_shift_rows(xhat, rstd, w, b, has_w, has_b, y):
    """Per (R, K) row: ``xhat *= rstd[r]``, then ``y = xhat * w + b`` with ``w``, ``b`` (G, K) planes (row r
    takes plane row ``r % G``; ``has_w``/``has_b`` False: that step is skipped): the end of a layer or group
    norm's forward, as NumPy rounds its three passes."""
    R, K = xhat.shape
    for r in range(R):
        s = rstd[r]
        gw = r % w.shape[0]
        gb = r % b.shape[0]
        for j in range(K):
            h = xhat[r, j] * s
            xhat[r, j] = h
            if has_w:
                h = h * w[gw, j]
            if has_b:
                h = h + b[gb, j]
            y[r, j] = h


def finish_dx_rows(gh, xhat, rstd, c1, c2):
    """Per (R, K) row: ``gh = gh * rstd[r] - xhat * c1[r] - c2[r]`` in place (a layer or group norm's input
    gradient from its row coefficients), as NumPy rounds its three passes."""
    R, K = gh.shape
    for r in range(R):
        s = rstd[r]
        a = c1[r]
        c = c2[r]
        for j in range(K):
            gh[r, j] = (gh[r, j] * s - xhat[r, j] * a) - c


def pick_targets(logp, t, ignore_index, one, tc, valid, wt, loss):
    """Cross-entropy's per-row bookkeeping in one pass: ``valid = t != ignore_index``, ``tc`` the targets with
    ignored ones as 0, ``wt`` 1 or 0 in ``one``'s dtype, ``loss = -logp[n, tc] * wt``."""
    zero = one - one
    for n in range(t.shape[0]):
        k = t[n]
        v = k != ignore_index
        valid[n] = v
        if not v:
            k = 0
        tc[n] = k
        w = one if v else zero
        wt[n] = w
        loss[n] = (-logp[n, k]) * w


def cross_entropy_grad_rows(p, t, one, scale):
    """``p = (p - one_hot(t)) * scale`` in place on the (N, C) softmax: cross-entropy's gradient when every
    target counts (``one`` and ``scale`` in ``p``'s dtype, so each step rounds as NumPy's)."""
    N, C = p.shape
    for n in range(N):
        k = t[n]
        p[n, k] = p[n, k] - one
        for j in range(C):
            p[n, j] = p[n, j] * scale
