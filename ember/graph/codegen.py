"""Compile a graph into one straight-line Python function: graph mode's fast executor.

:meth:`ember.graph.ir.Graph.run` interprets a graph node by node (a dictionary of values, an argument
lookup per read, a liveness table per step). That bookkeeping is the same at every run, so it is done once
here instead: the graph becomes the source of a Python function with one local variable per value, each
node one call of its op's ``forward``, and a ``del`` where a value is read for the last time (the liveness
plan, so memory is handed back as early as the interpreter does). Backward nodes
(:class:`~ember.graph.ir.BackwardOf`) replay through :func:`~ember.graph.ir.replay_backward`, as in the interpreter.

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
from .ir import BackwardOf, Graph, Value, replay_backward

__all__ = ["compile_graph"]


class _Source:
    """The lines of the generated function and the objects its globals bind."""

    def __init__(self):
        self.lines: list = []
        self.env: dict = {"_new": object.__new__, "_s": _state, "_nd": ndarray_types, "_replay": replay_backward}
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
    """A backward node: :func:`ember.graph.ir.replay_backward` on the forward op object and this run's values."""
    fwd = n.attrs["forward"]
    saved = "".join(ref(fwd.args[i]) + ", " for i in fwd.op.save_inputs)
    out = ref(fwd.outputs[0]) if fwd.op.save_output else "None"
    grads = "".join(ref(a) + ", " for a in n.args)
    src.emit(f"r = _replay({src.bind(n, 'N')}, {inst}, ({saved}), {out}, ({grads}))")
    src.emit("; ".join([f"{name} = r[{j}]" for j, name in enumerate(outs)] + ["del r"]))
