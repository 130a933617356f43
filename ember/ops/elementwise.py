"""Binary arithmetic, comparisons and dtype casts, with broadcasting and PyTorch's type promotion."""
from __future__ import annotations

from .. import dtypes as _dt
from ._util import Op, OpError, Tensor, _wrap, operands, sum_to, tensor_method

__all__ = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "pow", "neg", "cast",
           "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum", "logical_and", "logical_or", "logical_not",
           "logical_xor", "subtract", "multiply", "divide", "negative"]


def _shape(x):
    return getattr(x, "shape", ())


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


class Add(Op):
    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a + b

    def backward(self, g):
        ea, eb = self.edges
        return (sum_to(g, self.shapes[0]) if ea else None), (sum_to(g, self.shapes[1]) if eb else None)


class Sub(Op):
    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a - b

    def backward(self, g):
        ea, eb = self.edges
        return (sum_to(g, self.shapes[0]) if ea else None), (sum_to(-g, self.shapes[1]) if eb else None)


class Mul(Op):
    save_inputs = (0, 1)

    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.saved_tensors
        ea, eb = self.edges
        return (sum_to(g * b, a.data.shape) if ea else None), (sum_to(g * a, b.data.shape) if eb else None)


class Div(Op):
    save_inputs = (0, 1)

    def forward(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.saved_tensors
        ea, eb = self.edges
        ga = sum_to(g / b, a.data.shape) if ea else None
        gb = sum_to(-g * a / (b * b), b.data.shape) if eb else None
        return ga, gb


class Pow(Op):
    save_inputs = (0, 1)
    save_output = True

    def forward(self, a, b):
        if isinstance(a, (int, float)) and not isinstance(b, (int, float)):
            a = self.xp.asarray(a, dtype=b.dtype)
        return a ** b

    def backward(self, g):
        from .unary import log
        from .where import where
        a, b = self.saved_tensors
        ea, eb = self.edges
        ga = gb = None
        if ea:
            if isinstance(b, Tensor):
                ga = sum_to(g * b * a ** (b - 1), a.data.shape)
            else:
                ga = g * (b * a ** (b - 1)) if b != 2 else g * (2 * a)
        if eb:
            out = self.output
            a_t = a if isinstance(a, Tensor) else _wrap(b.xp.asarray(a, dtype=b.data.dtype))
            safe = where(a_t > 0, a_t, 1.0)
            gb = sum_to(where(a_t > 0, g * out * log(safe), 0.0) if (a_t.data <= 0).any() else g * out * log(a_t),
                        b.data.shape)
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


def _compare_op(name, ufunc):
    cls = type(name.capitalize(), (_Compare,), {"ufunc": ufunc})

    def fn(input, other):
        a, b = operands(input, other, name)
        return cls.apply(a, b)
    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{ufunc}`` of two tensors (or a tensor and a scalar), broadcast; a bool tensor."
    return fn


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
        return self.xp.floor_divide(a, b)


class Remainder(Op):
    """Python-style remainder (sign of the divisor), as ``torch.remainder``; d/da = 1, d/db = -floor(a/b)."""

    save_inputs = (0, 1)

    def forward(self, a, b):
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
    if alpha != 1:
        other = mul(other, alpha)
    a, b = operands(input, other, "sub")
    return Sub.apply(a, b)


@tensor_method("__rsub__")
def _rsub(self, other):
    return sub(other, self)


@tensor_method("mul", "__mul__", "__rmul__", "multiply")
def mul(input, other) -> Tensor:
    """Elementwise product with broadcasting."""
    a, b = operands(input, other, "mul")
    return Mul.apply(a, b)


def _float_operands(input, other, op):
    a, b = operands(input, other, op)
    for x in (a, b):
        if isinstance(x, Tensor) and x.data.dtype.kind != "f":
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
        return trunc(div(input, other))
    if rounding_mode is not None:
        raise OpError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    a, b = _float_operands(input, other, "div")
    return Div.apply(a, b)


true_divide = divide = div


@tensor_method("__rtruediv__")
def _rdiv(self, other):
    return div(other, self)


@tensor_method("floor_divide", "__floordiv__")
def floor_divide(input, other) -> Tensor:
    """Floor division ``input // other`` (no gradient)."""
    a, b = operands(input, other, "floor_divide")
    return FloorDivide.apply(a, b)


@tensor_method("__rfloordiv__")
def _rfloordiv(self, other):
    return floor_divide(other, self)


@tensor_method("remainder", "__mod__", "fmod_python")
def remainder(input, other) -> Tensor:
    a, b = operands(input, other, "remainder")
    return Remainder.apply(a, b)


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


def _eq_method(self, other):
    return eq(self, other)


def _ne_method(self, other):
    return ne(self, other)


for _name, _fn in (("__eq__", _eq_method), ("__ne__", _ne_method), ("__lt__", lt), ("__le__", le),
                   ("__gt__", gt), ("__ge__", ge), ("__and__", logical_and), ("__or__", logical_or),
                   ("__xor__", logical_xor), ("__invert__", logical_not)):
    tensor_method(_name)(_fn)
