"""ONNX converters for math: elementwise arithmetic and functions, comparisons, logic and bitwise ops,
casts, reductions, ArgMax/ArgMin, MatMul and Einsum (registered in :mod:`ember.onnx.registry`).

Floating tensors go through Ember's differentiable ops, so gradients flow through an imported model.
Integer, bool and string tensors (which carry no gradient) are computed on their arrays directly, with
ONNX's typing: the result keeps the input's dtype where ONNX says so.
"""
from __future__ import annotations

import numpy as np

from .. import ops as E
from ..autograd.grad_mode import _state as _grad_state
from ..tensor import Tensor, _wrap
from .registry import converter

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


# ------------------------------------------------------------------ helpers shared with ops_tensor
def is_float(t) -> bool:
    """True for a tensor Ember can differentiate (float16/32/64)."""
    return t is not None and t.data.dtype in _FLOATS


def all_float(*ts) -> bool:
    return all(is_float(t) for t in ts if t is not None)


def wrap(arr, dtype=None) -> Tensor:
    """A constant Tensor around a NumPy value (0-d results stay arrays, never NumPy scalars)."""
    a = np.asarray(arr)
    return _wrap(a.astype(dtype, copy=False) if dtype is not None else a)


def no_grad_path(ctx, *ts) -> None:
    """Refuse, with a clear message, a NumPy-only computation on tensors that need gradients."""
    if _grad_state.enabled and any(t is not None and t.requires_grad for t in ts):
        raise NotImplementedError(f"ONNX node {ctx.name!r} ({ctx.node.op_type}): Ember has no differentiable "
                                  "version of this op, so gradients cannot flow through it; run it under "
                                  "ember.no_grad() or freeze its inputs")


def as_dtype(t: Tensor, dtype) -> Tensor:
    """``t`` cast to the NumPy ``dtype`` (differentiable between floats)."""
    dtype = np.dtype(dtype)
    if t.data.dtype == dtype:
        return t
    if is_float(t) and dtype in _FLOATS:
        return E.cast(t, dtype)
    return wrap(t.data.astype(dtype))


def ints(ctx, t) -> list:
    """A shape-like input as a list of Python ints."""
    return [int(v) for v in np.asarray(ctx.const(t)).reshape(-1)]


def axes_of(ctx, inputs, attrs, idx: int = 1, name: str = "axes"):
    """Axes given as an attribute (older opsets) or as input ``idx`` (newer opsets); None when absent."""
    if len(inputs) > idx and inputs[idx] is not None:
        return ints(ctx, inputs[idx])
    return attrs.get(name)


def elementwise(inputs, float_fn, np_fn):
    """``float_fn`` on Ember tensors when every input is floating, else ``np_fn`` on the arrays; the result
    has the first input's dtype, as ONNX's arithmetic ops do."""
    if all_float(*inputs):
        return as_dtype(float_fn(*inputs), inputs[0].data.dtype)
    with np.errstate(all="ignore"):
        res = np.asarray(np_fn(*[_computable(t.data) for t in inputs]))
    return wrap(res, inputs[0].data.dtype)


def _computable(a: np.ndarray) -> np.ndarray:
    """bfloat16 (an ``ml_dtypes`` type most NumPy routines reject) is computed in float32."""
    return a.astype(np.float32) if a.dtype.kind == "V" else a


# ------------------------------------------------------------------ arithmetic
def _int_div(a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        q = np.trunc(np.true_divide(a, np.where(b == 0, 1, b)))
        return q.astype(a.dtype)
    return np.divide(a, b)


_BINARY = {
    "Add": (lambda a, b: a + b, np.add),
    "Sub": (lambda a, b: a - b, np.subtract),
    "Mul": (lambda a, b: a * b, np.multiply),
    "Div": (lambda a, b: a / b, _int_div),
}


def _binary(op):
    fe, fn = _BINARY[op]

    def conv(ctx, inputs, attrs):
        a, b = inputs
        if attrs.get("broadcast", 1) == 1 and "axis" in attrs and b.data.ndim < a.data.ndim:   # opset < 7
            b = align_at_axis(b, a, attrs["axis"])
        return elementwise([a, b], fe, fn)
    return conv


def align_at_axis(b, a, axis: int):
    """Old-opset broadcasting: align ``b``'s dims with ``a``'s starting at ``axis``."""
    axis %= a.data.ndim
    shape = (1,) * axis + tuple(b.data.shape) + (1,) * (a.data.ndim - axis - b.data.ndim)
    return b.reshape(shape) if is_float(b) else wrap(b.data.reshape(shape))


for _op in _BINARY:
    converter(_op)(_binary(_op))


@converter("Pow")
def _pow(ctx, inputs, attrs):
    a, b = inputs
    if is_float(a):
        if not is_float(b):
            b = as_dtype(b, a.data.dtype)
        return as_dtype(E.pow(a, b), a.data.dtype)
    with np.errstate(all="ignore"):
        return wrap(np.power(a.data.astype(np.float64), b.data.astype(np.float64)), a.data.dtype)


@converter("Mod")
def _mod(ctx, inputs, attrs):
    fmod = attrs.get("fmod", 0)
    if fmod:
        return elementwise(inputs, E.fmod, np.fmod)

    def int_mod(a, b):
        return np.mod(a, np.where(b == 0, 1, b)) if a.dtype.kind in "iu" else np.mod(a, b)
    return elementwise(inputs, E.remainder, int_mod)


def _unary(float_fn, np_fn=None):
    def conv(ctx, inputs, attrs):
        x = inputs[0]
        if is_float(x):
            return as_dtype(float_fn(x), x.data.dtype)
        if np_fn is None:
            raise TypeError(f"expects a floating input, got {x.data.dtype}")
        with np.errstate(all="ignore"):
            return wrap(np_fn(x.data), x.data.dtype)
    return conv


def _asinh(x):
    return E.sign(x) * E.log(E.abs(x) + E.sqrt(x * x + 1))


def _acosh(x):
    return E.log(x + E.sqrt(x * x - 1))


def _atanh(x):
    return 0.5 * (E.log1p(x) - E.log1p(-x))


_UNARY = {
    "Abs": (E.abs, np.abs), "Neg": (E.neg, np.negative), "Sign": (E.sign, np.sign),
    "Exp": (E.exp, None), "Log": (E.log, None), "Sqrt": (E.sqrt, None), "Reciprocal": (E.reciprocal, None),
    "Floor": (E.floor, None), "Ceil": (E.ceil, None), "Round": (E.round, None), "Erf": (E.erf, None),
    "Sin": (E.sin, None), "Cos": (E.cos, None), "Tan": (E.tan, None), "Asin": (E.asin, None),
    "Acos": (E.acos, None), "Atan": (E.atan, None), "Sinh": (E.sinh, None), "Cosh": (E.cosh, None),
    "Tanh": (E.tanh, None), "Asinh": (_asinh, None), "Acosh": (_acosh, None), "Atanh": (_atanh, None),
}
for _op, (_fe, _fn) in _UNARY.items():
    converter(_op, since=1 if _op not in ("Asinh", "Acosh", "Atanh", "Sin", "Cos", "Tan", "Asin", "Acos",
                                          "Atan") else 7)(_unary(_fe, _fn))


@converter("Identity")
def _identity(ctx, inputs, attrs):
    return (inputs[0],)   # a tuple of one output, also when the value is a sequence (a list)


@converter("Constant")
def _constant(ctx, inputs, attrs):
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64), ("value_string", object),
                       ("value_strings", object)):
        if key in attrs:
            return wrap(np.array(attrs[key], dtype=dtype))
    raise ValueError(f"Constant node has none of the value attributes (got {sorted(attrs)})")


@converter("Clip")
def _clip(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo = inputs[1] if len(inputs) > 1 else None
        hi = inputs[2] if len(inputs) > 2 else None
    if lo is None and hi is None:
        return x
    if is_float(x):   # bounds stay tensors: a trainable bound gets its gradient too
        return E.clamp(x, lo, hi)
    lo, hi = (None if b is None else b.data for b in (lo, hi))
    return wrap(np.clip(x.data, lo, hi), x.data.dtype)


def _variadic(float_fn, np_fn, mean=False):
    def conv(ctx, inputs, attrs):
        ts = [t for t in inputs if t is not None]
        if all_float(*ts):
            out = ts[0]
            for t in ts[1:]:
                out = float_fn(out, t)
            out = out / len(ts) if mean else out
            return as_dtype(out, ts[0].data.dtype)
        out = ts[0].data
        for t in ts[1:]:
            out = np_fn(out, t.data)
        return wrap(out / len(ts) if mean else out, ts[0].data.dtype)
    return conv


converter("Sum")(_variadic(lambda a, b: a + b, np.add))
converter("Mean")(_variadic(lambda a, b: a + b, np.add, mean=True))
converter("Max")(_variadic(E.maximum, np.maximum))
converter("Min")(_variadic(E.minimum, np.minimum))


# ------------------------------------------------------------------ comparisons, logic, bitwise, tests
def _np_binary(np_fn, out_dtype=None):
    def conv(ctx, inputs, attrs):
        a, b = inputs
        if "axis" in attrs and b.data.ndim < a.data.ndim:
            b = align_at_axis(b, a, attrs["axis"])
        with np.errstate(all="ignore"):
            res = np_fn(a.data, b.data)
        return wrap(res, out_dtype or a.data.dtype)
    return conv


for _op, _fn in (("Equal", np.equal), ("Greater", np.greater), ("Less", np.less),
                 ("GreaterOrEqual", np.greater_equal), ("LessOrEqual", np.less_equal),
                 ("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor)):
    converter(_op)(_np_binary(_fn, np.bool_))
for _op, _fn in (("BitwiseAnd", np.bitwise_and), ("BitwiseOr", np.bitwise_or), ("BitwiseXor", np.bitwise_xor)):
    converter(_op, since=18)(_np_binary(_fn))


@converter("Not")
def _not(ctx, inputs, attrs):
    return wrap(np.logical_not(inputs[0].data))


@converter("BitwiseNot", since=18)
def _bitwise_not(ctx, inputs, attrs):
    return wrap(np.invert(inputs[0].data))


@converter("BitShift", since=11)
def _bitshift(ctx, inputs, attrs):
    x, s = inputs[0].data, inputs[1].data
    fn = np.left_shift if attrs["direction"] == "LEFT" else np.right_shift
    return wrap(fn(x, s.astype(x.dtype)), x.dtype)


@converter("IsNaN", since=9)
def _isnan(ctx, inputs, attrs):
    return wrap(np.isnan(inputs[0].data))


@converter("IsInf", since=10)
def _isinf(ctx, inputs, attrs):
    x = inputs[0].data
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    return wrap((np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg)))


@converter("Where", since=9)
def _where(ctx, inputs, attrs):
    c, a, b = inputs
    if all_float(a, b):
        return E.where(wrap(c.data.astype(bool)), a, b)
    return wrap(np.where(c.data, a.data, b.data), a.data.dtype)


# ------------------------------------------------------------------ casts
def _np_dtype(onnx_type: int):
    from onnx import helper
    return helper.tensor_dtype_to_np_dtype(onnx_type)


def _cast(x: Tensor, dtype, saturate: int = 1, round_mode: str = "up") -> Tensor:
    dtype = np.dtype(dtype)
    if dtype.kind == "O":   # to STRING: ONNX prints floats like repr of float32 values
        src = x.data
        if src.dtype.kind == "f":
            return wrap(np.array([str(np.float32(v)) if src.dtype == np.float32 else str(v)
                                  for v in src.reshape(-1)], dtype=object).reshape(src.shape))
        return wrap(src.astype(str).astype(object))
    if x.data.dtype == object:
        return wrap(x.data.astype(np.float64 if dtype.kind == "f" else dtype).astype(dtype))
    if is_float(x) and dtype in _FLOATS:
        return as_dtype(x, dtype)
    with np.errstate(all="ignore"):
        if "e8m0" in dtype.name:   # a power-of-two scale type: ONNX rounds the exponent up by default
            from onnx.numpy_helper import to_float8e8m0
            return wrap(to_float8e8m0(_computable(x.data), bool(saturate), round_mode))
        if saturate and dtype.name.startswith("float8"):
            from onnx.numpy_helper import saturate_cast   # float8: out-of-range values clamp to the largest finite
            return wrap(saturate_cast(_computable(x.data).astype(np.float32), dtype))
        return wrap(x.data.astype(dtype))


@converter("Cast")
def _cast_conv(ctx, inputs, attrs):
    to = attrs["to"]
    if isinstance(to, str):   # opset 1-5 spelled the type as a string
        from onnx import TensorProto
        to = TensorProto.DataType.Value(to.upper())
    return _cast(inputs[0], _np_dtype(to), attrs.get("saturate", 1), attrs.get("round_mode", "up"))


@converter("CastLike", since=15)
def _castlike(ctx, inputs, attrs):
    return _cast(inputs[0], inputs[1].data.dtype, attrs.get("saturate", 1))


# ------------------------------------------------------------------ reductions
def _reduce_axes(ctx, inputs, attrs, axes_input_since: int):
    axes = axes_of(ctx, inputs, attrs) if ctx.opset >= axes_input_since else attrs.get("axes")
    nd = inputs[0].data.ndim
    if not axes:
        return None if not attrs.get("noop_with_empty_axes", 0) else ()
    return tuple(sorted(a % max(nd, 1) for a in axes))


_NP_REDUCE = {
    "ReduceSum": lambda x, ax, k: np.sum(x, axis=ax, keepdims=k),
    "ReduceMean": lambda x, ax, k: np.mean(x, axis=ax, keepdims=k),
    "ReduceProd": lambda x, ax, k: np.prod(x, axis=ax, keepdims=k),
    "ReduceMax": lambda x, ax, k: np.max(x, axis=ax, keepdims=k, initial=_lowest(x.dtype)),
    "ReduceMin": lambda x, ax, k: np.min(x, axis=ax, keepdims=k, initial=_highest(x.dtype)),
    "ReduceL1": lambda x, ax, k: np.sum(np.abs(x), axis=ax, keepdims=k),
    "ReduceL2": lambda x, ax, k: np.sqrt(np.sum(np.square(x.astype(np.float64)), axis=ax, keepdims=k)),
    "ReduceLogSum": lambda x, ax, k: np.log(np.sum(x, axis=ax, keepdims=k)),
    "ReduceLogSumExp": lambda x, ax, k: np.log(np.sum(np.exp(x.astype(np.float64)), axis=ax, keepdims=k)),
    "ReduceSumSquare": lambda x, ax, k: np.sum(np.square(x), axis=ax, keepdims=k),
}


def _lowest(dt):
    return False if dt == np.bool_ else -np.inf if dt.kind == "f" else np.iinfo(dt).min


def _highest(dt):
    return True if dt == np.bool_ else np.inf if dt.kind == "f" else np.iinfo(dt).max


def _em_reduce(op, x, ax, k):
    if op == "ReduceSum":
        return E.sum(x, dim=ax, keepdim=k)
    if op == "ReduceMean":
        return E.mean(x, dim=ax, keepdim=k)
    if op == "ReduceProd":
        return E.prod(x, dim=ax, keepdim=k) if ax is None or len(ax) <= 1 else _prod_axes(x, ax, k)
    if op == "ReduceMax":
        return E.amax(x, dim=ax if ax is not None else tuple(range(x.ndim)), keepdim=k)
    if op == "ReduceMin":
        return E.amin(x, dim=ax if ax is not None else tuple(range(x.ndim)), keepdim=k)
    if op == "ReduceL1":
        return E.sum(E.abs(x), dim=ax, keepdim=k)
    if op == "ReduceL2":
        return E.sqrt(E.sum(x * x, dim=ax, keepdim=k))
    if op == "ReduceLogSum":
        return E.log(E.sum(x, dim=ax, keepdim=k))
    if op == "ReduceLogSumExp":
        return E.logsumexp(x, dim=ax if ax is not None else tuple(range(x.ndim)), keepdim=k)
    return E.sum(x * x, dim=ax, keepdim=k)


def _prod_axes(x, axes, keep):
    for a in sorted(axes, reverse=True):
        x = E.prod(x, dim=a, keepdim=True)
    return x if keep else x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))


def _reduce(op, axes_input_since):
    def conv(ctx, inputs, attrs):
        x = inputs[0]
        axes = _reduce_axes(ctx, inputs, attrs, axes_input_since)
        keep = bool(attrs.get("keepdims", 1))
        if axes == ():
            return _noop(op, x)
        if is_float(x) and x.data.size > 0:
            if x.data.ndim == 0:
                return _noop(op, x)
            return as_dtype(_em_reduce(op, x, axes, keep), x.data.dtype)
        with np.errstate(all="ignore"):
            res = _NP_REDUCE[op](x.data, axes, keep)
        return wrap(res, x.data.dtype)
    return conv


def _noop(op, x):
    """A reduction over no axes: the identity for most ops, the elementwise term for L1, L2, SumSquare."""
    if op in ("ReduceL1", "ReduceL2"):
        return E.abs(x) if is_float(x) else wrap(np.abs(x.data), x.data.dtype)
    if op == "ReduceSumSquare":
        return x * x if is_float(x) else wrap(np.square(x.data), x.data.dtype)
    if op == "ReduceLogSum":
        return E.log(x)
    return x


for _op in _NP_REDUCE:
    converter(_op)(_reduce(_op, 13 if _op == "ReduceSum" else 18))


def _arg(np_fn):
    def conv(ctx, inputs, attrs):
        x = inputs[0].data
        axis = attrs.get("axis", 0) % max(x.ndim, 1)
        if attrs.get("select_last_index", 0):
            r = x.shape[axis] - 1 - np_fn(np.flip(x, axis), axis=axis)
        else:
            r = np_fn(x, axis=axis)
        if attrs.get("keepdims", 1):
            r = np.expand_dims(r, axis)
        return wrap(r, np.int64)
    return conv


converter("ArgMax")(_arg(np.argmax))
converter("ArgMin")(_arg(np.argmin))


# ------------------------------------------------------------------ products
@converter("MatMul")
def _matmul(ctx, inputs, attrs):
    return elementwise(inputs, E.matmul, np.matmul)


@converter("Einsum", since=12)
def _einsum(ctx, inputs, attrs):
    eq = attrs["equation"].replace(" ", "")
    if all_float(*inputs):
        return as_dtype(E.einsum(eq, *inputs), inputs[0].data.dtype)
    return wrap(np.einsum(eq, *[_computable(t.data) for t in inputs]), inputs[0].data.dtype)


@converter("Det", since=11)
def _det(ctx, inputs, attrs):
    x = inputs[0]
    if not is_float(x):
        raise TypeError(f"Det expects floating matrices, got {x.data.dtype}")
    return _det_elimination(x)


def _det_elimination(a):
    """Determinants of ``[..., n, n]`` by Gaussian elimination with partial pivoting, in Ember ops so that the
    gradient flows (the pivot choice is data-dependent but piecewise constant, as in LU-based autograd)."""
    n = a.data.shape[-1]
    batch = a.data.shape[:-2]
    sign = np.ones(batch, a.data.dtype)
    det = None
    for k in range(n):
        p = k + np.argmax(np.abs(a.data[..., k:, k]), axis=-1)               # pivot row per matrix
        perm = np.broadcast_to(np.arange(n), batch + (n,)).copy()
        np.put_along_axis(perm, np.asarray(p)[..., None], k, axis=-1)
        perm[..., k] = p
        sign = np.where(p != k, -sign, sign)
        a = E.gather(a, a.data.ndim - 2, wrap(np.broadcast_to(perm[..., :, None], a.data.shape).copy()))
        pivot = a[..., k, k]
        det = pivot if det is None else det * pivot
        if k < n - 1:
            safe = E.where(wrap(pivot.data == 0), wrap(np.ones((), a.data.dtype)), pivot)   # a zero pivot: det 0
            factors = a[..., k + 1:, k] / E.unsqueeze(safe, -1)
            lower = a[..., k + 1:, :] - E.unsqueeze(factors, -1) * a[..., k:k + 1, :]
            a = E.cat([a[..., :k + 1, :], lower], dim=a.data.ndim - 2)
    return det * wrap(sign) if det is not None else wrap(np.ones(batch, a.data.dtype))
