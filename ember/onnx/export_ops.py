"""ONNX lowerings of Ember's tensor ops (elementwise, unary, reductions) and the table of lowerings.

One function per Ember op class, registered with :func:`lowers`: ``fn(ctx, a)`` gets the
:class:`~ember.onnx.export.ExportContext` and the op's arguments and attributes by the names of its
``forward`` parameters (Values for arrays, Python literals for the rest), emits ONNX nodes through ``ctx`` and
returns the ONNX name of each output. Shape, joining, indexing and matmul ops are in
:mod:`ember.onnx.export_shape`, neural-network ops (conv, pool, norm, attention, RNN) in :mod:`ember.onnx.export_nn`.
"""
from __future__ import annotations

from importlib import import_module

import math

import numpy

from ..ops._util import SumTo
from .exporter import ExportError, SymDim

E = import_module("ember.ops.elementwise")
R = import_module("ember.ops.reduce")
SM = import_module("ember.ops.softmax")
U = import_module("ember.ops.unary")
W = import_module("ember.ops.where")

__all__ = ["LOWERINGS", "lowers", "lower_node", "supported_ops"]

LOWERINGS: dict = {}
_INT_MAX = numpy.iinfo(numpy.int64).max
_INT_MIN = numpy.iinfo(numpy.int64).min


def op_class(name: str):
    """The Ember op class whose ``op_name()`` is ``name`` (for classes made by factories, not module attributes)."""
    from ..autograd.node import Op
    todo = list(Op.__subclasses__())
    while todo:
        c = todo.pop()
        if c.op_name() == name:
            return c
        todo.extend(c.__subclasses__())
    raise LookupError(name)


def lowers(*ops):
    """Register ``fn(ctx, a)`` as the ONNX lowering of the Ember op classes ``ops``."""
    def register(fn):
        for op in ops:
            LOWERINGS[op] = fn
        return fn
    return register


def supported_ops() -> list:
    """The names of the Ember ops that can be exported."""
    from . import export_nn, export_shape  # noqa: F401  (register their lowerings)
    return sorted({op.op_name() for op in LOWERINGS})


def lower_node(ctx, node, a: dict) -> None:
    """Lower one traced Ember node and bind its outputs to the ONNX names the lowering returns."""
    from . import export_nn, export_shape  # noqa: F401
    fn = next((LOWERINGS[c] for c in node.op.__mro__ if c in LOWERINGS), None)
    if fn is None:
        where = f" in layer {ctx.layer}" if ctx.layer else ""
        raise ExportError(f"ember.onnx.export: the Ember op {node.name!r} ({node.op.__module__}.{node.op.__name__})"
                          f"{where} has no ONNX lowering. Exportable ops: {', '.join(supported_ops())}")
    outs = fn(ctx, a)
    if isinstance(outs, str):
        outs = [outs]
    for v, name in zip(node.outputs, outs):
        ctx.names[v.id] = name


# ---------------------------------------------------------------- helpers
def out_dtype(ctx, i: int = 0):
    return ctx.node.outputs[i].dtype


def is_value(x) -> bool:
    return hasattr(x, "kind") and hasattr(x, "shape")


def operand(ctx, x, dtype) -> str:
    """``x`` (Value, array or number) as an ONNX tensor of ``dtype`` (cast when it differs)."""
    if is_value(x):
        name = ctx.name(x)
        return name if x.dtype == numpy.dtype(dtype) else ctx.cast(name, dtype)
    if isinstance(x, numpy.ndarray) and id(x) in ctx.tracer.values:
        v = ctx.tracer.values[id(x)]
        return operand(ctx, v, dtype)
    return ctx.const(numpy.asarray(x, dtype=dtype))


def _binary(onnx_op):
    def fn(ctx, a):
        dt = out_dtype(ctx)
        return ctx.op(onnx_op, [operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)])
    return fn


def _common_dtype(a, b):
    """The dtype NumPy compares ``a`` and ``b`` in (Python numbers are weak: ``int_tensor < 0.5`` is in float)."""
    return numpy.result_type(*[x.dtype if is_value(x) or isinstance(x, numpy.ndarray) else x for x in (a, b)])


def _compare(onnx_op, negate=False):
    def fn(ctx, a):
        dt = _common_dtype(a["a"], a["b"])
        out = ctx.op(onnx_op, [operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)])
        return ctx.op("Not", [out]) if negate else out
    return fn


for _cls, _onnx in ((E.Add, "Add"), (E.Sub, "Sub"), (E.Mul, "Mul"), (E.Maximum, "Max"), (E.Minimum, "Min")):
    lowers(_cls)(_binary(_onnx))
for _name, _onnx, _neg in (("eq", "Equal", False), ("ne", "Equal", True), ("lt", "Less", False),
                           ("le", "LessOrEqual", False), ("gt", "Greater", False), ("ge", "GreaterOrEqual", False)):
    lowers(op_class(_name))(_compare(_onnx, _neg))


@lowers(E.Div)
def _div(ctx, a):
    dt = out_dtype(ctx)
    return ctx.op("Div", [operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)])


@lowers(E.Pow)
def _pow(ctx, a):
    dt = out_dtype(ctx)
    b = a["b"]
    x = operand(ctx, a["a"], dt)
    if not is_value(b) and float(b) == 2.0:
        return ctx.op("Mul", [x, x])
    return ctx.op("Pow", [x, operand(ctx, b, dt)])


@lowers(op_class("logical_and"), op_class("logical_or"), op_class("logical_xor"))
def _logical(ctx, a):
    kind = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}[ctx.node.op.op_name()]
    return ctx.op(kind, [_as_bool(ctx, a["a"]), _as_bool(ctx, a["b"])])


def _as_bool(ctx, x) -> str:
    if is_value(x):
        name = ctx.name(x)
        return name if x.dtype == numpy.bool_ else ctx.op("Not", [ctx.op("Equal", [name, ctx.scalar(0, x.dtype)])])
    return ctx.const(numpy.asarray(bool(x)))


@lowers(E.LogicalNot)
def _logical_not(ctx, a):
    return ctx.op("Not", [_as_bool(ctx, a["a"])])


@lowers(E.Neg)
def _neg(ctx, a):
    return ctx.op("Neg", [ctx.name(a["a"])])


@lowers(E.Cast)
def _cast(ctx, a):
    return ctx.cast(ctx.name(a["x"]), out_dtype(ctx))


@lowers(E.FloorDivide)
def _floor_divide(ctx, a):
    dt = out_dtype(ctx)
    x, y = operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)
    if dt.kind == "f":
        return ctx.op("Floor", [ctx.op("Div", [x, y])])
    return ctx.op("Div", [ctx.op("Sub", [x, ctx.op("Mod", [x, y], fmod=0)]), y])   # exact: a - a mod b is a multiple


@lowers(E.Remainder)
def _remainder(ctx, a):
    dt = out_dtype(ctx)
    x, y = operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)
    if dt.kind != "f":
        return ctx.op("Mod", [x, y], fmod=0)
    return ctx.op("Sub", [x, ctx.op("Mul", [ctx.op("Floor", [ctx.op("Div", [x, y])]), y])])


@lowers(E.Fmod)
def _fmod(ctx, a):
    dt = out_dtype(ctx)
    return ctx.op("Mod", [operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)], fmod=1)


@lowers(op_class("bitwise_and"), op_class("bitwise_or"), op_class("bitwise_xor"))
def _bitwise(ctx, a):
    dt = out_dtype(ctx)
    kind = ctx.node.op.op_name().split("_")[1].title()
    x, y = operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)
    if dt == numpy.bool_:
        return ctx.op(kind, [x, y])
    if ctx.opset < 18:
        ctx.fail("bitwise ops on integers need opset_version >= 18")
    return ctx.op("Bitwise" + kind, [x, y])


@lowers(E.BitwiseNot)
def _bitwise_not(ctx, a):
    x = ctx.name(a["a"])
    if a["a"].dtype == numpy.bool_:
        return ctx.op("Not", [x])
    if ctx.opset < 18:
        ctx.fail("bitwise_not on integers needs opset_version >= 18")
    return ctx.op("BitwiseNot", [x])


@lowers(W.Where)
def _where(ctx, a):
    dt = out_dtype(ctx)
    return ctx.op("Where", [_as_bool(ctx, a["cond"]), operand(ctx, a["a"], dt), operand(ctx, a["b"], dt)])


# ---------------------------------------------------------------- unary
_SIMPLE = {U.Exp: "Exp", U.Log: "Log", U.Sqrt: "Sqrt", U.Sin: "Sin", U.Cos: "Cos", U.Tan: "Tan", U.Sinh: "Sinh",
           U.Cosh: "Cosh", U.Asin: "Asin", U.Acos: "Acos", U.Atan: "Atan", U.Tanh: "Tanh", U.Sigmoid: "Sigmoid",
           U.Abs: "Abs", U.Sign: "Sign", U.Floor: "Floor", U.Ceil: "Ceil", U.Reciprocal: "Reciprocal",
           U.Erf: "Erf"}


def _simple(onnx_op):
    def fn(ctx, a):
        return ctx.op(onnx_op, [ctx.name(a["x"])])
    return fn


for _cls, _onnx in _SIMPLE.items():
    lowers(_cls)(_simple(_onnx))


def _x(ctx, a):
    return ctx.name(a["x"]), a["x"].dtype


@lowers(U.Exp2)
def _exp2(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Pow", [ctx.scalar(2, dt), x])


@lowers(U.Expm1)
def _expm1(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Sub", [ctx.op("Exp", [x]), ctx.scalar(1, dt)])


@lowers(U.Log2, U.Log10)
def _log_base(ctx, a):
    x, dt = _x(ctx, a)
    base = 2.0 if ctx.node.op is U.Log2 else 10.0
    return ctx.op("Div", [ctx.op("Log", [x]), ctx.scalar(math.log(base), dt)])


@lowers(U.Log1p)
def _log1p(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Log", [ctx.op("Add", [x, ctx.scalar(1, dt)])])


@lowers(U.Rsqrt)
def _rsqrt(ctx, a):
    return ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.name(a["x"])])])


def trunc(ctx, x):
    return ctx.op("Mul", [ctx.op("Sign", [x]), ctx.op("Floor", [ctx.op("Abs", [x])])])


@lowers(U.Trunc)
def _trunc(ctx, a):
    return trunc(ctx, ctx.name(a["x"]))


@lowers(U.Frac)
def _frac(ctx, a):
    x = ctx.name(a["x"])
    return ctx.op("Sub", [x, trunc(ctx, x)])


@lowers(U.Round)
def _round(ctx, a):
    x, dt = _x(ctx, a)
    d = int(a.get("decimals") or 0)
    if d == 0:
        return ctx.op("Round", [x])
    s = ctx.scalar(10.0 ** d, dt)
    return ctx.op("Div", [ctx.op("Round", [ctx.op("Mul", [x, s])]), s])


@lowers(U.Square)
def _square(ctx, a):
    x = ctx.name(a["x"])
    return ctx.op("Mul", [x, x])


@lowers(U.Erfc)
def _erfc(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Sub", [ctx.scalar(1, dt), ctx.op("Erf", [x])])


@lowers(U.Clamp)
def _clamp(ctx, a):
    dt = out_dtype(ctx)
    out = operand(ctx, a["x"], dt)
    if a["lo"] is not None:
        out = ctx.op("Max", [out, operand(ctx, a["lo"], dt)])
    if a["hi"] is not None:
        out = ctx.op("Min", [out, operand(ctx, a["hi"], dt)])
    return out


@lowers(U.NanToNum)
def _nan_to_num(ctx, a):
    x, dt = _x(ctx, a)
    info = numpy.finfo(dt)
    pos = info.max if a["posinf"] is None else a["posinf"]
    neg = info.min if a["neginf"] is None else a["neginf"]
    out = ctx.op("Where", [ctx.op("IsNaN", [x]), ctx.scalar(a["nan"], dt), x])
    out = ctx.op("Where", [ctx.op("IsInf", [x], detect_negative=0), ctx.scalar(pos, dt), out])
    return ctx.op("Where", [ctx.op("IsInf", [x], detect_positive=0), ctx.scalar(neg, dt), out])


@lowers(SM.Softmax, SM.LogSoftmax)
def _softmax(ctx, a):
    return ctx.op("Softmax" if ctx.node.op is SM.Softmax else "LogSoftmax", [ctx.name(a["x"])], axis=int(a["axis"]))


# ---------------------------------------------------------------- reductions
def _axes(a, ndim):
    axes = a.get("axes")
    if axes is None:
        return list(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    return [int(ax) % max(ndim, 1) for ax in axes]


def reduce(ctx, kind: str, x: str, axes, keepdim: bool) -> str:
    """``Reduce<kind>`` over ``axes``, as an input (opset 18+, and ReduceSum from 13) or an attribute."""
    keep = int(bool(keepdim))
    if not axes:
        return x
    if kind == "Sum" or ctx.opset >= 18:
        return ctx.op("Reduce" + kind, [x, ctx.ints(axes)], keepdims=keep)
    return ctx.op("Reduce" + kind, [x], axes=list(axes), keepdims=keep)


def _reducer(kind):
    def fn(ctx, a):
        x = a["x"]
        name = ctx.name(x)
        dt = out_dtype(ctx)
        if x.dtype != dt:
            name = ctx.cast(name, dt)
        return reduce(ctx, kind, name, _axes(a, len(x.shape)), a["keepdim"])
    return fn


lowers(R.Sum)(_reducer("Sum"))
lowers(R.Mean)(_reducer("Mean"))
lowers(R.Prod)(_reducer("Prod"))
lowers(R.AMax)(_reducer("Max"))
lowers(R.AMin)(_reducer("Min"))
lowers(R.LogSumExp)(_reducer("LogSumExp"))


@lowers(R.All, R.Any)
def _all_any(ctx, a):
    x = a["x"]
    as_int = ctx.cast(_as_bool(ctx, x), numpy.int32)
    out = reduce(ctx, "Min" if ctx.node.op is R.All else "Max", as_int, _axes(a, len(x.shape)), a["keepdim"])
    return ctx.cast(out, numpy.bool_)


@lowers(R.CountNonzero)
def _count_nonzero(ctx, a):
    x = a["x"]
    nz = ctx.cast(_as_bool(ctx, x), numpy.int64)
    return reduce(ctx, "Sum", nz, _axes(a, len(x.shape)), False)


@lowers(R.ArgMax, R.ArgMin)
def _arg_extreme(ctx, a):
    x = ctx.name(a["x"])
    axis = a["axis"]
    if axis is None:
        x, axis = ctx.op("Reshape", [x, ctx.ints([-1])]), 0
    out = ctx.op("ArgMax" if ctx.node.op is R.ArgMax else "ArgMin", [x], axis=int(axis),
                 keepdims=int(bool(a["keepdim"])))
    if a["axis"] is None and a["keepdim"]:
        out = ctx.reshape(out, (1,), ctx.shape(ctx.node.outputs[0]))
    return out


@lowers(R._TakeAlong)
def _take_along(ctx, a):
    """The values of ``max(dim)``/``min(dim)``: the elements at their argmax/argmin indices (graph values)."""
    axis = int(a["axis"])
    out = ctx.op("GatherElements", [ctx.name(a["x"]), ctx.name(a["idx"])], axis=axis)
    return out if a.get("keepdim", True) else ctx.op("Squeeze", [out, ctx.ints([axis])])


@lowers(R.Var, R.Std)
def _moment(ctx, a):
    x = a["x"]
    name = ctx.name(x)
    dt = x.dtype
    axes = _axes(a, len(x.shape))
    shape = ctx.shape(x)
    n = 1
    for ax in axes:
        n = n * shape[ax] if not isinstance(shape[ax], SymDim) or not isinstance(n, int) else None
        if n is None:
            ctx.fail("var/std over a dynamic axis is not supported")
    mean = reduce(ctx, "Mean", name, axes, True)
    d = ctx.op("Sub", [name, mean])
    ss = reduce(ctx, "Sum", ctx.op("Mul", [d, d]), axes, a["keepdim"])
    var = ctx.op("Div", [ss, ctx.scalar(max(n - a["correction"], 0), dt)])
    return ctx.op("Sqrt", [var]) if ctx.node.op is R.Std else var


@lowers(R.Norm)
def _norm(ctx, a):
    x = a["x"]
    name, dt = ctx.name(x), x.dtype
    axes, keep, p = _axes(a, len(x.shape)), a["keepdim"], float(a["p"])
    if p == 2:
        return ctx.op("Sqrt", [reduce(ctx, "SumSquare", name, axes, keep)])
    ab = ctx.op("Abs", [name])
    if p == math.inf:
        return reduce(ctx, "Max", ab, axes, keep)
    if p == -math.inf:
        return reduce(ctx, "Min", ab, axes, keep)
    if p == 0:
        return ctx.cast(reduce(ctx, "Sum", ctx.cast(_as_bool(ctx, x), dt), axes, keep), dt)
    if p == 1:
        return reduce(ctx, "Sum", ab, axes, keep)
    s = reduce(ctx, "Sum", ctx.op("Pow", [ab, ctx.scalar(p, dt)]), axes, keep)
    return ctx.op("Pow", [s, ctx.scalar(1.0 / p, dt)])


@lowers(R.CumSum)
def _cumsum(ctx, a):
    x = operand(ctx, a["x"], out_dtype(ctx))
    return ctx.op("CumSum", [x, ctx.ints([int(a["axis"])])], reverse=int(bool(a.get("reverse"))))


@lowers(SumTo)
def _sum_to(ctx, a):
    g = a["g"]
    src, dst = ctx.shape(g), tuple(a["shape"])
    lead = len(src) - len(dst)
    axes = list(range(lead)) + [i + lead for i, s in enumerate(dst) if s == 1 and src[i + lead] != 1]
    out = reduce(ctx, "Sum", ctx.name(g), axes, True)
    return ctx.reshape(out, [1] * lead + [1 if i in axes else src[i] for i in range(lead, len(src))],
                       ctx.shape(ctx.node.outputs[0]))


__all__ += ["ExportError", "operand", "out_dtype", "reduce", "trunc", "is_value"]
