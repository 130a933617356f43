"""The table of ONNX op converters used by :mod:`ember.onnx` import: one function per ONNX op type.

A converter runs one ONNX node on Ember tensors, with Ember's differentiable ops, so an imported model
trains like any other module::

    @converter("Relu")
    def relu(ctx, inputs, attrs):
        return inputs[0].relu()

``inputs`` holds one Tensor per node input (None for an omitted optional input), ``attrs`` the node's
attributes as Python values (ints, floats, str, lists, NumPy arrays for tensors), and ``ctx`` a
:class:`ConvertContext` (the model's opset, the node, and :meth:`ConvertContext.const` for inputs that
must be known values, such as a Reshape's shape). A converter returns a Tensor or a tuple/list of them
(one per node output).
"""
from __future__ import annotations

__all__ = ["ConvertContext", "UnsupportedOpError", "converter", "lookup", "supported_ops"]

_CONVERTERS: dict = {}   # op type -> [(since_version, until_version or None, fn)], newest first


class UnsupportedOpError(NotImplementedError):
    """An ONNX node whose op type (or op-set version) Ember cannot run: the message names the op and node."""


class ConvertContext:
    """What a converter may need besides its inputs: ``opset`` (the model's default-domain op-set version),
    ``node`` (the ``onnx.NodeProto``) and ``name`` (the node's name or, if empty, its op type and first output)."""

    def __init__(self, opset: int, node):
        self.opset, self.node = opset, node
        self.name = node.name or f"{node.op_type}->{node.output[0] if node.output else '?'}"

    def const(self, t):
        """A tensor input whose value decides shapes (a Reshape's shape, a Slice's starts) as a NumPy array."""
        return None if t is None else t.numpy()


def converter(*op_types: str, since: int = 1, until: int | None = None):
    """Register ``fn(ctx, inputs, attrs)`` for ``op_types`` at op-set versions ``since`` .. ``until``."""
    def register(fn):
        for op in op_types:
            _CONVERTERS.setdefault(op, []).append((since, until, fn))
            _CONVERTERS[op].sort(key=lambda e: -e[0])
        return fn
    return register


def lookup(op_type: str, opset: int):
    """The converter of ``op_type`` for a model at op-set ``opset``, or None."""
    for since, until, fn in _CONVERTERS.get(op_type, ()):
        if since <= opset and (until is None or opset <= until):
            return fn
    return None


def supported_ops() -> dict:
    """``{op type: (lowest op-set, highest op-set or None)}`` for every registered converter."""
    return {op: (min(e[0] for e in entries), None if any(e[1] is None for e in entries) else max(e[1] for e in entries))
            for op, entries in sorted(_CONVERTERS.items())}
