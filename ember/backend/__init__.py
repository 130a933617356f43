"""Array backends and devices.

This package is the only place in Ember that imports an array library directly.
Ops receive the array module (``xp``) of their inputs from here, so the same op
code runs on NumPy (CPU) and, later, CuPy (CUDA).
"""
from __future__ import annotations

import sys
import threading

import numpy

from . import onednn

__all__ = ["device", "array_module", "cpu", "ndarray_types", "rng", "manual_seed", "matmul"]

ndarray_types: tuple = (numpy.ndarray,)
_MODULE_OF_TYPE = {numpy.ndarray: numpy}


def array_module(a):
    """Return the array module (``xp``) that owns array ``a``: numpy for CPU arrays."""
    return _MODULE_OF_TYPE.get(type(a), numpy)


class device:
    """Where a tensor's data lives, e.g. ``ember.device('cpu')`` (PyTorch's ``torch.device``).

    >>> device('cpu')
    device(type='cpu')
    """

    __slots__ = ("type", "index", "xp")

    def __new__(cls, spec="cpu", index=None):
        if isinstance(spec, device):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu', got {type(spec).__name__}")
        kind, _, idx = spec.partition(":")
        if kind != "cpu":
            raise RuntimeError(
                f"device: {spec!r} is not available; this build of Ember runs on 'cpu' "
                "(the CUDA backend needs CuPy and a GPU)")
        if kind == "cpu" and _CPU is not None:
            return _CPU
        self = object.__new__(cls)
        self.type, self.index, self.xp = kind, (int(idx) if idx else index), numpy
        return self

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


_CPU = None
cpu = _CPU = device("cpu")


def device_of(a) -> device:
    """The device that holds array ``a``."""
    return cpu


# ---------------------------------------------------------------- random state
class _RNG(threading.local):
    def __init__(self):
        self.generator = numpy.random.default_rng()


_rng = _RNG()


def rng():
    """The current thread's random generator for CPU arrays (seeded by :func:`manual_seed`)."""
    return _rng.generator


def manual_seed(seed: int):
    """Seed Ember's random number generator so that runs repeat exactly."""
    _rng.generator = numpy.random.default_rng(int(seed))
    return _rng.generator



# ---------------------------------------------------------------- array helpers with a CuPy twin
def _is_cupy(xp) -> bool:
    return getattr(xp, "__name__", "") == "cupy"


def scatter_add_at(xp, out, index, values) -> None:
    """``out[index] += values`` in place, repeated indices accumulating (NumPy's ``add.at``, CuPy's ``scatter_add``)."""
    if _is_cupy(xp):
        import cupyx
        cupyx.scatter_add(out, index, values)
    else:
        xp.add.at(out, index, values)


def broadcast_shapes(*shapes) -> tuple:
    """The shape that ``shapes`` broadcast to (a ValueError when they don't); works on plain tuples for any backend."""
    return numpy.broadcast_shapes(*shapes)


try:   # NumPy >= 2 keeps its floating-point error state in a context variable: setting it is ~10x cheaper than errstate
    from numpy._core._ufunc_config import _extobj_contextvar as _fp_state
    with numpy.errstate(all="ignore"):
        _FP_IGNORE = _fp_state.get()
except (ImportError, AttributeError):   # pragma: no cover - older or future NumPy
    _fp_state = None


def quiet_call(fn, *args):
    """``fn(*args)`` without NumPy's floating-point RuntimeWarnings (PyTorch lets inf and nan through silently).

    Cheap enough for the hot path of ``+``, ``-`` and ``*``; CuPy never warns, so it is harmless there.
    """
    if _fp_state is None:   # pragma: no cover
        with numpy.errstate(all="ignore"):
            return fn(*args)
    token = _fp_state.set(_FP_IGNORE)
    try:
        return fn(*args)
    finally:
        _fp_state.reset(token)


class _ScratchPool(threading.local):
    def __init__(self):
        self.buffers: dict = {}
        self.nbytes = 0


_scratch = _ScratchPool()
_SCRATCH_KEYS = 32              # distinct (shape, dtype) kept per thread, least recently used dropped first
_SCRATCH_PER_KEY = 4
_SCRATCH_BYTES = 512 * 2 ** 20  # at most this much held per thread; larger demands are plain allocations


def scratch(xp, shape: tuple, dtype):
    """An uninitialised array for a kernel's private workspace (an im2col matrix, a padded copy), recycled.

    Large NumPy allocations come fresh from the operating system each time and are paid again in page
    faults on first touch (about a third of an im2col's time); convolutions allocate the same shapes step
    after step, so a buffer that nothing references any more (reference count: only this pool) is handed
    out again. Never return one to the user: only arrays that die inside the op or stay with its graph node.
    Memory: up to 4 buffers per shape for the 32 most recent shapes and 512 MiB in all, per thread.
    CuPy has its own memory pool, so there this is ``cupy.empty``.
    """
    if _is_cupy(xp):
        return xp.empty(shape, dtype=dtype)
    key = (tuple(shape), numpy.dtype(dtype).str)
    pool = _scratch.buffers
    bufs = pool.pop(key, None)
    if bufs is None:
        bufs = []
        if len(pool) >= _SCRATCH_KEYS:
            _scratch.nbytes -= sum(b.nbytes for b in pool.pop(next(iter(pool))))
    pool[key] = bufs                                 # most recently used last
    for b in bufs:
        if sys.getrefcount(b) == 3:                  # the list, the loop variable and getrefcount's argument
            return b
    b = numpy.empty(shape, dtype=dtype)
    if len(bufs) < _SCRATCH_PER_KEY and _scratch.nbytes + b.nbytes <= _SCRATCH_BYTES:
        bufs.append(b)
        _scratch.nbytes += b.nbytes
    return b


_BLAS_THREADED = 65536 * 4   # m*n*k above which OpenBLAS splits a product across its thread pool


def matmul(xp, a, b, out=None):
    """``xp.matmul(a, b, out=out)``, with large float32 NumPy products on oneDNN when it is installed.

    oneDNN runs on its OpenMP thread pool, OpenBLAS on its own; the two pools' workers busy-wait after
    each call, so alternating between them (an oneDNN convolution, then an OpenBLAS ``Linear``) leaves
    the cores fighting and can triple a training step's time. Products large enough that OpenBLAS would
    thread them (``m*n*k`` over 2**18) therefore go to oneDNN's GEMM too, so one pool serves a float32
    step; smaller ones stay on single-threaded OpenBLAS, which wakes no pool. Results agree to float32
    rounding (a different summation order).
    """
    if (xp is numpy and a.ndim and b.ndim and a.dtype == b.dtype == numpy.float32
            and a.size * (b.shape[-1] if b.ndim > 1 else 1) > _BLAS_THREADED and onednn.usable(xp, a, b)):
        if a.ndim > 1 and b.ndim > 1:
            r = onednn.matmul(a, b, out)
        else:                                   # a vector operand: a one-row or one-column matrix
            r = onednn.matmul(a[None] if a.ndim == 1 else a, b[:, None] if b.ndim == 1 else b)
            if r is not None:
                r = r[..., 0, :] if a.ndim == 1 else r[..., 0]
                if out is not None:
                    out[...] = r
                    r = out
        if r is not None:
            return r
    return xp.matmul(a, b, out=out)
