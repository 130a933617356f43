"""Elementwise fusion: a connected group of elementwise ops over same-shaped arrays becomes one compiled loop.

NumPy runs ``p - (b * 0.9 + g) * lr`` as four passes over memory, each allocating its result; the fused
kernel reads ``p``, ``b`` and ``g`` once and writes the result once. Groups are built from the ops in
``_EXPRESSIONS`` whose array arguments all have the output's shape and dtype (0-d arrays and Python numbers
broadcast as scalars), then a loop is generated from the group (Python source, made here from the graph,
never read from a file) and compiled with numba for NumPy arrays, or, for a graph run on CuPy arrays, written
as the C body of one CuPy ``ElementwiseKernel`` (:func:`cuda_kernel_spec`; float32/float64 groups only; 0-d
inputs are ``raw`` scalars read once, ``into`` targets are in/out parameters). Arithmetic keeps NumPy's
types: a Python number meets a float32 array as a float32 constant, and no ``fastmath``, so ``+ - * /`` and
``sqrt`` round exactly as NumPy does (``exp``, ``log`` and ``tanh`` may differ from NumPy's by an ulp).

The fused node is placed right after the last producer of its inputs; a group is fused only when every
outside reader of its values comes after that point (so that the graph stays in order), and when none of
its nodes is one whose state a backward node reads. Kernels are cached by their
source, so the identical update chains of many parameters compile once.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math

import numpy

from ..autograd.node import Op
from ..ops import elementwise as _ew
from ..ops.elementwise import Add, Div, Maximum, Minimum, Mul, Neg, Sub
from ..ops.unary import Exp, Log, Sqrt, Tanh
from ..ops.where import Where
from .ir import Graph, Node, Value
from .passes import _pinned

__all__ = ["available", "fuse_elementwise", "FusedElementwise", "cuda_kernel_spec"]

available = importlib.util.find_spec("numba") is not None

_EXPRESSIONS = {Add: "({0} + {1})", Sub: "({0} - {1})", Mul: "({0} * {1})", Div: "({0} / {1})",
                Maximum: "np.maximum({0}, {1})", Minimum: "np.minimum({0}, {1})", Neg: "(-{0})",
                Exp: "np.exp({0})", Log: "np.log({0})", Sqrt: "np.sqrt({0})", Tanh: "np.tanh({0})",
                Where: "({1} if {0} else {2})"}
_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_COMPARE = {c for c in _ew._Compare.__subclasses__() if c.name_ in _SYMBOLS}     # float operands, bool result
_EXPRESSIONS.update({c: f"({{0}} {_SYMBOLS[c.name_]} {{1}})" for c in _COMPARE})
_KERNELS: dict = {}      # source hash -> compiled kernel (numba), or CuPy ElementwiseKernel for a "cuda" key


class FusedElementwise(Op):
    """A fused group (:func:`fuse_elementwise`): allocates the outputs and runs the compiled loop over the
    flattened arrays (NumPy), or launches the group's CuPy ``ElementwiseKernel`` (a ``"cuda-"`` key; unverified
    without a GPU). ``into`` names outputs that the loop writes into an input's own array instead (a training
    step's new parameter or optimizer state, see :func:`fuse_elementwise`). Memory: the other outputs only."""

    name_ = "fused"
    differentiable = False

    def forward(self, *inputs, key, ops, shape, dtype, n_out, into=()):
        xp = self.xp
        into = dict(into)                   # output k -> input j: written into that input's own array
        dtypes = dtype if isinstance(dtype, tuple) else (dtype,) * n_out
        if key.startswith("cuda-"):         # one CuPy ElementwiseKernel: inputs, then in/out targets, then outputs
            outs = [None if k in into else xp.empty(shape, dtypes[k]) for k in range(n_out)]
            targets = set(into.values())
            # a 0-d input goes in as a 1-element view (a raw parameter read as x[0]; same memory, no copy)
            _KERNELS[key](*[a.reshape(1) if a.ndim == 0 else a for j, a in enumerate(inputs) if j not in targets],
                          *[inputs[j] for _, j in sorted(into.items())], *[o for o in outs if o is not None])
            for k, j in into.items():
                outs[k] = inputs[j]
            return outs[0] if n_out == 1 else tuple(outs)
        # per-call bookkeeping is most of a small group's time: math.prod, not numpy.prod (2 us a call)
        outs = [None if k in into else xp.empty(shape, dtypes[k]) for k in range(n_out)]
        flat = [xp.ascontiguousarray(a).reshape(-1) if hasattr(a, "shape") else a for a in inputs]
        _KERNELS[key](math.prod(shape), *flat, *[o.reshape(-1) for o in outs if o is not None])
        for k, j in into.items():
            a = inputs[j]
            if not a.flags.c_contiguous:         # ascontiguousarray copied it for the loop: write the result back
                a[...] = flat[j].reshape(a.shape)
            outs[k] = a
        return outs[0] if n_out == 1 else tuple(outs)


def _fusible(n: Node, pinned: set, floats_ok=None) -> bool:
    """Whether ``n`` can join a group: an op of ``_EXPRESSIONS`` whose array arguments have its shape (or are
    0-d) and one float dtype (one of ``floats_ok`` when given); booleans only as a comparison's result or a
    ``where``'s condition."""
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
    if floats_ok is not None and kind not in floats_ok:
        return False
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


def _groups(g: Graph, pinned: set, floats_ok=None) -> list:
    """Connected fusible nodes of one output shape (union-find over producer -> consumer edges), in order."""
    nodes = [n for n in g.nodes if _fusible(n, pinned, floats_ok)]
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


_CUDA_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
_CTYPES = {"float32": "float", "float64": "double", "bool": "bool"}
_CUDA_EXPRESSIONS = {Add: "({0} + {1})", Sub: "({0} - {1})", Mul: "({0} * {1})", Div: "({0} / {1})",
                     # NumPy's maximum/minimum propagate NaN, CUDA's fmax/fmin do not: the first NaN wins
                     Maximum: "(({0} != {0} || {0} > {1}) ? {0} : {1})",
                     Minimum: "(({0} != {0} || {0} < {1}) ? {0} : {1})", Neg: "(-{0})",
                     Exp: "exp({0})", Log: "log({0})", Sqrt: "sqrt({0})", Tanh: "tanh({0})",
                     Where: "({0} ? {1} : {2})"}
_CUDA_EXPRESSIONS.update({c: f"({{0}} {_SYMBOLS[c.name_]} {{1}})" for c in _COMPARE})
_SPECIAL = {("float32", "inf"): "__int_as_float(0x7f800000)", ("float32", "-inf"): "__int_as_float(0xff800000)",
            ("float32", "nan"): "__int_as_float(0x7fc00000)",
            ("float64", "inf"): "__longlong_as_double(0x7ff0000000000000LL)",
            ("float64", "-inf"): "__longlong_as_double(0xfff0000000000000LL)",
            ("float64", "nan"): "__longlong_as_double(0x7ff8000000000000LL)"}


def _c_literal(value: float, dtype) -> str:
    """A C constant of the group's float type (a double literal rounded once, as ``numpy.float32(value)``)."""
    name, text = numpy.dtype(dtype).name, repr(float(value))
    if (name, text) in _SPECIAL:
        return _SPECIAL[name, text]
    return f"({_CTYPES[name]})({text})"


def cuda_kernel_spec(group, inputs, outputs, dtype, into=()) -> dict:
    """The CuPy ``ElementwiseKernel`` of ``group``: ``{"in_params", "out_params", "operation", "name"}``.

    Inputs are ``x<i>`` typed from their Values; 0-d inputs are ``raw`` and read once as ``x<i>[0]`` (so a
    learning rate kept in a device array is read on the device, which a CUDA Graph replay needs); an output
    in ``into`` (output index -> input index) makes that input an in/out parameter, listed first among the
    outputs in output order, then the new outputs ``out<k>``. The kernel is called with the inputs (those not
    written) in order, then the in/out inputs, then the new output arrays (:class:`FusedElementwise`).
    """
    into = dict(into)
    targets = {j: k for k, j in into.items()}
    names = {v.id: f"x{i}" for i, v in enumerate(inputs)}
    temps = {n.outputs[0].id: f"t{j}" for j, n in enumerate(group)}
    ins, reads = [], []
    for i, v in enumerate(inputs):
        ctype = _CTYPES[v.dtype.name]
        if i in targets:
            continue
        if v.shape == ():
            ins.append(f"raw {v.dtype.name} x{i}")
            reads.append(f"const {ctype} x{i}v = x{i}[0];")
            names[v.id] = f"x{i}v"
        else:
            ins.append(f"{v.dtype.name} x{i}")
    outs = [f"{inputs[j].dtype.name} x{j}" for _, j in sorted(into.items())]
    outs += [f"{v.dtype.name} out{k}" for k, v in enumerate(outputs) if k not in into]
    body, consts = [], {}
    for j, n in enumerate(group):
        args = []
        for a in n.args:
            if isinstance(a, Value):
                args.append(names[a.id] if a.id in names else temps[a.id])
            else:
                lit = repr(float(a))
                if lit not in consts:
                    consts[lit] = f"c{len(consts)}"
                    reads.append(f"const {_CTYPES[numpy.dtype(dtype).name]} {consts[lit]} = "
                                 f"{_c_literal(float(a), dtype)};")
                args.append(consts[lit])
        v = n.outputs[0]
        body.append(f"const {_CTYPES[v.dtype.name]} {temps[v.id]} = {_CUDA_EXPRESSIONS[n.op].format(*args)};")
    for k, v in enumerate(outputs):
        body.append(f"{f'x{into[k]}' if k in into else f'out{k}'} = {temps[v.id]};")
    operation = "\n".join(reads + body)
    digest = hashlib.sha1("|".join([", ".join(ins), ", ".join(outs), operation]).encode()).hexdigest()[:16]
    return {"in_params": ", ".join(ins), "out_params": ", ".join(outs), "operation": operation,
            "name": f"ember_fused_{digest}"}


def _compile_cuda(spec: dict, xp) -> str:
    """Build (once per distinct kernel) the CuPy ``ElementwiseKernel`` of ``spec``; its key in ``_KERNELS``.
    CuPy compiles it with NVRTC at its first launch and caches the binary on disk. Unverified without a GPU."""
    key = "cuda-" + spec["name"][len("ember_fused_"):]
    if key not in _KERNELS:
        _KERNELS[key] = xp.ElementwiseKernel(spec["in_params"], spec["out_params"], spec["operation"], spec["name"])
    return key


def fuse_elementwise(g: Graph, xp=numpy) -> Graph:
    """Replace each fusible group of two or more nodes by one :class:`FusedElementwise` node (in place).

    The fused node takes the group's place at its last node and outputs the group's values that anything
    outside reads (the same Value objects, so readers are unchanged). ``xp``: the array module the graph
    runs on; CuPy gets one ``ElementwiseKernel`` per group (float32/float64 groups), NumPy a numba loop.
    """
    cuda = getattr(xp, "__name__", "") == "cupy"
    if not (cuda or available):
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
    for group in _groups(g, pinned, _CUDA_FLOATS if cuda else None):
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
        if cuda:
            key = _compile_cuda(cuda_kernel_spec(group, inputs, outputs, _float_dtype(group), into), xp)
        else:
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

