"""``ember.jit``: trace a function (or module) once per input signature, optimise the graph, replay it.

A call looks up its signature: every tensor argument's shape, dtype and ``requires_grad``, every other
argument's value, grad mode, and the ``training`` flag of each submodule when a module is jitted. A new
signature traces the function (that call runs eagerly and returns the eager result), optimises the graph
(:func:`ember.graph.passes.optimize`) and caches it; a known one replays the cached graph:

* no gradient needed: the graph's op kernels run straight on arrays (no Tensors, dispatch or recording);
* a gradient needed (grad mode on and an input or captured parameter requires it): each node runs through
  its op's ``apply``, so autograd records the same ops, with the same gradient rules, as eager mode.

Tracing more than ``max_traces`` signatures warns: a shape that changes every call defeats the cache.
``debug=True`` also runs the function eagerly at every call and compares each node of the optimised graph
with the eager value, naming the first that differs; a training step (a graph with side effects) is
compared with its traced graph run op by op instead, so that the model is updated once.
``cuda_graph=True`` replays a whole step on CuPy arrays as one captured CUDA Graph
(:mod:`ember.graph.cuda_graph`); on NumPy graphs it is accepted and has no effect.
"""
from __future__ import annotations

import functools
import sys
import warnings

import numpy

from ..autograd.grad_mode import _state
from ..tensor import Tensor, _wrap
from .ir import Graph, Value
from .trace import TracerWarning, flatten, run_traced, unflatten

__all__ = ["jit", "JitFunction", "JitMismatchError"]


class JitMismatchError(AssertionError):
    """``debug=True``: a node of the optimised graph gave a different value from eager mode."""


def _signature_of(obj):
    """A hashable key for one argument: tensors by shape, dtype and requires_grad, the rest by value."""
    if isinstance(obj, Tensor):
        return ("T", obj.data.shape, obj.data.dtype.str, obj.requires_grad, type(obj.data).__module__)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_signature_of(o) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _signature_of(v)) for k, v in obj.items()))
    try:
        hash(obj)
        return ("L", type(obj).__name__, obj)
    except TypeError:
        return ("L", type(obj).__name__, id(obj))


class _Entry:
    """One cached trace: the optimised graph and, with debug, the traced one."""

    def __init__(self, graph: Graph, traced: Graph | None):
        self.graph, self.traced = graph, traced
        self.needs_grad = any(v.kind == "captured" and v.tensor.requires_grad
                              for n in graph.nodes for v in n.value_args())
        # a graph holding its own backward (or side effects) always runs on arrays; the others may run through
        # each op's apply, so that autograd records a replay whose result needs gradients
        self.recorded = not graph.effects and not any(getattr(n.op, "reads_forward_state", False)
                                                      for n in graph.nodes)
        self.replay = None                      # a CudaGraphStep, with cuda_graph=True on CuPy arrays


class JitFunction:
    """The callable that :func:`jit` returns; ``graphs`` holds the optimised graph per signature."""

    def __init__(self, fn, optimize: bool = True, debug: bool = False, max_traces: int = 8, module=None,
                 cuda_graph: bool = False):
        self.fn, self.optimize, self.debug, self.max_traces, self.module = fn, optimize, debug, max_traces, module
        self.cuda_graph = cuda_graph
        self.cache: dict = {}
        self.traces = 0
        functools.update_wrapper(self, fn, updated=())

    @property
    def graphs(self) -> list:
        return [e.graph for e in self.cache.values()]

    def graph_for(self, *args, **kwargs) -> Graph:
        """The optimised graph these arguments run (a call with them traces it first if it is new)."""
        key = self._key(args, kwargs)
        if key not in self.cache:
            self(*args, **kwargs)
        return self.cache[key].graph

    def _key(self, args, kwargs):
        flags = tuple(m.training for m in self.module.modules()) if self.module is not None else ()
        return (_state.enabled, flags, _signature_of(args), _signature_of(kwargs))

    def __call__(self, *args, **kwargs):
        if _state.tracer is not None:            # inside another trace: record this function's ops there
            return self.fn(*args, **kwargs)
        key = self._key(args, kwargs)
        entry = self.cache.get(key)
        if entry is None:
            return self._trace(key, args, kwargs)
        leaves: list = []
        flatten((args, kwargs), leaves)
        g = entry.graph
        if self.debug and not g.effects:
            self._check(entry, args, kwargs, leaves)
        if entry.recorded and (entry.needs_grad or any(t.requires_grad for t in leaves)) and _state.enabled:
            outs = _run_recorded(g, leaves)
        else:                                    # inference, or a whole training step (backward in the graph)
            if self.debug and g.effects:         # a training step: checked op by op, updating the model once
                arrays = self._check_step(entry, leaves)[:g.n_results]
            elif entry.replay is not None:       # a captured CUDA Graph (cuda_graph=True on CuPy arrays)
                arrays = entry.replay.run([t.data for t in leaves])[:g.n_results]
            else:
                arrays = g.run(*[t.data for t in leaves])[:g.n_results]
            # an output a pass reduced to an input or parameter (x * 1 -> x) is copied, as eager would make it anew
            outs = [_wrap(a.copy() if isinstance(v, Value) and v.kind != "node" else a)
                    for v, a in zip(g.outputs, arrays)]
        return unflatten(g.out_tree, outs)

    def _trace(self, key, args, kwargs):
        self.traces += 1
        if self.traces > self.max_traces:
            warnings.warn(f"ember.jit: {getattr(self.fn, '__qualname__', self.fn)} has been traced {self.traces} "
                          f"times (max_traces={self.max_traces}): its argument shapes, dtypes or flags change from "
                          "call to call, so every call pays for a new trace. Pad inputs to a fixed shape, or call "
                          "it without jit.", TracerWarning, stacklevel=3)
        graph, result, _ = run_traced(self.fn, args, kwargs)
        traced = graph
        leaves = _leaves_of(args, kwargs)
        if self.optimize:
            from .compiled_ops import use_compiled_kernels
            from .epilogue import fuse_epilogues
            from .fusion import fuse_elementwise
            from .passes import optimize
            graph = optimize(_copy(graph))
            # fused kernels run on arrays only: not where autograd must record the replay, nor in debug mode
            # (which compares every node with eager); NumPy graphs get numba loops, CuPy graphs CUDA kernels
            probe = _Entry(graph, None)
            recorded = _state.enabled and probe.recorded and (probe.needs_grad or any(t.requires_grad for t in leaves))
            backend = _backend_of(graph, leaves)
            if not (recorded or self.debug) and backend == "numpy":
                graph = fuse_elementwise(fuse_epilogues(use_compiled_kernels(graph)))
            elif not (recorded or self.debug) and backend == "cupy":
                graph = fuse_elementwise(graph, _cupy())
        entry = self.cache[key] = _Entry(graph.freeze(), traced if self.debug else None)
        if self.cuda_graph and not self.debug and _backend_of(graph, leaves) == "cupy":
            from .cuda_graph import CudaGraphStep
            recorded = _state.enabled and entry.recorded and (entry.needs_grad or any(t.requires_grad for t in leaves))
            if not recorded:                     # a replay that autograd records cannot be one captured graph
                entry.replay = CudaGraphStep(entry.graph, _cupy())
        return result

    def _check(self, entry, args, kwargs, leaves):
        """Run eagerly, then the optimised graph, and compare every node value that survived the passes
        (graphs without side effects: a checked training step would update the model twice)."""
        reference = _eager_arrays(self.fn, args, kwargs)
        traced = entry.traced.nodes
        if [op for op, _ in reference] != [n.op for n in traced]:
            raise JitMismatchError(f"ember.jit(debug=True): the function now runs {len(reference)} ops where the trace "
                                   f"recorded {len(traced)} (or other ones): its control flow depends on values")
        keep: dict = {}
        entry.graph.run(*[t.data for t in leaves], keep=keep)
        _compare(traced, [want for _, want in reference], keep, "eager mode")

    def _check_step(self, entry, leaves):
        """A graph with side effects (a training step): a real eager call would update the model a second time,
        so the reference is the traced graph run op by op (eager's kernels, no passes, no fusion) on the same
        state, its effects held back and the random generator rewound; then the optimised graph runs once,
        effects and all, and every node value that survived the passes is compared. Returns its outputs."""
        from ..backend import rng
        arrays = [t.data for t in leaves]
        for fn in entry.graph.prologue:
            fn()
        generator = rng()
        state = generator.bit_generator.state
        reference: dict = {}
        entry.traced.run(*arrays, keep=reference, prologue=False, effects=False)
        generator.bit_generator.state = state
        keep: dict = {}
        results = entry.graph.run(*arrays, keep=keep, prologue=False)
        traced = entry.traced.nodes
        _compare(traced, [[reference.get(v.id) for v in n.outputs] for n in traced], keep,
                 "the traced step run op by op")
        return results


def _compare(traced_nodes, wants, keep: dict, what: str) -> None:
    """Raise JitMismatchError at the first traced node whose kept value differs from its reference."""
    for i, (n, want_all) in enumerate(zip(traced_nodes, wants)):
        for j, (v, want) in enumerate(zip(n.outputs, want_all)):
            got = keep.get(v.id)
            if got is None or want is None or _close(got, want):
                continue                     # folded or removed by a pass, or equal
            diff = (numpy.max(numpy.abs(numpy.asarray(got, numpy.float64) - numpy.asarray(want, numpy.float64)))
                    if got.shape == want.shape else f"shape {got.shape} vs {want.shape}")
            raise JitMismatchError(f"ember.jit(debug=True): node {i} ({n.name}, output {j}, {v.type_str()}) "
                                   f"differs from {what} (max abs diff {diff})")


def _backend_of(graph: Graph, leaves) -> str | None:
    """``"numpy"`` or ``"cupy"`` when every input and captured array of the graph is of that library, else None."""
    arrays = [t.data for t in leaves] + [v.tensor.data for n in graph.nodes for v in n.value_args()
                                         if v.kind == "captured"]
    libraries = {type(a).__module__.partition(".")[0] for a in arrays}
    if not libraries:                   # nothing read but constants: the graph runs on the default, NumPy
        return "numpy"
    return libraries.pop() if len(libraries) == 1 and libraries <= {"numpy", "cupy"} else None


def _cupy():
    """The CuPy module, already imported since the graph's arrays are CuPy's (only the backend imports it)."""
    return sys.modules["cupy"]


def _leaves_of(args, kwargs) -> list:
    leaves: list = []
    flatten((args, kwargs), leaves)
    return leaves


def _eager_arrays(fn, args, kwargs) -> list:
    """Every op call of an eager run of ``fn``: ``[(op class, [array per output]), ...]``."""
    from .trace import Tracer
    record: list = []

    class _Keeper(Tracer):
        def record(self, op, attrs, inputs, results, instance=None):
            record.append((op, [r.data for r in results]))

    prev, _state.tracer = _state.tracer, _Keeper()
    try:
        fn(*args, **kwargs)
    finally:
        _state.tracer = prev
    return record


def _close(a, b) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind not in "fc":
        return bool(numpy.array_equal(numpy.asarray(a), numpy.asarray(b)))
    tol = 1e-12 if a.dtype == numpy.float64 else 1e-5
    return bool(numpy.allclose(numpy.asarray(a), numpy.asarray(b), rtol=tol, atol=tol, equal_nan=True))


def _copy(graph: Graph) -> Graph:
    """A graph with its own node list and node objects (passes may rewrite them); Values are shared."""
    from .ir import Node
    nodes, copies = [], {}
    for n in graph.nodes:
        c = copies[id(n)] = Node(n.op, n.attrs, n.args, n.outputs)
        if "forward" in c.attrs:                 # a backward node: point it at the copy of its forward node
            c.attrs["forward"] = copies[id(c.attrs["forward"])]
        for v in c.outputs:
            v.producer = c
        nodes.append(c)
    out = Graph(graph.inputs, nodes, graph.outputs)
    out.prologue, out.effects, out.n_results = graph.prologue, graph.effects, graph.n_results
    out.out_tree = graph.out_tree
    return out


def _run_recorded(graph: Graph, leaves) -> list:
    """Run the graph through each op's ``apply`` on Tensors, so that autograd records it as in eager mode."""
    env = {v.id: t for v, t in zip(graph.inputs, leaves)}

    def read(a):
        if not isinstance(a, Value):
            return a
        if a.kind == "captured":
            return a.tensor
        if a.kind == "const":
            return _wrap(a.const)
        return env[a.id]

    for n in graph.nodes:
        out = n.op.apply(*[read(a) for a in n.args], **n.attrs)
        outs = out if type(out) is tuple else (out,)
        for v, o in zip(n.outputs, outs):
            env[v.id] = o
    return [read(v) for v in graph.outputs]


def jit(fn=None, *, optimize: bool = True, debug: bool = False, max_traces: int = 8, cuda_graph: bool = False):
    """Compile ``fn`` (a function of tensors, or an ``nn.Module``) to graphs traced per input signature.

    Usable as ``ember.jit(f)``, ``@ember.jit`` or ``@ember.jit(debug=True)``. See :mod:`ember.jit.function`
    for when it traces and how a cached graph runs; :mod:`ember.graph.trace` for what tracing freezes.
    ``cuda_graph=True``: a fixed-shape step on CuPy arrays is captured once and replayed as a CUDA Graph
    (:class:`ember.graph.cuda_graph.CudaGraphStep`); ignored on NumPy.

    >>> import ember
    >>> @ember.jit
    ... def f(x):
    ...     return (x * 2 + 1).relu()
    >>> f(ember.ones(3))
    tensor([3., 3., 3.])
    >>> f(ember.ones(3)).tolist(), f.traces
    ([3.0, 3.0, 3.0], 1)
    """
    if fn is None:
        return lambda f: jit(f, optimize=optimize, debug=debug, max_traces=max_traces, cuda_graph=cuda_graph)
    from ..nn.module import Module
    if isinstance(fn, Module):
        return JitFunction(fn.__call__, optimize, debug, max_traces, module=fn, cuda_graph=cuda_graph)
    return JitFunction(fn, optimize, debug, max_traces, cuda_graph=cuda_graph)
