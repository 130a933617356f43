"""PyTorch-like printing of tensors."""
from __future__ import annotations

import math

import numpy  # printing works on a host copy of the data

from .. import dtypes as _dt


def _host(a):
    return a if isinstance(a, numpy.ndarray) else a.get()


def tensor_repr(t, prefix: str = "tensor(") -> str:
    """``tensor([[1., 2.], ...], dtype=ember.float64, requires_grad=True)``."""
    a = _host(t.data)
    opts = {"separator": ", ", "prefix": prefix, "threshold": 1000, "edgeitems": 3, "max_line_width": 80}
    if a.dtype.kind == "f":
        fmt = _FloatFormat(a)
        opts["formatter"] = {"float_kind": fmt}
        body = numpy.array2string(a, **opts) if a.ndim else fmt(a.item())
    else:
        body = numpy.array2string(a, **opts) if a.ndim else str(a.item())
    extras = []
    if not a.size and a.ndim and a.shape != (0,):
        extras.append(f"size={tuple(a.shape)}")
    d = _dt.from_np(a.dtype)
    if d not in (_dt.get_default_dtype(), _dt.int64, _dt.bool_):
        extras.append(f"dtype={d!r}")
    if t._node is not None:
        extras.append(f"grad_fn={t._node.name()}")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"


class _FloatFormat:
    """Formats floats as PyTorch's ``_Formatter``: integer, fixed (4 decimals) or scientific mode, chosen
    from the finite non-zero values, each padded to their widest; nan and inf are written as they are."""

    def __init__(self, a):
        flat = a.reshape(-1).astype(numpy.float64)   # float64: comparing float16 with 1e8 would overflow
        vals = flat[numpy.isfinite(flat) & (flat != 0)]
        self.int_mode, self.sci_mode, self.width = True, False, 1
        if not vals.size:
            return
        mags = numpy.abs(vals)
        lo, hi = mags.min(), mags.max()
        self.int_mode = bool(numpy.all(vals == numpy.ceil(vals)))
        self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or (not self.int_mode and lo < 1.0e-4)
        self.width = max(len(self._format(float(v))) for v in vals)

    def _format(self, v: float) -> str:
        if self.sci_mode:
            return f"{v:.4e}"
        if self.int_mode:
            return f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        return f"{v:.4f}"

    def __call__(self, v) -> str:
        return self._format(float(v)).rjust(self.width)
