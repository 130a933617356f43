"""Keras-style attention layers: MultiHeadAttention, positional embeddings."""
from __future__ import annotations

__all__: list[str] = []
