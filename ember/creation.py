"""Tensor creation: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``linspace``, ``eye``, random, ``*_like``."""
from __future__ import annotations

import builtins
import functools

from . import dtypes as _dt
from .backend import device as _device
from .backend import STRICT, move, ndarray_types, rng, to_host
from .backend.strict import StrictArray as _StrictArray
from .tensor import Tensor, _wrap

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange", "linspace", "eye",
           "rand", "randn", "randint", "randperm", "normal", "zeros_like", "ones_like", "full_like", "empty_like",
           "rand_like", "randn_like", "randint_like"]


def _xp(device):
    return _device(device if device is not None else "cpu").xp


def _on_device(fn):
    """Run a factory with its ``device=`` GPU current, so CuPy allocates (and draws random numbers) there."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        dev = kwargs.get("device")
        if dev is None or dev == "cpu":
            return fn(*args, **kwargs)
        d = _device(dev)
        if d.type == "cpu":
            return fn(*args, **kwargs)
        with d.xp.cuda.Device(d.index):
            return fn(*args, **kwargs)
    return call


def _on(a, device):
    """Array ``a`` (made on the host, e.g. by the CPU generator) moved to ``device`` when one is given."""
    if device is None or device == "cpu":
        return _device("cpu").xp.asarray(a) if STRICT else a   # a strict array under EMBER_STRICT_BACKEND=1
    return move(a, _device(device))


_host_types = _StrictArray


def _to_array(data, dtype=None, device=None):
    """Backend array from nested lists, scalars, arrays or tensors; Python floats become the default dtype."""
    xp = _xp(device)
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, ndarray_types) and type(data) not in (xp.ndarray, _host_types):
        data = to_host(data)            # an array of another device: through the host
    if dtype is not None:
        return xp.array(data, dtype=_dt.as_dtype(dtype).np)
    if isinstance(data, ndarray_types):
        return xp.array(data)
    try:
        a = xp.array(data)
    except ValueError:
        raise ValueError("tensor(): the nested sequences have different lengths (a ragged list); every row "
                         "of a dimension must have the same length") from None
    if a.dtype.kind == "f" and a.dtype != _dt.get_default_dtype().np:
        a = a.astype(_dt.get_default_dtype().np)
    elif a.dtype.kind in "iu" and a.dtype != _dt.int64.np:
        a = a.astype(_dt.int64.np)
    elif a.dtype.kind not in "fiub":
        raise TypeError(f"tensor(): can't make a tensor from data of type {type(data).__name__} "
                        f"(NumPy dtype {a.dtype}); expected numbers, bools, nested lists or arrays of them")
    return a


def _made(a) -> Tensor:
    """A tensor of a new array; graph-mode tracing takes such arrays as constants of the graph."""
    from .autograd.grad_mode import _state
    if _state.tracer is not None:
        _state.tracer.made(a)
    return _wrap(a)


def _shape(size, op: str):
    """``size`` as given to a factory (``2, 3``, ``(2, 3)``, a Size), checked: see ``ops.shape._shape_args``."""
    from .ops.shape import _shape_args
    return _shape_args(size, op)


def _finish(a, requires_grad):
    t = _made(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


@_on_device
def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copied from ``data`` (lists, scalars, NumPy arrays or tensors).

    Python floats give the default dtype (float32), Python ints int64, bools bool;
    NumPy arrays keep their dtype.

    >>> import ember
    >>> ember.tensor([[1, 2], [3, 4]]).dtype
    ember.int64
    """
    return _finish(_to_array(data, dtype, device), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor` but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, Tensor):
        data = data if device is None else data.to(device)
        return data if dtype is None else data.to(dtype)
    if isinstance(data, ndarray_types):
        return _wrap(_on(data if dtype is None else data.astype(_dt.as_dtype(dtype).np, copy=False), device))
    return tensor(data, dtype, device=device)


def from_numpy(array) -> Tensor:
    """A tensor sharing memory with a NumPy array (changes to one show in the other)."""
    if not isinstance(array, ndarray_types):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    _dt.from_np(array.dtype)
    return _wrap(array)


def _filled(fill, size, dtype, device, requires_grad):
    d = _dt.as_dtype(dtype).np
    return _finish(_xp(device).full(_shape(size, "full"), fill, dtype=d), requires_grad)


@_on_device
def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _finish(_xp(device).zeros(_shape(size, "zeros"), _dt.as_dtype(dtype).np), requires_grad)


@_on_device
def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _finish(_xp(device).ones(_shape(size, "ones"), _dt.as_dtype(dtype).np), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor (zeros here, so results never depend on garbage)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


@_on_device
def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``; the dtype follows the value (float → default float)."""
    if not isinstance(fill_value, (builtins.int, builtins.float, builtins.bool)) and not hasattr(fill_value, "item"):
        raise TypeError(f"full: fill_value must be a number or bool, got {type(fill_value).__name__}")
    if dtype is None:
        dtype = _dt.bool_ if isinstance(fill_value, bool) else _dt.int64 if isinstance(fill_value, builtins.int) \
            else None
    return _filled(fill_value, (size,) if isinstance(size, builtins.int) else size, dtype, device, requires_grad)


@_on_device
def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError(f"arange: step must be nonzero (start={start}, end={end})")
    if (end - start) * step < 0:
        raise ValueError(f"arange: upper bound and lower bound inconsistent with step sign "
                         f"(start={start}, end={end}, step={step})")
    if dtype is None:
        ints = all(isinstance(v, builtins.int) for v in (start, end, step))
        dtype = _dt.int64 if ints else _dt.get_default_dtype()
    a = _xp(device).arange(start, end, step, dtype=_dt.as_dtype(dtype).np)
    return _finish(a, requires_grad)


@_on_device
def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    a = _xp(device).linspace(start, end, builtins.int(steps), dtype=_dt.as_dtype(dtype).np)
    return _finish(a, requires_grad)


@_on_device
def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The identity matrix (n × m)."""
    return _finish(_xp(device).eye(n, m, dtype=_dt.as_dtype(dtype).np), requires_grad)


@_on_device
def rand(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from Ember's generator (see :func:`ember.manual_seed`)."""
    d = _dt.as_dtype(dtype)
    a = rng(device).random(_shape(size, "rand"), dtype="float64").astype(d.np, copy=False)
    return _finish(_on(a, device), requires_grad)


@_on_device
def randn(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    d = _dt.as_dtype(dtype)
    return _finish(_on(rng(device).standard_normal(_shape(size, "randn")).astype(d.np, copy=False), device),
                   requires_grad)


@_on_device
def normal(mean=0.0, std=1.0, size=(), dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Normal samples with the given mean and std."""
    d = _dt.as_dtype(dtype)
    z = rng(device).standard_normal(_shape((size,) if isinstance(size, builtins.int) else size, "normal"))
    return _finish(_on((z * std + mean).astype(d.np, copy=False), device), requires_grad)


@_on_device
def randint(low, high=None, size=(), dtype=None, device=None) -> Tensor:
    """Random integers in [low, high) (``randint(high, size)`` also works, as in PyTorch)."""
    if high is None:
        low, high = 0, low
    if low >= high:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    d = _dt.as_dtype(dtype) if dtype is not None else _dt.int64
    a = rng(device).integers(low, high, size=_shape((size,) if isinstance(size, builtins.int) else size, "randint"))
    return _made(_on(a.astype(d.np, copy=False), device))


@_on_device
def randperm(n: int, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1."""
    d = _dt.as_dtype(dtype) if dtype is not None else _dt.int64
    g = rng(device)
    p = g.permutation(n) if hasattr(g, "permutation") else _xp(device).argsort(g.random(n))
    return _made(_on(p.astype(d.np, copy=False), device))


def _like(t, dtype, device=None):
    """Shape, dtype and device of a ``*_like`` result: ``t``'s unless given."""
    return t.data.shape, (dtype if dtype is not None else t.dtype), (device if device is not None else t.device)


def zeros_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    s, d, dev = _like(input, dtype, device)
    return zeros(s, dtype=d, device=dev, requires_grad=requires_grad)


def ones_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    s, d, dev = _like(input, dtype, device)
    return ones(s, dtype=d, device=dev, requires_grad=requires_grad)


def empty_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    s, d, dev = _like(input, dtype, device)
    return full(s, fill_value, dtype=d, device=dev, requires_grad=requires_grad)


def rand_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    s, d, dev = _like(input, dtype, device)
    return rand(s, dtype=d, device=dev, requires_grad=requires_grad)


def randn_like(input: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    s, d, dev = _like(input, dtype, device)
    return randn(s, dtype=d, device=dev, requires_grad=requires_grad)


def randint_like(input: Tensor, low, high=None, dtype=None, device=None) -> Tensor:
    s, d, dev = _like(input, dtype, device)
    return randint(low, high, s, dtype=d, device=dev)
