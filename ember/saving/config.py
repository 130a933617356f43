"""Model architectures as plain data: ``get_config``/``from_config`` for functional models, JSON and YAML.

A functional model's config lists its layers (``class_name``, ``config``, ``name``) with the calls
(``inbound_nodes``) that connect them; each tensor is a reference ``[layer_name, node_index, tensor_index]``.
Loading rebuilds each layer from its class name (see :mod:`ember.saving.registry`) and replays the calls.
"""
from __future__ import annotations

import json

from ..layers.symbolic import Input, KerasTensor, flatten_structure
from .registry import get_registered_name, resolve_class

__all__ = ["serialize_layer", "deserialize_layer", "functional_config", "functional_from_config",
           "model_from_config", "model_from_json", "model_from_yaml", "to_json", "to_yaml"]


def serialize_layer(layer) -> dict:
    """``{'module', 'class_name', 'config', 'registered_name'}`` for a layer or model."""
    from ..models import Model
    if not hasattr(layer, "get_config"):
        raise ValueError(f"cannot serialize {type(layer).__name__}: it has no get_config(); only Keras-style "
                         "layers (ember.layers) can be saved in a model config")
    cls = type(layer)
    class_name = "Functional" if cls is Model and layer.is_functional else cls.__name__
    registered = get_registered_name(cls)
    return {"module": cls.__module__, "class_name": class_name, "config": layer.get_config(),
            "registered_name": registered if registered != cls.__name__ else None}


def deserialize_layer(config: dict, custom_objects: dict | None = None):
    """Rebuild a layer or model from :func:`serialize_layer`'s dict."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a layer config dict with 'class_name' and 'config', got {config!r:.200}")
    cls = resolve_class(config["class_name"], custom_objects, config.get("registered_name"))
    inner = config.get("config") or {}
    if hasattr(cls, "is_functional"):               # a model: nested layers may be custom too
        return cls.from_config(inner, custom_objects=custom_objects)
    return cls.from_config(inner)


# ------------------------------------------------------------------ functional graphs
def functional_config(model) -> dict:
    """The config of a functional ``Model``: layers, how they connect, and which tensors are inputs/outputs."""
    node_index, layers, by_layer = {}, [], {}
    for kt in model.inputs:
        layers.append({"module": "ember.layers", "class_name": "InputLayer", "name": kt.name,
                       "config": {"batch_shape": list(kt.shape), "dtype": kt.dtype.name, "name": kt.name},
                       "inbound_nodes": []})
    for node in model._graph:
        nodes = by_layer.setdefault(id(node.layer), [])
        node_index[id(node)] = len(nodes)
        nodes.append(node)
    input_ids = {id(t): t.name for t in model.inputs}

    def ref(t):
        if id(t) in input_ids:
            return [input_ids[id(t)], 0, 0]
        return [t.node.layer.name, node_index[id(t.node)], t.index]

    def encode(x):
        if isinstance(x, KerasTensor):
            return {"__keras_tensor__": ref(x)}
        if isinstance(x, (list, tuple)):
            return [encode(v) for v in x]
        if isinstance(x, dict):
            return {str(k): encode(v) for k, v in x.items()}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise ValueError(f"Model {model.name!r}: cannot serialize the call argument {x!r} (only tensors, lists, "
                         "dicts, numbers, strings and None can be saved)")

    seen = set()
    for node in model._graph:
        if id(node.layer) in seen:
            continue
        seen.add(id(node.layer))
        entry = serialize_layer(node.layer)
        entry["name"] = node.layer.name
        entry["inbound_nodes"] = [{"args": encode(list(n.args)), "kwargs": encode(n.kwargs)}
                                  for n in by_layer[id(node.layer)]]
        layers.append(entry)

    def refs(struct):
        if isinstance(struct, KerasTensor):
            return ref(struct)
        return [ref(t) for t in flatten_structure(struct)]
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": refs(model._input_struct), "output_layers": refs(model._output_struct)}


def functional_from_config(cls, config: dict, custom_objects: dict | None = None):
    """Rebuild a functional model: make each layer, then replay its calls once their inputs exist."""
    for key in ("layers", "input_layers", "output_layers"):
        if key not in config:
            raise ValueError(f"functional model config is missing {key!r}")
    tensors, layers, pending = {}, {}, []
    for entry in config["layers"]:
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        if entry.get("class_name") == "InputLayer":
            c = entry.get("config") or {}
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            if shape is None:
                raise ValueError(f"InputLayer {name!r} config has no 'batch_shape'")
            tensors[(name, 0, 0)] = Input(shape=tuple(shape[1:]), batch_size=shape[0], dtype=c.get("dtype"), name=name)
            continue
        layers[name] = deserialize_layer(entry, custom_objects)
        pending.extend((name, i, n) for i, n in enumerate(entry.get("inbound_nodes") or []))

    def decode(x):
        if isinstance(x, dict) and "__keras_tensor__" in x:
            return tensors[tuple(x["__keras_tensor__"])]
        if isinstance(x, list):
            return [decode(v) for v in x]
        if isinstance(x, dict):
            return {k: decode(v) for k, v in x.items()}
        return x

    def ready(x) -> bool:
        if isinstance(x, dict) and "__keras_tensor__" in x:
            return tuple(x["__keras_tensor__"]) in tensors
        if isinstance(x, (list, dict)):
            return all(ready(v) for v in (x.values() if isinstance(x, dict) else x))
        return True

    while pending:
        progressed = False
        for item in list(pending):
            name, i, node = item
            if not (ready(node.get("args", [])) and ready(node.get("kwargs", {}))):
                continue
            out = layers[name](*decode(node.get("args", [])), **decode(node.get("kwargs", {})))
            for j, t in enumerate(flatten_structure(out)):
                tensors[(name, i, j)] = t
            pending.remove(item)
            progressed = True
        if not progressed:
            missing = sorted({n for n, _, _ in pending})
            raise ValueError(f"functional model config: the calls of layers {missing} read tensors that no layer "
                             "produces; the config is inconsistent")

    def pick(refs):
        if refs and isinstance(refs[0], str):
            return tensors[tuple(refs)]
        try:
            return [tensors[tuple(r)] for r in refs]
        except KeyError as e:
            raise ValueError(f"functional model config: no tensor {list(e.args[0])} for inputs/outputs") from None
    return cls(pick(config["input_layers"]), pick(config["output_layers"]), name=config.get("name"))


# ------------------------------------------------------------------ whole models, JSON and YAML
def model_from_config(config: dict, custom_objects: dict | None = None):
    """A model from ``{'class_name': ..., 'config': ...}`` (as ``serialize_layer(model)`` writes it).

    Building layers draws initial weights; Ember's random generator is left as it was, so loading a model
    does not change what a seeded run does next."""
    from ..backend import rng
    gen = rng()
    state = gen.bit_generator.state
    try:
        return deserialize_layer(config, custom_objects)
    finally:
        gen.bit_generator.state = state


def to_json(model, **kwargs) -> str:
    return json.dumps(serialize_layer(model), **kwargs)


def to_yaml(model, **kwargs) -> str:
    yaml = _yaml()
    return yaml.safe_dump(json.loads(to_json(model)), sort_keys=False, **kwargs)


def model_from_json(json_string: str, custom_objects: dict | None = None):
    """A model (new weights) from :meth:`Model.to_json`'s string.

    >>> import ember
    >>> m = ember.Sequential([ember.layers.Input(shape=(3,)), ember.layers.Dense(2)])
    >>> type(ember.models.model_from_json(m.to_json())).__name__
    'Sequential'
    """
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: not valid JSON ({e})") from None
    return model_from_config(config, custom_objects)


def model_from_yaml(yaml_string: str, custom_objects: dict | None = None):
    """A model from :meth:`Model.to_yaml`'s string (read with ``yaml.safe_load``: plain data only)."""
    yaml = _yaml()
    try:
        config = yaml.safe_load(yaml_string)
    except yaml.YAMLError as e:
        raise ValueError(f"model_from_yaml: not valid YAML ({e})") from None
    return model_from_config(config, custom_objects)


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - only without the extra
        raise ImportError("YAML configs need PyYAML: pip install pyyaml") from None
    return yaml
