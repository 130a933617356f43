"""Convolution modules: Conv1d, Conv2d, ConvTranspose2d (NCHW, PyTorch names and state-dict layout)."""
from __future__ import annotations

__all__: list[str] = []
