"""The graph IR of graph mode: values, op nodes and graphs, and the plain interpreter that runs a graph.

A :class:`Graph` is a static, topologically ordered list of :class:`Node` s. Each node names an Ember op
class (a subclass of :class:`ember.autograd.node.Op`), its attributes and its arguments; arguments are
:class:`Value` s (arrays) or Python literals (scalars, tuples, None). Values come from four places:

* ``input``: the graph's arguments, bound at each call;
* ``captured``: tensors the traced code read but did not make (a model's parameters and buffers), read
  through the tensor at every run so that updates between calls are seen;
* ``const``: arrays fixed at trace time (made during tracing, or folded by :mod:`ember.graph.passes`);
* ``node``: an output of a node.

Running a graph calls each op's ``forward`` on backend arrays: the same kernels eager mode runs, without
Tensors, dispatch or gradient recording.

>>> import ember
>>> g = ember.graph.trace(lambda x: (x * 2).relu().sum(), ember.ones(3))
>>> g.run(ember.ones(3).numpy())[0]
array(6., dtype=float32)
"""
from __future__ import annotations

import itertools

import numpy

from ..autograd.grad_mode import _state
from ..backend import array_module, ndarray_types
from ..tensor import Tensor, _wrap

__all__ = ["Value", "Node", "Graph", "BackwardOf"]

_ids = itertools.count()


class Value:
    """One array in a graph: its ``shape`` and ``dtype`` (as traced), where it comes from (``kind``) and, for
    node outputs, the ``producer`` node and output ``index``."""

    __slots__ = ("id", "kind", "shape", "dtype", "producer", "index", "const", "tensor", "name")

    def __init__(self, kind: str, shape, dtype, producer=None, index: int = 0, const=None, tensor=None, name=None):
        self.id = next(_ids)
        self.kind, self.shape, self.dtype = kind, tuple(shape), numpy.dtype(dtype)
        self.producer, self.index, self.const, self.tensor, self.name = producer, index, const, tensor, name

    def label(self) -> str:
        return self.name or f"%{self.id}"

    def type_str(self) -> str:
        return f"{self.dtype.name}[{', '.join(map(str, self.shape))}]"

    def __repr__(self):
        return f"Value({self.label()}: {self.type_str()}, {self.kind})"


class Node:
    """One op call: ``op`` (an Op subclass), ``attrs`` (its keyword attributes), ``args`` (Values or Python
    literals, in order) and ``outputs`` (Values)."""

    __slots__ = ("op", "attrs", "args", "outputs")

    def __init__(self, op, attrs: dict, args, outputs=()):
        self.op, self.attrs, self.args, self.outputs = op, dict(attrs), list(args), list(outputs)

    @property
    def name(self) -> str:
        return self.op.op_name()

    def value_args(self):
        return [a for a in self.args if isinstance(a, Value)]

    def __repr__(self):
        return f"Node({self.name}, {len(self.args)} args -> {[v.label() for v in self.outputs]})"


class BackwardOf:
    """The graph node of one backward call: it runs the ``backward`` of the forward node ``attrs["forward"]``
    on the upstream gradients (its arguments), with that op's own state from this run's forward (saved
    inputs, stashed arrays such as a pooling's argmax). The gradient rules are the ops' own, in their
    first-order form. Attributes: ``edges`` (which forward inputs want a gradient) and ``made`` (which of
    those this node outputs). Not pure: never merged or folded; its forward node stays as it is. The forward
    node's output is kept for it only when the op saves its output, as eager autograd does.
    """

    random = True                  # graph passes: never merge or fold
    reads_forward_state = True     # graph passes: keep the forward node as it is

    @classmethod
    def op_name(cls) -> str:
        return "backward"


def replay_backward(n: Node, inst, saved, out, grads) -> tuple:
    """Run ``inst.backward`` for the BackwardOf node ``n`` and return the arrays it makes: the forward op object
    ``inst`` first gets what ``Op.apply`` would have recorded: ``saved`` (the values of its ``save_inputs``
    arguments), ``out`` (its output, when the op saves it) and its edges. ``grads`` are the upstream arrays.
    The one place both executors (the interpreter and :mod:`ember.graph.codegen`) replay a backward."""
    fwd = n.attrs["forward"]
    op = fwd.op
    if op.save_inputs:
        inst.saved = tuple(_wrap(v) if isinstance(fwd.args[i], Value) else v for i, v in zip(op.save_inputs, saved))
        inst.saved_versions = (None,) * len(inst.saved)
    if op.save_output:
        inst.out_data, inst.out_vc, inst.out_version = out, [0], 0
    inst.edges = tuple(True if e else None for e in n.attrs["edges"])
    inst.n_outputs = len(fwd.outputs)
    result = inst.backward(*[None if g is None else _wrap(g) for g in grads])    # run with grad mode off
    if not isinstance(result, (tuple, list)):
        result = (result,)
    return tuple(result[i].data if isinstance(result[i], Tensor) else result[i] for i in n.attrs["made"])


def _run_backward(n: Node, inst, read) -> tuple:
    """:func:`replay_backward` with its arguments read from the interpreter's values."""
    fwd = n.attrs["forward"]
    saved = [read(fwd.args[i]) for i in fwd.op.save_inputs]
    out = read(fwd.outputs[0]) if fwd.op.save_output else None
    return replay_backward(n, inst, saved, out, [read(a) for a in n.args])


def _drop(env: dict, instances: dict, values, states) -> None:
    for vid in values:
        env.pop(vid, None)
    for nid in states:
        instances.pop(nid, None)


def _literal(v) -> str:
    if isinstance(v, Value):
        return v.label()
    if isinstance(v, Node):
        return f"{v.name}->{','.join(o.label() for o in v.outputs)}"
    if isinstance(v, numpy.ndarray):
        return f"array{v.shape}"
    if isinstance(v, float):
        return repr(v)
    return repr(v)


class Graph:
    """``inputs`` (Values), ``nodes`` (topological order), ``outputs`` (Values or literals).

    A traced training step also has side effects, run by :meth:`run`: ``prologue`` (host functions called
    before each run, e.g. an optimizer writing this step's learning rate and bias corrections into the 0-d
    tensors the graph reads) and ``effects``, ``(kind, tensor, output index)`` applied after it:
    ``"copy"`` writes the output into ``tensor``'s array (a parameter or optimizer state, updated in place),
    ``"grad"`` sets ``tensor.grad``. Their outputs follow the ``n_results`` outputs of the traced function.
    """

    def __init__(self, inputs=(), nodes=(), outputs=()):
        self.inputs, self.nodes, self.outputs = list(inputs), list(nodes), list(outputs)
        self.prologue: list = []
        self.effects: list = []
        self.n_results = len(self.outputs)
        self.frozen = False

    # ------------------------------------------------------------ building
    def add(self, op, attrs: dict, args, out_specs) -> list:
        """Append a node of ``op`` over ``args``; ``out_specs`` are (shape, dtype) of its outputs. Returns them."""
        node = Node(op, attrs, args)
        node.outputs = [Value("node", s, d, producer=node, index=i) for i, (s, d) in enumerate(out_specs)]
        self.nodes.append(node)
        return node.outputs

    # ------------------------------------------------------------ queries
    def values(self):
        """Every value the graph reads or makes: inputs, then each node's arguments and outputs, once each."""
        seen = {}
        for v in self.inputs:
            seen.setdefault(v.id, v)
        for n in self.nodes:
            for v in n.value_args() + n.outputs:
                seen.setdefault(v.id, v)
        return list(seen.values())

    def users(self) -> dict:
        """``{value id: [nodes reading it]}``."""
        out: dict = {}
        for n in self.nodes:
            for v in n.value_args():
                out.setdefault(v.id, []).append(n)
        return out

    def validate(self) -> None:
        """Check that every value is defined before it is read (inputs, captured and consts are always defined)."""
        defined = {v.id for v in self.inputs}
        for i, n in enumerate(self.nodes):
            for v in n.value_args():
                if v.kind == "node" and v.id not in defined:
                    raise ValueError(f"graph: node {i} ({n.name}) reads {v.label()} before it is defined")
                if v.kind == "input" and v.id not in defined:
                    raise ValueError(f"graph: node {i} ({n.name}) reads {v.label()}, which is not a graph input")
            defined.update(v.id for v in n.outputs)
        for v in self.outputs:
            if isinstance(v, Value) and v.kind in ("node", "input") and v.id not in defined:
                raise ValueError(f"graph: output {v.label()} is never defined")

    # ------------------------------------------------------------ running
    def run(self, *arrays, keep: dict | None = None, prologue: bool = True, effects: bool = True):
        """The outputs' arrays for the input ``arrays`` (NumPy or CuPy). ``keep``, when given, receives every
        node output by value id (for debugging); ``prologue=False`` / ``effects=False`` skip the side effects
        (a debug check runs a training graph twice but updates the model once)."""
        if len(arrays) != len(self.inputs):
            raise TypeError(f"graph: expected {len(self.inputs)} input arrays, got {len(arrays)}")
        for fn in self.prologue if prologue else ():
            fn()
        env = {v.id: a for v, a in zip(self.inputs, arrays)}
        xp = array_module(arrays[0]) if arrays else numpy

        def read(a):
            if not isinstance(a, Value):
                return a
            k = a.kind
            if k == "const":
                return a.const
            if k == "captured":
                return a.tensor.data
            return env[a.id]

        # forward kernels keep what a backward needs only when grad mode is on: on exactly for the nodes
        # whose state a backward node reads; the backward nodes switch it off (first-order gradient rules)
        prev = _state.enabled
        try:
            if keep is None and self.frozen:
                results = self._compiled(xp)(*arrays)
            else:
                results = self._run(env, read, xp, keep, _state)
        finally:
            _state.enabled = prev
        for kind, tensor, i in self.effects if effects else ():
            if kind == "copy":
                if results[i] is not tensor.data:      # a fused kernel may have written it there already
                    tensor.data[...] = results[i]
            else:
                tensor.grad = _wrap(results[i])
        return results

    def freeze(self) -> "Graph":
        """Mark the graph final (no pass will change it): runs then go through :func:`ember.graph.codegen.
        compile_graph`'s straight-line function, made once per array module, instead of the interpreter."""
        self.frozen, self._code = True, {}
        return self

    def _compiled(self, xp):
        fn = self._code.get(xp)
        if fn is None:
            from .codegen import compile_graph
            fn = self._code[xp] = compile_graph(self, xp)
        return fn

    def liveness(self) -> list:
        """For each node, what can be dropped once it has run: ``(value ids, node ids)``: the values it reads
        or makes for the last time (never the graph's outputs), and the forward op objects whose state no later
        backward node reads. Running drops them, so memory is handed back as early as eager mode's would be."""
        plan = getattr(self, "_liveness", None)
        if plan is not None and plan[0] == len(self.nodes):
            return plan[1]
        last, state_last = {}, {}
        for i, n in enumerate(self.nodes):
            state_last[id(n)] = i
            for v in n.outputs:
                last[v.id] = i
            for a in n.value_args():
                if a.kind == "node":
                    last[a.id] = i
            if n.op is BackwardOf:                   # it also reads the forward node's saved inputs and output
                fwd = n.attrs["forward"]
                state_last[id(fwd)] = i
                saved = [fwd.args[k] for k in fwd.op.save_inputs if k < len(fwd.args)]
                saved += fwd.outputs[:1] if fwd.op.save_output else []
                for a in saved:
                    if isinstance(a, Value) and a.kind == "node":
                        last[a.id] = i
        kept = {v.id for v in self.outputs if isinstance(v, Value)}
        drops = [([], []) for _ in self.nodes]
        for vid, i in last.items():
            if vid not in kept:
                drops[i][0].append(vid)
        for nid, i in state_last.items():
            drops[i][1].append(nid)
        self._liveness = (len(self.nodes), drops)
        return drops

    def peak_bytes(self) -> int:
        """The most bytes of node values alive at once in a run with :meth:`liveness` (inputs, parameters and
        the kernels' own workspaces not counted): the static memory plan of this graph."""
        live, peak, size = 0, 0, {}
        for n, (values, _) in zip(self.nodes, self.liveness()):
            for v in n.outputs:
                size[v.id] = int(numpy.prod(v.shape, dtype=numpy.int64)) * v.dtype.itemsize
                live += size[v.id]
            peak = max(peak, live)
            live -= sum(size.get(vid, 0) for vid in values)
        return peak

    def _run(self, env, read, xp, keep, state):
        instances = {}
        drops = self.liveness()
        state_users = {id(n.attrs["forward"]) for n in self.nodes if n.op is BackwardOf}
        for n, (values, states) in zip(self.nodes, drops):
            state.enabled = id(n) in state_users
            if n.op is BackwardOf:
                outs = _run_backward(n, instances[id(n.attrs["forward"])], read)
                for v, o in zip(n.outputs, outs):
                    env[v.id] = o
                if keep is not None:
                    keep.update((v.id, env[v.id]) for v in n.outputs)
                _drop(env, instances, values, states)
                continue
            op = n.op.__new__(n.op)
            op.attrs = n.attrs
            args = [read(a) for a in n.args]
            first = next((a for a in args if hasattr(a, "dtype") and hasattr(a, "shape")), None)
            op.xp = array_module(first) if first is not None else xp
            out = op.forward(*args, **n.attrs)
            instances[id(n)] = op
            outs = out if type(out) is tuple else (out,)
            for v, o in zip(n.outputs, outs):
                env[v.id] = o if type(o) in ndarray_types else op.xp.asarray(o)   # NumPy scalars too, as Op.apply
            if keep is not None:
                for v in n.outputs:
                    keep[v.id] = env[v.id]
            _drop(env, instances, values, states)
        return tuple(read(v) for v in self.outputs)

    # ------------------------------------------------------------ inspection
    def __str__(self) -> str:
        lines = [f"graph({', '.join(f'{v.label()}: {v.type_str()}' for v in self.inputs)}) {{"]
        shown = set()
        for n in self.nodes:
            for v in n.value_args():
                if v.kind in ("captured", "const") and v.id not in shown:
                    shown.add(v.id)
                    lines.append(f"  {v.label()}: {v.type_str()} = {v.kind}")
            outs = ", ".join(f"{v.label()}: {v.type_str()}" for v in n.outputs)
            args = ", ".join(_literal(a) for a in n.args)
            attrs = "".join(f", {k}={_literal(v)}" for k, v in n.attrs.items())
            lines.append(f"  {outs} = {n.name}({args}{attrs})")
        for kind, tensor, i in self.effects:
            target = "grad of " if kind == "grad" else ""
            lines.append(f"  effect: {target}{tuple(tensor.shape)} {tensor.dtype} <- {_literal(self.outputs[i])}")
        lines.append(f"  return {', '.join(_literal(v) for v in self.outputs[:self.n_results])}")
        lines.append("}")
        return "\n".join(lines)

    def print(self) -> None:
        """Print the readable text IR: one line per node, ``%out: dtype[shape] = op(args, attrs)``."""
        print(str(self))

    def to_dot(self) -> str:
        """The graph in Graphviz DOT: a box per node, an ellipse per input, captured or constant value."""
        lines = ["digraph ember {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
        src = {}
        for v in self.inputs:
            src[v.id] = f"v{v.id}"
            lines.append(f'  v{v.id} [shape=ellipse, label="{v.label()}\\n{v.type_str()}", style=filled, '
                         f'fillcolor="#dde8f6"];')
        for i, n in enumerate(self.nodes):
            lines.append(f'  n{i} [shape=box, label="{n.name}\\n'
                         f'{" ".join(v.type_str() for v in n.outputs)}"];')
            for v in n.value_args():
                if v.id not in src:
                    src[v.id] = f"v{v.id}"
                    lines.append(f'  v{v.id} [shape=ellipse, label="{v.kind}\\n{v.type_str()}", style=filled, '
                                 f'fillcolor="#eeeeee"];')
                lines.append(f"  {src[v.id]} -> n{i};")
            for v in n.outputs:
                src[v.id] = f"n{i}"
        for j, v in enumerate(self.outputs):
            lines.append(f'  out{j} [shape=ellipse, label="output {j}", style=filled, fillcolor="#f6e3dd"];')
            if isinstance(v, Value) and v.id in src:
                lines.append(f"  {src[v.id]} -> out{j};")
        lines.append("}")
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"
