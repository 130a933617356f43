"""Attention ops: scaled_dot_product_attention (masks, causal)."""
from __future__ import annotations

__all__: list[str] = []
