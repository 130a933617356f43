"""``ember.autocast``: run matmul/conv-like ops in float16 or bfloat16 and sensitive ops in float32.

PyTorch's semantics (``torch.autocast``): inside the block, each op casts its floating inputs as its
entry in :mod:`ember.amp.lists` says, and nothing else changes. The casts are recorded ops, so a
float32 parameter used by a bfloat16 matmul receives a float32 gradient. Call ``backward()`` after
the block, as PyTorch recommends.

On the CPU (NumPy), low-precision arithmetic is emulated: an op whose inputs are float16/bfloat16 is
computed on float32 copies of them and its result rounded to the low dtype. For a matmul this is
exactly what a bf16 GEMM with float32 accumulation gives (the inputs are already rounded), and it
spares NumPy, which has no bfloat16 BLAS or einsum. On CUDA (CuPy) the low-precision arrays go to
the kernels directly.
"""
from __future__ import annotations

import functools
import warnings

import numpy

from .. import dtypes as _dt
from ..autograd.grad_mode import _state
from ..autograd.node import OpError, describe
from ..backend import device_of
from ..tensor import Tensor
from . import lists

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype"]

_DEFAULT_DTYPE = {"cpu": "bfloat16", "cuda": "float16"}     # as torch.get_autocast_dtype
_LOW_NP = frozenset(d for d in (numpy.dtype(numpy.float16), _dt.BF16_NP) if d is not None)
_F32, _F64 = numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)


def _is_float(a) -> bool:
    return a.dtype.kind == "f" or a.dtype in _LOW_NP


class _Device:
    """The autocast settings of one device type: its low dtype and its op table."""

    __slots__ = ("low", "device_type", "emulate")

    def __init__(self, device_type: str, low: _dt.dtype):
        self.low = low.np
        self.device_type = device_type
        self.emulate = device_type == "cpu"      # NumPy: compute low-precision ops in float32 and round


class _State:
    """What ``_state.autocast`` holds while some autocast is on; :meth:`apply` is called by ``Op.apply``."""

    __slots__ = ("devices", "cache")

    def __init__(self, devices: dict, cache):
        self.devices, self.cache = devices, cache

    def apply(self, cls, inputs, attrs):
        first = next((t for t in inputs if isinstance(t, Tensor)), None)
        cfg = None if first is None else self.devices.get(device_of(first.data).type)
        _state.autocast = None          # the casts and the op itself run with autocast off (no re-entry)
        try:
            if cfg is None:
                return cls.apply(*inputs, **attrs)
            return self._run(cfg, cls, inputs, attrs)
        finally:
            _state.autocast = self

    def _run(self, cfg: _Device, cls, inputs, attrs):
        policy = lists.policy_of(cfg.device_type, cls)
        if policy is not None and not isinstance(policy, str):
            policy = policy(inputs, attrs)
        follow = None
        if policy == lists.FOLLOW:
            follow = inputs[0].data.dtype if isinstance(inputs[0], Tensor) else None
        elif policy is not None:
            inputs = self._cast_inputs(cfg, cls, policy, inputs)
        if not cfg.emulate or cls in lists.PASSTHROUGH:
            return cls.apply(*inputs, **attrs)
        low = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.data.dtype in _LOW_NP]
        if not low:
            return cls.apply(*inputs, **attrs)
        rt = follow if follow in _LOW_NP else _result_type(inputs)
        up = _F32 if rt in _LOW_NP else rt
        inputs = list(inputs)
        for i in low:
            inputs[i] = _cast(inputs[i], up)
        out = cls.apply(*inputs, **attrs)
        if rt not in _LOW_NP:
            return out
        if type(out) is tuple:
            return tuple(_cast(o, rt) if o.data.dtype == _F32 else o for o in out)
        return _cast(out, rt) if out.data.dtype == _F32 else out

    def _cast_inputs(self, cfg: _Device, cls, policy: str, inputs):
        if policy == lists.BANNED:
            raise OpError(f"{cls.op_name()} is unsafe to autocast (inputs: {describe(inputs)}): its float16 "
                          "gradient overflows. Use binary_cross_entropy_with_logits / BCEWithLogitsLoss, or run it "
                          "outside autocast on float32 inputs (PyTorch refuses it under CUDA autocast too).")
        if policy == lists.LOWER:
            target = cfg.low
        elif policy == lists.FP32:
            target = _F32
        else:                           # PROMOTE: the widest floating dtype among the inputs
            target = _result_type(inputs)
            if target is None:
                return inputs
        out = list(inputs)
        for i, t in enumerate(inputs):
            if isinstance(t, Tensor) and _is_float(t.data) and t.data.dtype != target and t.data.dtype != _F64:
                out[i] = self._cached_cast(t, target) if policy == lists.LOWER else _cast(t, target)
        return out

    def _cached_cast(self, t: Tensor, target):
        """Cast a float32 parameter once per autocast region (PyTorch's weight-cast cache)."""
        cache = self.cache
        if cache is None or t._node is not None or not t.requires_grad or _state.tracer is not None \
                or _state.lazy is not None:
            return _cast(t, target)
        key = (id(t), target)
        hit = cache.get(key)
        if hit is not None and hit[0] is t and hit[1] == t._version and hit[2] == _state.enabled:
            return hit[3]
        c = _cast(t, target)
        cache[key] = (t, t._version, _state.enabled, c)
        return c


def _result_type(inputs):
    """The promoted NumPy dtype of the floating tensor inputs (None when there is none)."""
    rt = None
    for t in inputs:
        if isinstance(t, Tensor) and _is_float(t.data):
            rt = t.data.dtype if rt is None else _dt.result_type(rt, t.data.dtype)
    return rt


def _cast(t: Tensor, np_dtype) -> Tensor:
    from ..ops.elementwise import Cast
    return Cast.apply(t, dtype=_dt.from_np(np_dtype))


def _cuda_available() -> bool:
    try:
        from .. import cuda
    except ImportError:
        return False
    return bool(cuda.is_available())


def _check_cuda_bfloat16() -> None:
    """CuPy holds bfloat16 arrays only from the version that adopted ml_dtypes' bfloat16 (CuPy 14)."""
    from ..creation import zeros
    try:
        zeros(1, device="cuda").to(_dt.bfloat16)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise TypeError("autocast('cuda', dtype=ember.bfloat16): this CuPy cannot hold bfloat16 arrays "
                        f"({type(e).__name__}: {e}); upgrade CuPy (>= 14, with ml_dtypes) or use "
                        "dtype=ember.float16 on CUDA") from None


class autocast:
    """Run the ops of a block (or of a decorated function) in mixed precision, as ``torch.autocast``.

    Args:
        device_type: ``'cpu'`` or ``'cuda'``: only ops on tensors of that device are cast.
        dtype: ``ember.bfloat16`` or ``ember.float16`` (default: bfloat16 on the CPU, float16 on CUDA).
        enabled: ``False`` turns autocast off inside an enclosing autocast block.
        cache_enabled: cast each float32 parameter once per outermost autocast block.

    >>> import ember
    >>> a, b = ember.randn(4, 8), ember.randn(8, 2)
    >>> with ember.autocast('cpu', dtype=ember.bfloat16):
    ...     c = a @ b
    >>> c.dtype
    ember.bfloat16
    """

    def __init__(self, device_type: str = "cpu", dtype=None, enabled: bool = True, cache_enabled: bool = True):
        if not isinstance(device_type, str):
            device_type = getattr(device_type, "type", device_type)
        device_type = str(device_type).split(":")[0]
        if device_type not in _DEFAULT_DTYPE:
            raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
        dtype = _dt.as_dtype(_DEFAULT_DTYPE[device_type] if dtype is None else dtype)
        if dtype.name not in ("float16", "bfloat16"):
            raise ValueError(f"autocast: dtype must be ember.float16 or ember.bfloat16, got {dtype}")
        self.device_type, self.fast_dtype, self._cache_enabled = device_type, dtype, bool(cache_enabled)
        self._enabled = bool(enabled)
        if self._enabled and device_type == "cuda" and not _cuda_available():
            warnings.warn("autocast: device_type 'cuda' was asked for but CUDA is not available; "
                          "autocast is disabled for this block", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled and device_type == "cuda" and dtype.name == "bfloat16":
            _check_cuda_bfloat16()

    def __enter__(self):
        prev = self._prev = _state.autocast
        devices = dict(prev.devices) if prev is not None else {}
        if self._enabled:
            devices[self.device_type] = _Device(self.device_type, self.fast_dtype)
        else:
            devices.pop(self.device_type, None)
        cache = prev.cache if prev is not None else ({} if self._cache_enabled else None)
        self._cache_owner = prev is None
        _state.autocast = _State(devices, cache) if devices else None
        return self

    def __exit__(self, *exc):
        state = _state.autocast
        if self._cache_owner and state is not None and state.cache is not None:
            state.cache.clear()         # leaving the outermost block frees the cast weights
        _state.autocast = self._prev
        return False

    def __call__(self, fn):
        args = (self.device_type, self.fast_dtype, self._enabled, self._cache_enabled)

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with autocast(*args):
                return fn(*a, **kw)
        return wrapper


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """True inside an enabled autocast block for ``device_type``."""
    st = _state.autocast
    return st is not None and device_type in st.devices


def get_autocast_dtype(device_type: str = "cpu") -> _dt.dtype:
    """The low dtype autocast uses for ``device_type`` now (its default outside any block)."""
    st = _state.autocast
    if st is not None and device_type in st.devices:
        return _dt.from_np(st.devices[device_type].low)
    return _dt.as_dtype(_DEFAULT_DTYPE.get(device_type, "bfloat16"))
