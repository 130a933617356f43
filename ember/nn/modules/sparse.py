"""Embedding (PyTorch's ``nn.Embedding``): a lookup table of vectors."""
from __future__ import annotations

__all__: list[str] = []
