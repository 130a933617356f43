"""``Model``: a Layer that groups layers — built from ``Input``/outputs (functional API) or by subclassing.

Functional: ``Model(inputs, outputs)`` replays the layer calls recorded on symbolic tensors, so any DAG
works (several inputs and outputs, shared layers, nested models). Subclassing: define ``call()`` and
assign layers as attributes. Either way the model is an ``ember.nn.Module``.
"""
from __future__ import annotations

from ..layers.layer import Layer
from ..layers.symbolic import KerasTensor, flatten_structure, pack_structure
from ..nn.module import Module
from .summary import summary as _summary
from .training import Trainer

__all__ = ["Model"]


def _order_nodes(outputs, inputs) -> list:
    """The nodes that produce ``outputs`` from ``inputs``, each after the nodes it reads (iterative DFS)."""
    input_ids = {id(t) for t in inputs}
    order, state = [], {}
    for out in outputs:
        stack = [(out.node, False)] if out.node is not None else []
        if out.node is None and id(out) not in input_ids:
            raise ValueError(f"Model: output {out} is not computed from the model's inputs")
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                state[id(node)] = 2
                continue
            if state.get(id(node)):
                continue
            state[id(node)] = 1
            stack.append((node, True))
            for t in node.inputs:
                if t.node is None:
                    if id(t) not in input_ids:
                        raise ValueError(
                            f"Model: graph disconnected: layer {node.layer.name!r} reads {t}, which is not one of "
                            "the model's inputs; pass every Input() the outputs depend on to Model(inputs=...)")
                elif not state.get(id(t.node)):
                    stack.append((t.node, False))
    return order


def _with_training(layer, kwargs: dict, training) -> dict:
    """Pass the model's ``training`` flag on to a layer that takes one (Keras propagates it)."""
    if training is None or not isinstance(layer, Layer) or not layer._accepts_training():
        return kwargs
    return {**kwargs, "training": training}


class Model(Trainer, Layer):
    """A trainable group of layers (Keras' ``Model``), functional or subclassed.

    >>> import ember
    >>> from ember import layers
    >>> inputs = layers.Input(shape=(4,))
    >>> x = layers.Dense(8, activation="relu")(inputs)
    >>> outputs = layers.Dense(3, activation="softmax")(x)
    >>> model = ember.Model(inputs, outputs)
    >>> model(ember.ones(2, 4)).shape
    ember.Size([2, 3])
    """

    def __init__(self, inputs=None, outputs=None, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        if inputs is None and outputs is None:
            return                      # subclassed model: layers arrive as attributes
        if inputs is None or outputs is None:
            raise ValueError("Model: pass both inputs= and outputs= (functional API), or neither (subclassing)")
        flat_in, flat_out = flatten_structure(inputs), flatten_structure(outputs)
        for t in flat_in + flat_out:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model: inputs and outputs must be symbolic tensors from ember.layers.Input and "
                                f"layer calls, got {type(t).__name__}")
        d = self.__dict__
        d["_input_struct"], d["_output_struct"] = inputs, outputs
        d["_flat_inputs"], d["_flat_outputs"] = flat_in, flat_out
        d["_graph"] = _order_nodes(flat_out, flat_in)
        for node in d["_graph"]:
            layer = node.layer
            existing = self._modules.get(layer.name)
            if existing is not None and existing is not layer:
                raise ValueError(f"Model: two different layers are named {layer.name!r}; layer names must be unique")
            if existing is None:
                self.add_module(layer.name, layer)
        self.train(self.training)     # PyTorch-style modules inside start in the model's (inference) mode
        d["built"] = True

    @property
    def is_functional(self) -> bool:
        return "_graph" in self.__dict__

    @property
    def inputs(self):
        return self.__dict__.get("_flat_inputs")

    @property
    def outputs(self):
        return self.__dict__.get("_flat_outputs")

    @property
    def layers(self) -> list:
        """The model's layers, in the order they run (for a subclassed model: the order they were set)."""
        if self.is_functional:
            seen, out = set(), []
            for node in self._graph:
                if id(node.layer) not in seen:
                    seen.add(id(node.layer))
                    out.append(node.layer)
            return out
        return [m for m in self._modules.values() if isinstance(m, Module)]

    def get_layer(self, name: str | None = None, index: int | None = None):
        """A layer by name or by position in :attr:`layers`."""
        layers = self.layers
        if index is not None:
            return layers[index]
        for layer in layers:
            if getattr(layer, "name", None) == name:
                return layer
        raise ValueError(f"{type(self).__name__} {self.name!r}: no layer named {name!r}; layers are "
                         f"{[getattr(la, 'name', type(la).__name__) for la in layers]}")

    def call(self, inputs, training=None):
        if not self.is_functional:
            raise NotImplementedError(f"{type(self).__name__}: a subclassed Model must define call()")
        flat = flatten_structure(inputs)
        if len(flat) != len(self._flat_inputs):
            raise ValueError(f"Model {self.name!r}: expected {len(self._flat_inputs)} input(s), got {len(flat)}")
        values = {id(k): v for k, v in zip(self._flat_inputs, flat)}
        for node in self._graph:
            args = pack_structure(node.args, [values[id(a)] if isinstance(a, KerasTensor) else a
                                              for a in flatten_structure(node.args)])
            out = node.layer(*args, **_with_training(node.layer, node.kwargs, training))
            for kt, v in zip(node.flat_outputs, flatten_structure(out)):
                values[id(kt)] = v
        return pack_structure(self._output_struct, [values[id(k)] for k in self._flat_outputs])

    def build(self, input_shape) -> None:
        """Subclassed models build their layers on the first call."""

    def reset_state(self) -> None:
        """Zero the kept states of every stateful layer inside (stateful RNNs, ``Bidirectional`` of them)."""
        for m in self.modules():
            if m is not self and getattr(m, "stateful", False) and callable(getattr(m, "reset_state", None)):
                m.reset_state()

    reset_states = reset_state          # the Keras 2 name

    def summary(self, print_fn=print, line_length: int = 80) -> None:
        """Print the layers, their output shapes and parameter counts (total, trainable, non-trainable)."""
        _summary(self, print_fn, line_length)

    # ------------------------------------------------------------ saving (see ember.saving)
    def get_config(self) -> dict:
        """A functional model's layers and connections (plain data); a subclassed model's own arguments."""
        if not self.is_functional:
            return super().get_config()
        from ..saving.config import functional_config
        return functional_config(self)

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        if "layers" in config and "input_layers" in config:
            from ..saving.config import functional_from_config
            return functional_from_config(cls, config, custom_objects)
        return super().from_config(config)

    def to_json(self, **kwargs) -> str:
        """The architecture as a JSON string (no weights); rebuild it with ``ember.models.model_from_json``."""
        from ..saving.config import to_json
        return to_json(self, **kwargs)

    def to_yaml(self, **kwargs) -> str:
        """The architecture as YAML (``yaml.safe_dump``); rebuild it with ``ember.models.model_from_yaml``."""
        from ..saving.config import to_yaml
        return to_yaml(self, **kwargs)

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Write the weights to ``filepath``: ``.weights.h5`` (HDF5) or ``.safetensors``, chosen by suffix."""
        from ..saving.weights import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str) -> None:
        """Load weights written by :meth:`save_weights`; names and shapes must match this model."""
        from ..saving.weights import load_weights
        load_weights(self, filepath)

    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Save everything (architecture, weights, compile settings, optimizer state) to a ``.ember`` archive;
        ``ember.models.load_model`` brings it back ready to go on training."""
        from ..saving.archive import save_model
        save_model(self, filepath, overwrite=overwrite)
