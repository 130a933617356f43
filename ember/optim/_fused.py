"""Optional fused one-pass optimizer kernels, compiled with numba when it is installed.

``pip install ember-dl[fast]`` adds numba; Adam/AdamW then update each CPU parameter in one
vectorised pass instead of about a dozen ufunc passes. numba is imported on the first step,
not with ``import ember``. Each kernel returns False when the caller should take the portable
``xp`` path (numba missing, non-NumPy arrays, non-contiguous or mixed dtypes).
"""
from __future__ import annotations

import importlib.util

import numpy

from ..backend import STRICT   # the strict backend skips NumPy-only kernels, as CuPy does

__all__ = ["available", "adam"]

available = importlib.util.find_spec("numba") is not None
_kernels: dict = {}


def _adam_kernel():
    kernel = _kernels.get("adam")
    if kernel is None:
        import numba

        # error_model="numpy" drops the ZeroDivisionError branch so LLVM can vectorise the loop (3-4x faster)
        @numba.njit(cache=True, nogil=True, error_model="numpy")
        def kernel(w, g, m, v, vmax, amsgrad, b1, b2, step_size, eps_hat, wd, decay, sign):
            c1, c2 = 1 - b1, 1 - b2
            for i in range(w.size):
                wi = w[i] * decay
                gi = sign * g[i] + wd * wi
                mi = m[i] + c1 * (gi - m[i])
                vi = b2 * v[i] + c2 * gi * gi
                m[i] = mi
                v[i] = vi
                if amsgrad:
                    if vi < vmax[i]:
                        vi = vmax[i]
                    vmax[i] = vi
                w[i] = wi - step_size * mi / (numpy.sqrt(vi) + eps_hat)

        _kernels["adam"] = kernel
    return kernel


def _usable(*arrays) -> bool:
    a0 = arrays[0]
    return not STRICT and all(type(a) is numpy.ndarray and a.dtype == a0.dtype and a.dtype.kind == "f"
               and a.flags.c_contiguous for a in arrays)


def adam(w, g, m, v, vmax, b1, b2, step_size, eps_hat, wd, lr, maximize, decoupled) -> bool:
    """One fused Adam/AdamW update of ``w`` in place; False when the kernel can't run on these arrays.

    Float32 arrays are updated with float64 scalars (double-precision arithmetic, one rounding
    per stored value), which keeps the trajectory within float32 noise of PyTorch's.
    """
    if not available:
        return False
    arrays = (w, g, m, v) if vmax is None else (w, g, m, v, vmax)
    if not _usable(*arrays):
        return False
    flat = [a.reshape(-1) for a in arrays]
    if vmax is None:
        flat.append(flat[3])
    decay = 1.0 - lr * wd if decoupled else 1.0
    _adam_kernel()(flat[0], flat[1], flat[2], flat[3], flat[4], vmax is not None, float(b1), float(b2),
                   float(step_size), float(eps_hat), float(0.0 if decoupled else wd), float(decay),
                   -1.0 if maximize else 1.0)
    return True
