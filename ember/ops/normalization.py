"""Normalization ops: batch_norm, layer_norm, group_norm, instance_norm (forward and gradient together)."""
from __future__ import annotations

__all__: list[str] = []
