"""ONNX lowerings of Ember's shape, joining, indexing and matrix-product ops (registered in
:data:`ember.onnx.export_ops.LOWERINGS`). Shapes that follow dynamic axes come from the context as
:class:`~ember.onnx.export.SymDim` s, so reshapes, expands and slices stay valid at every batch size."""
from __future__ import annotations

from importlib import import_module

import numpy

from .exporter import SymDim, sym_prod
from .export_ops import is_value, lowers, operand, out_dtype

IX = import_module("ember.ops.index")
J = import_module("ember.ops.join")
L = import_module("ember.ops.linalg")
S = import_module("ember.ops.shape")

__all__: list = []

_INT_MAX = numpy.iinfo(numpy.int64).max
_INT_MIN = numpy.iinfo(numpy.int64).min


# ---------------------------------------------------------------- shape
@lowers(S.Reshape)
def _reshape(ctx, a):
    x = a["x"]
    return ctx.reshape(ctx.name(x), ctx.shape(x), ctx.shape(ctx.node.outputs[0]))


@lowers(S.Expand)
def _expand(ctx, a):
    x = a["x"]
    src, dst = ctx.shape(x), list(ctx.shape(ctx.node.outputs[0]))
    lead = len(dst) - len(src)
    for i, d in enumerate(src):
        if d == dst[i + lead] and isinstance(d, SymDim):
            dst[i + lead] = 1            # Expand broadcasts both ways: keep the input's own dynamic size
    return ctx.op("Expand", [ctx.name(x), ctx.shape_tensor(dst)])


@lowers(S.Permute)
def _permute(ctx, a):
    return ctx.op("Transpose", [ctx.name(a["x"])], perm=[int(p) for p in a["axes"]])


@lowers(S.Clone)
def _clone(ctx, a):
    return ctx.op("Identity", [ctx.name(a["x"])])


@lowers(S.Flip)
def _flip(ctx, a):
    axes = [int(ax) for ax in a["axes"]]
    return ctx.op("Slice", [ctx.name(a["x"]), ctx.ints([-1] * len(axes)), ctx.ints([_INT_MIN] * len(axes)),
                            ctx.ints(axes), ctx.ints([-1] * len(axes))])


@lowers(S.Roll)
def _roll(ctx, a):
    x = a["x"]
    name, shape = ctx.name(x), ctx.shape(x)
    axes, shifts = a["axes"], a["shifts"]
    if axes is None:
        name, shape, axes = ctx.op("Reshape", [name, ctx.ints([-1])]), (sym_prod(shape),), (0,)
    for ax, s in zip(axes, shifts):
        n = shape[ax]
        s = s % n if isinstance(n, int) else s     # a dynamic length: the shift as given (valid while < length)
        if s:                                      # roll by s: the last s entries, then the rest
            head = ctx.op("Slice", [name, ctx.ints([-s]), ctx.ints([_INT_MAX]), ctx.ints([ax])])
            tail = ctx.op("Slice", [name, ctx.ints([0]), ctx.ints([-s]), ctx.ints([ax])])
            name = ctx.op("Concat", [head, tail], axis=int(ax))
    if a["axes"] is None:
        name = ctx.reshape(name, shape, ctx.shape(x))
    return name


@lowers(J.Cat)
def _cat(ctx, a):
    dt = out_dtype(ctx)
    return ctx.op("Concat", [operand(ctx, v, dt) for v in a["arrays"]], axis=int(a["axis"]))


@lowers(J.Split)
def _split(ctx, a):
    x = a["x"]
    dim = int(a["dim"]) % len(x.shape)
    if isinstance(ctx.shape(x)[dim], SymDim):
        ctx.fail("split along a dynamic axis is not supported")
    sizes = [int(s) for s in a["sizes"]]
    if len(sizes) == 1:
        return [ctx.op("Identity", [ctx.name(x)])]
    return ctx.op("Split", [ctx.name(x), ctx.ints(sizes)], n_out=len(sizes), axis=dim)


@lowers(J.ConstantPad)
def _constant_pad(ctx, a):
    x = a["x"]
    pads = [int(b) for b, _ in a["pads"]] + [int(e) for _, e in a["pads"]]
    return ctx.op("Pad", [ctx.name(x), ctx.ints(pads), ctx.scalar(a["value"], x.dtype)], mode="constant")


# ---------------------------------------------------------------- indexing
@lowers(IX.GetItem)
def _getitem(ctx, a):
    """Basic indexing (ints, slices, None, Ellipsis) as Slice/Gather/Unsqueeze; integer arrays as Gather along
    their axis (several arrays only in the outer-product pattern ``[a[:, None], b]``)."""
    x = a["x"]
    ndim = len(x.shape)
    items = list(a["index"]) if isinstance(a["index"], tuple) else [a["index"]]
    items = [numpy.asarray(i) if isinstance(i, list) and all(type(v) is int for v in i) else i for i in items]
    if any(isinstance(i, numpy.ndarray) and i.dtype == numpy.bool_ for i in items) or \
            any(isinstance(i, list) for i in items):
        ctx.fail("boolean-mask or list indexing is not supported; use integer tensors")
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if Ellipsis in [i for i in items if not isinstance(i, numpy.ndarray)]:
        k = next(j for j, i in enumerate(items) if not isinstance(i, numpy.ndarray) and i is Ellipsis)
        items[k:k + 1] = [slice(None)] * (ndim - used)
    else:
        items += [slice(None)] * (ndim - used)
    arrays = [j for j, i in enumerate(items) if isinstance(i, numpy.ndarray) or is_value(i)]
    name = ctx.name(x)
    starts, ends, axes, steps, gathers, unsq = [], [], [], [], [], []
    out_shape, in_shape = ctx.shape(ctx.node.outputs[0]), ctx.shape(x)
    axis = 0          # axis of x this item reads
    fin = 0           # axis of the final result this item lands on
    for j, it in enumerate(items):
        if it is None:
            unsq.append(fin)
            fin += 1
        elif isinstance(it, slice):
            if it != slice(None) and it != slice(None, None, 1):
                step = 1 if it.step is None else int(it.step)
                lo = (0 if step > 0 else -1) if it.start is None else int(it.start)
                hi = (_INT_MAX if step > 0 else _INT_MIN) if it.stop is None else int(it.stop)
                od = out_shape[fin] if fin < len(out_shape) else None
                if isinstance(od, SymDim) and od != in_shape[axis]:
                    if step != 1 or lo != 0:        # x[:n] with n following a dynamic axis: n at run time
                        ctx.fail(f"slice {it} of a dynamic axis is not supported")
                    hi = od
                starts.append(lo)
                ends.append(hi)
                axes.append(axis)
                steps.append(step)
            axis += 1
            fin += 1
        elif j in arrays:
            gathers.append((axis, it))
            axis += 1
            fin += len(numpy.shape(it)) if not is_value(it) else len(it.shape)
        else:                       # an int: gather with a scalar index drops the axis
            gathers.append((axis, int(it)))
            axis += 1
    if starts:
        name = ctx.op("Slice", [name, ctx.ints(starts), ctx.shape_tensor(ends), ctx.ints(axes), ctx.ints(steps)])
    arr_gathers = [(ax, it) for ax, it in gathers if not isinstance(it, int)]
    if len(arr_gathers) > 1:
        k = len(arr_gathers)
        for pos, (ax, it) in enumerate(arr_gathers):
            shp = numpy.shape(it) if not is_value(it) else it.shape
            shp = (1,) * (k - len(shp)) + tuple(shp)
            if len(shp) != k or any(s != 1 for q, s in enumerate(shp) if q != pos) or \
                    ax != arr_gathers[0][0] + pos:
                ctx.fail(f"advanced indexing with several index arrays is only supported in the outer-product "
                         f"form (array k of shape 1 except at dim k, on consecutive axes); got shapes "
                         f"{[numpy.shape(i) for _, i in arr_gathers]}")
    # gathers from the last axis back, so earlier axis numbers stay valid; an int gather removes its axis
    for ax, it in sorted(gathers, key=lambda g: -g[0]):
        if isinstance(it, int):
            idx = ctx.const(numpy.asarray(it, dtype=numpy.int64))
        elif len(arr_gathers) > 1:
            idx = ctx.arg(numpy.asarray(it).reshape(-1).astype(numpy.int64)) if not is_value(it) else \
                ctx.op("Reshape", [ctx.name(it), ctx.ints([-1])])
        else:
            idx = ctx.name(it) if is_value(it) else ctx.arg(it) if id(it) in ctx.tracer.values else \
                ctx.const(numpy.asarray(it, dtype=numpy.int64))
        name = ctx.op("Gather", [name, idx], axis=int(ax))
    if unsq:
        name = _unsqueeze_after_gathers(ctx, name, items, len(arr_gathers) > 1)
    return name


def _unsqueeze_after_gathers(ctx, name, items, outer: bool):
    """Insert the ``None`` axes: positions counted on the result after int gathers removed their axes."""
    pos, out = 0, []
    for it in items:
        if it is None:
            out.append(pos)
            pos += 1
        elif isinstance(it, (int, numpy.integer)):
            continue
        elif isinstance(it, numpy.ndarray) or is_value(it):
            pos += 1 if outer else (len(numpy.shape(it)) if not is_value(it) else len(it.shape))
        else:
            pos += 1
    return ctx.op("Unsqueeze", [name, ctx.ints(out)])


# ---------------------------------------------------------------- matmul
@lowers(L.MatMul)
def _matmul(ctx, a):
    dt = out_dtype(ctx)
    return ctx.op("MatMul", [operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)])


@lowers(L.Linear)
def _linear(ctx, a):
    x, w, b = a["x"], a["w"], a.get("b")
    if len(x.shape) == 2:
        return ctx.op("Gemm", [ctx.name(x), ctx.name(w)] + ([ctx.name(b)] if b is not None else []), transB=1)
    out = ctx.op("MatMul", [ctx.name(x), ctx.op("Transpose", [ctx.name(w)], perm=[1, 0])])
    return ctx.op("Add", [out, ctx.name(b)]) if b is not None else out


@lowers(L.Einsum)
def _einsum(ctx, a):
    dt = out_dtype(ctx)
    eq = ",".join(a["terms"]) + "->" + a["out"]
    return ctx.op("Einsum", [operand(ctx, v, dt) for v in a["arrays"]], equation=eq)
