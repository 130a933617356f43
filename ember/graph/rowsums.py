"""NumPy's float summation order, compiled: row sums equal to ``a.sum(axis=-1)`` to the bit.

NumPy adds a contiguous row pairwise: from its identity 0; a row under 8 elements one by one; up to 128
elements in eight running sums (elements ``i``, ``i + 8``, ...) combined as ``((s0 + s1) + (s2 + s3)) +
((s4 + s5) + (s6 + s7))``, the rest added one by one (longer rows: the sum of two halves, recursively).
The kernels here follow that order for rows of up to :data:`MAX_ROW` elements, so a row pass can take a
row's sum and use it while the row is in cache, with eager mode's numbers. NumPy does not promise this
order, so :func:`matches_numpy` checks it once per process on probe rows of every length, and callers take
NumPy's own path when it does not hold, or for longer rows. (The halving is not compiled: numba's cache
crashes on loading recursive functions.) Importing this module imports numba.

>>> import numpy
>>> e = numpy.random.default_rng(0).random((3, 70)).astype(numpy.float32)
>>> want = e / e.sum(axis=-1, keepdims=True)
>>> softmax_finish_rows(e, numpy.zeros(0, bool), e[:0], numpy.float32(1), e[:0])
>>> bool((e == want).all())
True
"""
from __future__ import annotations

import functools

import numba
import numpy

__all__ = ["MAX_ROW", "pairwise_sum", "row_sums", "matches_numpy", "softmax_finish_rows"]


MAX_ROW = 128      # NumPy's pairwise block: a row this long is one block of eight running sums


@numba.njit(nogil=True, cache=True)
def pairwise_sum(a):
    """The 1-D ``a`` (at most :data:`MAX_ROW` elements) summed in NumPy's order, without the identity."""
    n = a.shape[0]
    if n < 8:
        res = a.dtype.type(0)
        for i in range(n):
            res += a[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    end = n - n % 8
    for i in range(8, end, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, n):
        res += a[i]
    return res


@numba.njit(nogil=True, cache=True)
def row_sums(x, out):
    """``out[r] = x[r].sum()`` for (R, S) rows (S at most :data:`MAX_ROW`), as NumPy sums them (the identity
    0 first)."""
    for r in range(x.shape[0]):
        out[r] = x.dtype.type(0) + pairwise_sum(x[r])


@numba.njit(nogil=True, cache=True)
def softmax_finish_rows(e, dead, keep, scale, pd):
    """The end of attention's softmax and dropout per (R, S) row (S at most :data:`MAX_ROW`) of exponentials
    ``e``: ``e /= e.sum()`` in place (a sum of 1 where ``dead[r]``, when ``dead`` has rows) and, when
    ``keep`` (the dropout pattern, boolean or the multiplier itself) has rows, ``pd = e * where(keep, scale,
    0)``, each value as NumPy makes it."""
    S = e.shape[1]
    zero = scale - scale
    for r in range(e.shape[0]):
        row = e[r]
        den = e.dtype.type(0) + pairwise_sum(row)
        if dead.shape[0] and dead[r]:
            den = e.dtype.type(1)
        for j in range(S):
            row[j] = row[j] / den
        if keep.shape[0]:
            k, d = keep[r], pd[r]
            for j in range(S):
                d[j] = row[j] * (scale if k[j] else zero)


@functools.lru_cache(maxsize=None)
def matches_numpy() -> bool:
    """Whether this NumPy sums rows in the order the kernels here follow: row sums of float32 and float64
    probes of every length up to :data:`MAX_ROW` (values spread over 12 decades, signed zeros, infinities)
    compared bit for bit, once per process."""
    rng = numpy.random.default_rng(0)
    for dtype in (numpy.float32, numpy.float64):
        for n in range(1, MAX_ROW + 1):
            x = (rng.standard_normal((4, n)) * 10.0 ** rng.uniform(-6, 6, (4, n))).astype(dtype)
            x[3, ::3] = -0.0
            if n > 2:
                x[2, n // 2] = numpy.inf
            got = numpy.empty(4, dtype)
            row_sums(x, got)
            if not numpy.array_equal(got, x.sum(axis=-1), equal_nan=True) or \
                    not numpy.array_equal(numpy.signbit(got), numpy.signbit(x.sum(axis=-1))):
                return False
    return True
