"""Binary arithmetic, comparisons and dtype casts, with broadcasting and PyTorch's type promotion."""
from __future__ import annotations

import operator

from .. import dtypes as _dt
from ..backend import errstate, quiet_call
from ._util import Op, OpError, Tensor, _is_scalar, _wrap, describe, operands, sum_to, tensor_method

__all__ = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow", "neg", "cast",
           "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum", "logical_and", "logical_or", "logical_not",
           "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "subtract", "multiply",
           "divide", "negative", "rsub"]


def _shape(x):
    return getattr(x, "shape", ())


def quiet(xp):
    """Silence NumPy's floating-point warnings: as in PyTorch, inf and nan results pass through silently."""
    return errstate(xp, all="ignore")


def _no_bool(op, what, *xs):
    """PyTorch refuses ``-`` on bool tensors (it would hide a logical_not/xor)."""
    if any((isinstance(x, Tensor) and x.data.dtype.kind == "b") or isinstance(x, bool) for x in xs):
        raise OpError(f"{op}: {what} with bools is not supported (inputs: {describe(xs)}); "
                      "use `~` / logical_not() or `^` / logical_xor() instead")


def _check_int_zero(a, b, op):
    """Integer division by zero raises in PyTorch instead of giving 0 with a warning."""
    if isinstance(b, Tensor) and b.data.dtype.kind in "iub":
        if (b.data == 0).any():
            raise OpError(f"{op}: ZeroDivisionError, integer division by zero (inputs: {describe((a, b))})")
    elif _is_scalar(b) and b == 0 and isinstance(a, Tensor) and a.data.dtype.kind in "iub":
        raise OpError(f"{op}: ZeroDivisionError, integer division by zero (inputs: {describe((a, b))})")


class Cast(Op):
    """Change dtype; the gradient is cast back to the input's dtype."""

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype.np)

    def backward(self, g):
        return cast(g, _dt.from_np(self.in_dtype))


def cast(x: Tensor, dtype) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between floating dtypes)."""
    dtype = _dt.as_dtype(dtype)
    if x.data.dtype == dtype.np:
        return x
    return Cast.apply(x, dtype=dtype)


class ToDevice(Cast):
    """Copy to another device; the gradient is copied back. A ``Cast`` to the same dtype for ONNX (a no-op there)."""

    def forward(self, x, dtype, device):
        from ..backend import device_of, move
        self.in_device = device_of(x)
        return move(x, device)

    def backward(self, g):
        return to_device(g, self.in_device)


def to_device(x: Tensor, device) -> Tensor:
    """``x`` on ``device`` (differentiable); ``x`` itself when it is already there."""
    from ..backend import device as _device
    device = _device(device)
    if x.device == device:
        return x
    return ToDevice.apply(x, dtype=x.dtype, device=device)


class Add(Op):
    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return quiet_call(operator.add, a, b)   # inf + -inf is nan without a warning, as PyTorch

    def backward(self, g):
        ea, eb = self.edges
        return (sum_to(g, self.shapes[0]) if ea else None), (sum_to(g, self.shapes[1]) if eb else None)


class Sub(Op):
    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return quiet_call(operator.sub, a, b)

    def backward(self, g):
        ea, eb = self.edges
        return (sum_to(g, self.shapes[0]) if ea else None), (sum_to(-g, self.shapes[1]) if eb else None)


class Mul(Op):
    save_inputs = (0, 1)

    def forward(self, a, b):
        return quiet_call(operator.mul, a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        ea, eb = self.edges
        return (sum_to(g * b, a.data.shape) if ea else None), (sum_to(g * a, b.data.shape) if eb else None)


class Div(Op):
    save_inputs = (0, 1)

    def forward(self, a, b):
        with quiet(self.xp):
            return a / b

    def backward(self, g):
        a, b = self.saved_tensors
        ea, eb = self.edges
        ga = sum_to(g / b, a.data.shape) if ea else None
        gb = sum_to(-g * a / (b * b), b.data.shape) if eb else None
        return ga, gb


class Pow(Op):
    """``a ** b``; gradients as PyTorch: zero where the exponent is 0, and d/db is 0 where a == 0 and b >= 0."""

    save_inputs = (0, 1)
    save_output = True

    def forward(self, a, b):
        xp = self.xp
        if _is_scalar(a):
            a = xp.asarray(a, dtype=b.dtype)
        with quiet(xp):
            if a.dtype.kind in "iu" and not _is_scalar(b) and (b < 0).any():
                # integer powers with negative exponents truncate (1/a**k -> 0 unless |a| == 1), as PyTorch
                pos = a ** xp.abs(b)
                return xp.where((b >= 0) | (xp.abs(a) == 1), pos, 0).astype(pos.dtype)
            return a ** b

    def backward(self, g):
        with quiet(g.xp):   # 0 * inf where the base is 0 is masked out below
            return self._grads(g)

    def _grads(self, g):
        from .unary import log
        from .where import where
        a, b = self.saved_tensors
        ea, eb = self.edges
        ga = gb = None
        if ea:
            if not isinstance(b, Tensor):
                ga = (_wrap(g.xp.zeros_like(g.data)) if b == 0 else g * (2 * a) if b == 2
                      else g * (b * a ** (b - 1)))
            else:
                ga = sum_to(where(b == 0, 0.0, g * (b * a ** (b - 1))), a.data.shape)
        if eb:
            out = self.output
            if isinstance(a, Tensor):
                gb = where((a == 0) & (b >= 0), 0.0, g * (out * log(a)))
            elif a == 0:
                gb = where(b >= 0, 0.0, g * out * float("-inf"))
            else:
                gb = g * out * float(b.xp.log(b.xp.asarray(a, dtype=b.data.dtype)))
            gb = sum_to(gb, b.data.shape)
        return ga, gb


class Neg(Op):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class _Compare(Op):
    """Comparison ops: boolean results, never differentiable."""

    differentiable = False
    ufunc = None

    def forward(self, a, b):
        return getattr(self.xp, self.ufunc)(a, b)


def _binary_op(name, ufunc, base, doc):
    """A public function ``name(input, other)`` over a new ``base`` subclass that applies ``xp.<ufunc>``."""
    cls = type(name.title().replace("_", ""), (base,), {"ufunc": ufunc, "name_": name})

    def fn(input, other):
        a, b = operands(input, other, name)
        return cls.apply(a, b)
    fn.__name__ = name
    fn.__doc__ = doc.format(ufunc=ufunc)
    return fn


def _compare_op(name, ufunc):
    return _binary_op(name, ufunc, _Compare,
                      "Elementwise ``{ufunc}`` of two tensors (or a tensor and a scalar), broadcast; a bool tensor.")


eq = _compare_op("eq", "equal")
ne = _compare_op("ne", "not_equal")
lt = _compare_op("lt", "less")
le = _compare_op("le", "less_equal")
gt = _compare_op("gt", "greater")
ge = _compare_op("ge", "greater_equal")
logical_and = _compare_op("logical_and", "logical_and")
logical_or = _compare_op("logical_or", "logical_or")
logical_xor = _compare_op("logical_xor", "logical_xor")
for _n in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"):
    tensor_method(_n)(globals()[_n])
tensor_method("greater")(gt)
tensor_method("less")(lt)


class LogicalNot(Op):
    differentiable = False

    def forward(self, a):
        return self.xp.logical_not(a)


@tensor_method()
def logical_not(input: Tensor) -> Tensor:
    return LogicalNot.apply(input)


class FloorDivide(Op):
    differentiable = False   # piecewise constant: PyTorch gives no gradient either

    def forward(self, a, b):
        with quiet(self.xp):
            return self.xp.floor_divide(a, b)


class Remainder(Op):
    """Python-style remainder (sign of the divisor), as ``torch.remainder``; d/da = 1, d/db = -floor(a/b)."""

    save_inputs = (0, 1)

    def forward(self, a, b):
        with quiet(self.xp):
            return self.xp.remainder(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        ea, eb = self.edges
        ga = sum_to(g, a.data.shape) if ea else None
        gb = sum_to(-g * floor_divide(a, b), b.data.shape) if eb else None
        return ga, gb


class _MinMax(Op):
    """Elementwise maximum/minimum; ties split the gradient evenly, as PyTorch does."""

    save_inputs = (0, 1)
    ufunc = None

    def forward(self, a, b):
        return getattr(self.xp, self.ufunc)(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        ea, eb = self.edges
        a_wins = (a > b) if self.ufunc == "maximum" else (a < b)
        tie = eq(a, b)
        wa = a_wins.to(g.dtype) + tie.to(g.dtype) * 0.5
        ga = sum_to(g * wa, a.data.shape) if ea else None
        gb = sum_to(g * (1 - wa), b.data.shape) if eb else None
        return ga, gb


class Maximum(_MinMax):
    ufunc = "maximum"


class Minimum(_MinMax):
    ufunc = "minimum"


@tensor_method("add", "__add__", "__radd__")
def add(input, other, alpha=1) -> Tensor:
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    a, b = operands(input, other, "add")
    return Add.apply(a, b)


@tensor_method("sub", "__sub__", "subtract")
def sub(input, other, alpha=1) -> Tensor:
    """``input - alpha * other`` with broadcasting."""
    _no_bool("sub", "subtraction, the `-` operator,", input, other)
    if alpha != 1:
        other = mul(other, alpha)
    a, b = operands(input, other, "sub")
    return Sub.apply(a, b)


@tensor_method("__rsub__")
def _rsub(self, other):
    return sub(other, self)


def rsub(input, other, alpha=1) -> Tensor:
    """``other - alpha * input`` (``torch.rsub``)."""
    return sub(other, input, alpha=alpha)


@tensor_method("mul", "__mul__", "__rmul__", "multiply")
def mul(input, other) -> Tensor:
    """Elementwise product with broadcasting."""
    a, b = operands(input, other, "mul")
    return Mul.apply(a, b)


def _float_operands(input, other, op):
    a, b = operands(input, other, op)
    for x in (a, b):
        if isinstance(x, Tensor) and not _dt.is_float(x.data.dtype):
            fd = _dt.get_default_dtype()
            a = cast(a, fd) if isinstance(a, Tensor) else a
            b = cast(b, fd) if isinstance(b, Tensor) else b
            break
    return a, b


@tensor_method("div", "__truediv__", "true_divide", "divide")
def div(input, other, rounding_mode=None) -> Tensor:
    """True division (integers give the default float dtype); ``rounding_mode='floor'|'trunc'`` as PyTorch."""
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        from .unary import trunc
        a, b = operands(input, other, "div")
        if all(not isinstance(x, Tensor) or x.data.dtype.kind in "iub" for x in (a, b)):
            return _int_trunc_div(a, b)
        return trunc(div(a, b))
    if rounding_mode is not None:
        raise OpError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    a, b = _float_operands(input, other, "div")
    return Div.apply(a, b)


true_divide = divide = div


def _int_trunc_div(a, b) -> Tensor:
    """Integer division rounded towards zero (C-style), exact for all int64 values."""
    from .where import where
    _check_int_zero(a, b, "div")
    q = floor_divide(a, b)
    inexact = ne(remainder(a, b), 0) & ne(lt(a, 0) if isinstance(a, Tensor) else a < 0,
                                        lt(b, 0) if isinstance(b, Tensor) else b < 0)
    return where(inexact, q + 1, q)


@tensor_method("__rtruediv__")
def _rdiv(self, other):
    return div(other, self)


@tensor_method("floor_divide", "__floordiv__")
def floor_divide(input, other) -> Tensor:
    """Floor division ``input // other`` (no gradient); integer division by zero raises, as in PyTorch.

    >>> import ember
    >>> ember.tensor([7, -7]) // 2
    tensor([ 3, -4])
    """
    a, b = operands(input, other, "floor_divide")
    _check_int_zero(a, b, "floor_divide")
    return FloorDivide.apply(a, b)


@tensor_method("__rfloordiv__")
def _rfloordiv(self, other):
    return floor_divide(other, self)


@tensor_method("remainder", "__mod__")
def remainder(input, other) -> Tensor:
    """Python-style ``input % other``: the result has the sign of ``other``."""
    a, b = operands(input, other, "remainder")
    _check_int_zero(a, b, "remainder")
    return Remainder.apply(a, b)


class Fmod(Op):
    """C-style remainder (sign of the dividend), as ``torch.fmod``; d/da = 1, d/db = -trunc(a/b)."""

    save_inputs = (0, 1)

    def forward(self, a, b):
        with quiet(self.xp):
            return self.xp.fmod(a, b)

    def backward(self, g):
        from .unary import trunc
        a, b = self.saved_tensors
        ea, eb = self.edges
        ga = sum_to(g, a.data.shape) if ea else None
        gb = sum_to(-g * trunc(div(a, b)), b.data.shape) if eb else None
        return ga, gb


@tensor_method()
def fmod(input, other) -> Tensor:
    """C-style remainder of ``input / other``: the result has the sign of ``input``."""
    a, b = operands(input, other, "fmod")
    _check_int_zero(a, b, "fmod")
    return Fmod.apply(a, b)


@tensor_method("__rmod__")
def _rmod(self, other):
    return remainder(other, self)


@tensor_method("pow", "__pow__")
def pow(input, exponent) -> Tensor:
    """``input ** exponent``; a float exponent on an integer tensor gives the default float dtype."""
    a, b = operands(input, exponent, "pow")
    return Pow.apply(a, b)


@tensor_method("__rpow__")
def _rpow(self, other):
    return pow(other, self)


@tensor_method("neg", "__neg__", "negative")
def neg(input: Tensor) -> Tensor:
    """``-input``."""
    _no_bool("neg", "negation, the `-` operator,", input)
    return Neg.apply(input)


negative, subtract, multiply = neg, sub, mul


@tensor_method("maximum")
def maximum(input, other) -> Tensor:
    a, b = operands(input, other, "maximum")
    return Maximum.apply(a, b)


@tensor_method("minimum")
def minimum(input, other) -> Tensor:
    a, b = operands(input, other, "minimum")
    return Minimum.apply(a, b)


@tensor_method("__pos__")
def _pos(self):
    return self


class _Bitwise(Op):
    """Bitwise ops on integer and bool tensors (logical on bool), never differentiable."""

    differentiable = False
    ufunc = None

    def forward(self, a, b):
        if any(getattr(x, "dtype", None) is not None and x.dtype.kind == "f" for x in (a, b)) or \
                any(isinstance(x, float) for x in (a, b)):
            raise OpError(f"{self.op_name()}: expected integer or bool tensors, got {describe((a, b))}")
        return getattr(self.xp, self.ufunc)(a, b)


def _bitwise_op(name):
    return _binary_op(name, name, _Bitwise,
                      "Elementwise ``{ufunc}`` of integer or bool tensors, broadcast (``&``, ``|``, ``^`` on tensors).")


bitwise_and = tensor_method("bitwise_and", "__and__", "__rand__")(_bitwise_op("bitwise_and"))
bitwise_or = tensor_method("bitwise_or", "__or__", "__ror__")(_bitwise_op("bitwise_or"))
bitwise_xor = tensor_method("bitwise_xor", "__xor__", "__rxor__")(_bitwise_op("bitwise_xor"))


class BitwiseNot(Op):
    differentiable = False

    def forward(self, a):
        if a.dtype.kind == "f":
            raise OpError(f"bitwise_not: expected an integer or bool tensor, got {describe((a,))}")
        return self.xp.invert(a)


@tensor_method("bitwise_not", "__invert__")
def bitwise_not(input: Tensor) -> Tensor:
    """``~input``: bitwise not of integers, logical not of bools."""
    return BitwiseNot.apply(input)


def _comparable(other) -> bool:
    from ..backend import ndarray_types
    return isinstance(other, (Tensor, list, tuple) + ndarray_types) or _is_scalar(other)


def _eq_method(self, other):
    return eq(self, other) if _comparable(other) else NotImplemented


def _ne_method(self, other):
    return ne(self, other) if _comparable(other) else NotImplemented


for _name, _fn in (("__eq__", _eq_method), ("__ne__", _ne_method), ("__lt__", lt), ("__le__", le),
                   ("__gt__", gt), ("__ge__", ge)):
    tensor_method(_name)(_fn)
