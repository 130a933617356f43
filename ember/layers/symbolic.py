"""Symbolic tensors for the functional API: ``Input`` and the graph nodes that layers add when called on them.

A :class:`KerasTensor` has a shape (``None`` for unknown dims such as the batch), a dtype and the node that
made it. Calling a layer on KerasTensors runs the layer once on small stand-in data (to build its
weights and learn its output shape) and records a :class:`Node`; ``Model(inputs, outputs)`` then replays
the recorded nodes on real tensors.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..creation import zeros

__all__ = ["KerasTensor", "Node", "Input", "InputLayer", "is_keras_tensor", "flatten_structure"]


class KerasTensor:
    """A placeholder for a tensor in a functional model: ``shape`` (with ``None`` dims), ``dtype``, history."""

    _is_symbolic = True    # lets any ember.nn.Module notice it is being called on one

    def __init__(self, shape, dtype=None, name: str | None = None, node: "Node | None" = None, index: int = 0):
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        self.name = name
        self.node, self.index = node, index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"

    def stand_in(self, fill: int):
        """A zero tensor of this shape with every unknown dim set to ``fill`` (to probe a layer)."""
        return zeros(tuple(fill if s is None else s for s in self.shape), dtype=self.dtype)


def is_keras_tensor(x) -> bool:
    return isinstance(x, KerasTensor)


def flatten_structure(x) -> list:
    """The leaves of nested lists/tuples/dicts, in order."""
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in flatten_structure(item)]
    if isinstance(x, dict):
        return [leaf for k in x for leaf in flatten_structure(x[k])]
    return [x]


def pack_structure(template, leaves: list):
    """Rebuild ``template``'s nesting with ``leaves`` (the inverse of :func:`flatten_structure`)."""
    it = iter(leaves)

    def build(t):
        if isinstance(t, (list, tuple)):
            return type(t)(build(item) for item in t)
        if isinstance(t, dict):
            return {k: build(t[k]) for k in t}
        return next(it)
    return build(template)


class Node:
    """One call of ``layer`` on symbolic inputs: what went in (and its nesting), the kwargs, what came out."""

    def __init__(self, layer, args, kwargs: dict, outputs):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.inputs = [t for t in flatten_structure(args) if isinstance(t, KerasTensor)]
        self.outputs = outputs
        flat = flatten_structure(outputs)
        for i, t in enumerate(flat):
            t.node, t.index = self, i
        self.flat_outputs = flat

    @property
    def parents(self) -> list:
        return [t.node for t in self.inputs if t.node is not None]


class InputLayer:
    """Marks a model input (Keras' ``InputLayer``); holds the input's KerasTensor."""

    def __init__(self, shape, batch_size=None, dtype=None, name=None):
        from .layer import unique_name
        self.name = name or unique_name("input_layer")
        self.output = KerasTensor((batch_size,) + tuple(shape), dtype, name=self.name)


def Input(shape, batch_size: int | None = None, dtype=None, name: str | None = None) -> KerasTensor:
    """A symbolic model input of ``shape`` (without the batch dim), as ``keras.Input``.

    >>> import ember
    >>> x = ember.layers.Input(shape=(784,))
    >>> x.shape
    (None, 784)
    """
    if isinstance(shape, int):
        shape = (shape,)
    return InputLayer(shape, batch_size, dtype, name).output
