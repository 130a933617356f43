"""NumPy's PCG64 uniform stream, compiled: the exact numbers of ``generator.random(shape, dtype)``, faster.

Dropout draws one uniform per element (2.6 M a step in the Transformer benchmark), and NumPy makes each
through a function-pointer call into its bit generator: about 1.4 ns a float32, a sixth of a jitted step.
PCG64 is a 128-bit linear congruential generator (``s' = s * M + inc``) read out through an XSL-RR
permutation, so its states can be stepped four at a time in independent chains (``s[i + 4] = s[i] * M^4 +
C4``) that a CPU overlaps, with the 128-bit product done by LLVM (an ``i128`` multiply). The floats are
NumPy's: float32 from the low then the high 32 bits of each output (``(u >> 8) * 2**-24``, the odd one out
buffered in the generator as NumPy buffers it), float64 from the top 53 bits (``(u >> 11) * 2**-53``).
The generator's state is written back afterwards, so eager and jitted code can share it and stay in step.

Used by graph mode's compiled dropout (:mod:`ember.graph.compiled_ops`) when numba is installed; importing
this module imports numba.

>>> import numpy
>>> a, b = numpy.random.default_rng(3), numpy.random.default_rng(3)
>>> bool((random(a, (5, 3), numpy.float32) == b.random((5, 3), dtype=numpy.float32)).all())
True
>>> bool(a.random() == b.random())
True
"""
from __future__ import annotations

import functools

import numba
import numpy
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["supported", "random", "dropout", "dropout_mask"]

_MULT = (2549297995355413924 << 64) | 4865540595714422341    # PCG64's multiplier (numpy/random/src/pcg64)
_MASK64, _MASK128 = (1 << 64) - 1, (1 << 128) - 1
_CHAINS = 4
_u64 = types.uint64


@intrinsic
def _lcg(typingctx, s_lo, s_hi, a_lo, a_hi, c_lo, c_hi):
    """``(lo, hi)`` of ``s * a + c`` modulo 2**128, each 128-bit number given as two uint64 halves."""
    sig = types.UniTuple(_u64, 2)(_u64, _u64, _u64, _u64, _u64, _u64)

    def codegen(context, builder, signature, args):
        wide, half = ir.IntType(128), ir.IntType(64)

        def join(lo, hi):
            return builder.or_(builder.shl(builder.zext(hi, wide), ir.Constant(wide, 64)), builder.zext(lo, wide))
        r = builder.add(builder.mul(join(args[0], args[1]), join(args[2], args[3])), join(args[4], args[5]))
        hi = builder.trunc(builder.lshr(r, ir.Constant(wide, 64)), half)
        return context.make_tuple(builder, signature.return_type, [builder.trunc(r, half), hi])
    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _output(lo, hi):
    """PCG64's XSL-RR output of the state ``(lo, hi)``."""
    x = hi ^ lo
    rot = hi >> numpy.uint64(58)
    return (x >> rot) | (x << ((numpy.uint64(64) - rot) & numpy.uint64(63)))


@numba.njit(nogil=True, cache=True)
def _low_float(v):
    """NumPy's float32 from the low 32 bits ``u`` of the word ``v``: ``(u >> 8) * 2**-24`` (exact)."""
    return numpy.float32((v & numpy.uint64(0xFFFFFFFF)) >> numpy.uint64(8)) * numpy.float32(2.0 ** -24)


@numba.njit(nogil=True, cache=True)
def _emit(out, i, v, single):
    """Output word ``v``'s draws into ``out`` at flat index ``i``, as NumPy makes them: two float32 (the low
    half first, :func:`_low_float`) or one float64 (``(u >> 11) * 2**-53``); the products are exact."""
    if single:
        out[i] = _low_float(v)
        out[i + 1] = _low_float(v >> numpy.uint64(32))
    else:
        out[i] = numpy.float64(v >> numpy.uint64(11)) * 2.0 ** -53


@numba.njit(nogil=True, cache=True, inline="always")
def _fill(out, single, chains, jump, step, final):
    """``out``'s draws from index 0. ``chains`` (4, 2): the states of the next four outputs, left at the
    four after the last whole block of four (so a chunk of a multiple of 4 outputs continues where the last
    one stopped); ``jump`` (a_lo, a_hi, c_lo, c_hi) steps a state four places, ``step`` one place. ``final``
    gets the state of the last output; when ``out`` has one float32 slot left over, the next output's low
    half goes there and its high half is returned (for the generator's buffer). Indices are non-negative
    loop products, so no wraparound checks are compiled in (an offset index made the loop twice as slow)."""
    a0, b0, a1, b1 = chains[0, 0], chains[0, 1], chains[1, 0], chains[1, 1]
    a2, b2, a3, b3 = chains[2, 0], chains[2, 1], chains[3, 0], chains[3, 1]
    j0, j1, j2, j3 = jump[0], jump[1], jump[2], jump[3]
    last_lo, last_hi = final[0], final[1]
    per = 2 if single else 1
    words = out.shape[0] // per
    blocks = words // 4
    for b in range(blocks):
        i = 4 * per * b
        _emit(out, i, _output(a0, b0), single)
        _emit(out, i + per, _output(a1, b1), single)
        _emit(out, i + 2 * per, _output(a2, b2), single)
        _emit(out, i + 3 * per, _output(a3, b3), single)
        last_lo, last_hi = a3, b3
        a0, b0 = _lcg(a0, b0, j0, j1, j2, j3)
        a1, b1 = _lcg(a1, b1, j0, j1, j2, j3)
        a2, b2 = _lcg(a2, b2, j0, j1, j2, j3)
        a3, b3 = _lcg(a3, b3, j0, j1, j2, j3)
    i = 4 * per * blocks
    tail = words % 4
    if tail > 0:
        _emit(out, i, _output(a0, b0), single)
        last_lo, last_hi = a0, b0
    if tail > 1:
        _emit(out, i + per, _output(a1, b1), single)
        last_lo, last_hi = a1, b1
    if tail > 2:
        _emit(out, i + 2 * per, _output(a2, b2), single)
        last_lo, last_hi = a2, b2
    i += tail * per
    spare = numpy.uint64(0)
    if i < out.shape[0]:
        last_lo, last_hi = _lcg(last_lo, last_hi, step[0], step[1], step[2], step[3])
        v = _output(last_lo, last_hi)
        out[i] = _low_float(v)
        spare = v >> numpy.uint64(32)
    final[0], final[1] = last_lo, last_hi
    chains[0, 0], chains[0, 1], chains[1, 0], chains[1, 1] = a0, b0, a1, b1
    chains[2, 0], chains[2, 1], chains[3, 0], chains[3, 1] = a2, b2, a3, b3
    return spare


@numba.njit(nogil=True, cache=True)
def _fill32(out, chains, jump, step, final):
    """:func:`_fill` for float32 (``single`` a constant, so each loop is compiled for its dtype alone)."""
    return _fill(out, True, chains, jump, step, final)


@numba.njit(nogil=True, cache=True)
def _fill64(out, chains, jump, step, final):
    """:func:`_fill` for float64."""
    return _fill(out, False, chains, jump, step, final)


_CHUNK = 4096        # draws per chunk of the fused kernels: 16 KiB of float32, in L1 while it is used


@numba.njit(nogil=True, cache=True, inline="always")
def _masks(x, out, keep, p, scale, single, chains, jump, step, final):
    """Dropout's ``keep = u >= p`` for the draws ``u`` and, when ``x`` has elements, ``out = x * where(keep,
    scale, 0)`` (rounded as NumPy rounds ``x * mask``), one chunk of draws at a time, so the uniforms never
    reach memory. ``x`` gives the draws' dtype even when empty."""
    n = keep.shape[0]
    buf = numpy.empty(min(n, _CHUNK), x.dtype)
    zero = scale - scale
    spare = numpy.uint64(0)
    for c in range(0, n, _CHUNK):
        k = min(_CHUNK, n - c)
        u = buf[:k]
        spare = _fill(u, single, chains, jump, step, final)
        m = keep[c:c + k]
        for j in range(k):
            m[j] = u[j] >= p
        if x.shape[0]:
            xs, o = x[c:c + k], out[c:c + k]
            for j in range(k):
                o[j] = xs[j] * (scale if m[j] else zero)
    return spare


@numba.njit(nogil=True, cache=True)
def _masks32(x, out, keep, p, scale, chains, jump, step, final):
    """:func:`_masks` for float32."""
    return _masks(x, out, keep, p, scale, True, chains, jump, step, final)


@numba.njit(nogil=True, cache=True)
def _masks64(x, out, keep, p, scale, chains, jump, step, final):
    """:func:`_masks` for float64."""
    return _masks(x, out, keep, p, scale, False, chains, jump, step, final)


def supported(generator) -> bool:
    """Whether ``generator`` is a NumPy ``Generator`` on PCG64 (``numpy.random.default_rng``'s kind)."""
    return type(generator) is numpy.random.Generator and type(generator.bit_generator) is numpy.random.PCG64


def _halves(v: int) -> list:
    return [v & _MASK64, v >> 64]


@functools.lru_cache(maxsize=64)
def _jumps(inc: int):
    """``(a, c)`` stepping a state one place and four places: ``s * a + c``."""
    a4, c4 = 1, 0
    for _ in range(_CHAINS):
        a4, c4 = (a4 * _MULT) & _MASK128, (c4 * _MULT + inc) & _MASK128
    return (numpy.array(_halves(_MULT) + _halves(inc), numpy.uint64),
            numpy.array(_halves(a4) + _halves(c4), numpy.uint64))


def _high_half(state) -> int:
    """The high 32 bits of PCG64's output for the state ``(lo, hi)`` (two uint64)."""
    lo, hi = int(state[0]), int(state[1])
    x, rot = hi ^ lo, hi >> 58
    return (((x >> rot) | (x << (64 - rot))) & _MASK64) >> 32


def random(generator, shape, dtype):
    """``generator.random(shape, dtype=dtype)`` (float32 or float64) for a PCG64 ``generator``
    (:func:`supported`): the same numbers, and the generator left in the same state."""
    out = numpy.empty(shape, dtype)
    _draw(generator, out.reshape(-1), None, None, None, None)
    return out


def dropout(generator, x, p: float):
    """``(x * mask, keep)`` for ``keep = u >= p`` (a boolean array) and ``mask = where(keep, 1 / (1 - p), 0)``,
    ``u = generator.random(x.shape, dtype=x.dtype)``: :class:`ember.ops.random.Dropout`'s numbers, the
    uniforms and the float mask never stored. ``x``: C-contiguous float32 or float64."""
    out, keep = numpy.empty_like(x), numpy.empty(x.shape, bool)
    _draw(generator, None, keep.reshape(-1), x.reshape(-1), out.reshape(-1), p)
    return out, keep


def dropout_mask(generator, shape, dtype, p: float):
    """``keep = u >= p`` (a boolean array) for ``u = generator.random(shape, dtype=dtype)`` (float32 or
    float64): attention's dropout pattern, the uniforms never stored."""
    keep = numpy.empty(shape, bool)
    _draw(generator, None, keep.reshape(-1), numpy.empty(0, dtype), None, p)
    return keep


def _draw(generator, uniforms, keep, x, out, p) -> None:
    """Draw ``n`` uniforms (of ``uniforms``' or ``x``'s dtype) from ``generator`` and advance its state as
    NumPy would. Without ``p``, they go into ``uniforms``; with it, ``keep = u >= p``, and ``out = x *
    where(keep, 1 / (1 - p), 0)`` when ``x`` has elements."""
    masked = p is not None
    target = keep if masked else uniforms
    dtype = x.dtype if masked else uniforms.dtype
    t = dtype.type
    single, n = dtype == numpy.float32, target.size
    scale = t(1.0 / (1.0 - p)) if masked else t(1.0)
    if masked and out is None:
        out = x
    bits = generator.bit_generator
    with bits.lock:
        st = bits.state
        state, inc = st["state"]["state"], st["state"]["inc"]
        start = 0
        if single and st["has_uint32"] and n:        # NumPy hands out its buffered half first
            u = _low_float(numpy.uint64(st["uinteger"]))
            target[0] = u >= t(p) if masked else u
            if masked and x.size:
                out[0] = x[0] * (scale if target[0] else scale - scale)
            st["has_uint32"], start = 0, 1
            target = target[1:]
            if masked and x.size:
                x, out = x[1:], out[1:]
        chains, s = [], state
        for _ in range(_CHAINS):
            s = (s * _MULT + inc) & _MASK128
            chains.append(_halves(s))
        chains = numpy.array(chains, numpy.uint64)
        step, jump = _jumps(inc)
        final = numpy.array(_halves(state), numpy.uint64)
        if masked:
            spare = (_masks32 if single else _masks64)(x, out, target, t(p), scale, chains, jump, step, final)
        else:
            spare = (_fill32 if single else _fill64)(target, chains, jump, step, final)
        st["state"]["state"] = int(final[0]) | int(final[1]) << 64
        if single and start < n:              # NumPy's buffer keeps the high half of its last output
            odd = (n - start) % 2 == 1
            st["uinteger"], st["has_uint32"] = (int(spare) if odd else _high_half(final)), int(odd)
        bits.state = st
