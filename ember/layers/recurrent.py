"""Keras-style recurrent layers: SimpleRNN, LSTM, GRU, Embedding, TimeDistributed, Bidirectional."""
from __future__ import annotations

__all__: list[str] = []
