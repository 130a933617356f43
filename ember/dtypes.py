"""Ember's dtypes and the rules that combine them.

Promotion follows PyTorch: the result of a binary op takes the higher *category*
(bool < integer < floating); within a category the wider type wins. Python
scalars do not widen a tensor of the same category (``float32 tensor * 2.5`` is
float32); a Python float combined with an integer or bool tensor gives the
default float dtype (float32 unless changed with :func:`set_default_dtype`).
Integer true division (``/``) also gives the default float dtype.

``bfloat16`` comes from the ``ml_dtypes`` package (a dependency of onnx), which gives NumPy a bfloat16
type; it promotes as in PyTorch (bfloat16 with float16 gives float32, with float32 gives float32).
"""
from __future__ import annotations

import builtins
import threading

import numpy

try:
    import ml_dtypes as _ml_dtypes
except ImportError:     # optional: bfloat16 only
    _ml_dtypes = None

__all__ = ["dtype", "bfloat16", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
           "get_default_dtype", "set_default_dtype", "as_dtype", "result_type", "promote_scalar", "is_float"]


class dtype:
    """A tensor element type such as ``ember.float32``; ``.np`` is the NumPy dtype behind it."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "category")

    def __init__(self, name: str, np_type):
        self.name = name
        self.np = numpy.dtype(np_type)
        kind = "f" if name == "bfloat16" else self.np.kind     # ml_dtypes' bfloat16 has NumPy kind 'V'
        self.is_floating_point = kind == "f"
        self.is_signed = kind in "fi"
        self.itemsize = self.np.itemsize
        self.category = {"b": 0, "u": 1, "i": 1, "f": 2}[kind]

    def __repr__(self):
        return f"ember.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


float16 = half = dtype("float16", numpy.float16)
float32 = float = dtype("float32", numpy.float32)
float64 = double = dtype("float64", numpy.float64)
uint8 = dtype("uint8", numpy.uint8)
int8 = dtype("int8", numpy.int8)
int16 = short = dtype("int16", numpy.int16)
int32 = int = dtype("int32", numpy.int32)
int64 = long = dtype("int64", numpy.int64)
bool_ = dtype("bool", numpy.bool_)


class _MissingDtype(dtype):
    """Stands for a dtype whose package is not installed: any use raises an error saying what to install."""

    __slots__ = ("_package",)

    def __init__(self, name: str, package: str):
        self.name, self.is_floating_point, self.is_signed, self.itemsize, self.category = name, True, True, 2, 2
        self._package = package

    def __getattribute__(self, attr):
        if attr == "np":
            raise TypeError(f"ember.{object.__getattribute__(self, 'name')} needs the "
                            f"{object.__getattribute__(self, '_package')} package: pip install "
                            f"{object.__getattribute__(self, '_package')}")
        return object.__getattribute__(self, attr)


if _ml_dtypes is not None:
    bfloat16 = dtype("bfloat16", _ml_dtypes.bfloat16)
    BF16_NP = bfloat16.np       # the NumPy dtype, for quick identity checks in the op machinery
else:   # pragma: no cover - ml_dtypes comes with onnx
    bfloat16 = _MissingDtype("bfloat16", "ml_dtypes")
    BF16_NP = None

def is_float(np_dtype) -> bool:
    """Whether the NumPy (or CuPy) dtype ``np_dtype`` holds floating point numbers: kind ``"f"``, or ml_dtypes'
    bfloat16, which NumPy files under kind ``"V"`` (as it does structured records, which are not floats).

    >>> import numpy
    >>> is_float(numpy.dtype("float16")), is_float(bfloat16.np), is_float(numpy.dtype([("a", "f4")]))
    (True, True, False)
    """
    return np_dtype.kind == "f" or (BF16_NP is not None and np_dtype == BF16_NP)


_ALL = (float16, float32, float64, uint8, int8, int16, int32, int64, bool_) + ((bfloat16,) if BF16_NP else ())
_BY_NP = {d.np: d for d in _ALL}
_BY_NAME = {d.name: d for d in _ALL}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "long": int64, "int": int32,
                 "short": int16, "bool_": bool_})


class _Defaults(threading.local):
    def __init__(self):
        self.float = float32


_defaults = _Defaults()


def get_default_dtype() -> dtype:
    """The dtype given to Python floats and integer true division (float32 unless changed)."""
    return _defaults.float


def set_default_dtype(d) -> None:
    """Set the default floating dtype (float16, float32 or float64), as ``torch.set_default_dtype``."""
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {d}")
    _defaults.float = d


def as_dtype(d) -> dtype:
    """Turn an Ember dtype, NumPy dtype, Python type or name into an Ember dtype."""
    if isinstance(d, dtype):
        d.np    # noqa: B018  (a missing optional dtype raises here, naming its package)
        return d
    if d is None:
        return _defaults.float
    if d is bool:
        return bool_
    if d is builtins.int:
        return int64
    if d is builtins.float:
        return _defaults.float
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    if isinstance(d, str) and d == "bfloat16":     # only reached without ml_dtypes: raises, naming it
        return as_dtype(bfloat16)
    try:
        return _BY_NP[numpy.dtype(d)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {d!r}; Ember supports "
                        + ", ".join(x.name for x in _ALL)) from None


def from_np(np_dtype) -> dtype:
    """The Ember dtype for a NumPy dtype."""
    try:
        return _BY_NP[np_dtype]
    except KeyError:
        return as_dtype(np_dtype)


def result_type(a, b):
    """NumPy dtype of a binary op between two arrays, with PyTorch's category rule."""
    if a is b:
        return a
    ca, cb = _BY_NP[a].category, _BY_NP[b].category
    if ca != cb:
        return a if ca > cb else b
    try:
        return numpy.promote_types(a, b)
    except TypeError:       # bfloat16 with float16 has no common NumPy type: float32, as PyTorch
        return float32.np


def promote_scalar(np_dtype, scalar):
    """NumPy dtype of ``tensor op scalar`` (PyTorch rule: scalars widen only across categories)."""
    kind = np_dtype.kind
    if isinstance(scalar, (builtins.float, numpy.floating)):
        return np_dtype if kind == "f" or np_dtype == BF16_NP else _defaults.float.np
    if isinstance(scalar, (builtins.bool, numpy.bool_)):
        return np_dtype
    return np_dtype if kind != "b" else int64.np
