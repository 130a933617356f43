"""``ember.cuda``: CUDA devices through CuPy, as ``torch.cuda``: availability, selection, sync, seeds, memory.

Every function works without CuPy or a GPU: queries answer ``False``/``0``, ``synchronize`` and the
memory-pool calls do nothing, seeding is remembered for generators made later, and ``set_device`` raises
a RuntimeError saying what to install.

>>> import ember
>>> ember.cuda.device_count() >= 0
True
"""
from __future__ import annotations

from .backend import cuda as _cuda
from .backend import device as _device

__all__ = ["is_available", "device_count", "current_device", "set_device", "synchronize", "manual_seed",
           "manual_seed_all", "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "empty_cache",
           "get_device_name", "device"]


def _index(device) -> int | None:
    """A device argument (None, an index, ``'cuda:N'``, an ``ember.device``) as an index (None: the current one)."""
    if device is None:
        return None
    if isinstance(device, int):
        return device
    d = _device(device)
    if d.type != "cuda":
        raise ValueError(f"ember.cuda: expected a CUDA device, got {d}")
    return d.index


def is_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA GPU."""
    return _cuda.device_count() > 0


def device_count() -> int:
    """The number of CUDA GPUs (0 without CuPy or a GPU)."""
    return _cuda.device_count()


def current_device() -> int:
    """The index of the GPU that ``'cuda'`` means now (0 without CUDA)."""
    return _cuda.current_device()


def set_device(device) -> None:
    """Make ``device`` (an index or ``'cuda:N'``) the current GPU; a RuntimeError when it does not exist."""
    i = _index(device)
    _cuda.set_device(0 if i is None else i)


def get_device_name(device=None) -> str:
    """The GPU's name, e.g. ``'NVIDIA H100 80GB HBM3'``."""
    i = _index(device)
    i = _cuda.current_device() if i is None else i
    cp = _cuda.require(f"cuda:{i}", i)
    name = cp.cuda.runtime.getDeviceProperties(i)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


class device:
    """``with ember.cuda.device(1):``: make a GPU current for a block (ops on ``cuda:1`` tensors need it current,
    as CuPy launches kernels on the current device), restoring the previous one after."""

    def __init__(self, index):
        self.index = _index(index)

    def __enter__(self):
        self.prev = current_device()
        if self.index is not None and self.index != self.prev:
            set_device(self.index)
        return self

    def __exit__(self, *exc):
        if self.index is not None and self.index != self.prev:
            set_device(self.prev)


def synchronize(device=None) -> None:
    """Wait until every kernel queued on the GPU has finished (what timings must do before reading the clock)."""
    _cuda.synchronize(_index(device))


def manual_seed(seed: int) -> None:
    """Seed the current GPU's generator (silently remembered without CUDA, as PyTorch)."""
    if not is_available():
        return
    _cuda.seed_all(int(seed), _cuda.current_device())


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's generator (device ``i`` gets ``seed + i``, so their streams differ)."""
    _cuda.seed_all(int(seed))


def memory_allocated(device=None) -> int:
    """Bytes held by live arrays in CuPy's memory pool on the GPU (0 without CUDA)."""
    return _cuda.memory_allocated(_index(device))


def max_memory_allocated(device=None) -> int:
    """The peak of :func:`memory_allocated` since start or :func:`reset_peak_memory_stats` (0 without CUDA)."""
    return _cuda.max_memory_allocated(_index(device))


def reset_peak_memory_stats(device=None) -> None:
    """Start measuring :func:`max_memory_allocated` again from the current usage."""
    _cuda.reset_peak_memory_stats(_index(device))


def empty_cache() -> None:
    """Release the memory pool's unused cached blocks to the driver, so other processes (and ``nvidia-smi``) see it."""
    _cuda.empty_cache()
