"""Tracing: run a Python function once on real tensors and record every Ember op it calls as a graph.

While a :class:`Tracer` is active (``ember.autograd.grad_mode._state.tracer``), ``Op.apply`` reports each
call: the op class, its attributes, its arguments and its results. Arguments that the tracer has not
seen made by an op become graph inputs (the traced function's tensor arguments) or ``captured`` values
(anything else: parameters, buffers, tensors made outside ops), which a run reads through the tensor.

What tracing resolves once, as ``torch.jit.trace`` does: Python control flow (``if``/``for`` on shapes or
on values), and any value taken out of the graph as a Python number or array (``.item()``, ``.numpy()``:
a :class:`TracerWarning` says so) is frozen into the graph. In-place ops (``add_``, ``x[i] = v``) are
recorded, but changes made outside Ember ops (``zero_``, ``copy_``, ``fill_``, writes into ``.data``) are
not seen, and an in-place op on an input does not write back into the caller's tensor when the graph
replays. Random draws are fresh at every run only inside ops that draw them (dropout, attention dropout);
``ember.rand`` called in the traced code is frozen.
"""
from __future__ import annotations

import warnings

from ..autograd.grad_mode import _state
from ..backend import ndarray_types
from ..tensor import Tensor, _wrap
from .ir import BackwardOf, Graph, Value

__all__ = ["Tracer", "TracerWarning", "trace", "flatten", "unflatten"]


class TracerWarning(UserWarning):
    """A traced function did something the graph cannot repeat (e.g. read a traced value as a Python number)."""


class _Opaque(Exception):
    """A traced gradient rule read an array the graph does not know (state kept by its forward op)."""


class Tracer:
    """Records op calls into :attr:`graph` (see the module docstring)."""

    def __init__(self):
        self.graph = Graph()
        self.values: dict = {}     # id(array) -> Value
        self.arrays: list = []     # every traced array stays alive, so no id is reused during the trace
        self.backward = False      # whether a backward ran under this trace
        self.assigned: list = []   # (target tensor, value tensor): write value into target after each run
        self.prologue: list = []   # host functions run before each run (and once now)
        self.nodes_of: dict = {}   # id(op instance) -> its graph Node, for the backward calls that follow
        self.created: set = set()  # ids of arrays of tensors made outside ops during the trace
        self.strict = False        # tracing a gradient rule: unknown arrays abort it (see trace_backward)

    def _bind(self, array, value: Value) -> Value:
        self.values[id(array)] = value
        self.arrays.append(array)
        return value

    def input(self, t: Tensor, name: str | None = None) -> Value:
        """Declare ``t`` a graph input."""
        v = Value("input", t.data.shape, t.data.dtype, name=name)
        self.graph.inputs.append(v)
        return self._bind(t.data, v)

    def made(self, array) -> None:
        """A tensor was made outside an op during the trace (``ember.zeros``, ``ember.tensor``): its array is
        a constant of the graph, taken as it is when an op first reads it."""
        self.created.add(id(array))
        self.arrays.append(array)

    def value_of(self, t: Tensor) -> Value:
        """The Value of a tensor argument: known; made during the trace (a constant); or captured from outside."""
        v = self.values.get(id(t.data))
        if v is None:
            if id(t.data) in self.created:
                v = self._bind(t.data, Value("const", t.data.shape, t.data.dtype, const=t.data.copy()))
            else:
                v = self._bind(t.data, Value("captured", t.data.shape, t.data.dtype, tensor=t))
        return v

    def record(self, op, attrs: dict, inputs, results, instance=None) -> None:
        """Called by ``Op.apply`` after each op runs (``instance``: the op object, whose backward may follow)."""
        if self.strict:
            self._check_known(inputs, attrs)
        args = []
        for a in inputs:
            if isinstance(a, Tensor):
                args.append(self.value_of(a))
            elif isinstance(a, ndarray_types):
                args.append(self._bind(a, Value("const", a.shape, a.dtype, const=a)))
            else:
                args.append(a)
        outs = self.graph.add(op, attrs, args, [(r.data.shape, r.data.dtype) for r in results])
        for v, r in zip(outs, results):
            self._bind(r.data, v)
        if instance is not None:
            self.nodes_of[id(instance)] = self.graph.nodes[-1]
            self.arrays.append(instance)

    def _check_known(self, inputs, attrs) -> None:
        """While a gradient rule is traced: every array an op reads must be a value of the graph (or a constant
        made by a factory), never state the forward kept on its op object, which a graph would freeze."""
        for a in list(inputs) + list(attrs.values()):
            arrays = a if isinstance(a, (tuple, list)) else (a,)
            for x in arrays:
                data = x.data if isinstance(x, Tensor) else x
                if isinstance(data, ndarray_types) and id(data) not in self.values and id(data) not in self.created:
                    raise _Opaque

    def trace_backward(self, instance, grads):
        """Called by the autograd engine for each backward call under a trace; returns its input gradients.

        The gradient rule runs in its recorded (differentiable) form, so its ops become ordinary graph nodes
        that later passes can simplify and fuse: the same rule as eager mode, not a second implementation.
        A rule that reads arrays its forward kept on the op object (a pooling's argmax, a dropout mask), or
        whose op opts out (``inline_backward = False``: rules whose recorded form is slower), becomes one
        :class:`BackwardOf` node that replays the call instead."""
        self.backward = True
        custom = id(instance) not in self.nodes_of      # a custom autograd Function: its forward ran Ember ops
        if getattr(instance, "inline_backward", True):
            mark, prev = len(self.graph.nodes), _state.enabled
            self.strict, _state.enabled = True, True
            try:
                in_grads = instance.backward(*grads)
                seq = in_grads if isinstance(in_grads, (tuple, list)) else (in_grads,)
                if all(g is None or (isinstance(g, Tensor) and id(g.data) in self.values) for g in seq):
                    return tuple(g.detach() if isinstance(g, Tensor) else g for g in seq)
            except _Opaque:
                pass
            finally:
                self.strict, _state.enabled = False, prev
            del self.graph.nodes[mark:]
        if custom:
            raise TypeError(f"ember.jit: the backward of {instance.name()} can't be traced: it reads arrays the graph "
                            "does not know (computed with NumPy, or kept on ctx outside save_for_backward). Write it "
                            "with Ember ops on ctx.saved_tensors, or keep it outside the jitted function")
        _state.tracer = None
        try:
            in_grads = instance.backward(*grads)
        finally:
            _state.tracer = self
        self.record_backward(instance, grads, in_grads)
        return in_grads

    def record_backward(self, instance, grads, in_grads) -> None:
        """Called by the autograd engine after ``instance.backward(*grads)``: one :class:`BackwardOf` node that
        replays that call, reading the forward node's state and the upstream gradients."""
        self.backward = True
        forward = self.nodes_of.get(id(instance))
        if forward is None:
            raise TypeError(f"ember.jit: the backward of {instance.name()} can't be traced: its forward did not run "
                            "through an Ember op (a custom autograd Function?); keep it outside the jitted function")
        if not isinstance(in_grads, (tuple, list)):
            in_grads = (in_grads,)
        edges = tuple(e is not None for e in instance.edges)
        made = [(i, g.data if isinstance(g, Tensor) else g) for i, g in enumerate(in_grads)
                if g is not None and i < len(edges) and edges[i]]
        # an output nothing used has no gradient (ops with materialize_grads = False get None): a None literal
        args = [None if g is None else self.value_of(g if isinstance(g, Tensor) else _wrap(g)) for g in grads]
        outs = self.graph.add(BackwardOf, {"forward": forward, "edges": edges, "made": tuple(i for i, _ in made)},
                              args, [(g.shape, g.dtype) for _, g in made])
        for v, (_, g) in zip(outs, made):
            self._bind(g, v)

    def assign(self, target: Tensor, value: Tensor) -> None:
        """Write ``value`` into ``target``'s array: the trace's own run does it now. A tensor from outside the
        trace (a parameter, optimizer state, a buffer) gets it after every run, as a graph effect; for one made
        in the trace, or an input, later reads simply see ``value``."""
        known = self.values.get(id(target.data))
        outside = (known.kind == "captured") if known is not None else id(target.data) not in self.created
        if outside:
            self.value_of(target)
            self.assigned.append((target, value))
        else:
            self.value_of(target)                # a constant read before the write keeps the old content
            self.values[id(target.data)] = self.value_of(value)
        target.data[...] = value.data

    def on_run(self, fn) -> None:
        """Graph prologue: call ``fn`` before each run (and now), e.g. to refresh 0-d tensors the graph reads."""
        self.prologue.append(fn)
        fn()

    def alias(self, t: Tensor, out: Tensor) -> None:
        """An in-place op wrote ``out`` into ``t``'s array: reads of ``t`` now see ``out``'s value."""
        v = self.values.get(id(out.data))
        if v is None:
            return
        self.values[id(t.data)] = v
        self.arrays.append(t.data)
        if t.data.base is not None:
            warnings.warn("ember.jit: an in-place op wrote into a view; the graph updates the view but not the "
                          "tensor it views, so later reads of that tensor see its old value", TracerWarning,
                          stacklevel=4)

    def leak(self, t: Tensor, how: str) -> None:
        """``t`` leaves the graph as Python data (``how``): warn when it is a traced value."""
        v = self.values.get(id(t.data))
        if v is not None and v.kind in ("node", "input"):
            warnings.warn(f"ember.jit: {how} on a traced value ({v.type_str()}) turns it into a Python value that "
                          "is frozen into the graph: later calls reuse the traced value. Keep the computation in "
                          "Ember ops, or do not jit this part.", TracerWarning, stacklevel=3)


# ---------------------------------------------------------------- argument and result structures
def flatten(obj, leaves: list):
    """The structure of ``obj`` (nested tuples/lists/dicts) with tensors replaced by their index in ``leaves``."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return ("T", len(leaves) - 1)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(flatten(o, leaves) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, flatten(v, leaves)) for k, v in obj.items()))
    return ("L", obj)


def unflatten(tree, leaves):
    """The inverse of :func:`flatten`."""
    kind, body = tree
    if kind == "T":
        return leaves[body]
    if kind in ("tuple", "list"):
        items = [unflatten(t, leaves) for t in body]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: unflatten(t, leaves) for k, t in body}
    return body


def run_traced(fn, args, kwargs):
    """Run ``fn(*args, **kwargs)`` under a new tracer: ``(graph, result, leaves of the result)``.

    Tensor arguments (at any depth of tuples, lists and dicts) become the graph's inputs, in order; the
    graph's outputs are the tensors of the result, in :func:`flatten` order.
    """
    if _state.tracer is not None:
        raise RuntimeError("ember.jit: a trace is already running on this thread")
    tracer = Tracer()
    arg_leaves: list = []
    flatten((args, kwargs), arg_leaves)
    for i, t in enumerate(arg_leaves):
        tracer.input(t, name=f"%in{i}")
    _state.tracer = tracer
    try:
        result = fn(*args, **kwargs)
    finally:
        _state.tracer = None
    out_leaves: list = []
    tree = flatten(result, out_leaves)
    graph = tracer.graph
    graph.outputs = [tracer.value_of(t) for t in out_leaves]
    graph.n_results, graph.out_tree, graph.prologue = len(out_leaves), tree, tracer.prologue
    for target, value in tracer.assigned:
        graph.outputs.append(tracer.value_of(value))
        graph.effects.append(("copy", target, len(graph.outputs) - 1))
    if tracer.backward:                  # the gradients the traced backward left on the parameters
        for v in list(tracer.values.values()):
            t = v.tensor if v.kind == "captured" else None
            if t is None or not (t.requires_grad and t.is_leaf) or t.grad is None:
                continue
            g = tracer.values.get(id(t.grad.data))
            if g is not None and g.kind == "node" and not any(e[1] is t for e in graph.effects if e[0] == "grad"):
                graph.outputs.append(g)
                graph.effects.append(("grad", t, len(graph.outputs) - 1))
    return graph, result, out_leaves


def trace(fn, *args, **kwargs) -> Graph:
    """The graph of ``fn`` called on these arguments (run once, eagerly, while recording).

    >>> import ember
    >>> g = ember.graph.trace(lambda x, y: (x + y) * 2, ember.ones(2), ember.ones(2))
    >>> [n.name for n in g.nodes]
    ['add', 'mul']
    """
    return run_traced(fn, args, kwargs)[0]
