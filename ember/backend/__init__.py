"""Array backends and devices.

This package is the only place in Ember that imports an array library directly.
Ops receive the array module (``xp``) of their inputs from here, so the same op
code runs on NumPy (CPU) and CuPy (CUDA); ``EMBER_STRICT_BACKEND=1`` swaps NumPy for a
strict module that has only what CuPy has (:mod:`ember.backend.strict`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

import numpy

from . import cuda as _cuda
from . import heap, onednn
from . import strict as _strict_mod

heap.keep_freed_memory()       # freed arrays stay in the heap for the next step (see ember.backend.heap)

__all__ = ["device", "array_module", "cpu", "ndarray_types", "rng", "manual_seed", "matmul", "uses_onednn", "device_of",
           "move", "to_host", "errstate", "scatter_add_at", "STRICT"]

#: ``EMBER_STRICT_BACKEND=1``: the CPU device computes with :mod:`ember.backend.strict` (NumPy restricted to
#: what CuPy has), so the CPU test suite proves that no op needs NumPy-only behaviour.
STRICT = os.environ.get("EMBER_STRICT_BACKEND", "0") == "1"
_CPU_XP = _strict_mod.module if STRICT else numpy

ndarray_types: tuple = (numpy.ndarray, _strict_mod.StrictArray)
_MODULE_OF_TYPE = {numpy.ndarray: _CPU_XP, _strict_mod.StrictArray: _CPU_XP}
_cp = _cuda.cupy_module()     # None unless CuPy is installed and imports
if _cp is not None:            # registered even without a GPU (then no CuPy array can exist): types are fixed here
    ndarray_types = ndarray_types + (_cp.ndarray,)
    _MODULE_OF_TYPE[_cp.ndarray] = _cp


def array_module(a):
    """Return the array module (``xp``) that owns array ``a``: NumPy (or the strict module) on the CPU, CuPy on CUDA."""
    return _MODULE_OF_TYPE.get(type(a), _CPU_XP)


class device:
    """Where a tensor's data lives: ``ember.device('cpu')``, ``'cuda'`` (the current GPU) or ``'cuda:N'``.

    As PyTorch's ``torch.device``; a CUDA device needs CuPy and a GPU and raises a RuntimeError saying
    what is missing otherwise. ``'cuda'`` resolves to the current device's index.

    >>> device('cpu')
    device(type='cpu')
    """

    __slots__ = ("type", "index", "xp")
    _cache: dict = {}

    def __new__(cls, spec="cpu", index=None):
        if isinstance(spec, device):
            return spec
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = f"cuda:{spec}"
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu', 'cuda' or 'cuda:0', got {type(spec).__name__}")
        kind, _, idx = spec.partition(":")
        if kind == "cpu" and _CPU is not None:
            return _CPU
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"device: unknown device {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")
        try:
            i = int(idx) if idx else index
        except ValueError:
            raise RuntimeError(f"device: {spec!r} has a bad index; expected 'cuda:N' with N an integer") from None
        if kind == "cuda":
            if i is None:
                i = _cuda.current_device()
            self = cls._cache.get(i)
            if self is not None:
                return self
            xp = _cuda.require(f"cuda:{i}", i)
        else:
            xp = _CPU_XP
        self = object.__new__(cls)
        self.type, self.index, self.xp = kind, (i if kind == "cuda" else None), xp
        if kind == "cuda":
            cls._cache[i] = self
        return self

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            if other == str(self):
                return True
            try:
                other = device(other)
            except RuntimeError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return device, (str(self),)


_CPU = None
cpu = _CPU = device("cpu")


_HOST_TYPES = (numpy.ndarray, _strict_mod.StrictArray)


def device_of(a) -> device:
    """The device that holds array ``a`` (the CPU for NumPy arrays, scalars and anything without a GPU index)."""
    if type(a) in _HOST_TYPES:
        return _CPU
    index = getattr(getattr(a, "device", None), "id", None)     # cupy.ndarray.device is a cupy.cuda.Device
    return _CPU if index is None else device("cuda", index)


def move(a, dev: device):
    """Array ``a`` on device ``dev`` (the same array when it is already there): host copies are plain NumPy
    (or strict arrays), CUDA copies go through CuPy."""
    dev = device(dev)
    src = device_of(a)
    if src == dev:
        return a
    if dev.type == "cpu":
        host = _cuda.to_host(a)
        return host.view(_strict_mod.StrictArray) if STRICT else host
    return _cuda.to_device(_strict_mod.to_numpy(a), dev.index)


def to_host(a):
    """A plain NumPy array with ``a``'s data (a copy from a GPU, a view on the CPU): what files and ONNX store."""
    if device_of(a).type == "cuda":
        return _cuda.to_host(a)
    return _strict_mod.to_numpy(a)


# ---------------------------------------------------------------- random state
class _RNG(threading.local):
    def __init__(self):
        self.generator = numpy.random.default_rng()


_rng = _RNG()


def rng(dev=None):
    """The current thread's random generator for ``dev`` (the CPU by default; CuPy's Generator on a GPU)."""
    if dev is None or dev is _CPU:
        return _rng.generator
    dev = device(dev)
    return _rng.generator if dev.type == "cpu" else _cuda.generator(dev.index)


def manual_seed(seed: int):
    """Seed every device's random generator (the CPU's and each GPU's) so that runs repeat exactly."""
    _rng.generator = numpy.random.default_rng(int(seed))
    _cuda.seed_all(int(seed))
    return _rng.generator


# ---------------------------------------------------------------- array helpers with a CuPy twin
def _is_cupy(xp) -> bool:
    return getattr(xp, "__name__", "") == "cupy"


def scatter_add_at(xp, out, index, values) -> None:
    """``out[index] += values`` in place, repeated indices accumulating (NumPy's ``add.at``, CuPy's ``scatter_add``)."""
    if _is_cupy(xp):
        import cupyx
        cupyx.scatter_add(out, index, values)
    else:                       # NumPy, or the strict module (whose ufuncs have no .at): NumPy's add.at is the twin
        numpy.add.at(out, index, values)


def errstate(xp, **kwargs):
    """``numpy.errstate(**kwargs)`` for CPU arrays; a no-op context on CuPy, which never warns (and has no errstate)."""
    if _is_cupy(xp):
        return contextlib.nullcontext()
    return numpy.errstate(**kwargs)


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
    CuPy has its own memory pool, so there (and for any module but NumPy) this is ``xp.empty``.
    """
    if xp is not numpy:
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


def uses_onednn(xp, a, b) -> bool:
    """Whether :func:`matmul` runs ``a @ b`` on oneDNN: a float32 NumPy product large enough that OpenBLAS
    would thread it (see there)."""
    return bool(xp is numpy and a.ndim and b.ndim and a.dtype == b.dtype == numpy.float32
                and a.size * (b.shape[-1] if b.ndim > 1 else 1) > _BLAS_THREADED and onednn.usable(xp, a, b))


def matmul(xp, a, b, out=None):
    """``xp.matmul(a, b, out=out)``, with large float32 NumPy products on oneDNN when it is installed.

    oneDNN runs on its OpenMP thread pool, OpenBLAS on its own; the two pools' workers busy-wait after
    each call, so alternating between them (an oneDNN convolution, then an OpenBLAS ``Linear``) leaves
    the cores fighting and can triple a training step's time. Products large enough that OpenBLAS would
    thread them (``m*n*k`` over 2**18) therefore go to oneDNN's GEMM too, so one pool serves a float32
    step; smaller ones stay on single-threaded OpenBLAS, which wakes no pool. Results agree to float32
    rounding (a different summation order).
    """
    if uses_onednn(xp, a, b):
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
