"""Normalization modules: BatchNorm1d/2d, LayerNorm, GroupNorm, InstanceNorm2d."""
from __future__ import annotations

__all__: list[str] = []
