"""PyTorch-like printing of tensors."""
from __future__ import annotations

import numpy  # printing works on a host copy of the data

from .. import dtypes as _dt


def _host(a):
    return a if isinstance(a, numpy.ndarray) else a.get()


def tensor_repr(t, prefix: str = "tensor(") -> str:
    """``tensor([[1., 2.], ...], dtype=ember.float64, requires_grad=True)``."""
    a = _host(t.data)
    opts = {"separator": ", ", "prefix": prefix, "threshold": 1000, "edgeitems": 3, "max_line_width": 80}
    if a.dtype.kind == "f" and a.size:
        finite = a[numpy.isfinite(a)]
        if finite.size and not numpy.all(finite == numpy.round(finite)):
            opts.update(precision=4, floatmode="fixed")
        if finite.size and (numpy.abs(finite).max() >= 1e8 or (numpy.abs(finite[finite != 0]).min(initial=1) < 1e-4)):
            opts.update(precision=4, floatmode="fixed")
            opts["formatter"] = {"float_kind": lambda v: f"{v:.4e}"}
    body = numpy.array2string(a, **opts) if a.ndim else _scalar(a)
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


def _scalar(a) -> str:
    v = a.item()
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}" if v != round(v) or not numpy.isfinite(v) else f"{v:.0f}."
    return str(v)
