"""Keras-style normalization layers: BatchNormalization, LayerNormalization."""
from __future__ import annotations

__all__: list[str] = []
