"""Save and load tensors as safetensors files: data only, nothing executed on load, written atomically.

>>> import ember, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> ember.save({"w": ember.ones(2)}, path)
>>> ember.load(path)["w"]
tensor([1., 1.])
"""
from __future__ import annotations

import os

from .backend import device, move, to_host
from .tensor import Tensor
from .utils.atomic import atomic_write

__all__ = ["save", "load"]


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("saving needs the 'safetensors' package: pip install 'ember-dl[io]'") from None
    return st


def save(tensors: dict, path: str, metadata: dict | None = None) -> None:
    """Write a flat ``{name: tensor}`` dict (e.g. ``model.state_dict()``) to ``path`` atomically."""
    st = _safetensors()
    if not isinstance(tensors, dict):
        raise TypeError(f"save: expected a dict of name -> tensor, got {type(tensors).__name__}")
    arrays = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise TypeError(f"save: keys must be strings, got {k!r}")
        a = v.detach().data if isinstance(v, Tensor) else v
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"save: value of {k!r} must be a tensor or array, got {type(v).__name__}")
        arrays[k] = to_host(a)            # device-neutral: GPU tensors are stored from a host copy
    with atomic_write(path, ".safetensors") as tmp:
        st.save_file({k: a.copy(order="C") for k, a in arrays.items()}, tmp,
                     metadata={str(k): str(v) for k, v in (metadata or {}).items()})


def load(path: str, map_location=None) -> dict:
    """Read a safetensors file written by :func:`save` (or by PyTorch/others) into ``{name: tensor}``.

    Tensors load onto the CPU, or onto ``map_location`` (``'cuda'``, ``'cuda:1'``, an ``ember.device``).
    """
    st = _safetensors()
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        arrays = st.load_file(path)
    except Exception as e:
        raise ValueError(f"load: {path} is not a valid safetensors file ({e})") from None
    if map_location is None:
        return {k: Tensor(a) for k, a in arrays.items()}
    dev = device(map_location)
    return {k: Tensor(move(a, dev)) for k, a in arrays.items()}
