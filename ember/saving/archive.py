"""The ``.ember`` archive: one zip with everything needed to resume training, and nothing executable.

Members: ``config.json`` (architecture and compile settings), ``model.weights.safetensors``,
``optimizer.safetensors`` with ``optimizer.json`` (per-parameter arrays; step counts and param-group
hyper-parameters) and ``metadata.json`` (Ember version, creation time). Written to a temporary file
then moved into place, so a crash never leaves half an archive under the real name.
"""
from __future__ import annotations

from ..utils.atomic import atomic_write

import datetime
import inspect
import json
import os
import zipfile
import zlib

import numpy

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optim as _optim
from ..tensor import Tensor
from .config import model_from_config, serialize_layer
from .weights import _arrays, assign

__all__ = ["save_model", "load_model"]

_MEMBERS = ("config.json", "model.weights.safetensors", "metadata.json")


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError:  # pragma: no cover - only without the extra
        raise ImportError("model archives need the 'safetensors' package: pip install safetensors") from None
    return st


# ------------------------------------------------------------------ compile settings
def _ser(x, one):
    if isinstance(x, (list, tuple)):
        return [_ser(v, one) for v in x]
    if isinstance(x, dict):
        return {k: _ser(v, one) for k, v in x.items()}
    return x if x is None or isinstance(x, str) else one(x)


def _optimizer_config(opt) -> dict:
    group = opt.param_groups[0]
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
    return {"class_name": type(opt).__name__, "config": config}


def compile_config(model) -> dict | None:
    if not getattr(model, "compiled", False):
        return None
    opt = model.optimizer
    spec = model._optimizer_spec
    metrics, weighted = model._metric_specs
    return {"optimizer": _optimizer_config(opt) if opt is not None else {"ember_spec": spec},
            "loss": _ser(model.loss, _losses.serialize), "loss_weights": model._loss_weights,
            "metrics": _ser(metrics, _metrics.serialize), "weighted_metrics": _ser(weighted, _metrics.serialize)}


def _make_optimizer(config: dict, model):
    name = config.get("class_name")
    cls = getattr(_optim, str(name), None)
    if not (inspect.isclass(cls) and issubclass(cls, _optim.Optimizer)):
        raise ValueError(f"unknown optimizer class {name!r}; expected one of ember.optim's optimizers")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in (config.get("config") or {}).items()}
    params = [p for p in model.parameters() if p.requires_grad]
    valid = inspect.signature(cls.__init__).parameters
    return cls(params, **{k: v for k, v in kwargs.items() if k in valid})


def _compile(model, config: dict) -> None:
    opt = config["optimizer"]
    optimizer = opt["ember_spec"] if "ember_spec" in opt else _make_optimizer(opt, model)
    model.compile(optimizer=optimizer, loss=config.get("loss"), metrics=config.get("metrics"),
                  loss_weights=config.get("loss_weights"), weighted_metrics=config.get("weighted_metrics"))


# ------------------------------------------------------------------ optimizer state
def _optimizer_state(opt) -> tuple[dict, dict]:
    sd = opt.state_dict()
    arrays, scalars = {}, {}
    for i, s in sd["state"].items():
        for k, v in s.items():
            if isinstance(v, Tensor):
                a = v.data
                arrays[f"{i}.{k}"] = numpy.ascontiguousarray(a.get() if hasattr(a, "get") else a)
            else:
                scalars.setdefault(str(i), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return arrays, {"class_name": type(opt).__name__, "param_groups": groups, "scalars": scalars,
                    "arrays": sorted(arrays)}


def _restore_optimizer(opt, info: dict, arrays: dict, source: str) -> None:
    if info.get("class_name") != type(opt).__name__:
        raise ValueError(f"{source}: optimizer.json is for {info.get('class_name')!r}, the model compiles "
                         f"{type(opt).__name__}")
    state: dict = {}
    for key, a in arrays.items():
        i, _, name = key.partition(".")
        state.setdefault(int(i), {})[name] = Tensor(a)
    for i, s in (info.get("scalars") or {}).items():
        state.setdefault(int(i), {}).update(s)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in info["param_groups"]]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise ValueError(f"{source}: optimizer state does not fit the model: {e}") from None


# ------------------------------------------------------------------ save / load
def save_model(model, path: str, overwrite: bool = True) -> None:
    """Write ``model`` (architecture, weights, compile settings, optimizer state) to a ``.ember`` archive."""
    from .. import __version__
    if not str(path).endswith(".ember"):
        raise ValueError(f"save: {path!r} must end in '.ember' (use save_weights for '.weights.h5' or "
                         "'.safetensors' weights alone)")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save: {path} exists and overwrite=False")
    st = _safetensors()
    config = {"model": serialize_layer(model), "compile_config": compile_config(model)}
    members = {"config.json": json.dumps(config, indent=1).encode(),
               "model.weights.safetensors": st.save(_arrays(model)),
               "metadata.json": json.dumps({"ember_version": __version__, "format": "ember.archive/1",
                                            "created": datetime.datetime.now(datetime.timezone.utc).isoformat()
                                            }).encode()}
    if getattr(model, "optimizer", None) is not None:
        arrays, info = _optimizer_state(model.optimizer)
        members["optimizer.safetensors"] = st.save(arrays)
        members["optimizer.json"] = json.dumps(info).encode()
    with atomic_write(path, ".ember") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _read_members(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_model: no such file: {path}")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for m in _MEMBERS:
                if m not in names:
                    raise ValueError(f"load_model: {path} is not a complete Ember archive: member {m!r} is missing")
            return {n: z.read(n) for n in names}
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise ValueError(f"load_model: {path} is not a valid .ember archive (a zip file): it is truncated or "
                         f"corrupt ({e})") from None


def _json(members: dict, name: str, path: str):
    try:
        return json.loads(members[name].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"load_model: {path}: member {name!r} is not valid JSON ({e})") from None


def _tensors(members: dict, name: str, path: str) -> dict:
    try:
        return dict(_safetensors().load(members[name]))
    except Exception as e:
        raise ValueError(f"load_model: {path}: member {name!r} is not a valid safetensors file ({e})") from None


def load_model(path: str, custom_objects: dict | None = None, compile: bool = True):
    """A model from a ``.ember`` archive: rebuilt, weights loaded, recompiled with its optimizer state restored,
    so ``fit`` goes on where it stopped. Custom layers must be registered or given in ``custom_objects``."""
    if not str(path).endswith(".ember"):
        raise ValueError(f"load_model: {path!r} is not a '.ember' archive; for weights files use "
                         "model.load_weights(path) on a model built with the same architecture")
    members = _read_members(path)
    config = _json(members, "config.json", path)
    _json(members, "metadata.json", path)
    if not isinstance(config, dict) or "model" not in config:
        raise ValueError(f"load_model: {path}: config.json has no 'model' entry")
    try:
        model = model_from_config(config["model"], custom_objects)
    except (KeyError, TypeError) as e:
        raise ValueError(f"load_model: {path}: config.json does not describe a model ({e!r})") from None
    assign(model, _tensors(members, "model.weights.safetensors", path), f"load_model({path!r})")
    cc = config.get("compile_config")
    if compile and cc:
        _compile(model, cc)
        if model.optimizer is not None and "optimizer.json" in members:
            _restore_optimizer(model.optimizer, _json(members, "optimizer.json", path),
                               _tensors(members, "optimizer.safetensors", path) if "optimizer.safetensors"
                               in members else {}, f"load_model({path!r})")
    return model
