"""Recurrent cell ops: fused RNN/LSTM/GRU gate steps and embedding lookup."""
from __future__ import annotations

__all__: list[str] = []
