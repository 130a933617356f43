"""CuPy glue for CUDA devices: find CuPy lazily, count GPUs, move arrays, generators, memory-pool statistics.

Nothing here imports CuPy until asked, and nothing raises when CuPy is installed but no GPU (or no driver)
exists: :func:`cupy_module` is None and :func:`device_count` 0 then. The calls into CuPy follow its documented
API (``cupy.cuda.runtime``, ``cupy.cuda.Device``, ``cupy.random.default_rng``, ``cupy.get_default_memory_pool``,
``cupy.cuda.set_allocator``) and are unverified on this project's GPU-less CI.
"""
from __future__ import annotations

import importlib.util
import threading

__all__ = ["cupy_module", "device_count", "require", "to_device", "to_host", "generator", "seed_all",
           "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "empty_cache", "current_device",
           "set_device", "synchronize"]

INSTALL_HINT = "pip install 'ember-dl[gpu]' (CuPy for CUDA 12: cupy-cuda12x)"
_state: dict = {}
_local = threading.local()
_seed: list = [None]      # the seed of the last ember.manual_seed / cuda.manual_seed_all, for generators made later
_peak: dict = {}          # device index -> the most bytes the memory pool has had in use since the last reset


def cupy_module():
    """The ``cupy`` module when it is installed and imports (it needs no GPU to import), else None."""
    if "cupy" not in _state:
        cp = None
        if importlib.util.find_spec("cupy") is not None:
            try:
                import cupy as cp
            except Exception:     # a broken install or missing CUDA libraries: treat as absent
                cp = None
        _state["cupy"] = cp
    return _state["cupy"]


def device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy, a driver or a GPU)."""
    if "count" not in _state:
        cp, n = cupy_module(), 0
        if cp is not None:
            try:
                n = int(cp.cuda.runtime.getDeviceCount())
            except Exception:     # no driver / no device: CUDARuntimeError
                n = 0
        _state["count"] = n
    return _state["count"]


def require(spec: str, index: int):
    """CuPy, after checking that CUDA device ``index`` exists; a RuntimeError saying what is missing otherwise."""
    cp = cupy_module()
    if cp is None:
        raise RuntimeError(f"device: {spec!r} is not available: it needs CuPy, which is not installed (or failed to "
                           "import); "
                           f"install it with: {INSTALL_HINT}")
    n = device_count()
    if n == 0:
        raise RuntimeError(f"device: {spec!r} is not available: CuPy finds no CUDA GPU (no device or driver); "
                           "use 'cpu', or check ember.cuda.is_available() first")
    if not 0 <= index < n:
        raise RuntimeError(f"device: {spec!r} is out of range: CuPy sees {n} CUDA device(s), "
                           f"expected an index in [0, {n - 1}]")
    _track_peak(cp)
    return cp


def current_device() -> int:
    cp = cupy_module()
    return int(cp.cuda.runtime.getDevice()) if cp is not None and device_count() else 0


def set_device(index: int) -> None:
    require(f"cuda:{index}", index).cuda.runtime.setDevice(int(index))


def synchronize(index: int | None = None) -> None:
    """Wait for every kernel queued on the device (all of CuPy's streams there) to finish."""
    cp = cupy_module()
    if cp is None or not device_count():
        return
    with cp.cuda.Device(current_device() if index is None else index):
        cp.cuda.Device().synchronize()


def to_device(a, index: int):
    """Array ``a`` (NumPy, or CuPy on any GPU) as a CuPy array on device ``index``; a copy unless already there."""
    cp = require(f"cuda:{index}", index)
    if isinstance(a, cp.ndarray) and a.device.id == index:
        return a
    with cp.cuda.Device(index):
        return cp.array(a, copy=True) if isinstance(a, cp.ndarray) else cp.asarray(a)


def to_host(a):
    """A CuPy array's data as a NumPy array (a device-to-host copy, which waits for the device)."""
    return a.get()


def generator(index: int):
    """This thread's random generator for device ``index`` (``cupy.random.default_rng``), seeded by ``manual_seed``."""
    gens = getattr(_local, "gens", None)
    if gens is None:
        gens = _local.gens = {}
    g = gens.get(index)
    if g is None:
        cp = require(f"cuda:{index}", index)
        with cp.cuda.Device(index):
            g = gens[index] = cp.random.default_rng(None if _seed[0] is None else _seed[0] + index)
    return g


def seed_all(seed: int | None, index: int | None = None) -> None:
    """Seed every CUDA generator (or the one of ``index``): the existing ones are dropped and made again on use."""
    if index is None:
        _seed[0] = seed
        _local.gens = {}
    else:
        gens = getattr(_local, "gens", None) or {}
        cp = cupy_module()
        if cp is not None and device_count() > index:
            with cp.cuda.Device(index):
                gens[index] = cp.random.default_rng(seed)
        _local.gens = gens


# ---------------------------------------------------------------- memory pool
def _pool():
    cp = cupy_module()
    return cp.get_default_memory_pool() if cp is not None and device_count() else None


def _track_peak(cp) -> None:
    """Route CuPy's allocations through the default pool with a wrapper that records the peak bytes in use."""
    if _state.get("tracking"):
        return
    _state["tracking"] = True
    pool = cp.get_default_memory_pool()

    def malloc(size):
        mem = pool.malloc(size)
        dev = cp.cuda.runtime.getDevice()
        used = pool.used_bytes()
        if used > _peak.get(dev, 0):
            _peak[dev] = used
        return mem

    cp.cuda.set_allocator(malloc)


def _on(index, fn, default=0):
    pool = _pool()
    if pool is None:
        return default
    cp = cupy_module()
    with cp.cuda.Device(current_device() if index is None else index):
        return fn(pool)


def memory_allocated(index: int | None = None) -> int:
    """Bytes of device memory held by live CuPy arrays on the device (0 without CUDA)."""
    return int(_on(index, lambda p: p.used_bytes()))


def max_memory_allocated(index: int | None = None) -> int:
    """The most bytes :func:`memory_allocated` has reached since the start or :func:`reset_peak_memory_stats`."""
    def peak(p):
        dev = current_device() if index is None else index
        return max(_peak.get(dev, 0), p.used_bytes())
    return int(_on(index, peak))


def reset_peak_memory_stats(index: int | None = None) -> None:
    def reset(p):
        _peak[current_device() if index is None else index] = p.used_bytes()
    _on(index, reset, None)


def empty_cache() -> None:
    """Give the memory pool's cached, unused blocks back to the driver (arrays still alive are untouched)."""
    pool = _pool()
    if pool is not None:
        pool.free_all_blocks()
        cupy_module().get_default_pinned_memory_pool().free_all_blocks()
