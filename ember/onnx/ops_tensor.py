"""ONNX converters for tensor manipulation: shape ops (Reshape, Transpose, Concat, Split, Slice, Pad, ...),
tensor creation (Shape, ConstantOfShape, Range, EyeLike) and indexing (Gather*, Scatter*, TopK, CumSum, ...).

Floating tensors go through Ember's differentiable ops (reshape, permute, indexing, cat, gather,
scatter), so gradients reach the inputs; indices and other integer values are computed with NumPy.
"""
from __future__ import annotations

import numpy as np

from .. import ops as E
from .ops_math import all_float, as_dtype, axes_of, ints, is_float, no_grad_path, wrap
from .registry import converter


def _reshape(x, shape):
    shape = tuple(int(s) for s in shape)
    if tuple(x.data.shape) == shape:
        return x
    return x.reshape(shape) if is_float(x) else wrap(x.data.reshape(shape))


def _index(x, key):
    """``x[key]`` with Ember's differentiable indexing for floats, NumPy otherwise."""
    return x[key] if is_float(x) else wrap(np.asarray(x.data[key]))


def _take(x, axis: int, idx):
    """Elements of ``x`` along ``axis`` at the integer array ``idx`` (output dims replace ``axis``)."""
    return _index(x, (slice(None),) * axis + (np.asarray(idx, dtype=np.int64),))


def _cat(ts, axis):
    if all_float(*ts):
        return E.cat(list(ts), dim=axis)
    return wrap(np.concatenate([t.data for t in ts], axis=axis))


# ------------------------------------------------------------------ shapes
@converter("Reshape", since=5)
def _reshape_conv(ctx, inputs, attrs):
    x, shape = inputs[0], ints(ctx, inputs[1])
    if not attrs.get("allowzero", 0):
        shape = [x.data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape[shape.index(-1)] = x.data.size // known if known else 0
    return _reshape(x, shape)


@converter("Flatten")
def _flatten(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.data.ndim if axis < 0 else axis
    return _reshape(x, (int(np.prod(x.data.shape[:axis])), int(np.prod(x.data.shape[axis:]))))


@converter("Squeeze")
def _squeeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = axes_of(ctx, inputs, attrs)
    nd = x.data.ndim
    axes = {a % nd for a in axes} if axes else {i for i, s in enumerate(x.data.shape) if s == 1}
    return _reshape(x, [s for i, s in enumerate(x.data.shape) if i not in axes])


@converter("Unsqueeze")
def _unsqueeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = axes_of(ctx, inputs, attrs)
    out_nd = x.data.ndim + len(axes)
    axes = {a % out_nd for a in axes}
    it = iter(x.data.shape)
    return _reshape(x, [1 if i in axes else next(it) for i in range(out_nd)])


@converter("Transpose")
def _transpose(ctx, inputs, attrs):
    x = inputs[0]
    perm = attrs.get("perm") or list(range(x.data.ndim))[::-1]
    return x.permute(*perm) if is_float(x) else wrap(np.transpose(x.data, perm))


@converter("Concat")
def _concat(ctx, inputs, attrs):
    ts = [t for t in inputs if t is not None]
    return _cat(ts, attrs.get("axis", 1) % max(ts[0].data.ndim, 1))


@converter("Split")
def _split(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 0) % x.data.ndim
    n = x.data.shape[axis]
    sizes = axes_of(ctx, inputs, attrs, 1, "split") if ctx.opset >= 13 else attrs.get("split")
    if not sizes:
        k = attrs.get("num_outputs", len(ctx.node.output))
        chunk = -(-n // k)
        sizes = [min(chunk, n - i * chunk) for i in range(k)]
    bounds = np.cumsum([0] + list(sizes))
    return tuple(_index(x, (slice(None),) * axis + (slice(int(b), int(e)),)) for b, e in zip(bounds[:-1], bounds[1:]))


def _slice_of(start: int, end: int, step: int, dim: int) -> slice:
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end == -1 else end, step)


@converter("Slice")
def _slice(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.opset < 10:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = ints(ctx, inputs[1]), ints(ctx, inputs[2])
        axes = ints(ctx, inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
        steps = ints(ctx, inputs[4]) if len(inputs) > 4 and inputs[4] is not None else None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    key = [slice(None)] * x.data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a %= x.data.ndim
        key[a] = _slice_of(s, e, st, x.data.shape[a])
    return _index(x, tuple(key))


def _pad_index(n: int, before: int, after: int, mode: str):
    return np.pad(np.arange(n), (before, after), mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])


@converter("Pad")
def _pad(ctx, inputs, attrs):
    x = inputs[0]
    nd = x.data.ndim
    mode = attrs.get("mode", "constant")
    if ctx.opset < 11:
        pads, value, axes = attrs.get("pads", attrs.get("paddings")), attrs.get("value", 0.0), None
    else:
        pads = ints(ctx, inputs[1])
        value = inputs[2].data.reshape(-1)[0] if len(inputs) > 2 and inputs[2] is not None and \
            inputs[2].data.size else 0
        axes = ints(ctx, inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
    axes = [a % nd for a in axes] if axes is not None else list(range(nd))
    k = len(axes)
    before, after = [0] * nd, [0] * nd
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[i + k]
    # negative pads crop first
    key = tuple(slice(max(-b, 0), x.data.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(zip(before, after)))
    if any(b < 0 or e < 0 for b, e in zip(before, after)):
        x = _index(x, key)
    before, after = [max(b, 0) for b in before], [max(e, 0) for e in after]
    if mode == "constant":
        if not is_float(x):
            return wrap(np.pad(x.data, list(zip(before, after)), constant_values=value), x.data.dtype)
        flat = [p for b, e in reversed(list(zip(before, after))) for p in (b, e)]
        return E.pad(x, flat, mode="constant", value=float(value))
    for a in range(nd):
        if before[a] or after[a]:
            x = _take(x, a, _pad_index(x.data.shape[a], before[a], after[a], mode))
    return x


@converter("Tile", since=6)
def _tile(ctx, inputs, attrs):
    x, reps = inputs[0], ints(ctx, inputs[1])
    return E.tile(x, tuple(reps)) if is_float(x) else wrap(np.tile(x.data, reps))


@converter("Expand", since=8)
def _expand(ctx, inputs, attrs):
    x = inputs[0]
    shape = np.broadcast_shapes(tuple(x.data.shape), tuple(ints(ctx, inputs[1])))
    if is_float(x):
        return E.broadcast_to(x, shape) if tuple(x.data.shape) != shape else x
    return wrap(np.broadcast_to(x.data, shape).copy())


@converter("Shape")
def _shape(ctx, inputs, attrs):
    s = np.array(inputs[0].data.shape, dtype=np.int64)
    nd = len(s)
    start = attrs.get("start", 0)
    end = attrs.get("end", nd)
    start, end = (min(max(v + nd if v < 0 else v, 0), nd) for v in (start, end))
    return wrap(s[start:end])


@converter("Size")
def _size(ctx, inputs, attrs):
    return wrap(np.array(inputs[0].data.size, dtype=np.int64))


@converter("ConstantOfShape", since=9)
def _constant_of_shape(ctx, inputs, attrs):
    value = attrs.get("value", np.zeros(1, np.float32))
    return wrap(np.full(ints(ctx, inputs[0]), value.reshape(-1)[0], dtype=value.dtype))


@converter("Range", since=11)
def _range(ctx, inputs, attrs):
    start, limit, delta = (t.data.reshape(()) for t in inputs)
    n = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    return wrap(start + delta * np.arange(n, dtype=start.dtype), start.dtype)


@converter("EyeLike", since=9)
def _eyelike(ctx, inputs, attrs):
    from .ops_math import _np_dtype
    x = inputs[0].data
    dtype = _np_dtype(attrs["dtype"]) if "dtype" in attrs else x.dtype
    return wrap(np.eye(x.shape[0], x.shape[1], k=attrs.get("k", 0), dtype=dtype))


@converter("Trilu", since=14)
def _trilu(ctx, inputs, attrs):
    x = inputs[0]
    k = int(ctx.const(inputs[1]).reshape(())) if len(inputs) > 1 and inputs[1] is not None else 0
    fn = np.triu if attrs.get("upper", 1) else np.tril
    if not is_float(x):
        return wrap(fn(x.data, k), x.data.dtype)
    mask = fn(np.ones(x.data.shape[-2:], dtype=bool), k)
    return E.where(wrap(mask), x, wrap(np.zeros((), x.data.dtype)))


# ------------------------------------------------------------------ indexing
def _norm_idx(idx, n):
    idx = np.asarray(idx).astype(np.int64)
    return np.where(idx < 0, idx + n, idx)


@converter("Gather")
def _gather(ctx, inputs, attrs):
    x, idx = inputs
    axis = attrs.get("axis", 0) % x.data.ndim
    return _take(x, axis, _norm_idx(idx.data, x.data.shape[axis]))


@converter("GatherElements", since=11)
def _gather_elements(ctx, inputs, attrs):
    x, idx = inputs
    axis = attrs.get("axis", 0) % x.data.ndim
    idx = _norm_idx(idx.data, x.data.shape[axis])
    if is_float(x):
        return E.gather(x, axis, wrap(idx))
    return wrap(np.take_along_axis(x.data, idx, axis))


def _nd_key(x, idx, b: int):
    """The advanced-indexing key of GatherND/ScatterND with ``b`` batch dims."""
    k = idx.shape[-1]
    outer = idx.shape[:-1]
    key = []
    for j in range(b):
        shape = [1] * len(outer)
        shape[j] = x.shape[j]
        key.append(np.arange(x.shape[j]).reshape(shape))
    for i in range(k):
        key.append(_norm_idx(idx[..., i], x.shape[b + i]))
    return tuple(np.broadcast_to(a, outer) for a in key)


@converter("GatherND", since=11)
def _gather_nd(ctx, inputs, attrs):
    x, idx = inputs
    return _index(x, _nd_key(x.data, idx.data, attrs.get("batch_dims", 0)))


_NP_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@converter("ScatterElements", "Scatter", since=9)
def _scatter_elements(ctx, inputs, attrs):
    x, idx, upd = inputs
    axis = attrs.get("axis", 0) % x.data.ndim
    idx = _norm_idx(idx.data, x.data.shape[axis])
    red = attrs.get("reduction", "none")
    if is_float(x) and red in ("none", "add"):
        return E.scatter(x, axis, wrap(idx), as_dtype(upd, x.data.dtype), reduce="add" if red == "add" else None)
    no_grad_path(ctx, x, upd)
    grids = list(np.indices(idx.shape, sparse=True))
    grids[axis] = idx
    return _scatter_into(x, tuple(np.broadcast_to(g, idx.shape) for g in grids), upd, red)


def _scatter_into(x, key, upd, red):
    """A copy of ``x`` with ``upd`` written (or reduced, ``red``) at the index tuple ``key``: no gradient."""
    out = x.data.copy()
    if red == "none":
        out[key] = upd.data
    else:
        _NP_REDUCTIONS[red].at(out, key, upd.data)
    return wrap(out)


@converter("ScatterND", since=11)
def _scatter_nd(ctx, inputs, attrs):
    x, idx, upd = inputs
    red = attrs.get("reduction", "none")
    key = _nd_key(x.data, idx.data, 0)
    if is_float(x) and red in ("none", "add"):
        return E.index_put(x, tuple(wrap(k) for k in key), as_dtype(upd, x.data.dtype), accumulate=red == "add")
    no_grad_path(ctx, x, upd)
    return _scatter_into(x, key, upd, red)


@converter("Compress", since=9)
def _compress(ctx, inputs, attrs):
    x, cond = inputs
    if "axis" not in attrs:
        x, axis = _reshape(x, (x.data.size,)), 0
    else:
        axis = attrs["axis"] % x.data.ndim
    keep = np.nonzero(cond.data.reshape(-1)[:x.data.shape[axis]])[0]
    return _take(x, axis, keep)


@converter("OneHot", since=9)
def _onehot(ctx, inputs, attrs):
    idx, depth, values = inputs
    depth = int(np.asarray(ctx.const(depth)).reshape(-1)[0])
    off, on = values.data.reshape(-1)[:2]
    idx = idx.data.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    hot = idx[..., None] == np.arange(depth)
    out = np.where(hot, on, off).astype(values.data.dtype)
    return wrap(np.moveaxis(out, -1, attrs.get("axis", -1) % out.ndim))


@converter("NonZero", since=9)
def _nonzero(ctx, inputs, attrs):
    x = inputs[0].data
    return wrap(np.array(np.nonzero(x if x.ndim else x.reshape(1)), dtype=np.int64).reshape(max(x.ndim, 1), -1))


@converter("TopK")
def _topk(ctx, inputs, attrs):
    x = inputs[0]
    k = attrs["k"] if ctx.opset < 10 else ints(ctx, inputs[1])[0]
    axis = attrs.get("axis", -1) % x.data.ndim
    data = x.data
    if attrs.get("largest", 1):
        # a stable sort of the reversed order keeps the lower index first among equal values
        order = np.flip(np.argsort(np.flip(data, axis), axis=axis, kind="stable"), axis)
        order = data.shape[axis] - 1 - order
    else:
        order = np.argsort(data, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    vals = E.gather(x, axis, wrap(idx)) if is_float(x) else wrap(np.take_along_axis(data, idx, axis))
    return vals, wrap(idx, np.int64)


@converter("CumSum", since=11)
def _cumsum(ctx, inputs, attrs):
    x = inputs[0]
    axis = ints(ctx, inputs[1])[0] % x.data.ndim
    rev, excl = attrs.get("reverse", 0), attrs.get("exclusive", 0)
    if not is_float(x):
        d = np.flip(x.data, axis) if rev else x.data
        c = np.cumsum(d, axis=axis, dtype=d.dtype)
        if excl:
            c = np.concatenate([np.zeros_like(np.take(c, [0], axis)), np.take(c, np.arange(c.shape[axis] - 1), axis)],
                               axis)
        return wrap(np.flip(c, axis) if rev else c, x.data.dtype)
    d = E.flip(x, (axis,)) if rev else x
    c = E.cumsum(d, axis)
    if excl:
        n = x.data.shape[axis]
        zero = wrap(np.zeros(tuple(1 if i == axis else s for i, s in enumerate(x.data.shape)), x.data.dtype))
        c = E.cat([zero, _index(c, (slice(None),) * axis + (slice(0, n - 1),))], dim=axis)
    return E.flip(c, (axis,)) if rev else c


@converter("CumProd", since=26)
def _cumprod(ctx, inputs, attrs):
    x = inputs[0]
    axis = ints(ctx, inputs[1])[0] % x.data.ndim
    rev, excl = attrs.get("reverse", 0), attrs.get("exclusive", 0)
    if is_float(x):   # a running product, one slice at a time: differentiable, exact with zeros
        d = E.flip(x, (axis,)) if rev else x
        n = x.data.shape[axis]
        key = (slice(None),) * axis
        parts = [wrap(np.ones(tuple(1 if i == axis else s for i, s in enumerate(x.data.shape)), x.data.dtype))] \
            if excl else [_index(d, key + (slice(0, 1),))]
        for i in range(1, n):
            parts.append(parts[-1] * _index(d, key + (slice(i - 1, i) if excl else slice(i, i + 1),)))
        c = E.cat(parts, dim=axis) if n else d
        return E.flip(c, (axis,)) if rev else c
    d = np.flip(x.data, axis) if attrs.get("reverse", 0) else x.data
    c = np.cumprod(d, axis=axis, dtype=d.dtype)
    if attrs.get("exclusive", 0):
        c = np.concatenate([np.ones_like(np.take(c, [0], axis)), np.take(c, np.arange(c.shape[axis] - 1), axis)],
                           axis)
    return wrap(np.flip(c, axis) if attrs.get("reverse", 0) else c, x.data.dtype)


@converter("Unique", since=11)
def _unique(ctx, inputs, attrs):
    x = inputs[0].data
    axis = attrs.get("axis")
    y, first, inv, counts = np.unique(x if axis is not None else x.reshape(-1), axis=axis, return_index=True,
                                      return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    if not attrs.get("sorted", 1):
        order = np.argsort(first, kind="stable")
        rank = np.argsort(order)
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, counts, inv = first[order], counts[order], rank[inv]
    if is_float(inputs[0]):   # the unique values are a gather of the input, so they keep its gradient
        src = inputs[0] if axis is not None else _reshape(inputs[0], (x.size,))
        y = _take(src, 0 if axis is None else axis % x.ndim, first)
    else:
        y = wrap(y)
    return y, wrap(first, np.int64), wrap(inv, np.int64), wrap(counts, np.int64)


@converter("ReverseSequence", since=10)
def _reverse_sequence(ctx, inputs, attrs):
    x, lens = inputs
    b_ax, t_ax = attrs.get("batch_axis", 1), attrs.get("time_axis", 0)
    nb, nt = x.data.shape[b_ax], x.data.shape[t_ax]
    t = np.arange(nt)[None, :]
    ln = lens.data.astype(np.int64)[:, None]
    src_t = np.where(t < ln, ln - 1 - t, t)                   # (batch, time)
    bidx = np.broadcast_to(np.arange(nb)[:, None], src_t.shape)
    key = [slice(None)] * x.data.ndim
    key[b_ax], key[t_ax] = bidx, src_t
    out = _index(x, tuple(key))                               # advanced dims come first: (batch, time, rest...)
    rest = [i for i in range(x.data.ndim) if i not in (b_ax, t_ax)]
    order = [0] * x.data.ndim
    order[b_ax], order[t_ax] = 0, 1
    for j, r in enumerate(rest):
        order[r] = 2 + j
    return out.permute(*order) if is_float(out) else wrap(np.transpose(out.data, order))
