"""``ember.onnx.backend``: an ``onnx.backend.base.Backend`` running models with Ember, for ONNX's test suite.

>>> import numpy as np, onnx.helper as oh
>>> from onnx import TensorProto
>>> from ember.onnx import backend
>>> g = oh.make_graph([oh.make_node("Abs", ["x"], ["y"])], "g",
...                   [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
...                   [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
>>> backend.run_model(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), [np.array([-1., 2.], np.float32)])
[array([1., 2.], dtype=float32)]
"""
from __future__ import annotations

import numpy as np
from onnx.backend.base import Backend, BackendRep

from ..autograd.grad_mode import no_grad
from .importer import load

__all__ = ["EmberBackend", "EmberRep", "prepare", "run_model", "run_node", "supports_device"]


class EmberRep(BackendRep):
    """A prepared model: ``run(inputs)`` returns the outputs as NumPy arrays, computed without gradients."""

    def __init__(self, module):
        self.module = module

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            args, kw = (), dict(inputs)
        else:
            args, kw = (tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)), {}
        with no_grad():
            out = self.module(*[_value_in(a) for a in args], **{k: _value_in(v) for k, v in kw.items()})
        outs = out if isinstance(out, tuple) else (out,)
        return [_value_out(t) for t in outs]


def _value_in(v):
    """Arrays stay arrays; a list is a sequence of arrays; None is an empty optional."""
    if v is None or isinstance(v, np.ndarray):
        return v
    if isinstance(v, list):
        return [np.asarray(e) for e in v]
    return np.asarray(v)


def _value_out(v):
    if v is None:
        return None
    if isinstance(v, list):
        return [_value_out(e) for e in v]
    return np.asarray(v.data)


class EmberBackend(Backend):
    """Runs ONNX models on the CPU with Ember's ops (see :func:`ember.onnx.load` for what can be imported)."""

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        return EmberRep(load(model, **kwargs))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        raise NotImplementedError("ember.onnx.backend runs whole models: wrap the node with onnx.helper.make_model")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper().startswith("CPU")


prepare = EmberBackend.prepare
run_model = EmberBackend.run_model
run_node = EmberBackend.run_node
supports_device = EmberBackend.supports_device
