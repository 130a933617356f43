"""Mixed precision: :class:`autocast` (float16/bfloat16 op lists) and :class:`GradScaler` (loss scaling)."""
from __future__ import annotations

from .. import dtypes as _dt
from ..tensor import Tensor
from . import lists
from .autocast import autocast, get_autocast_dtype, is_autocast_enabled
from .custom import custom_bwd, custom_fwd, float32_op
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "custom_fwd", "custom_bwd",
           "float32_op", "lists"]


def _bfloat16(self) -> Tensor:
    """This tensor as ``ember.bfloat16`` (``tensor.bfloat16()``, PyTorch's name)."""
    return self.to(_dt.bfloat16)


if not hasattr(Tensor, "bfloat16"):      # tensor.py owns the conversions; add the one it lacks
    Tensor.bfloat16 = _bfloat16
