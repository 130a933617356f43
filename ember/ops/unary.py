"""Elementwise math functions: each forward on ``xp`` beside its derivative.

Integer inputs to floating functions (``exp``, ``sqrt``, ``sigmoid``, ...) give the default
float dtype, as in PyTorch; rounding, ``abs``, ``sign``, ``square`` and ``clamp`` keep integers.
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..autograd.grad_mode import _state
from ._util import Op, OpError, Tensor, _is_scalar, _wrap, describe, sum_to, tensor_method
from .elementwise import cast, quiet

__all__ = ["exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "sin", "cos", "tan", "sinh",
           "cosh", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "tanh", "sigmoid", "abs", "absolute", "sign",
           "floor", "ceil", "round", "trunc", "fix", "frac", "reciprocal", "square", "erf", "erfc", "clamp", "clip",
           "nan_to_num"]

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _float_input(x: Tensor) -> Tensor:
    """Math functions of integer tensors work in the default float dtype, as in PyTorch."""
    if not _dt.is_float(x.data.dtype):
        return cast(x, _dt.get_default_dtype())
    return x


def _zeros(g: Tensor) -> Tensor:
    """The gradient of a piecewise-constant function (zeros even where ``g`` is inf, as PyTorch)."""
    return _wrap(g.xp.zeros_like(g.data))


class _Unary(Op):
    """A one-input op whose forward is the ``xp`` function named by ``fn`` (warnings silenced)."""

    fn = ""

    def forward(self, x):
        with quiet(self.xp):
            return getattr(self.xp, self.fn)(x)


class Exp(_Unary):
    fn, save_output = "exp", True

    def backward(self, g):
        return g * self.output


class Exp2(_Unary):
    fn, save_output = "exp2", True

    def backward(self, g):
        return g * self.output * _LN2


class Expm1(_Unary):
    fn, save_output = "expm1", True

    def backward(self, g):
        return g * (self.output + 1)


class Log(_Unary):
    fn, save_inputs = "log", (0,)

    def backward(self, g):
        return g / self.saved_tensors[0]


class Log2(_Unary):
    fn, save_inputs = "log2", (0,)

    def backward(self, g):
        return g / (self.saved_tensors[0] * _LN2)


class Log10(_Unary):
    fn, save_inputs = "log10", (0,)

    def backward(self, g):
        return g / (self.saved_tensors[0] * _LN10)


class Log1p(_Unary):
    fn, save_inputs = "log1p", (0,)

    def backward(self, g):
        return g / (self.saved_tensors[0] + 1)


class Sqrt(_Unary):
    fn, save_output = "sqrt", True

    def backward(self, g):
        return g / (2 * self.output)


class Rsqrt(Op):
    save_output = True

    def forward(self, x):
        with quiet(self.xp):
            return 1 / self.xp.sqrt(x)

    def backward(self, g):
        y = self.output
        return g * (y * y * y) * -0.5


class Sin(_Unary):
    fn, save_inputs = "sin", (0,)

    def backward(self, g):
        return g * cos(self.saved_tensors[0])


class Cos(_Unary):
    fn, save_inputs = "cos", (0,)

    def backward(self, g):
        return -g * sin(self.saved_tensors[0])


class Tan(_Unary):
    fn, save_output = "tan", True

    def backward(self, g):
        y = self.output
        return g * (1 + y * y)


class Sinh(_Unary):
    fn, save_inputs = "sinh", (0,)

    def backward(self, g):
        return g * cosh(self.saved_tensors[0])


class Cosh(_Unary):
    fn, save_inputs = "cosh", (0,)

    def backward(self, g):
        return g * sinh(self.saved_tensors[0])


class Asin(_Unary):
    fn, save_inputs = "arcsin", (0,)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g * rsqrt(1 - x * x)


class Acos(_Unary):
    fn, save_inputs = "arccos", (0,)

    def backward(self, g):
        x = self.saved_tensors[0]
        return -g * rsqrt(1 - x * x)


class Atan(_Unary):
    fn, save_inputs = "arctan", (0,)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (1 + x * x)


class Tanh(_Unary):
    """``tanh``; the gradient ``1 - y**2`` comes from the saved output (hot path of RNNs and MLPs)."""

    fn, save_output = "tanh", True

    def backward(self, g):
        y = self.output
        if not _state.enabled:   # plain backward: one fused expression, no graph to record
            return _wrap(g.data * (1 - y.data * y.data))
        return g * (1 - y * y)


def _sigmoid_array(xp, x):
    """``1 / (1 + exp(-x))`` on an array, never overflowing."""
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


class Sigmoid(Op):
    """Logistic function without overflow: ``1 / (1 + e)`` or ``e / (1 + e)`` with ``e = exp(-|x|)``."""

    save_output = True

    def forward(self, x):
        return _sigmoid_array(self.xp, x)

    def backward(self, g):
        y = self.output
        if not _state.enabled:
            return _wrap(g.data * y.data * (1 - y.data))
        return g * y * (1 - y)


class Abs(_Unary):
    """``|x|``; the gradient is ``sign(x)`` (0 at 0), as PyTorch."""

    fn, save_inputs = "abs", (0,)

    def backward(self, g):
        return g * sign(self.saved_tensors[0])


class Sign(_Unary):
    fn = "sign"

    def backward(self, g):
        return _zeros(g)


class Floor(_Unary):
    fn = "floor"

    def backward(self, g):
        return _zeros(g)


class Ceil(_Unary):
    fn = "ceil"

    def backward(self, g):
        return _zeros(g)


class Trunc(_Unary):
    fn = "trunc"

    def backward(self, g):
        return _zeros(g)


class Round(Op):
    """Round half to even (as PyTorch and NumPy), optionally to ``decimals`` places."""

    def forward(self, x, decimals):
        return self.xp.round(x, decimals)

    def backward(self, g):
        return _zeros(g)


class Frac(Op):
    def forward(self, x):
        return x - self.xp.trunc(x)

    def backward(self, g):
        return g


class Reciprocal(Op):
    save_output = True

    def forward(self, x):
        with quiet(self.xp):
            return 1 / x

    def backward(self, g):
        y = self.output
        return -g * (y * y)


class Square(Op):
    save_inputs = (0,)

    def forward(self, x):
        return x * x

    def backward(self, g):
        return g * (2 * self.saved_tensors[0])


# Rational approximations of erf (|x| < 0.5) and erfc (|x| >= 0.5), Hart & Cheney #5667;
# coefficients in increasing powers, accurate to double precision.
_ERF_P = (0.804373630960840172832162e5, 0.740407142710151470082064e4, 0.301782788536507577809226e4,
          0.380140318123903008244444e2, 0.143383842191748205576712e2, -0.288805137207594084924010e0,
          0.007547728033418631287834e0)
_ERF_Q = (0.804373630960840172826266e5, 0.342165257924628539769006e5, 0.637960017324428279487120e4,
          0.658070155459240506326937e3, 0.380190713951939403753468e2, 1.0)
_ERFC_P = (0.18263348842295112592168999e4, 0.28980293292167655611275846e4, 0.2320439590251635247384768711e4,
           0.1143262070703886173606073338e4, 0.3685196154710010637133875746e3, 0.7708161730368428609781633646e2,
           0.9675807882987265400604202961e1, 0.5641877825507397413087057563e0)
_ERFC_Q = (0.18263348842295112595576438e4, 0.495882756472114071495438422e4, 0.60895424232724435504633068e4,
           0.4429612803883682726711528526e4, 0.2094384367789539593790281779e4, 0.6617361207107653469211984771e3,
           0.1371255960500622202878443578e3, 0.1714980943627607849376131193e2, 1.0)


def _poly(coefs, x):
    """Horner evaluation of ``sum(c[i] * x**i)`` on an array."""
    acc = x * 0 + coefs[-1]
    for c in coefs[-2::-1]:
        acc = acc * x + c
    return acc


def _erf_parts(xp, x):
    """``(erf(|x|) for |x| < 0.5, erfc(|x|) for |x| >= 0.5, mask |x| < 0.5)``, vectorised and warning-free."""
    a = xp.abs(x)
    small = a < 0.5
    s = xp.minimum(a, 0.5)
    z = s * s
    erf_small = _TWO_OVER_SQRT_PI * s * _poly(_ERF_P, z) / _poly(_ERF_Q, z)
    b = xp.clip(a, 0.5, 30.0)
    erfc_big = xp.exp(-b * b) * _poly(_ERFC_P, b) / _poly(_ERFC_Q, b)
    erfc_big = erfc_big.astype(x.dtype, copy=False)
    return erf_small, erfc_big, small


def _erf_forward(xp, x, complement):
    """erf or erfc of a float array; float16 is computed in float32 (the coefficients overflow float16)."""
    xf = x.astype(xp.float32) if x.dtype.itemsize < 4 else x
    erf_small, erfc_big, small = _erf_parts(xp, xf)
    if complement:
        pos = xp.where(small, 1 - erf_small, erfc_big)
        out = xp.where(xf < 0, 2 - pos, pos)
    else:
        out = xp.where(small, erf_small, 1 - erfc_big) * xp.sign(xf)
    return out.astype(x.dtype, copy=False)


class Erf(Op):
    save_inputs = (0,)

    def forward(self, x):
        return _erf_forward(self.xp, x, complement=False)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (exp(-(x * x)) * _TWO_OVER_SQRT_PI)


class Erfc(Op):
    save_inputs = (0,)

    def forward(self, x):
        return _erf_forward(self.xp, x, complement=True)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (exp(-(x * x)) * -_TWO_OVER_SQRT_PI)


def _unary_fn(name, cls, floats=True, doc=""):
    def fn(input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise OpError(f"{name}: expected a Tensor, got {describe((input,))}")
        return cls.apply(_float_input(input) if floats else input)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


exp = tensor_method()(_unary_fn("exp", Exp, doc="``e ** input``."))
exp2 = tensor_method()(_unary_fn("exp2", Exp2, doc="``2 ** input``."))
expm1 = tensor_method()(_unary_fn("expm1", Expm1, doc="``exp(input) - 1``, accurate near 0."))
log = tensor_method()(_unary_fn("log", Log, doc="Natural logarithm (nan below 0, -inf at 0)."))
log2 = tensor_method()(_unary_fn("log2", Log2, doc="Base-2 logarithm."))
log10 = tensor_method()(_unary_fn("log10", Log10, doc="Base-10 logarithm."))
log1p = tensor_method()(_unary_fn("log1p", Log1p, doc="``log(1 + input)``, accurate near 0."))
sqrt = tensor_method()(_unary_fn("sqrt", Sqrt, doc="Square root (nan below 0)."))
rsqrt = tensor_method()(_unary_fn("rsqrt", Rsqrt, doc="``1 / sqrt(input)``."))
sin = tensor_method()(_unary_fn("sin", Sin, doc="Sine."))
cos = tensor_method()(_unary_fn("cos", Cos, doc="Cosine."))
tan = tensor_method()(_unary_fn("tan", Tan, doc="Tangent."))
sinh = tensor_method()(_unary_fn("sinh", Sinh, doc="Hyperbolic sine."))
cosh = tensor_method()(_unary_fn("cosh", Cosh, doc="Hyperbolic cosine."))
asin = arcsin = tensor_method("asin", "arcsin")(_unary_fn("asin", Asin, doc="Inverse sine."))
acos = arccos = tensor_method("acos", "arccos")(_unary_fn("acos", Acos, doc="Inverse cosine."))
atan = arctan = tensor_method("atan", "arctan")(_unary_fn("atan", Atan, doc="Inverse tangent."))
tanh = tensor_method()(_unary_fn("tanh", Tanh, doc="Hyperbolic tangent."))
_SIGMOID_DOC = """Logistic function ``1 / (1 + exp(-input))``, stable for large ``|input|``.

    >>> import ember
    >>> ember.tensor([-100.0, 0.0, 100.0]).sigmoid()
    tensor([3.7835e-44, 5.0000e-01, 1.0000e+00])
    """
sigmoid = tensor_method()(_unary_fn("sigmoid", Sigmoid, doc=_SIGMOID_DOC))
reciprocal = tensor_method()(_unary_fn("reciprocal", Reciprocal, doc="``1 / input``."))
_ERF_DOC = """Gauss error function (float64 error below 1e-15).

    >>> import ember
    >>> ember.tensor([0.0, 1.0]).erf()
    tensor([0.0000, 0.8427])
    """
erf = tensor_method()(_unary_fn("erf", Erf, doc=_ERF_DOC))
erfc = tensor_method()(_unary_fn("erfc", Erfc, doc="Complementary error function ``1 - erf(input)``, for the tail."))
frac = tensor_method()(_unary_fn("frac", Frac, doc="Fractional part ``input - trunc(input)`` (sign of input)."))


def _keep_int(name, cls, doc):
    """Rounding functions: integer tensors come back unchanged (as PyTorch), bool is refused."""
    def fn(input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise OpError(f"{name}: expected a Tensor, got {describe((input,))}")
        if input.data.dtype.kind == "b":
            raise OpError(f"{name}: not supported for bool tensors (input: {describe((input,))})")
        if not _dt.is_float(input.data.dtype):
            return _wrap(input.data.copy())
        return cls.apply(input)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


floor = tensor_method()(_keep_int("floor", Floor, "Largest integer not above ``input`` (gradient zero)."))
ceil = tensor_method()(_keep_int("ceil", Ceil, "Smallest integer not below ``input`` (gradient zero)."))
trunc = fix = tensor_method("trunc", "fix")(_keep_int("trunc", Trunc, "Round towards zero (gradient zero)."))


@tensor_method()
def round(input: Tensor, decimals: int = 0) -> Tensor:  # noqa: A001  (PyTorch's name)
    """Round half to even, to ``decimals`` places (gradient zero).

    >>> import ember
    >>> ember.tensor([0.5, 1.5, 2.5, -0.5]).round()
    tensor([0., 2., 2., -0.])
    """
    if input.data.dtype.kind == "b":
        raise OpError(f"round: not supported for bool tensors (input: {describe((input,))})")
    if not _dt.is_float(input.data.dtype) and decimals == 0:
        return _wrap(input.data.copy())
    return Round.apply(input, decimals=int(decimals))


@tensor_method("abs", "absolute", "__abs__")
def abs(input: Tensor) -> Tensor:  # noqa: A001  (PyTorch's name)
    """``|input|``, keeping integer dtypes; the gradient is ``sign(input)`` (0 at 0).

    >>> import ember
    >>> abs(ember.tensor([-2, 3]))
    tensor([2, 3])
    """
    if input.data.dtype.kind == "b":
        raise OpError(f"abs: not supported for bool tensors (input: {describe((input,))})")
    return Abs.apply(input)


absolute = abs


@tensor_method()
def sign(input: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of each element (bool stays bool); gradient zero."""
    if input.data.dtype.kind == "b":
        return _wrap(input.data.copy())
    return Sign.apply(input)


@tensor_method()
def square(input: Tensor) -> Tensor:
    """``input * input`` (integers stay integers; bool gives int64, as PyTorch)."""
    if input.data.dtype.kind == "b":
        input = cast(input, _dt.int64)
    return Square.apply(input)


class Clamp(Op):
    """``min(max(x, lo), hi)``; bounds may be scalars, tensors or None. Gradients follow PyTorch:
    ``x`` where ``lo <= x <= hi``, ``lo`` where ``x < lo < hi``, ``hi`` where ``x > hi`` or ``hi < lo``."""

    save_inputs = (0, 1, 2)

    def forward(self, x, lo, hi):
        xp = self.xp
        out = x if lo is None else xp.maximum(x, lo)
        return out if hi is None else xp.minimum(out, hi)

    def backward(self, g):
        x, lo, hi = self.saved_tensors
        ex, elo, ehi = self.edges
        xd, lod, hid = x.data, _data(lo), _data(hi)
        gx = glo = ghi = None
        if ex:
            keep = True if lod is None else xd >= lod
            keep = keep if hid is None else keep & (xd <= hid)
            gx = sum_to(masked(g, keep), xd.shape)
        if elo:
            below = xd < lod
            glo = sum_to(masked(g, below if hid is None else below & (lod < hid)), lod.shape)
        if ehi:
            above = xd > hid
            ghi = sum_to(masked(g, above if lod is None else above | (hid < lod)), hid.shape)
        return gx, glo, ghi


def _data(b):
    return b.data if isinstance(b, Tensor) else b


def masked(g: Tensor, mask) -> Tensor:
    """``g`` where the constant boolean array ``mask`` holds, else 0; graph-free when no graph is recorded."""
    if mask is True:
        return g
    if not _state.enabled:
        return _wrap(g.data * mask)
    from .where import where
    return where(_wrap(mask), g, 0.0)


def _bound_dtype(x: Tensor, bounds):
    """PyTorch's result dtype of ``clamp``: promotion over the input and the tensor or scalar bounds."""
    rt = x.data.dtype
    for b in bounds:
        if isinstance(b, Tensor):
            rt = _dt.result_type(rt, b.data.dtype)
        elif b is not None:
            rt = _dt.promote_scalar(rt, b)
    return rt


@tensor_method("clamp", "clip")
def clamp(input: Tensor, min=None, max=None) -> Tensor:  # noqa: A002  (PyTorch's argument names)
    """Limit ``input`` to ``[min, max]`` (scalars or broadcastable tensors); gradients pass where inside.

    >>> import ember
    >>> ember.tensor([-2.0, 0.5, 3.0]).clamp(-1, 1)
    tensor([-1.0000,  0.5000,  1.0000])
    """
    if min is None and max is None:
        raise OpError("clamp: at least one of 'min' or 'max' must not be None")
    bounds = []
    for b in (min, max):
        if b is not None and not isinstance(b, Tensor) and not _is_scalar(b):
            from ._util import as_tensor_arg
            b = as_tensor_arg(b)
        bounds.append(b)
    rt = _bound_dtype(input, bounds)
    if input.data.dtype.kind == "b" and rt.kind == "b":
        raise OpError(f"clamp: not supported for bool tensors (input: {describe((input,))})")
    dt = _dt.from_np(rt)
    x = cast(input, dt)
    lo, hi = (cast(b, dt) if isinstance(b, Tensor) else b for b in bounds)
    return Clamp.apply(x, lo, hi)


clip = clamp


class NanToNum(Op):
    """Replace nan, +inf and -inf by finite numbers; the gradient passes where the input was finite."""

    save_inputs = (0,)

    def forward(self, x, nan, posinf, neginf):
        return self.xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    def backward(self, g):
        x = self.saved_tensors[0]
        return masked(g, x.xp.isfinite(x.data))


@tensor_method()
def nan_to_num(input: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """nan -> ``nan``, +inf -> ``posinf`` (default the dtype's max), -inf -> ``neginf`` (default its min)."""
    if not _dt.is_float(input.data.dtype):
        return _wrap(input.data.copy())
    return NanToNum.apply(input, nan=nan, posinf=posinf, neginf=neginf)
