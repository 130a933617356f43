"""ONNX converters for control flow: If, Loop and Scan, whose bodies are subgraphs run in the node's scope.

A branch or loop body runs with the same converters as the main graph, so gradients flow through the
iterations that actually ran (the graph is unrolled as it executes, as in PyTorch's eager mode).
"""
from __future__ import annotations

import numpy as np

from .. import ops as E
from .ops_math import all_float, wrap
from .registry import converter


def _stack(ts, axis: int = 0):
    if all_float(*ts):
        return E.stack(list(ts), dim=axis)
    return wrap(np.stack([t.data for t in ts], axis=axis))


@converter("If")
def _if(ctx, inputs, attrs):
    branch = attrs["then_branch"] if bool(np.asarray(inputs[0].data).reshape(-1)[0]) else attrs["else_branch"]
    return tuple(ctx.run_subgraph(branch))


@converter("Loop")
def _loop(ctx, inputs, attrs):
    body = attrs["body"]
    trips = None if inputs[0] is None else int(inputs[0].data.reshape(-1)[0])
    cond = True if len(inputs) < 2 or inputs[1] is None else bool(inputs[1].data.reshape(-1)[0])
    state = list(inputs[2:])
    per_iter: list = []
    i = 0
    while (trips is None or i < trips) and cond:
        outs = ctx.run_subgraph(body, [wrap(np.array(i, np.int64)), wrap(np.array(cond)), *state])
        cond = bool(np.asarray(outs[0].data).reshape(-1)[0])
        state = list(outs[1:1 + len(state)])
        per_iter.append(outs[1 + len(state):])
        i += 1
    n_scan = len(body.output) - 1 - len(state)
    scans = [_stack([it[j] for it in per_iter]) if per_iter else wrap(np.zeros((0,), np.float32))
             for j in range(n_scan)]
    return (*state, *scans)


def _scan_run(ctx, body, state, xs, in_axes, in_dirs, out_axes, out_dirs):
    """Run a Scan body over ``xs`` along ``in_axes``: the final states and the stacked per-step outputs."""
    n_state = len(state)
    steps = xs[0].data.shape[in_axes[0]]
    per_iter = []
    for t in range(steps):
        sl = [x[(slice(None),) * a + (steps - 1 - t if d else t,)] if all_float(x)
              else wrap(np.take(x.data, steps - 1 - t if d else t, axis=a)) for x, a, d in zip(xs, in_axes, in_dirs)]
        outs = ctx.run_subgraph(body, [*state, *sl])
        state = list(outs[:n_state])
        per_iter.append(outs[n_state:])
    scans = []
    for j in range(len(body.output) - n_state):
        seq = [it[j] for it in per_iter]
        if out_dirs[j]:
            seq = seq[::-1]
        scans.append(_stack(seq, out_axes[j] % (seq[0].data.ndim + 1)))
    return state, scans


@converter("Scan", since=9)
def _scan(ctx, inputs, attrs):
    body = attrs["body"]
    n_in = attrs["num_scan_inputs"]
    n_state = len(inputs) - n_in
    xs = inputs[n_state:]
    n_out = len(body.output) - n_state
    in_axes = [a % x.data.ndim for a, x in zip(attrs.get("scan_input_axes") or [0] * n_in, xs)]
    in_dirs = attrs.get("scan_input_directions") or [0] * n_in
    out_axes = attrs.get("scan_output_axes") or [0] * n_out
    out_dirs = attrs.get("scan_output_directions") or [0] * n_out
    state, scans = _scan_run(ctx, body, list(inputs[:n_state]), xs, in_axes, in_dirs, out_axes, out_dirs)
    return (*state, *scans)


@converter("Scan", since=8, until=8)
def _scan8(ctx, inputs, attrs):
    """Op-set 8's Scan: every input has a leading batch dim and scans along dim 1."""
    body = attrs["body"]
    lens, rest = inputs[0], inputs[1:]
    n_in = attrs["num_scan_inputs"]
    n_state = len(rest) - n_in
    states, xs = rest[:n_state], rest[n_state:]
    steps = xs[0].data.shape[1]
    if lens is not None and (lens.data != steps).any():
        raise NotImplementedError("Scan (op-set 8) with sequence_lens shorter than the sequence")
    n_out = len(body.output) - n_state
    dirs = attrs.get("directions") or [0] * n_in
    finals, outs = [], []
    for b in range(xs[0].data.shape[0]):
        pick = [s[b] if all_float(s) else wrap(s.data[b]) for s in list(states) + list(xs)]
        st, sc = _scan_run(ctx, body, pick[:n_state], pick[n_state:], [0] * n_in, dirs, [0] * n_out, [0] * n_out)
        finals.append(st)
        outs.append(sc)
    return (*[_stack([f[j] for f in finals]) for j in range(n_state)],
            *[_stack([o[j] for o in outs]) for j in range(n_out)])
