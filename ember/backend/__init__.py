"""Array backends and devices.

This package is the only place in Ember that imports an array library directly.
Ops receive the array module (``xp``) of their inputs from here, so the same op
code runs on NumPy (CPU) and, later, CuPy (CUDA).
"""
from __future__ import annotations

import threading

import numpy

__all__ = ["device", "array_module", "cpu", "ndarray_types", "rng", "manual_seed", "seed_state"]

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


def seed_state():
    """The generator's state as a plain dict (to save and restore)."""
    return _rng.generator.bit_generator.state
