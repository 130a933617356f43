"""Keras-style identifier lookup shared by ``initializers.get`` and ``regularizers.get``: names, dicts, classes."""
from __future__ import annotations

import inspect

__all__ = ["from_identifier", "resolve"]


def from_identifier(config, table: dict, kind: str, known: str):
    """What a name or a ``{'class_name': ..., 'config': ...}`` dict names in ``table``; classes are built
    from the config. Unknown names raise a ValueError listing the ``known`` ones."""
    name, kwargs = (config, {}) if isinstance(config, str) else (None, None)
    if isinstance(config, dict) and "class_name" in config:
        name, kwargs = config["class_name"], config.get("config") or {}
    cls = table.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"Could not interpret {kind} identifier: {config!r}. Known {kind}s: {known}")
    return cls.from_config(kwargs) if inspect.isclass(cls) else cls


def resolve(identifier, deserialize, kind: str, known: str):
    """``None``, a name or dict (through ``deserialize``), a class (instantiated) or a callable, as a callable."""
    if identifier is None:
        return None
    obj = deserialize(identifier) if isinstance(identifier, (str, dict)) else identifier
    if inspect.isclass(obj):
        obj = obj()
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret {kind} identifier: {identifier!r}. Known {kind}s: {known}")
