"""Model weights alone, in HDF5 (``.weights.h5``/``.h5``, one dataset per ``state_dict`` key) or safetensors.

The format follows the file's suffix. Loading checks every name and shape before changing the model, so a
file that doesn't fit leaves the model as it was and the error says which weight is wrong.
"""
from __future__ import annotations

from ..utils.atomic import atomic_write

import os

import numpy

from ..backend import to_host
from ..serialization import load as _st_load
from ..serialization import save as _st_save
from ..tensor import Tensor

__all__ = ["save_weights", "load_weights", "weights_format"]


def weights_format(path: str) -> str:
    """``'h5'`` or ``'safetensors'`` from the suffix; anything else is an error."""
    p = str(path).lower()
    if p.endswith(".h5") or p.endswith(".hdf5"):
        return "h5"
    if p.endswith(".safetensors"):
        return "safetensors"
    raise ValueError(f"weights file {path!r}: unknown format; the file name must end in '.weights.h5' (HDF5) or "
                     "'.safetensors' (use model.save('x.ember') for a whole model)")


def _arrays(model) -> dict:
    out = {}
    for k, v in model.state_dict().items():
        a = v.detach().data if isinstance(v, Tensor) else v
        out[k] = numpy.asarray(to_host(a))    # device-neutral: a host copy of GPU weights
    return out


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - only without the extra
        raise ImportError("HDF5 weights need h5py: pip install h5py") from None
    return h5py


def save_weights(model, path: str, overwrite: bool = True) -> None:
    """Write ``model.state_dict()`` to ``path`` atomically, in the format its suffix names."""
    fmt = weights_format(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save_weights: {path} exists and overwrite=False")
    arrays = _arrays(model)
    if fmt == "safetensors":
        _st_save(arrays, path, metadata={"format": "ember.weights"})
        return
    h5py = _h5py()
    with atomic_write(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = "ember.weights"
        group = f.create_group("weights")
        for k, a in arrays.items():
            group.create_dataset(k.replace("/", "\\"), data=a)


def read_h5(path: str) -> dict:
    """``{state_dict key: array}`` from an HDF5 weights file written by :func:`save_weights`."""
    h5py = _h5py()
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_weights: no such file: {path}")
    try:
        with h5py.File(path, "r") as f:
            if "weights" not in f:
                raise ValueError(f"load_weights: {path} is an HDF5 file but has no 'weights' group; it was not "
                                 "written by Ember's save_weights")
            return {k.replace("\\", "/"): numpy.asarray(d[()]) for k, d in f["weights"].items()}
    except OSError as e:
        raise ValueError(f"load_weights: {path} is not a valid HDF5 file ({e})") from None


def read_weights(path: str) -> dict:
    if weights_format(path) == "h5":
        return read_h5(path)
    return {k: numpy.asarray(v.data) for k, v in _st_load(path).items()}


def assign(model, arrays: dict, source: str) -> None:
    """Copy ``arrays`` into the model's weights after checking every name and shape (naming ``source``)."""
    state = model.state_dict()
    missing = [k for k in state if k not in arrays]
    unexpected = [k for k in arrays if k not in state]
    if missing or unexpected:
        raise ValueError(f"{source}: weights don't match model {getattr(model, 'name', '')!r}: "
                         f"missing {missing}, unexpected {unexpected}")
    for k, v in state.items():
        if tuple(arrays[k].shape) != tuple(v.shape):
            raise ValueError(f"{source}: weight {k!r} has shape {tuple(arrays[k].shape)} in the file but "
                             f"{tuple(v.shape)} in the model")
    model.load_state_dict(arrays)


def load_weights(model, path: str) -> None:
    """Load weights saved by :func:`save_weights` (format from the suffix) into a built model."""
    assign(model, read_weights(path), f"load_weights({path!r})")
