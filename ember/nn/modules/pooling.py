"""Pooling, padding and upsampling modules (PyTorch names)."""
from __future__ import annotations

__all__: list[str] = []
