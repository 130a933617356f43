"""Compile a graph into one straight-line Python function: graph mode's fast executor.

:meth:`ember.graph.ir.Graph.run` interprets a graph node by node (a dictionary of values, an argument
lookup per read, a liveness table per step). That bookkeeping is the same at every run, so it is done once
here instead: the graph becomes the source of a Python function with one local variable per value, each
node one call of its op's ``forward``, and a ``del`` where a value is read for the last time (the liveness
plan, so memory is handed back as early as the interpreter does). Backward nodes
(:class:`~ember.graph.ir.BackwardOf`) get the op state their forward left, as the interpreter gives it.

The source is built from the graph alone (op classes, attribute dictionaries and constants are passed in
as the function's globals, never written as text), so nothing from a file or user string is executed.

>>> import ember, numpy
>>> g = ember.graph.trace(lambda x: (x * 2).relu().sum(), ember.ones(3))
>>> run = compile_graph(g, numpy)
>>> run(numpy.ones(3, numpy.float32))[0]
array(6., dtype=float32)
"""
from __future__ import annotations

from ..autograd.grad_mode import _state
from ..backend import ndarray_types
from ..tensor import Tensor, _wrap
from .ir import BackwardOf, Graph, Value

__all__ = ["compile_graph"]


def _data(t):
    return t.data if isinstance(t, Tensor) else t


def _as_tuple(r):
    return r if type(r) is tuple or type(r) is list else (r,)


class _Source:
    """The lines of the generated function and the objects its globals bind."""

    def __init__(self):
        self.lines: list = []
        self.env: dict = {"_new": object.__new__, "_s": _state, "_nd": ndarray_types, "_w": _wrap,
                          "_data": _data, "_tuple": _as_tuple}
        self.names: dict = {}

    def bind(self, obj, prefix: str) -> str:
        """A global name for ``obj`` (an op class, an attribute dict, a constant)."""
        key = (prefix, id(obj))
        if key not in self.names:
            self.names[key] = f"{prefix}{len(self.names)}"
            self.env[self.names[key]] = obj
        return self.names[key]

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)


def compile_graph(graph: Graph, xp):
    """The graph as a function of its input arrays returning the tuple of its output arrays (effects and
    prologue not included: :meth:`Graph.run` applies them). A forward kernel runs with grad mode on only
    when a backward node reads the state it keeps then (as in the interpreter)."""
    src = _Source()
    src.env["_xp"] = xp
    local = {}

    def ref(a) -> str:
        """The expression reading argument ``a``: a local, a constant, a captured tensor's array or a literal."""
        if not isinstance(a, Value):
            return src.bind(a, "L")
        if a.kind == "const":
            return src.bind(a.const, "K")
        if a.kind == "captured":
            return src.bind(a.tensor, "T") + ".data"
        return local[a.id]

    for i, v in enumerate(graph.inputs):
        local[v.id] = f"a{i}"
    state_users = {id(n.attrs["forward"]) for n in graph.nodes if n.op is BackwardOf}
    inst_name = {}
    mode = None
    for k, (n, (values, states)) in enumerate(zip(graph.nodes, graph.liveness())):
        want = id(n) in state_users
        if want != mode:
            src.emit(f"_s.enabled = {want}")
            mode = want
        outs = [f"v{k}_{j}" for j in range(len(n.outputs))]
        for v, name in zip(n.outputs, outs):
            local[v.id] = name
        if n.op is BackwardOf:
            _emit_backward(src, n, inst_name[id(n.attrs["forward"])], ref, outs)
        else:
            inst = f"o{k}" if id(n) in state_users else "o"
            inst_name[id(n)] = inst
            attrs = src.bind(n.attrs, "A")
            src.emit(f"{inst} = _new({src.bind(n.op, 'C')}); {inst}.attrs = {attrs}; {inst}.xp = _xp")
            call = f"{inst}.forward({', '.join(ref(a) for a in n.args)}{', **' + attrs if n.attrs else ''})"
            if len(outs) == 1:               # a forward may return a 1-tuple (Op.apply takes it as one output)
                src.emit(f"{outs[0]} = {call}")
                src.emit(f"if type({outs[0]}) is tuple: {outs[0]} = {outs[0]}[0]")
            else:
                src.emit(f"r = {call}")
                src.emit("; ".join(f"{name} = r[{j}]" for j, name in enumerate(outs)) + "; del r")
            for name in outs:      # NumPy scalars (a full reduction) become 0-d arrays, as Op.apply makes them
                src.emit(f"if type({name}) not in _nd: {name} = _xp.asarray({name})")
        dead = [local[vid] for vid in values if vid in local] + [inst_name[nid] for nid in states
                                                                 if inst_name.get(nid, "o") != "o"]
        if dead:
            src.emit(f"del {', '.join(dead)}")
    src.emit(f"return ({''.join(ref(v) + ', ' for v in graph.outputs)})")
    body = "\n".join("    " + line for line in src.lines)       # grad mode is the caller's again afterwards
    text = "def run({}):\n    prev = _s.enabled\n    try:\n{}\n    finally:\n        _s.enabled = prev\n".format(
        ", ".join(f"a{i}" for i in range(len(graph.inputs))), body)
    code = compile(text, f"<ember.jit graph of {len(graph.nodes)} nodes>", "exec")
    exec(code, src.env)             # our own generated source (see the module docstring)
    fn = src.env["run"]
    fn.source = text
    return fn


def _emit_backward(src: _Source, n, inst: str, ref, outs) -> None:
    """A backward node: give the forward op object what ``Op.apply`` would have recorded, call its backward."""
    fwd = n.attrs["forward"]
    op = fwd.op
    if op.save_inputs:
        saved = [f"_w({ref(fwd.args[i])})" if isinstance(fwd.args[i], Value) else ref(fwd.args[i])
                 for i in op.save_inputs]
        src.emit(f"{inst}.saved = ({''.join(s + ', ' for s in saved)}); "
                 f"{inst}.saved_versions = {(None,) * len(saved)!r}")
    if op.save_output:
        src.emit(f"{inst}.out_data, {inst}.out_vc, {inst}.out_version = {ref(fwd.outputs[0])}, [0], 0")
    edges = tuple(True if e else None for e in n.attrs["edges"])
    src.emit(f"{inst}.edges = {edges!r}; {inst}.n_outputs = {len(fwd.outputs)}")
    src.emit(f"r = _tuple({inst}.backward({', '.join('_w(' + ref(a) + ')' for a in n.args)}))")
    src.emit("; ".join([f"{name} = _data(r[{i}])" for name, i in zip(outs, n.attrs["made"])] + ["del r"]))
