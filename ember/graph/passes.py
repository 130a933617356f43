"""Optimisation passes of graph mode: dead code, common subexpressions, constant folding and algebraic identities.

Every pass rewrites its :class:`~ember.graph.ir.Graph` in place and returns it. Values that survive a pass keep
their identity (the same :class:`~ember.graph.ir.Value` objects), so a caller holding Values, such as the tracer's map
from tensors to Values, can still find them; a Value that a pass removes is replaced by another everywhere it was
read, graph outputs included.

Two op conventions matter here:

* an op class with the class attribute ``random = True`` draws random numbers: it is never merged with another
  node (two dropout masks must differ) nor folded into a constant (it must draw anew at every run);
* op classes in :data:`SIDE_EFFECT_OPS` (and their subclasses) are never removed, merged or folded, even when
  nothing reads their outputs.

>>> import numpy
>>> from ember.graph.ir import Graph, Value
>>> from ember.ops.elementwise import Add, Mul
>>> g = Graph()
>>> x = Value("input", (3,), "float64"); g.inputs.append(x)
>>> a, = g.add(Mul, {}, [x, 1], [((3,), "float64")])
>>> b, = g.add(Add, {}, [a, a], [((3,), "float64")])
>>> g.outputs.append(b)
>>> len(optimize(g)), g.run(numpy.ones(3))[0]
(1, array([2., 2., 2.]))
"""
from __future__ import annotations

import numpy

from ..ops.elementwise import Add, Div, Mul, Neg, Sub
from ..ops.shape import Permute, Reshape
from .ir import Graph, Node, Value

__all__ = ["SIDE_EFFECT_OPS", "DEFAULT_PASSES", "eliminate_dead_code", "eliminate_common_subexpressions",
           "fold_constants", "simplify_algebra", "optimize"]

#: Op classes whose nodes matter even when their outputs are unread (printing, in-place writes, ...): none yet.
SIDE_EFFECT_OPS: set = set()


def _has_side_effects(op) -> bool:
    return any(issubclass(op, c) for c in SIDE_EFFECT_OPS)


def _is_pure(op) -> bool:
    """Whether two calls with the same arguments give the same result, so that a node may be merged or folded."""
    return not getattr(op, "random", False) and not _has_side_effects(op)


def _pinned(g: Graph) -> set:
    """Ids of the forward nodes (``attrs["forward"]``) whose op state a backward node reads
    (``reads_forward_state``): they must stay exactly as traced, so no pass merges, folds or rewrites them."""
    return {id(n.attrs["forward"]) for n in g.nodes if getattr(n.op, "reads_forward_state", False)}


def _follow(subst: dict, a):
    """``a``'s final replacement under ``subst`` (value id -> Value), following chains; ``a`` itself if none."""
    while isinstance(a, Value) and a.id in subst:
        a = subst[a.id]
    return a


def _substitute(g: Graph, subst: dict, node: Node | None = None) -> None:
    """Point reads of replaced Values at their replacements: in ``node``'s args only, or else in every node's
    args and in the graph outputs. Passes sweep forward and call it on each node before looking at its args."""
    if not subst:
        return
    for n in (node,) if node is not None else g.nodes:
        n.args = [_follow(subst, a) for a in n.args]
    if node is None:
        g.outputs = [_follow(subst, v) for v in g.outputs]


def _drop(g: Graph, removed: set) -> None:
    """Remove the nodes whose ids are in ``removed`` (all their outputs have been substituted)."""
    if removed:
        g.nodes = [n for n in g.nodes if id(n) not in removed]


# ------------------------------------------------------------------------------------------------ dead code
def eliminate_dead_code(g: Graph) -> Graph:
    """Drop the nodes none of whose outputs reach the graph outputs: their work would be thrown away.

    Nodes of :data:`SIDE_EFFECT_OPS` stay, and so do the graph inputs (they are the graph's signature) and the
    forward nodes whose state a kept backward node reads.
    """
    live = {v.id for v in g.outputs if isinstance(v, Value)}
    needed = set()                                # forward nodes whose state a live backward node reads
    kept = []
    for n in reversed(g.nodes):
        if _has_side_effects(n.op) or id(n) in needed or any(v.id in live for v in n.outputs):
            kept.append(n)
            live.update(v.id for v in n.value_args())
            if getattr(n.op, "reads_forward_state", False):
                needed.add(id(n.attrs["forward"]))
    g.nodes = kept[::-1]
    return g


# ------------------------------------------------------------------------------------------------ CSE
def _freeze(x):
    """A hashable key equal for equal attributes or literals, tagged with the type so that ``1``, ``1.0`` and
    ``True`` (equal in Python, but different dtypes once promoted) stay apart; arrays by shape, dtype and bytes."""
    if isinstance(x, Value):
        return ("value", x.id)
    if isinstance(x, numpy.ndarray):
        return ("ndarray", x.shape, x.dtype.str, x.tobytes())
    if isinstance(x, numpy.generic):
        return ("scalar", x.dtype.str, x.tobytes())
    if isinstance(x, (float, complex)):
        return (type(x), repr(x))            # repr tells 0.0 from -0.0 and makes nan equal to nan
    if isinstance(x, (list, tuple)):
        return (type(x), tuple(_freeze(v) for v in x))
    if isinstance(x, dict):
        return (dict, tuple(sorted((k, _freeze(v)) for k, v in x.items())))
    if isinstance(x, slice):
        return (slice, _freeze(x.start), _freeze(x.stop), _freeze(x.step))
    try:
        hash(x)
    except TypeError:
        return ("object", id(x))             # unknown and unhashable: equal only to itself
    return (type(x), x)


def eliminate_common_subexpressions(g: Graph) -> Graph:
    """Merge nodes that compute the same thing (same op, equal attrs, the same Values and equal literals as args):
    the first one stays and readers of the others read its outputs, so the work is done once.

    Random ops (``random = True``) and side-effecting ops are never merged.
    """
    seen, subst, removed, pinned = {}, {}, set(), _pinned(g)
    for n in g.nodes:
        _substitute(g, subst, n)
        if not _is_pure(n.op) or id(n) in pinned:
            continue
        key = (n.op, _freeze(n.attrs), _freeze(n.args))
        first = seen.setdefault(key, n)
        if first is not n:
            subst.update((v.id, w) for v, w in zip(n.outputs, first.outputs))
            removed.add(id(n))
    _substitute(g, subst)
    _drop(g, removed)
    return g


# ------------------------------------------------------------------------------------------------ folding
def fold_constants(g: Graph) -> Graph:
    """Run now, once, each node whose Value args are all constants, and read its outputs as constants from then on.

    'captured' values are not constants (they are parameters read at every run), random ops are not folded, and
    nodes without Value args are left alone (their array module, NumPy or CuPy, is only known at run time). A node
    whose kernel fails is left in place to fail at run time, where the error reaches the user as usual.
    """
    subst, removed, pinned = {}, set(), _pinned(g)
    for n in g.nodes:
        _substitute(g, subst, n)
        vals = n.value_args()
        if not vals or not _is_pure(n.op) or id(n) in pinned or any(v.kind != "const" for v in vals):
            continue
        try:
            arrays = Graph(nodes=[n], outputs=n.outputs).run()   # exactly as a graph run would call the op
        except Exception:   # any kernel error is deferred to run time
            continue
        for v, a in zip(n.outputs, arrays):
            a = numpy.asarray(a) if isinstance(a, numpy.generic) else a   # NumPy reductions give scalars
            subst[v.id] = Value("const", a.shape, a.dtype, const=a, name=v.name)
        removed.add(id(n))
    _substitute(g, subst)
    _drop(g, removed)
    return g


# ------------------------------------------------------------------------------------------------ algebra
def _is_number(a, target: int) -> bool:
    """Whether ``a`` is the number ``target``: a Python or NumPy scalar literal, or a one-element constant."""
    if isinstance(a, Value):
        return a.kind == "const" and a.const is not None and a.const.size == 1 and bool(a.const.reshape(()) == target)
    return isinstance(a, (bool, int, float, numpy.number, numpy.bool_)) and bool(a == target)


# (op, position of x, what the other arg must be): x*1, 1*x, x/1, x+0, 0+x, x-0
_IDENTITIES = ((Mul, 0, 1), (Mul, 1, 1), (Div, 0, 1), (Add, 0, 0), (Add, 1, 0), (Sub, 0, 0))


def _simplify(n: Node, readers: dict):
    """A Value equal to ``n``'s output, or None; may rewrite ``n`` in place into a cheaper equivalent node.
    ``readers``: ``{value id: [nodes reading it in graph order, and None for each time it is an output]}``."""
    if len(n.outputs) != 1:
        return None
    out = n.outputs[0]
    for op, i, unit in _IDENTITIES:
        if n.op is op and len(n.args) == 2 and _is_number(n.args[1 - i], unit):
            x = n.args[i]
            if isinstance(x, Value) and x.shape == out.shape and x.dtype == out.dtype:
                return x
    x = n.args[0] if n.args else None
    inner = x.producer if isinstance(x, Value) and x.kind == "node" else None
    if n.op is Neg and inner is not None and inner.op is Neg and isinstance(inner.args[0], Value):
        return inner.args[0]
    if n.op is Permute and isinstance(x, Value) and isinstance(n.attrs.get("axes"), (tuple, list)):
        axes = tuple(a % len(out.shape) for a in n.attrs["axes"]) if out.shape else ()
        if inner is not None and inner.op is Permute and isinstance(inner.attrs.get("axes"), (tuple, list)):
            first = tuple(a % len(out.shape) for a in inner.attrs["axes"])
            axes = tuple(first[a] for a in axes)
            n.args[0], n.attrs = inner.args[0], {**n.attrs, "axes": axes}
        if axes == tuple(range(len(axes))):
            return n.args[0]
    if n.op is Reshape and isinstance(x, Value):
        if inner is not None and inner.op is Reshape and len(readers.get(x.id, ())) == 1:
            n.args[0] = inner.args[0]
        elif inner is not None and inner.op is Permute:       # a strided x: each reshape of it copies it
            first = next((r for r in readers.get(x.id, ()) if r is not None and r.op is Reshape), n)
            if first is not n:                     # reshaped before: reshape that copy instead (a view of it)
                n.args[0] = first.outputs[0]
        if n.args[0].shape == out.shape:
            return n.args[0]
    return None


def simplify_algebra(g: Graph) -> Graph:
    """Apply identities that remove work: ``x*1``, ``1*x``, ``x/1``, ``x+0``, ``0+x``, ``x-0`` and ``-(-x)`` become
    ``x``; a permute of a permute becomes one permute (none when they cancel); a reshape of a reshape read by
    nothing else becomes one reshape (none when it gives back x's shape); a second reshape of a permute's output
    reshapes the first one's result instead (the strided permute is then copied once, not twice).

    The ``1`` and ``0`` are literals or one-element constants; the identities apply only when the node's output has
    x's shape and dtype, so broadcasting and type promotion are never lost. (``x + 0`` gives ``+0.0`` where x holds
    ``-0.0``; like most graph compilers we accept that difference.) A graph output may then be x's own array, as a
    reshape's view already shares it. Permute and reshape compositions rewrite the outer node in place; the inner
    one goes when dead code elimination finds it unread.
    """
    subst, removed, pinned = {}, set(), _pinned(g)
    readers = g.users()
    for v in g.outputs:
        if isinstance(v, Value):
            readers.setdefault(v.id, []).append(None)
    for n in g.nodes:
        _substitute(g, subst, n)
        if id(n) in pinned:
            continue
        y = _simplify(n, readers)
        if y is not None:
            subst[n.outputs[0].id] = y
            removed.add(id(n))
    _substitute(g, subst)
    _drop(g, removed)
    return g


# ------------------------------------------------------------------------------------------------ driver
DEFAULT_PASSES = (simplify_algebra, fold_constants, eliminate_common_subexpressions, eliminate_dead_code)


def optimize(g: Graph, passes=DEFAULT_PASSES, max_rounds: int = 4) -> Graph:
    """Run ``passes`` in order, round after round, until a round leaves the node count unchanged (at most
    ``max_rounds``): one pass's rewrite often opens a chance for another (a fold makes an ``x*1``, a merge makes a
    ``-(-x)``). Rewrites ``g`` in place and returns it."""
    for _ in range(max_rounds):
        before = len(g.nodes)
        for p in passes:
            g = p(g)
        if len(g.nodes) == before:
            break
    return g
