"""Which classes a saved model may name: Ember's own layers and models, plus classes registered by the user.

A config names layers by class name only; nothing in a file is ever imported or executed. A custom layer
loads only when it is decorated with :func:`register_serializable` or passed in ``custom_objects``.
"""
from __future__ import annotations

import inspect

__all__ = ["register_serializable", "get_registered_name", "get_registered_object", "resolve_class"]

_REGISTRY: dict[str, type] = {}      # "Package>Name" -> class
_NAMES: dict[type, str] = {}         # class -> "Package>Name"


def register_serializable(package: str = "Custom", name: str | None = None):
    """Class decorator: let saved models that use this class load again (Keras' ``register_keras_serializable``).

    >>> import ember
    >>> @ember.saving.register_serializable(package="Doc")
    ... class Twice(ember.layers.Layer):
    ...     def call(self, x):
    ...         return x * 2
    >>> ember.saving.get_registered_name(Twice)
    'Doc>Twice'
    """
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_serializable: package must be a string without '>', got {package!r}")

    def decorate(cls):
        if not inspect.isclass(cls) or not hasattr(cls, "get_config"):
            raise TypeError(f"register_serializable: {cls!r} must be a class with get_config() (e.g. a Layer)")
        key = f"{package}>{name or cls.__name__}"
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"register_serializable: {key!r} is already registered to {_REGISTRY[key]!r}")
        _REGISTRY[key], _NAMES[cls] = cls, key
        return cls
    return decorate


def get_registered_name(cls) -> str:
    """The name a class is saved under: ``'Package>Name'`` when registered, else the class name."""
    return _NAMES.get(cls, cls.__name__)


def get_registered_object(name: str):
    """The class registered under ``name`` (``'Package>Name'``), or None."""
    return _REGISTRY.get(name)


def _builtins() -> dict:
    from .. import layers, models
    table = {n: getattr(layers, n) for n in layers.__all__ if inspect.isclass(getattr(layers, n))}
    table.update(Model=models.Model, Functional=models.Model, Sequential=models.Sequential)
    return table


def resolve_class(class_name: str, custom_objects: dict | None = None, registered_name: str | None = None):
    """The class a config names, from ``custom_objects``, the registry, or Ember's own layers and models."""
    custom_objects = custom_objects or {}
    for key in (registered_name, class_name):
        if key is None:
            continue
        if key in custom_objects:
            return custom_objects[key]
        if key in _REGISTRY:
            return _REGISTRY[key]
    builtins = _builtins()
    if class_name in builtins and registered_name in (None, class_name):
        return builtins[class_name]
    raise ValueError(
        f"Unknown layer class {registered_name or class_name!r}: it is neither one of Ember's layers nor a "
        "registered class. Decorate the class with @ember.saving.register_serializable() (in code that runs "
        f"before loading), or pass custom_objects={{{class_name!r}: {class_name}}} to the loading function.")
