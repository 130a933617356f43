"""Keras-style models (``ember.models``; also ``ember.Model`` and ``ember.Sequential``)."""
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential"]
