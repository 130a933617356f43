"""Keras-style models (``ember.models``; also ``ember.Model`` and ``ember.Sequential``)."""
from .model import Model
from .sequential import Sequential


def __getattr__(name):
    """``load_model``, ``model_from_json``... live in ember.saving (imported lazily: it imports the models)."""
    from .. import saving
    if name in ("load_model", "save_model", "model_from_json", "model_from_yaml", "model_from_config"):
        return getattr(saving, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Model", "Sequential"]
