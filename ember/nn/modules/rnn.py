"""Recurrent modules: RNN, LSTM, GRU and their cells; Embedding."""
from __future__ import annotations

__all__: list[str] = []
