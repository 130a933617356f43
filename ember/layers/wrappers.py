"""Keras-style layer wrappers: ``TimeDistributed``, ``Bidirectional``."""
from __future__ import annotations

__all__: list[str] = []
