"""ONNX converters for sequences and optionals: a sequence value is a Python list of Tensors, an empty
optional is None (registered in :mod:`ember.onnx.registry`).

Splitting, indexing and concatenating sequences use Ember's differentiable ops, so gradients flow
through a model that packs tensors into a sequence and back.
"""
from __future__ import annotations

import numpy as np

from .. import ops as E
from .ops_math import ints, is_float, wrap
from .ops_tensor import _cat, _index, _reshape
from .registry import converter


def _pos(ctx, t, n: int, default: int, insert: bool = False) -> int:
    p = default if t is None else ints(ctx, t)[0]
    p = p + n + (1 if insert and p < 0 else 0) if p < 0 else p
    if not 0 <= p <= (n if insert else n - 1):
        raise IndexError(f"sequence position {p} is out of range for a sequence of {n} tensors")
    return p


@converter("SequenceConstruct", since=11)
def _sequence_construct(ctx, inputs, attrs):
    return [list(inputs)]


@converter("SequenceEmpty", since=11)
def _sequence_empty(ctx, inputs, attrs):
    return [[]]


@converter("SequenceLength", since=11)
def _sequence_length(ctx, inputs, attrs):
    return wrap(np.array(len(inputs[0]), dtype=np.int64))


@converter("SequenceAt", since=11)
def _sequence_at(ctx, inputs, attrs):
    seq = inputs[0]
    return (seq[_pos(ctx, inputs[1], len(seq), 0)],)


@converter("SequenceInsert", since=11)
def _sequence_insert(ctx, inputs, attrs):
    seq = list(inputs[0])
    seq.insert(_pos(ctx, inputs[2] if len(inputs) > 2 else None, len(seq), len(seq), insert=True), inputs[1])
    return [seq]


@converter("SequenceErase", since=11)
def _sequence_erase(ctx, inputs, attrs):
    seq = list(inputs[0])
    del seq[_pos(ctx, inputs[1] if len(inputs) > 1 else None, len(seq), len(seq) - 1)]
    return [seq]


@converter("SplitToSequence", since=11)
def _split_to_sequence(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 0) % x.data.ndim
    n = x.data.shape[axis]
    split = inputs[1] if len(inputs) > 1 else None
    key = (slice(None),) * axis
    if split is None:   # one slice per element, the axis dropped unless keepdims=0 says otherwise
        parts = [_index(x, key + (slice(i, i + 1),)) for i in range(n)]
        if not attrs.get("keepdims", 1):
            shape = [s for i, s in enumerate(x.data.shape) if i != axis]
            parts = [_reshape(p, shape) for p in parts]
        return [parts]
    sizes = ints(ctx, split)
    if split.data.ndim == 0:   # equal chunks of that size, the last one shorter
        sizes = [min(sizes[0], n - i) for i in range(0, n, sizes[0])]
    bounds = np.cumsum([0] + sizes)
    return [[_index(x, key + (slice(int(b), int(e)),)) for b, e in zip(bounds[:-1], bounds[1:])]]


@converter("ConcatFromSequence", since=11)
def _concat_from_sequence(ctx, inputs, attrs):
    seq = inputs[0]
    axis = attrs["axis"]
    if attrs.get("new_axis", 0):
        axis = axis % (seq[0].data.ndim + 1)
        if all(is_float(t) for t in seq):
            return E.stack(list(seq), dim=axis)
        return wrap(np.stack([t.data for t in seq], axis=axis))
    return _cat(seq, axis % seq[0].data.ndim)


@converter("SequenceMap", since=17)
def _sequence_map(ctx, inputs, attrs):
    body = attrs["body"]
    n = len(inputs[0])
    per_iter = [ctx.run_subgraph(body, [t[i] if isinstance(t, list) else t for t in inputs]) for i in range(n)]
    return tuple([it[j] for it in per_iter] for j in range(len(body.output)))


@converter("Optional", since=15)
def _optional(ctx, inputs, attrs):
    return [inputs[0] if inputs else None]
