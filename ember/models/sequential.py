"""``Sequential``: a plain stack of layers, each feeding the next (Keras' ``Sequential``)."""
from __future__ import annotations

from ..layers.layer import Layer, infer_output
from ..layers.symbolic import KerasTensor
from ..nn.module import Module
from .model import Model, _with_training

__all__ = ["Sequential"]


class Sequential(Model):
    """Layers applied one after another, from a list or by :meth:`add`.

    The model is built (weights created, output shapes known) as soon as the input shape is known: from
    an ``Input``, from the first layer's ``input_shape=``, or on the first call.

    >>> import ember
    >>> from ember import layers
    >>> model = ember.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dense(2)])
    >>> model(ember.ones(3, 4)).shape
    ember.Size([3, 2])
    """

    def __init__(self, layers=None, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        d = self.__dict__
        d["_layers"], d["_output_shapes"], d["_last"] = [], {}, None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list:
        return list(self._layers)

    def add(self, layer) -> None:
        """Append a layer (or set the input with ``add(Input(shape))``)."""
        if isinstance(layer, KerasTensor):
            if self._layers:
                raise ValueError(f"Sequential {self.name!r}: an Input must come before the first layer")
            self.__dict__["_last"] = layer
            return
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential {self.name!r}: expected a layer or module, got {type(layer).__name__}")
        name = getattr(layer, "name", None) or f"module_{len(self._layers)}"
        if name in self._modules:
            raise ValueError(f"Sequential {self.name!r}: a layer named {name!r} is already in the model; layer "
                             "names must be unique")
        self.add_module(name, layer)
        layer.train(self.training)    # a PyTorch-style module starts in the model's (inference) mode
        self._layers.append(layer)
        if self._last is None and isinstance(layer, Layer) and layer._batch_input_shape is not None:
            self.__dict__["_last"] = KerasTensor(layer._batch_input_shape, layer.dtype)
        if self._last is not None:
            self._extend_shapes([layer])

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise IndexError(f"Sequential {self.name!r}: there are no layers to pop")
        layer = self._layers.pop()
        del self._modules[next(k for k, v in self._modules.items() if v is layer)]
        self._output_shapes.pop(id(layer), None)
        return layer

    def _extend_shapes(self, layers) -> None:
        """Build ``layers`` on stand-in data from the last known output, recording each output shape."""
        kt = self._last
        self.__dict__.setdefault("_build_input_shape", kt.shape)
        for layer in layers:
            kt = layer._symbolic_call((kt,), {}, record=False) if isinstance(layer, Layer) \
                else infer_output(layer, (kt,))
            self._output_shapes[id(layer)] = kt.shape
        self.__dict__["_last"] = kt
        self.__dict__["built"] = True

    def build(self, input_shape) -> None:
        if self._last is None:
            self.__dict__["_last"] = KerasTensor((None,) + tuple(input_shape[1:]), self.dtype)
            self._extend_shapes(self._layers)

    def call(self, inputs, training=None):
        x = inputs
        for layer in self._layers:
            x = layer(x, **_with_training(layer, {}, training))
        return x

    def get_config(self) -> dict:
        from ..saving.config import serialize_layer
        cfg = {"name": self.name, "trainable": self.trainable, "layers": [serialize_layer(la) for la in self._layers]}
        if "_build_input_shape" in self.__dict__:
            cfg["build_input_shape"] = list(self._build_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        from ..layers.symbolic import Input
        from ..saving.config import deserialize_layer
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        shape = config.get("build_input_shape")
        if shape is not None:
            model.add(Input(shape=tuple(shape[1:]), batch_size=shape[0]))
        for entry in config.get("layers", []):
            model.add(deserialize_layer(entry, custom_objects))
        return model
