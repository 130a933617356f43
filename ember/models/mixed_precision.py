"""``compile(mixed_precision=...)``: the autocast block and loss scaler that ``fit`` wraps each step in.

Keras-like switch over :mod:`ember.amp`: the forward pass runs under ``ember.autocast`` (weights stay
float32), the model outputs are cast to float32 so that losses and metrics are computed in float32,
and under ``'fp16'`` the loss is scaled by an :class:`ember.amp.GradScaler` (steps whose gradients
overflow are skipped). ``'bf16'`` needs no scaler: bfloat16 has float32's exponent range.
"""
from __future__ import annotations

import contextlib

from ..layers.symbolic import flatten_structure, pack_structure
from ..tensor import Tensor

__all__ = ["parse_policy", "MixedPrecision", "to_float32", "amp_context"]

_LOW = ("float16", "bfloat16")

_NAMES = {"bf16": "bf16", "bfloat16": "bf16", "mixed_bfloat16": "bf16",
          "fp16": "fp16", "float16": "fp16", "mixed_float16": "fp16"}


def parse_policy(mixed_precision) -> str | None:
    """``'bf16'``, ``'fp16'`` or None from the user's spelling (Keras' ``'mixed_bfloat16'`` too)."""
    if mixed_precision in (None, False, "float32", "fp32", "no"):
        return None
    key = mixed_precision.lower() if isinstance(mixed_precision, str) else mixed_precision
    if key not in _NAMES:
        raise ValueError(f"compile: mixed_precision must be 'bf16', 'fp16' or None (Keras' 'mixed_bfloat16' / "
                         f"'mixed_float16' also work), got {mixed_precision!r}")
    return _NAMES[key]


class MixedPrecision:
    """The per-model mixed precision state: which dtype, on which device, and the fp16 loss scaler."""

    def __init__(self, policy: str, params):
        from .. import dtypes
        from ..amp import GradScaler
        from ..backend import device_of
        self.policy = policy
        first = next(iter(params), None)
        self.device_type = "cpu" if first is None else device_of(first.data).type
        self.dtype = dtypes.bfloat16 if policy == "bf16" else dtypes.float16
        self.scaler = GradScaler(self.device_type) if policy == "fp16" else None

    def autocast(self):
        from ..amp import autocast
        return autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss, optimizer) -> None:
        """``loss.backward(); optimizer.step()`` with loss scaling under fp16."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def to_float32(y_pred):
    """The model outputs with float16/bfloat16 tensors cast to float32 (losses and metrics run in float32)."""
    if isinstance(y_pred, Tensor):
        return y_pred.float() if y_pred.dtype.name in _LOW else y_pred
    leaves = flatten_structure(y_pred)
    return pack_structure(y_pred, [t.float() if isinstance(t, Tensor) and t.dtype.name in _LOW else t
                                   for t in leaves])


def amp_context(model):
    """The autocast block for ``model``'s forward pass (a no-op without mixed precision)."""
    mp = model.__dict__.get("_mixed_precision")
    return mp.autocast() if mp is not None else contextlib.nullcontext()
