"""Keras weights files in and out of Ember's Keras-style models: Keras 3 ``.weights.h5`` and Keras 2 ``.h5``.

Ember's layers keep Keras' layouts (Dense kernel (in, units), Conv2D kernel (kh, kw, in, filters), LSTM gates
i, f, c, o and GRU z, r, h in ``kernel``/``recurrent_kernel``/``bias``, BatchNormalization's gamma, beta,
moving_mean, moving_variance), so weights copy as they are; only where they sit in the file differs:

* Keras 3 (``model.save_weights('x.weights.h5')``): ``layers/<key>/vars/<i>``, where ``<key>`` is the
  layer's class in snake case, numbered per class in layer order (``dense``, ``dense_1``...), nested for
  models (``layers/sequential/layers/dense``) and sublayers (``bidirectional/forward_layer/cell/vars``);
  a layer's variables are numbered trainable first, then non-trainable. Layers are matched by that key,
  i.e. by type and order, as Keras does. A compiled Keras model's ``optimizer/`` state is not read.
* Keras 2 (``model.save_weights('x.h5')``, or ``model_weights`` of ``model.save('x.h5')``): one group per
  layer named in the ``layer_names`` attribute, its arrays listed in ``weight_names``. Layers with weights
  are matched in order, as Keras' own loader does.

Everything is checked before any weight changes; errors name the layer, the file path and both shapes.
"""
from __future__ import annotations

import os
import re

import numpy

from ..layers import GRU, LSTM, SimpleRNN
from ..models.model import Model
from ..models.sequential import Sequential
from ..utils.atomic import atomic_write
from .weights import _h5py

__all__ = ["load_keras_weights", "save_keras_weights"]


# ---------------------------------------------------------------- how Keras names and orders weights
def _snake(name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``Conv2D`` → ``conv2d``, ``BatchNormalization`` → ``batch_normalization``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _class_key(layer) -> str:
    if isinstance(layer, Model) and layer.is_functional and not isinstance(layer, Sequential):
        return "functional"            # keras.Model(inputs, outputs) is a keras Functional
    return _snake(type(layer).__name__)


def _has_layer_list(m) -> bool:
    return isinstance(m, Sequential) or (isinstance(m, Model) and m.is_functional)


def _own(m) -> list:
    """``(name, parameter)`` of a module's own weights in Keras' order: trainable ones, then non-trainable."""
    own = [(n, p) for n, p in m._parameters.items() if p is not None]
    return [x for x in own if getattr(x[1], "_keras_trainable", True)] + \
        [x for x in own if not getattr(x[1], "_keras_trainable", True)]


def _label(m) -> str:
    return f"{getattr(m, 'name', '?')!r} ({type(m).__name__})"


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _name_key(name: str) -> str:
    """Keras visits a layer's attributes in name order, private ones (``_x``) last."""
    return "~" + name if name.startswith("_") else name


def _keras3_entries(m, path: str, out: list, visited: set) -> list:
    """``(vars group path, module, [(name, param)])`` for ``m`` and everything inside, as Keras 3's saver walks
    them: a Sequential/functional model's ``layers`` first, then attributes by name (private last), where a
    subclassed model's public ``layers`` list is one of the attributes; a layer met twice is saved once."""
    if id(m) in visited:
        return out
    visited.add(id(m))
    rnn = isinstance(m, (SimpleRNN, LSTM, GRU))
    out.append((_join(path, "cell", "vars") if rnn else _join(path, "vars"), m, _own(m)))
    attrs = {name: child for name, child in m._modules.items() if child is not None}
    if _has_layer_list(m):
        _keras3_list(m.layers, _join(path, "layers"), out, visited)
    elif isinstance(m, Model):
        attrs["layers"] = None          # stands for the model's ``layers`` property
    for name in sorted(attrs, key=_name_key):
        if attrs[name] is None:
            _keras3_list(m.layers, _join(path, "layers"), out, visited)
        else:
            _keras3_entries(attrs[name], _join(path, name), out, visited)
    return out


def _keras3_list(layers, path: str, out: list, visited: set) -> None:
    """A list of layers: keys by class in snake case, numbered per class (layers already saved count too)."""
    used: dict = {}
    for layer in layers:
        base = _class_key(layer)
        used[base] = used.get(base, -1) + 1
        _keras3_entries(layer, _join(path, base if used[base] == 0 else f"{base}_{used[base]}"), out, visited)


def _legacy_weights(m) -> list:
    """A layer's weights in Keras 2's ``layer.weights`` order: every trainable one (own first, then sublayers'),
    then every non-trainable one."""
    trainable, frozen = [], []

    def walk(mod, prefix):
        for n, p in mod._parameters.items():
            if p is not None:
                (trainable if getattr(p, "_keras_trainable", True) else frozen).append((prefix + n, p))
        for name, child in mod._modules.items():
            if child is not None:
                walk(child, f"{prefix}{getattr(child, 'name', name)}/")
    walk(m, "")
    return trainable + frozen


def _top_layers(model) -> list:
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"Keras weights: expected an Ember Keras-style model (Sequential or Model), got "
                        f"{type(model).__name__}")
    return list(layers)


def _check_built(model, what: str) -> None:
    if not list(model.parameters()):
        raise ValueError(f"{what}: model {getattr(model, 'name', '')!r} has no weights yet; build it first (give the "
                         "first layer input_shape=, start with layers.Input, or call it on a batch)")


def _as_numpy(p):
    a = p.detach().data
    return numpy.asarray(a.get() if hasattr(a, "get") else a)


def _dataset(ds):
    """An HDF5 dataset as an array; Keras 3 stores bfloat16 as 2-byte values tagged ``dtype='bfloat16'``."""
    value = ds[()]
    if ds.attrs.get("dtype") in ("bfloat16", b"bfloat16"):
        bits = numpy.frombuffer(numpy.ascontiguousarray(value).tobytes(), "<u2").reshape(ds.shape)
        return (bits.astype(numpy.uint32) << 16).view(numpy.float32)
    return numpy.asarray(value)


# ---------------------------------------------------------------- writing
def save_keras_weights(model, path: str) -> None:
    """Write a built model's weights as Keras does: ``.weights.h5`` in Keras 3's layout, any other ``.h5`` in
    Keras 2's (``model.load_weights`` of the same architecture in Keras reads either)."""
    path = os.fspath(path)
    low = path.lower()
    if not (low.endswith(".h5") or low.endswith(".hdf5")):
        raise ValueError(f"save_keras_weights: {path!r}: the name must end in '.weights.h5' (Keras 3) or '.h5' "
                         "(Keras 2)")
    _check_built(model, "save_keras_weights")
    h5py = _h5py()
    with atomic_write(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        if low.endswith(".weights.h5"):
            _write_keras3(f, model)
        else:
            _write_legacy(f, model)


def _write_keras3(f, model) -> None:
    for vars_path, m, own in _keras3_entries(model, "", [], set()):
        group = f.require_group(vars_path)
        name = getattr(m, "name", type(m).__name__)
        group.attrs["name"] = f"{_snake(type(m).__name__)}_cell" if vars_path.endswith("cell/vars") else name
        if vars_path.endswith("cell/vars"):
            f.require_group(vars_path[:-len("cell/vars")] + "vars").attrs["name"] = name
        for i, (_, p) in enumerate(own):
            group.create_dataset(str(i), data=_as_numpy(p))


def _write_legacy(f, model) -> None:
    import ember
    layers = _top_layers(model)
    f.attrs["layer_names"] = numpy.array([la.name.encode() for la in layers])
    f.attrs["backend"] = b"ember"
    f.attrs["keras_version"] = f"ember {ember.__version__}".encode()
    for layer in sorted(layers, key=lambda la: la.name):
        group = f.create_group(layer.name)
        weights = _legacy_weights(layer)
        names = [f"{layer.name}/{n}" for n, _ in weights]
        group.attrs["weight_names"] = numpy.array([n.encode() for n in names])
        for n, (_, p) in zip(names, weights):
            group.create_dataset(n, data=_as_numpy(p))
    f.create_group("top_level_model_weights").attrs["weight_names"] = numpy.array([], dtype="S1")


# ---------------------------------------------------------------- reading
def load_keras_weights(model, path: str) -> None:
    """Load Keras weights (Keras 3 ``.weights.h5`` or Keras 2 ``.h5``, told apart by their contents) into the
    matching built Ember Keras-style model; nothing changes unless every layer and shape fits."""
    path = os.fspath(path)
    h5py = _h5py()
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_keras_weights: no such file: {path}")
    _check_built(model, "load_keras_weights")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"load_keras_weights: {path} is not a valid HDF5 file ({e})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if _attr_list(root, "layer_names") is not None:
            pairs = _match_legacy(root, model, path)
        elif "layers" in f or "vars" in f:
            pairs = _match_keras3(f, model, path)
        elif "weights" in f:
            raise ValueError(f"load_keras_weights: {path} holds Ember weights (save_weights); load it with "
                             "model.load_weights(path)")
        else:
            raise ValueError(f"load_keras_weights: {path} is an HDF5 file but not a Keras weights file (no "
                             f"'layers' group and no 'layer_names' attribute; top level: {list(f)})")
    for p, value in pairs:
        p.data[...] = p.xp.asarray(value, dtype=p.data.dtype)
        p._bump()


def _fit(pairs: list, errors: list, where: str, m, own: list, values: list, sources: list) -> None:
    """Pair a layer's weights with the file's arrays, or describe why they don't fit."""
    if len(values) != len(own):
        errors.append(f"layer {_label(m)}: {len(own)} weight(s) {[(n, tuple(p.shape)) for n, p in own]} in the "
                      f"model, {len(values)} in the file at {where} {[tuple(v.shape) for v in values]}")
        return
    for (n, p), v, src in zip(own, values, sources):
        if tuple(v.shape) != tuple(p.shape):
            errors.append(f"layer {_label(m)}: weight {n!r} is {tuple(p.shape)} in the model but {tuple(v.shape)} in "
                          f"the file at {src!r}")
        else:
            pairs.append((p, v))


def _match_keras3(f, model, path: str) -> list:
    h5py = _h5py()
    pairs, errors, used = [], [], set()
    for vars_path, m, own in _keras3_entries(model, "", [], set()):
        group = f.get(vars_path)
        if group is None or not isinstance(group, h5py.Group):
            if own:
                top = sorted(f["layers"]) if "layers" in f else []
                errors.append(f"layer {_label(m)}: no weights at {vars_path!r} in the file (Keras names layers by "
                              f"class and order; the file's layers are {top})")
            continue
        keys = sorted((k for k in group if isinstance(group[k], h5py.Dataset)), key=lambda k: (len(k), k))
        used.update(f"{vars_path}/{k}" for k in keys)
        _fit(pairs, errors, repr(vars_path), m, own, [_dataset(group[k]) for k in keys],
             [f"{vars_path}/{k}" for k in keys])
    extra = []      # the optimizer's state (saved by a compiled Keras model) and RNG seeds are not weights
    f.visititems(lambda name, obj: extra.append(name) if isinstance(obj, h5py.Dataset) and name not in used
                 and not name.startswith("optimizer/") and "seed_generator" not in name else None)
    if extra:
        errors.append(f"weights in the file that no layer of the model takes: {extra}")
    if errors:
        raise ValueError(f"load_keras_weights({path!r}) into {_label(model)}: the Keras 3 file doesn't match:\n  "
                         + "\n  ".join(errors))
    return pairs


def _attr_list(group, name: str):
    """A string-list attribute, joined from Keras' chunks (``name0``, ``name1``...) when it was too big."""
    if name in group.attrs:
        values = list(group.attrs[name])
    elif f"{name}0" in group.attrs:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _match_legacy(root, model, path: str) -> list:
    layers = [la for la in _top_layers(model) if _legacy_weights(la)]
    saved = [(n, _attr_list(root[n], "weight_names") or []) for n in _attr_list(root, "layer_names")
             if n in root]
    saved = [(n, w) for n, w in saved if w]
    if len(saved) != len(layers):
        raise ValueError(f"load_keras_weights({path!r}): the Keras 2 file has {len(saved)} layer(s) with weights "
                         f"{[n for n, _ in saved]}, the model {len(layers)} {[la.name for la in layers]}; layers are "
                         "matched in order, so both must have the same layers with weights")
    pairs, errors = [], []
    for layer, (name, wnames) in zip(layers, saved):
        missing = [w for w in wnames if w not in root[name]]
        if missing:
            errors.append(f"layer group {name!r} lists weights {missing} that are not in the file")
            continue
        _fit(pairs, errors, f"{name!r}", layer, _legacy_weights(layer), [_dataset(root[name][w]) for w in wnames],
             [f"{name}/{w}" for w in wnames])
    if errors:
        raise ValueError(f"load_keras_weights({path!r}) into {_label(model)}: the Keras 2 file doesn't match:\n  "
                         + "\n  ".join(errors))
    return pairs
