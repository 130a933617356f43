"""Graph nodes: the base ``Op`` that every differentiable op subclasses, and leaf accumulation.

An op defines ``forward(self, *arrays, **attrs)`` on backend arrays (``self.xp``) and
``backward(self, grad)`` on Tensors, returning one gradient per input. Because the
backward is written with differentiable Tensor ops, gradients of gradients work
(``create_graph=True``), and graph mode can trace the backward too.
"""
from __future__ import annotations

import weakref

from ..backend import array_module, device_of, ndarray_types
from ..dtypes import BF16_NP, float32
from ..tensor import Tensor, _wrap
from .grad_mode import _state

# ml_dtypes' bfloat16 has NumPy kind 'V': results of that dtype are recorded as floating too
# (without ml_dtypes, float32: never reached, since float32 results pass the kind test first)
_BF16 = BF16_NP if BF16_NP is not None else float32.np

__all__ = ["Node", "Op", "AccumulateGrad", "RemovableHandle", "OpError", "describe"]


class OpError(RuntimeError, ValueError):
    """Bad input to an op: the message names the op, the shapes and dtypes, and what was expected.

    It is both a RuntimeError (as in PyTorch) and a ValueError (as in Keras and NumPy).
    """


def describe(values) -> str:
    """``'(32, 784) float32, (128, 10) float32'``: shapes and dtypes of op inputs, for error messages."""
    parts = []
    for v in values:
        if isinstance(v, Tensor):
            parts.append(f"{tuple(v.data.shape)} {v.data.dtype}")
        elif hasattr(v, "shape") and hasattr(v, "dtype"):
            parts.append(f"{tuple(v.shape)} {v.dtype}")
        else:
            parts.append(repr(v) if not isinstance(v, (list, tuple)) or len(v) < 8 else f"{type(v).__name__}[{len(v)}]")
    return ", ".join(parts)


class Node:
    """A vertex of the backward graph. ``edges[i]`` is ``(node, output_index)`` for input ``i`` or None."""

    edges: tuple = ()
    n_outputs = 1
    freed = False
    pre_hooks = None      # {output_index: [hook, ...]} for non-leaf tensor hooks
    retained = None       # {output_index: weakref(tensor)} for retain_grad()
    kept_when_freed = ("edges", "pre_hooks", "retained", "n_outputs")   # what survives a backward()

    def name(self) -> str:
        return f"<{type(self).__name__}Backward>"

    __repr__ = name

    @property
    def next_functions(self):
        return tuple((e[0], e[1]) if e is not None else (None, 0) for e in self.edges)

    def backward(self, *grads):  # pragma: no cover - every subclass defines it
        raise NotImplementedError(f"{type(self).__name__} has no backward")


class AccumulateGrad(Node):
    """The node of a leaf tensor: sums the incoming gradient into ``tensor.grad``."""

    def __init__(self, tensor):
        self.variable = weakref.ref(tensor)

    def name(self) -> str:
        return "<AccumulateGrad>"


class Op(Node):
    """Base of Ember's differentiable ops.

    Class attributes describe what the backward needs, so nothing is kept when no
    gradient is recorded: ``save_inputs`` (indices of inputs kept as Tensors),
    ``save_output`` (keep a weak reference to the result), ``differentiable``; and how graph mode takes the
    backward: ``inline_backward`` (see :meth:`ember.graph.trace.Tracer.trace_backward`).
    """

    save_inputs: tuple = ()
    save_output = False
    differentiable = True
    inline_backward = True    # graph mode records the backward's own ops (False: one node replays it)

    def forward(self, *arrays, **attrs):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def op_name(cls) -> str:
        return getattr(cls, "name_", None) or cls.__name__.lower()

    @property
    def saved_tensors(self):
        if self.freed:
            _raise_freed(self)
        saved = self.saved
        for t, v in zip(saved, self.saved_versions):
            if v is not None and t._version != v:
                raise RuntimeError(
                    f"{type(self).__name__}: one of the tensors saved for the gradient was modified by an in-place "
                    f"operation (version {t._version}, expected {v}); use an out-of-place op or clone() it first")
        return saved

    @property
    def output(self) -> Tensor:
        """The op's result, rebuilt from its saved array and attached to this node (no reference cycle)."""
        if self.freed:
            _raise_freed(self)
        if self.out_vc[0] != self.out_version:
            raise RuntimeError(
                f"{type(self).__name__}: its output, saved for the gradient, was modified by an in-place operation "
                f"(version {self.out_vc[0]}, expected {self.out_version}); use an out-of-place op or clone() it first")
        t = _wrap(self.out_data)
        t.requires_grad = True
        t._node = self
        return t

    @classmethod
    def apply(cls, *inputs, **attrs):
        """Run the op on Tensors (or Python scalars) and record it when a gradient is needed."""
        if _state.autocast is not None:          # ember.autocast: cast the inputs per the op lists, then run
            return _state.autocast.apply(cls, inputs, attrs)
        if _state.lazy is not None:              # lazy mode: record, compute later (if the op has a shape rule)
            deferred = _state.lazy.defer(cls, attrs, inputs)
            if deferred is not None:
                return deferred
        node = cls.__new__(cls)
        node.attrs = attrs
        first = first_t = None
        arrays = []
        lazy_type = _state.lazy_type
        for t in inputs:
            if isinstance(t, Tensor):
                if lazy_type is not None and type(t.data) is lazy_type:
                    from ..graph.lazy import realize
                    realize(t)
                if first is None:
                    first, first_t = t.data, t
                elif type(t.data) is not type(first) and device_of(t.data) != device_of(first):
                    raise OpError(f"{cls.op_name()}: expected all tensors on the same device, got {device_of(first)} "
                                  f"and {device_of(t.data)} (inputs: {describe(inputs)}); move them with .to(device)")
                arrays.append(t.data)
            else:
                arrays.append(t)
        node.xp = xp = array_module(first)
        try:
            out = node.forward(*arrays, **attrs)
        except (ValueError, TypeError, IndexError, OverflowError) as e:
            if isinstance(e, OpError):
                raise
            raise OpError(f"{cls.op_name()}: {e} (inputs: {describe(inputs)})") from e
        if type(out) is tuple:
            results = _apply_multi(node, inputs, out, first, first_t)
            if _state.tracer is not None:
                _state.tracer.record(cls, attrs, inputs, results, node)
            return results
        result = _adopt(out, xp, first, first_t)
        if _state.tracer is not None:
            _state.tracer.record(cls, attrs, inputs, (result,), node)
        out = result.data
        if _state.enabled and cls.differentiable and (out.dtype.kind == "f" or out.dtype == _BF16):
            if _record_edges(node, inputs):
                if cls.save_output:
                    node.out_data = out
                    node.out_vc = result._version_cell()
                    node.out_version = node.out_vc[0]
                result.requires_grad = True
                result._node = node
        return result


def _adopt(out, xp, first, first_t) -> Tensor:
    """Wrap an op's result array; a view of the first input shares its version counter (in-place
    changes to either show in both, and are caught by ops that saved the other)."""
    if type(out) not in ndarray_types:
        out = xp.asarray(out)
    result = _wrap(out)
    base = out.base
    if base is not None and first is not None and (base is first or base is first.base):
        result._vc = first_t._version_cell()
    return result


def _record_edges(node, inputs) -> bool:
    """Point the node at the inputs that need gradients; False when none does (nothing to record)."""
    edges = None
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad:
            if edges is None:
                edges = [None] * len(inputs)
            edges[i] = (t._node, t._idx) if t._node is not None else _leaf_edge(t)
    if edges is None:
        return False
    node.edges = edges
    if node.save_inputs:
        saved = node.saved = tuple(inputs[i] for i in node.save_inputs)
        node.saved_versions = tuple(t._version if isinstance(t, Tensor) else None for t in saved)
    return True


def _apply_multi(node, inputs, outs, first, first_t):
    """The tail of ``Op.apply`` for an op whose forward returns a tuple of arrays (e.g. ``split``).

    Each output is a tensor of its own attached to the one node; ``backward`` receives one gradient
    per output (zeros for outputs that were not used).
    """
    results = [_adopt(o, node.xp, first, first_t) for o in outs]
    if _state.enabled and type(node).differentiable \
            and all(r.data.dtype.kind == "f" or r.data.dtype == _BF16 for r in results) and _record_edges(node, inputs):
        node.n_outputs = len(results)
        node.out_meta = [(r.data.shape, r.data.dtype) for r in results]
        for i, r in enumerate(results):
            r.requires_grad, r._node, r._idx = True, node, i
    return tuple(results)


def _leaf_edge(t: Tensor):
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return (acc, 0)


def _raise_freed(node):
    raise RuntimeError(
        f"backward through {node.name()} a second time: its saved values were freed after the first backward(). "
        "Pass retain_graph=True to the first backward() (or autograd.grad) to backpropagate through the graph again.")


class RemovableHandle:
    """Returned by ``register_hook``; ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register_tensor_hook(t: Tensor, hook) -> RemovableHandle:
    if not t.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
    if t._node is None:
        if t._hooks is None:
            t._hooks = []
        hooks = t._hooks
    else:
        node = t._node
        if node.pre_hooks is None:
            node.pre_hooks = {}
        hooks = node.pre_hooks.setdefault(t._idx, [])
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def retain_tensor_grad(t: Tensor) -> None:
    if not t.requires_grad:
        raise RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False")
    if t._node is None:
        return   # leaves keep their grad anyway
    node = t._node
    if node.retained is None:
        node.retained = {}
    node.retained[t._idx] = weakref.ref(t)
