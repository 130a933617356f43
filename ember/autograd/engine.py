"""The backward engine: an iterative walk of the graph in dependency order.

No recursion anywhere, so a chain of 100,000 ops backpropagates without RecursionError.
Gradients meeting at a node are summed before its backward runs (Kahn's algorithm).
"""
from __future__ import annotations

from ..tensor import Tensor, _wrap
from .grad_mode import _state
from .node import AccumulateGrad, _leaf_edge, _raise_freed

__all__ = ["backward", "grad"]


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _root_grads(outputs, grad_outputs, who):
    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if i < len(grad_outputs) else None
        if not out.requires_grad:
            raise RuntimeError(
                f"{who}: element {i} of the outputs does not require grad and has no grad_fn; "
                "did you compute it under no_grad(), or from tensors without requires_grad=True?")
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"{who}: grad can be implicitly created only for scalar outputs, but the output has shape "
                    f"{tuple(out.data.shape)}; pass a gradient of that shape (e.g. backward(ember.ones_like(out)))")
            from ..creation import _made     # a constant of a traced graph
            g = _made(out.xp.ones_like(out.data))
        elif not isinstance(g, Tensor):
            g = _wrap(out.xp.asarray(g, dtype=out.data.dtype))
        if tuple(g.data.shape) != tuple(out.data.shape):
            raise RuntimeError(f"{who}: gradient has shape {tuple(g.data.shape)} but the output has shape "
                               f"{tuple(out.data.shape)}; they must match")
        grads.append(g)
    return grads


def _edge_of(t: Tensor):
    if t._node is not None:
        return (t._node, t._idx)
    return (t._accum, 0) if t._accum is not None else None


def run(outputs, grad_outputs, retain_graph, create_graph, capture=None, accumulate=True):
    """Backpropagate; ``capture`` maps ``(node, idx)`` to a slot for ``autograd.grad``.

    Under graph-mode tracing (``ember.jit``) each op's backward call is recorded into the graph
    (:meth:`ember.graph.trace.Tracer.trace_backward`: the ops of its gradient rule, or one node replaying it),
    and the sums of gradients and into ``.grad`` as recorded additions, so the traced graph holds the backward.
    """
    tracer = _state.tracer
    # count, for every node, how many edges point at it
    roots = [(t._node, t._idx) if t._node is not None else _leaf_edge(t) for t in outputs]
    deps = {}
    stack = []
    for node, _ in roots:
        if node is not None and node not in deps:
            deps[node] = 0
            stack.append(node)
    while stack:
        node = stack.pop()
        for e in node.edges:
            if e is not None:
                child = e[0]
                if child in deps:
                    deps[child] += 1
                else:
                    deps[child] = 1
                    stack.append(child)
    needed = None if capture is None else _needed_nodes(deps, capture)

    buffers = {}
    for (node, idx), g in zip(roots, grad_outputs):
        buf = buffers.setdefault(node, [None] * node.n_outputs)
        buf[idx] = g if buf[idx] is None else buf[idx] + g
    fresh = {id(g.data) for g in grad_outputs}
    ready = [node for node in buffers if deps[node] == 0]
    results = {} if capture is not None else None

    prev_mode = _state.enabled
    _state.enabled = bool(create_graph)
    try:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node, None)
            run_node = grads is not None and (needed is None or node in needed)
            if run_node:
                if node.pre_hooks:
                    grads = _apply_hooks(node.pre_hooks, grads)
                if node.retained:
                    _retain(node, grads, create_graph)
                if capture is not None:
                    for i, g in enumerate(grads):
                        if (node, i) in capture:
                            results[(node, i)] = g
                if type(node) is AccumulateGrad:
                    if accumulate:
                        _accumulate(node, grads[0], create_graph, fresh)
                    continue
                if node.freed:
                    _raise_freed(node)
                if node.n_outputs == 1:
                    grads = [grads[0]]
                else:
                    fill = getattr(node, "materialize_grads", True)   # custom Functions may ask for None
                    grads = [g if g is not None or not fill else _zeros_for(node, i) for i, g in enumerate(grads)]
                if tracer is None:
                    in_grads = node.backward(*grads)
                else:                             # graph mode: the backward's ops, or one node replaying it
                    in_grads = tracer.trace_backward(node, grads)
                if not isinstance(in_grads, (tuple, list)):
                    in_grads = (in_grads,)
                if not retain_graph:
                    _free(node)
            else:
                in_grads = ()
            for i, e in enumerate(node.edges):
                if e is None:
                    continue
                child, idx = e
                g = in_grads[i] if i < len(in_grads) else None
                if g is not None:
                    if not isinstance(g, Tensor):
                        g = _wrap(g)
                    buf = buffers.get(child)
                    if buf is None:
                        buf = buffers[child] = [None] * child.n_outputs
                    buf[idx] = g if buf[idx] is None else buf[idx] + g
                deps[child] -= 1
                if deps[child] == 0:
                    ready.append(child)
    finally:
        _state.enabled = prev_mode
    return results


def _needed_nodes(deps, capture):
    """Nodes from which a captured (node, idx) can be reached: only those need their backward run."""
    targets = {node for node, _ in capture}
    needed = set()
    # post-order over the (acyclic) graph without recursion
    state = {}
    for start in deps:
        if start in state:
            continue
        stack = [(start, iter(start.edges))]
        state[start] = 0
        while stack:
            node, it = stack[-1]
            advanced = False
            for e in it:
                if e is None:
                    continue
                child = e[0]
                if child not in state:
                    state[child] = 0
                    stack.append((child, iter(child.edges)))
                    advanced = True
                    break
            if advanced:
                continue
            stack.pop()
            if node in targets or any(e is not None and e[0] in needed for e in node.edges):
                needed.add(node)
    return needed


def _apply_hooks(hooks, grads):
    grads = list(grads)
    for idx, fns in hooks.items():
        for fn in list(fns):
            if grads[idx] is None:
                continue
            out = fn(grads[idx])
            if out is not None:
                grads[idx] = out
    return grads


def _retain(node, grads, create_graph):
    for idx, ref in node.retained.items():
        t = ref()
        g = grads[idx]
        if t is None or g is None:
            continue
        g = g if create_graph else _wrap(g.data.copy())
        t.grad = g if t.grad is None else t.grad + g


def _accumulate(node, g, create_graph, fresh):
    t = node.variable()
    if t is None:
        return
    if t._hooks:
        for fn in list(t._hooks):
            out = fn(g)
            if out is not None:
                g = out
                fresh.add(id(g.data))   # a hook's tensor may be the user's own: copy it, never adopt it
    if g.data.dtype != t.data.dtype:
        g = _wrap(g.data.astype(t.data.dtype))
    if tuple(g.data.shape) != tuple(t.data.shape):
        raise RuntimeError(f"internal error: gradient of shape {tuple(g.data.shape)} for a leaf of shape "
                           f"{tuple(t.data.shape)}")
    if create_graph or _state.tracer is not None:      # graph mode records the sum as an op
        t.grad = g if t.grad is None else t.grad + g
        return
    if t.grad is None:
        a = g.data
        if a.base is not None or id(a) in fresh or not getattr(a.flags, "writeable", True):
            a = a.copy()
        fresh.add(id(a))
        t.grad = _wrap(a)
    elif t.grad.requires_grad:
        t.grad = _wrap(t.grad.data + g.data)
    else:
        t.grad.data += g.data


def _free(node):
    """Drop what the node kept for its backward, as PyTorch does after a backward without retain_graph."""
    d = node.__dict__
    kept = {k: d[k] for k in node.kept_when_freed if k in d}
    d.clear()
    d.update(kept)
    node.freed = True


def _zeros_for(node, i):
    from ..creation import _made         # a graph constant under tracing
    shape, dtype = node.out_meta[i]
    return _made(node.xp.zeros(shape, dtype))


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Compute gradients of ``tensors`` and accumulate them into the leaves' ``.grad``."""
    outputs = _as_list(tensors)
    grads = _root_grads(outputs, _as_list(grad_tensors), "backward()")
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_list(inputs)
        res = grad(outputs, inputs, grads, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True)
        fresh = {id(g.data) for g in grads}
        for t, g in zip(inputs, res):
            if g is None:
                continue
            if t._node is None:
                _accumulate(_leaf_edge(t)[0], g, create_graph, fresh)
            else:   # a non-leaf input: its grad is kept like retain_grad() keeps it
                g = g if create_graph else _wrap(g.data.copy())
                t.grad = g if t.grad is None else t.grad + g
        return
    run(outputs, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False,
         materialize_grads=False):
    """Return the gradients of ``outputs`` with respect to ``inputs`` (without touching ``.grad``).

    With ``create_graph=True`` the result is itself differentiable, for higher-order derivatives.

    >>> import ember
    >>> x = ember.tensor(3.0, requires_grad=True)
    >>> (dx,) = ember.autograd.grad(x ** 3, x, create_graph=True)
    >>> (d2x,) = ember.autograd.grad(dx, x)
    >>> float(dx), float(d2x)
    (27.0, 18.0)
    """
    single = isinstance(inputs, Tensor)
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    grads = _root_grads(outputs, _as_list(grad_outputs), "autograd.grad()")
    if retain_graph is None:
        retain_graph = create_graph
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad(): input {i} does not require grad")
        if t._node is None:
            _leaf_edge(t)
    keys = [_edge_of(t) for t in inputs]
    results = run(outputs, grads, retain_graph, create_graph, capture=set(keys), accumulate=False)
    out = []
    for i, (t, k) in enumerate(zip(inputs, keys)):
        g = results.get(k)
        if g is None:
            if materialize_grads:
                g = _wrap(t.xp.zeros_like(t.data))
            elif not allow_unused:
                raise RuntimeError(f"autograd.grad(): input {i} was not used to compute the outputs; "
                                   "pass allow_unused=True to get None for it")
        elif not create_graph:
            g = g.detach()
        out.append(g)
    return tuple(out) if not single else (out[0],)
