"""Optional fused per-step LSTM/GRU gate kernels, compiled with numba when it is installed.

A recurrent step is one ``h @ W_hh^T`` matmul (BLAS, called by :mod:`ember.ops.rnn`) and then the gate
arithmetic: sigmoid/tanh of the pre-activations and the state update, or in the backward the gate
gradients. In NumPy that is about a dozen ufunc passes over small (batch, hidden) blocks plus
temporaries; here it is one loop over the block that reads each value once and writes each result once.
numba is imported on the first call, not with ``import ember``; set ``enabled = False`` to force the
portable ``xp`` path (tests run both). :func:`kernels` returns None when the arrays can't take this path
(numba missing or disabled, non-NumPy arrays, mixed or non-float dtypes).

Accuracy: float32 kernels evaluate ``tanh`` (and ``sigmoid(a) = (tanh(a/2) + 1) / 2``) with the rational
approximation Eigen, TensorFlow and XLA use for float32 (absolute error below 4e-7, about 6 ulp near 1);
libm's scalar ``tanhf`` would not vectorise and costs 30x more. Float64 kernels call the exact ``tanh``,
so float64 gradient checks see the true function. No ``fastmath``: every other operation rounds as
NumPy does. Memory: one row-sized (4*H) buffer per call; every kernel writes the caller's arrays in place.
"""
from __future__ import annotations

import importlib.util
import math

import numpy

__all__ = ["available", "enabled", "kernels"]

available = importlib.util.find_spec("numba") is not None
enabled = available
_cache: dict = {}

_F = numpy.float32
# Eigen's float tanh: x * P(x^2) / Q(x^2) on [-c, c]; tanh(x) = x below 4e-4 where P/Q would lose it
_CLAMP, _TINY = _F(7.90531110763549805), _F(0.0004)
_P = tuple(_F(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                          5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_Q = tuple(_F(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))
_HALF, _ONE = _F(0.5), _F(1.0)   # exact in every float dtype: float32 data stays float32 arithmetic


def _tanh(a):
    """``tanh`` inside the kernels; numba compiles it per dtype (see :func:`_register_tanh`)."""
    return math.tanh(a)


def _tanh_f32(a):
    x = min(max(a, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _P[0] + _P[1]
    p = x2 * p + _P[2]
    p = x2 * p + _P[3]
    p = x2 * p + _P[4]
    p = x2 * p + _P[5]
    p = x2 * p + _P[6]
    q = x2 * _Q[0] + _Q[1]
    q = x2 * q + _Q[2]
    q = x2 * q + _Q[3]
    r = x * p / q
    return a if abs(a) < _TINY else r


def _register_tanh(numba) -> None:
    """float32: the rational approximation (vectorises); float64 and others: the exact libm ``tanh``."""
    from numba.extending import overload

    @overload(_tanh)
    def _tanh_impl(a):
        if a == numba.types.float32:
            return _tanh_f32
        return lambda a: math.tanh(a)


# Each kernel works a row at a time in short single-purpose loops through a row-sized local buffer:
# LLVM then proves the loops free of aliasing and vectorises them (one fused loop over six arrays
# stays scalar and runs 8x slower).
def _lstm_forward(a, x, c, cn, tc, hn):
    """``a`` (N, 4H): ``h W_hh^T`` in, gate activations i, f, g, o out; ``x`` the step's input projection;
    ``c`` the previous cell; writes the new cell ``cn``, ``tc = tanh(cn)`` and ``hn = o * tc``."""
    N, H = c.shape
    buf = numpy.empty(4 * H, a.dtype)
    for n in range(N):
        for j in range(4 * H):
            buf[j] = a[n, j] + x[n, j]
        for j in range(H):
            buf[j] = _HALF * _tanh(_HALF * buf[j]) + _HALF
            buf[H + j] = _HALF * _tanh(_HALF * buf[H + j]) + _HALF
            buf[2 * H + j] = _tanh(buf[2 * H + j])
            buf[3 * H + j] = _HALF * _tanh(_HALF * buf[3 * H + j]) + _HALF
        for j in range(4 * H):
            a[n, j] = buf[j]
        for j in range(H):
            cn[n, j] = buf[H + j] * c[n, j] + buf[j] * buf[2 * H + j]
        for j in range(H):
            tc[n, j] = _tanh(cn[n, j])
        for j in range(H):
            hn[n, j] = buf[3 * H + j] * tc[n, j]

def _lstm_backward(dh, dc, act, cp, tc, da, m):
    """Gate gradients ``da`` (N, 4H) of one step from ``dh`` (gradient of its h before projection) and
    ``dc`` (of its cell), which becomes the gradient of the previous cell in place. ``cp``: the previous
    cell; ``m`` (N,) bool: rows where the step ran (elsewhere ``da`` is zero and ``dc`` passes through)."""
    N, H = dc.shape
    dcn = numpy.empty(H, dc.dtype)
    for n in range(N):
        if not m[n]:
            for j in range(4 * H):
                da[n, j] = 0
            continue
        for j in range(H):
            t = tc[n, j]
            dcn[j] = dh[n, j] * ((_ONE - t * t) * act[n, 3 * H + j]) + dc[n, j]
        for j in range(H):
            i = act[n, j]
            da[n, j] = dcn[j] * ((_ONE - i) * i * act[n, 2 * H + j])
        for j in range(H):
            f = act[n, H + j]
            da[n, H + j] = dcn[j] * ((_ONE - f) * f * cp[n, j])
        for j in range(H):
            g = act[n, 2 * H + j]
            da[n, 2 * H + j] = dcn[j] * ((_ONE - g * g) * act[n, j])
        for j in range(H):
            o = act[n, 3 * H + j]
            da[n, 3 * H + j] = dh[n, j] * ((_ONE - o) * o * tc[n, j])
        for j in range(H):
            dc[n, j] = dcn[j] * act[n, H + j]

def _gru_forward(a, x, b, h, rz, nn, hn):
    """``a`` (N, 3H): ``h W_hh^T`` in, plus ``b`` (3H,) out; ``x`` the step's input projection, ``h`` the
    previous state; writes ``rz`` (N, 2H) = sigmoid(r, z), ``nn`` = tanh(x_n + r * a_n), ``hn``."""
    N, H = h.shape
    buf = numpy.empty(2 * H, a.dtype)
    for n in range(N):
        for j in range(3 * H):
            a[n, j] += b[j]
        for j in range(2 * H):
            buf[j] = _HALF * _tanh(_HALF * (x[n, j] + a[n, j])) + _HALF
        for j in range(2 * H):
            rz[n, j] = buf[j]
        for j in range(H):
            nn[n, j] = _tanh(buf[j] * a[n, 2 * H + j] + x[n, 2 * H + j])
        for j in range(H):
            hn[n, j] = (h[n, j] - nn[n, j]) * buf[H + j] + nn[n, j]

def _gru_backward(dh, ah, rz, nn, hp, dah, dax, m):
    """Gradients of one step's pre-activations: ``dax`` (N, 3H) of the input side, ``dah`` of the
    ``h W_hh^T + b`` side, from ``dh`` (gradient of the step's state), which becomes in place the part
    of the previous state's gradient that bypasses ``W_hh`` (``dh * z``). ``hp``: the previous state;
    ``m`` (N,) bool: rows where the step ran (elsewhere the gradients are zero and ``dh`` passes)."""
    N, H = dh.shape
    kn = numpy.empty(H, dh.dtype)
    for n in range(N):
        if not m[n]:
            for j in range(3 * H):
                dah[n, j] = 0
                dax[n, j] = 0
            continue
        for j in range(H):
            v = nn[n, j]
            kn[j] = dh[n, j] * ((_ONE - rz[n, H + j]) * (_ONE - v * v))
        for j in range(H):
            r = rz[n, j]
            dax[n, j] = kn[j] * ah[n, 2 * H + j] * r * (_ONE - r)
        for j in range(H):
            z = rz[n, H + j]
            dax[n, H + j] = dh[n, j] * ((hp[n, j] - nn[n, j]) * z * (_ONE - z))
        for j in range(H):
            dax[n, 2 * H + j] = kn[j]
        for j in range(2 * H):
            dah[n, j] = dax[n, j]
        for j in range(H):
            dah[n, 2 * H + j] = kn[j] * rz[n, j]
        for j in range(H):
            dh[n, j] = dh[n, j] * rz[n, H + j]


def _build() -> dict:
    """Compile (or load from numba's on-disk cache) the step kernels; each compiles once per dtype."""
    import numba
    _register_tanh(numba)
    jit = numba.njit(cache=True, nogil=True, error_model="numpy")
    return {name: jit(f) for name, f in (("lstm_forward", _lstm_forward), ("lstm_backward", _lstm_backward),
                                         ("gru_forward", _gru_forward), ("gru_backward", _gru_backward))}


def kernels(*arrays):
    """The compiled kernels by name (each specialises on the dtype), or None when the ``xp`` path must run."""
    from . import STRICT
    if not enabled or STRICT:          # the strict backend stands for CuPy: no NumPy-only kernels
        return None
    dt = arrays[0].dtype
    if dt not in (numpy.float32, numpy.float64) or not all(
            type(a) is numpy.ndarray and a.dtype == dt for a in arrays if a is not None):
        return None
    if not _cache:
        _cache.update(_build())
    return _cache
