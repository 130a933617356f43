"""Array backends and devices.

This package is the only place in Ember that imports an array library directly.
Ops receive the array module (``xp``) of their inputs from here, so the same op
code runs on NumPy (CPU) and, later, CuPy (CUDA).
"""
from __future__ import annotations

import threading

import numpy

__all__ = ["device", "array_module", "cpu", "ndarray_types", "rng", "manual_seed"]

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


def conv_windows(xp, x, kernel: tuple, stride: tuple, dilation: tuple, out_hw: tuple):
    """Read-only strided view ``(N, C, OH, OW, KH, KW)`` of an NCHW array: every kernel window, no copy.

    ``view[n, c, y, x, i, j] = x[n, c, y*sh + i*dh, x*sw + j*dw]``. The CuPy twin is the same call to
    ``cupy.lib.stride_tricks.as_strided`` (which has no ``writeable`` flag; don't write through it).
    """
    n, c = x.shape[:2]
    sn, sc, sh, sw = x.strides
    shape = (n, c, *out_hw, *kernel)
    strides = (sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1])
    if _is_cupy(xp):
        from cupy.lib.stride_tricks import as_strided
        return as_strided(x, shape=shape, strides=strides)
    return numpy.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)
