"""Elementwise fusion: a connected group of elementwise ops over same-shaped arrays becomes one compiled loop.

NumPy runs ``p - (b * 0.9 + g) * lr`` as four passes over memory, each allocating its result; the fused
kernel reads ``p``, ``b`` and ``g`` once and writes the result once. Groups are built from the ops in
``_EXPRESSIONS`` whose array arguments all have the output's shape and dtype (0-d arrays and Python numbers
broadcast as scalars), then a loop is generated from the group (Python source, made here from the graph,
never read from a file) and compiled with numba for NumPy arrays; the design leaves room for a CuPy
``ElementwiseKernel`` per group on the GPU. Arithmetic keeps NumPy's types: a Python number meets a float32
array as a float32 constant, and no ``fastmath``, so ``+ - * /`` and ``sqrt`` round exactly as NumPy does
(``exp``, ``log`` and ``tanh`` may differ from NumPy's by an ulp).

The fused node is placed right after the last producer of its inputs; a group is fused only when every
outside reader of its values comes after that point (so that the graph stays in order), and when none of
its nodes is one whose state a backward node reads. Kernels are cached by their
source, so the identical update chains of many parameters compile once.
"""
from __future__ import annotations

import hashlib
import importlib.util

import numpy

from ..autograd.node import Op
from ..ops import elementwise as _ew
from ..ops.elementwise import Add, Div, Maximum, Minimum, Mul, Neg, Sub
from ..ops.unary import Exp, Log, Sqrt, Tanh
from ..ops.where import Where
from .ir import Graph, Node, Value
from .passes import _pinned

__all__ = ["available", "fuse_elementwise", "FusedElementwise"]

available = importlib.util.find_spec("numba") is not None

_EXPRESSIONS = {Add: "({0} + {1})", Sub: "({0} - {1})", Mul: "({0} * {1})", Div: "({0} / {1})",
                Maximum: "np.maximum({0}, {1})", Minimum: "np.minimum({0}, {1})", Neg: "(-{0})",
                Exp: "np.exp({0})", Log: "np.log({0})", Sqrt: "np.sqrt({0})", Tanh: "np.tanh({0})",
                Where: "({1} if {0} else {2})"}
_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_COMPARE = {c for c in _ew._Compare.__subclasses__() if c.name_ in _SYMBOLS}     # float operands, bool result
_EXPRESSIONS.update({c: f"({{0}} {_SYMBOLS[c.name_]} {{1}})" for c in _COMPARE})
_KERNELS: dict = {}      # source hash -> compiled kernel


class FusedElementwise(Op):
    """A fused group (:func:`fuse_elementwise`): allocates the outputs and runs the compiled loop over the
    flattened arrays. ``into`` names outputs that the loop writes into an input's own array instead (a training
    step's new parameter or optimizer state, see :func:`fuse_elementwise`). Memory: the other outputs only."""

    name_ = "fused"
    differentiable = False

    def forward(self, *inputs, key, ops, shape, dtype, n_out, into=()):
        xp = self.xp
        n = int(numpy.prod(shape, dtype=numpy.int64))
        into = dict(into)                   # output k -> input j: written into that input's own array
        dtypes = dtype if isinstance(dtype, tuple) else (dtype,) * n_out
        outs = [None if k in into else xp.empty(shape, dtypes[k]) for k in range(n_out)]
        flat = [xp.ascontiguousarray(a).reshape(-1) if hasattr(a, "shape") else a for a in inputs]
        _KERNELS[key](n, *flat, *[o.reshape(-1) for o in outs if o is not None])
        for k, j in into.items():
            a = inputs[j]
            if not numpy.shares_memory(flat[j], a):      # the input was copied to be contiguous: write it back
                a[...] = flat[j].reshape(a.shape)
            outs[k] = a
        return outs[0] if n_out == 1 else tuple(outs)


def _fusible(n: Node, pinned: set) -> bool:
    """Whether ``n`` can join a group: an op of ``_EXPRESSIONS`` whose array arguments have its shape (or are
    0-d) and one float dtype; booleans only as a comparison's result or a ``where``'s condition."""
    if n.op not in _EXPRESSIONS or id(n) in pinned or len(n.outputs) != 1 or n.attrs:
        return False
    out = n.outputs[0]
    floats = [a for a in n.args if isinstance(a, Value)]
    if n.op is Where:
        cond = n.args[0]
        if not isinstance(cond, Value) or cond.dtype != numpy.bool_ or cond.shape != out.shape:
            return False
        floats = floats[1:]
    if n.op in _COMPARE:
        if out.dtype != numpy.bool_ or not floats or floats[0].dtype.kind != "f":
            return False
        kind = floats[0].dtype
    else:
        if out.dtype.kind != "f":
            return False
        kind = out.dtype
    for a in n.args[1:] if n.op is Where else n.args:
        if isinstance(a, Value):
            if a.dtype != kind or a.shape not in (out.shape, ()):
                return False
        elif isinstance(a, bool) or not isinstance(a, (int, float)):
            return False
    return True


def _float_dtype(group):
    """The one float dtype of a group's values (its constants take it)."""
    return next(v.dtype for n in group for v in n.value_args() + n.outputs if v.dtype.kind == "f")


def _groups(g: Graph, pinned: set) -> list:
    """Connected fusible nodes of one output shape (union-find over producer -> consumer edges), in order."""
    nodes = [n for n in g.nodes if _fusible(n, pinned)]
    parent = {id(n): id(n) for n in nodes}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k
    for n in nodes:
        for a in n.value_args():
            p = a.producer
            if p is not None and id(p) in parent and a.shape == n.outputs[0].shape and a.shape != ():
                parent[find(id(n))] = find(id(p))
    groups: dict = {}
    for n in nodes:
        groups.setdefault(find(id(n)), []).append(n)
    return [grp for grp in groups.values() if len(grp) > 1]


def _source(group, inputs, outputs, dtype, into=()) -> str:
    """The loop of ``group``: one line per node, reading ``inputs`` and writing ``outputs`` (Values); an output
    in ``into`` (output index -> input index) is stored into that input's argument, element by element after
    its load, so that LLVM sees one array and still vectorises the loop."""
    into = dict(into)
    names = {v.id: f"x{i}" for i, v in enumerate(inputs)}
    temps = {n.outputs[0].id: f"t{j}" for j, n in enumerate(group)}   # local names: equal chains, equal source
    scalar = numpy.dtype(dtype).name
    head = [f"    {names[v.id]}v = {names[v.id]}[0]" for v in inputs if v.shape == ()]
    body, consts = [], {}
    for v in inputs:
        if v.shape != ():
            body.append(f"        {names[v.id]}v = {names[v.id]}[i]")
    for j, n in enumerate(group):
        args = []
        for a in n.args:
            if isinstance(a, Value):
                args.append(f"{names[a.id]}v" if a.id in names else temps[a.id])
            else:
                c = consts.setdefault(repr(float(a)), f"c{len(consts)}")
                args.append(c)
        body.append(f"        {temps[n.outputs[0].id]} = {_EXPRESSIONS[n.op].format(*args)}")
    for k, v in enumerate(outputs):
        target = f"x{into[k]}" if k in into else f"out{k}"
        body.append(f"        {target}[i] = {temps[v.id]}")
    head += [f"    {c} = np.{scalar}({lit})" for lit, c in consts.items()]
    params = ["n"] + [names[v.id] for v in inputs] + [f"out{k}" for k in range(len(outputs)) if k not in into]
    return "\n".join([f"def kernel({', '.join(params)}):", *head, "    for i in range(n):", *body])


def _copy_effects(g: Graph) -> dict:
    """``{value id: target tensor}`` for outputs used once, by a ``"copy"`` effect alone (not a result)."""
    uses: dict = {}
    for v in g.outputs:
        if isinstance(v, Value):
            uses[v.id] = uses.get(v.id, 0) + 1
    results = {v.id for v in g.outputs[:g.n_results] if isinstance(v, Value)}
    return {g.outputs[i].id: t for kind, t, i in g.effects
            if kind == "copy" and uses[g.outputs[i].id] == 1 and g.outputs[i].id not in results}


def _in_place(g, outputs, inputs, after, effect_of, readers, members) -> tuple:
    """``(output index, input index)`` pairs whose output an effect copies into the array of that same input
    (a captured parameter or state), where no node after the group reads the input or the output: the kernel
    then writes there directly, and the effect's copy finds nothing to do."""
    pairs = []
    for k, v in enumerate(outputs):
        target = effect_of.get(v.id)
        if target is None or any(id(g.nodes[r]) not in members for r in readers.get(v.id, [])):
            continue
        for j, a in enumerate(inputs):
            if a.kind == "captured" and a.tensor is target and a.shape == v.shape and a.dtype == v.dtype \
                    and not any(r > after and id(g.nodes[r]) not in members for r in readers.get(a.id, [])):
                pairs.append((k, j))
                break
    return tuple(pairs)


def _compile(source: str) -> str:
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    if key not in _KERNELS:
        import numba
        scope: dict = {"np": numpy}
        exec(compile(source, f"<ember fused kernel {key}>", "exec"), scope)   # generated above, from the graph
        _KERNELS[key] = numba.njit(nogil=True, error_model="numpy")(scope["kernel"])
    return key


def fuse_elementwise(g: Graph) -> Graph:
    """Replace each fusible group of two or more nodes by one :class:`FusedElementwise` node (in place).

    The fused node takes the group's place at its last node and outputs the group's values that anything
    outside reads (the same Value objects, so readers are unchanged).
    """
    if not available:
        return g
    pinned = _pinned(g)
    position = {id(n): i for i, n in enumerate(g.nodes)}
    readers: dict = {}
    for i, n in enumerate(g.nodes):
        for a in n.value_args():
            readers.setdefault(a.id, []).append(i)
    graph_out = {v.id for v in g.outputs if isinstance(v, Value)}
    effect_of = _copy_effects(g)
    slots: dict = {}                               # original index -> fused nodes to place right after it
    removed = set()
    for group in _groups(g, pinned):
        members = {id(n) for n in group}
        made = {n.outputs[0].id for n in group}
        inputs = list({a.id: a for n in group for a in n.value_args() if a.id not in made}.values())
        # the fused node goes right after the last producer of its inputs; every outside reader of the group's
        # values must come later (else the group is not convex here and stays as it is)
        after = max((position[id(a.producer)] for a in inputs if a.producer is not None), default=-1)
        after = max(after, position[id(group[0])] - 1)
        outputs, ok = [], True
        for n in group:
            v = n.outputs[0]
            outside = [r for r in readers.get(v.id, []) if id(g.nodes[r]) not in members]
            if any(r <= after for r in outside):
                ok = False
                break
            if outside or v.id in graph_out:
                outputs.append(v)
        if not ok or not outputs:
            continue
        out = group[-1].outputs[0]
        into = _in_place(g, outputs, inputs, after, effect_of, readers, members)
        key = _compile(_source(group, inputs, outputs, _float_dtype(group), into))
        dtypes = tuple(v.dtype for v in outputs)
        attrs = {"key": key, "ops": "+".join(n.name for n in group), "shape": out.shape,
                 "dtype": dtypes[0] if len(set(dtypes)) == 1 else dtypes, "n_out": len(outputs)}
        if into:
            attrs["into"] = into
        fused = Node(FusedElementwise, attrs, inputs, outputs)
        for k, v in enumerate(outputs):
            v.producer, v.index = fused, k
        slots.setdefault(after, []).append(fused)
        removed |= members
    if slots:
        nodes = list(slots.get(-1, []))
        for i, n in enumerate(g.nodes):
            if id(n) not in removed:
                nodes.append(n)
            nodes.extend(slots.get(i, []))
        g.nodes = nodes
    return g

