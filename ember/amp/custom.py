"""``custom_fwd`` / ``custom_bwd`` (PyTorch's ``torch.amp`` decorators) and ``float32_op`` for composite ops.

A function built from several Ember ops (a loss such as ``mse_loss``) is not one op class, so the op
lists cannot name it; decorating it with :func:`float32_op` gives it the float32 entry that PyTorch's
lists give the same function: under autocast its floating inputs are cast to float32 (recorded casts)
and its body runs with autocast off.
"""
from __future__ import annotations

import functools

from .. import dtypes as _dt
from ..autograd.function import FunctionCtx
from ..tensor import Tensor
from .autocast import _cast, autocast, get_autocast_dtype, is_autocast_enabled

__all__ = ["custom_fwd", "custom_bwd", "float32_op"]


def _cast_args(value, np_dtype):
    if isinstance(value, Tensor):
        d = value.data.dtype
        return _cast(value, np_dtype) if value.dtype.is_floating_point and d != np_dtype and d.itemsize < 8 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_args(v, np_dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast_args(v, np_dtype) for k, v in value.items()}
    return value


def custom_fwd(fwd=None, *, device_type: str = "cpu", cast_inputs=None):
    """Decorate a custom ``Function.forward`` (or any function): with ``cast_inputs`` given and autocast on
    for ``device_type``, floating tensor arguments are cast to it and the body runs with autocast off;
    otherwise the body runs under the surrounding autocast state (recorded for :func:`custom_bwd`)."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    target = None if cast_inputs is None else _dt.as_dtype(cast_inputs).np

    @functools.wraps(fwd)
    def wrapper(*args, **kwargs):
        on = is_autocast_enabled(device_type)
        ctx = args[0] if args and isinstance(args[0], FunctionCtx) else None
        if ctx is not None:
            ctx._amp_state = (on and target is None, get_autocast_dtype(device_type))
        if target is None or not on:
            return fwd(*args, **kwargs)
        head = args[:1] if ctx is not None else ()
        rest = _cast_args(args[len(head):], target)
        with autocast(device_type, enabled=False):
            return fwd(*head, *rest, **_cast_args(kwargs, target))
    return wrapper


def custom_bwd(bwd=None, *, device_type: str = "cpu"):
    """Decorate ``Function.backward``: it runs under the autocast state its :func:`custom_fwd` forward saw."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def wrapper(ctx, *grads):
        on, dtype = getattr(ctx, "_amp_state", (False, None))
        with autocast(device_type, dtype=dtype, enabled=on):
            return bwd(ctx, *grads)
    return wrapper


def float32_op(fn):
    """Run ``fn`` in float32 under any autocast (PyTorch's float32 list entry for a composite function)."""
    f32 = _dt.float32.np

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not (is_autocast_enabled("cpu") or is_autocast_enabled("cuda")):
            return fn(*args, **kwargs)
        args, kwargs = _cast_args(args, f32), _cast_args(kwargs, f32)
        with autocast("cpu", enabled=False), autocast("cuda", enabled=False):
            return fn(*args, **kwargs)
    return wrapper
