"""Reductions over any axes with ``keepdim``: sums, products, extrema, moments, norms and scans.

Every gradient is written with differentiable Ember ops, so second derivatives work; the
tie rules follow PyTorch (full ``max()``/``amax`` split the gradient evenly among ties,
``max(dim)`` sends it to the returned index).
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

from .. import dtypes as _dt
from . import elementwise as _ew
from . import shape as _sh
from . import unary as _un
from . import where as _wh
from ._util import Op, OpError, Tensor, _wrap, norm_axes, norm_axis, tensor_method

__all__ = ["sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std", "norm",
           "logsumexp", "all", "any", "cumsum", "count_nonzero"]

#: ``torch.return_types.max``-like results: a tuple with ``.values`` and ``.indices``.
max_return = namedtuple("max", ("values", "indices"))
min_return = namedtuple("min", ("values", "indices"))


def _kept_shape(shape, axes):
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _kept(t: Tensor, in_shape, axes, keepdim) -> Tensor:
    """A reduction's result (or its gradient) reshaped so that it broadcasts against the input."""
    return t if keepdim else _sh.reshape(t, _kept_shape(in_shape, axes))


def _count(shape, axes) -> int:
    return math.prod(s for i, s in enumerate(shape) if axes is None or i in axes)


def _float_only(x: Tensor, op: str) -> None:
    if not _dt.is_float(x.data.dtype):
        raise OpError(f"{op}: expected a floating point tensor, got {x.dtype} with shape {tuple(x.shape)}; "
                      "call .float() first")


class Sum(Op):
    def forward(self, x, axes, keepdim, dtype=None):
        self.in_shape = x.shape
        return x.sum(axis=axes, keepdims=keepdim, dtype=dtype)

    def backward(self, g):
        a = self.attrs
        return _sh.expand(_kept(g, self.in_shape, a["axes"], a["keepdim"]), self.in_shape)


class Mean(Op):
    def forward(self, x, axes, keepdim):
        self.in_shape = x.shape
        return x.mean(axis=axes, keepdims=keepdim)

    def backward(self, g):
        a = self.attrs
        n = _count(self.in_shape, a["axes"])
        return _sh.expand(_kept(g, self.in_shape, a["axes"], a["keepdim"]) / n, self.in_shape)


def _int_to_long(x: Tensor, dtype):
    if dtype is not None:
        return _dt.as_dtype(dtype).np
    return _dt.int64.np if x.data.dtype.kind in "bui" else None


@tensor_method()
def sum(input: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Sum over ``dim`` (int, tuple or None for all); bool and integer tensors sum to int64 as in PyTorch.

    >>> import ember
    >>> ember.tensor([[1, 2], [3, 4]]).sum(0)
    tensor([4, 6])
    """
    axes = norm_axes(dim, input.data.ndim, "sum")
    return Sum.apply(input, axes=axes, keepdim=keepdim, dtype=_int_to_long(input, dtype))


@tensor_method()
def mean(input: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Mean over ``dim``; needs a floating tensor (as PyTorch) unless ``dtype`` is given."""
    if dtype is not None:
        input = _ew.cast(input, dtype)
    if not _dt.is_float(input.data.dtype):
        raise OpError(f"mean: expected a floating point tensor, got {input.dtype}; pass dtype=ember.float32 "
                      "or call .float() first")
    axes = norm_axes(dim, input.data.ndim, "mean")
    return Mean.apply(input, axes=axes, keepdim=keepdim)


class Prod(Op):
    """Product; the gradient is exact with zeros in the input (one zero: only it gets a gradient), and so is
    the second derivative (two zeros: each one's gradient depends on the other)."""

    save_inputs = (0,)
    save_output = True

    def forward(self, x, axes, keepdim, dtype=None):
        return x.prod(axis=axes, keepdims=keepdim, dtype=dtype)

    def backward(self, g):
        (x,) = self.saved_tensors
        axes, keepdim = self.attrs["axes"], self.attrs["keepdim"]
        shape = x.data.shape
        gk = _kept(g, shape, axes, keepdim)
        zero = x.data == 0
        if not zero.any():
            return gk * _kept(self.output, shape, axes, keepdim) / x
        # product of all other elements, without dividing by zero, written so that its own derivative (the
        # second derivative of prod) is right too: the non-zero product times the zero-valued but
        # differentiable zeros. One zero: the zero's gradient is the non-zero product, the others' that
        # times the zero. Two zeros: each zero's gradient is the non-zero product times the other zero
        # (the others' is 0 to second order). Three or more: 0 to second order.
        nz = _wrap(zero.sum(axis=axes, keepdims=True))
        zero_t = _wrap(zero)
        safe = _wh.where(zero_t, 1.0, x)
        pnz = Prod.apply(safe, axes=axes, keepdim=True)
        others = pnz / safe
        zeros_sum = sum(_wh.where(zero_t, x, 0.0), axes, keepdim=True)
        one_zero = _wh.where(zero_t, pnz, others * zeros_sum)
        two_zeros = _wh.where(zero_t, pnz * (zeros_sum - x), 0.0)
        grad = _wh.where(nz == 0, others, _wh.where(nz == 1, one_zero, _wh.where(nz == 2, two_zeros, 0.0)))
        return gk * grad


@tensor_method()
def prod(input: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Product of all elements, or along ``dim``; bool and integer tensors give int64 as in PyTorch.

    >>> import ember
    >>> ember.tensor([[1., 2.], [3., 4.]]).prod(1)
    tensor([ 2., 12.])
    """
    axes = norm_axes(dim, input.data.ndim, "prod")
    return Prod.apply(input, axes=axes, keepdim=keepdim, dtype=_int_to_long(input, dtype))


class _Extreme(Op):
    """amax/amin: the gradient is split evenly among the elements equal to the extreme (PyTorch's rule)."""

    save_inputs = (0,)
    save_output = True
    fn = None

    def forward(self, x, axes, keepdim):
        return getattr(x, self.fn)(axis=axes, keepdims=keepdim)

    def backward(self, g):
        (x,) = self.saved_tensors
        axes, keepdim = self.attrs["axes"], self.attrs["keepdim"]
        shape = x.data.shape
        out = self.out_data if keepdim else self.out_data.reshape(_kept_shape(shape, axes))
        return _kept(g, shape, axes, keepdim) * _tie_weights(x.data, out, axes)


def _tie_weights(values, extreme, axes) -> Tensor:
    """1/k where ``values`` equals the kept-dims ``extreme`` (k ties along ``axes``), else 0: ties share the grad."""
    hit = values == extreme
    return _wrap((hit / hit.sum(axis=axes, keepdims=True)).astype(values.dtype))


class AMax(_Extreme):
    fn = "max"


class AMin(_Extreme):
    fn = "min"


class _TakeAlong(Op):
    """The elements at the indices ``idx`` (an input, from ``argmax``/``argmin`` with keepdim) along one axis:
    the values of ``max(dim)``; the gradient goes to those indices."""

    save_inputs = (1,)

    def forward(self, x, idx, *, axis, keepdim=True):
        self.in_shape, self.dtype = x.shape, x.dtype
        out = self.xp.take_along_axis(x, idx, axis=axis)
        return out if keepdim else out.squeeze(axis)

    def backward(self, g):
        xp, a = self.xp, self.attrs
        (idx,) = self.saved_tensors
        axis = a["axis"]
        n = self.in_shape[axis]
        pos = xp.arange(n).reshape((n,) + (1,) * (len(self.in_shape) - axis - 1))
        return _kept(g, self.in_shape, (axis,), a["keepdim"]) * _wrap((pos == idx.data).astype(self.dtype)), None


def _empty_check(x: Tensor, axes, op: str) -> None:
    shape = x.data.shape
    if builtins.any(shape[i] == 0 for i in (range(len(shape)) if axes is None else axes)):
        raise OpError(f"{op}: cannot reduce over an empty dimension (input shape {tuple(shape)}); the operation "
                      "has no identity")


def _extreme(input, dim, keepdim, other, op: str, cls, arg: str, result):
    if isinstance(dim, Tensor) or other is not None:
        return (_ew.maximum if op == "max" else _ew.minimum)(input, other if other is not None else dim)
    if dim is None:
        _empty_check(input, None, op)
        return cls.apply(input, axes=None, keepdim=False)
    nd = input.data.ndim
    axis = norm_axis(int(dim), nd, op)
    if nd == 0:
        return result(input * 1 if input.requires_grad else input, _wrap(input.xp.zeros((), _dt.int64.np)))
    _empty_check(input, (axis,), op)
    idx = (ArgMax if arg == "argmax" else ArgMin).apply(input, axis=axis, keepdim=True)   # an op: graphs see it
    values = _TakeAlong.apply(input, idx, axis=axis, keepdim=keepdim)
    return result(values, idx if keepdim else idx.squeeze(axis))


@tensor_method()
def max(input: Tensor, dim=None, keepdim: bool = False, *, other=None):
    """Largest element (a 0-d tensor), or ``(values, indices)`` along ``dim``; ``max(a, b)`` is ``maximum``.

    >>> import ember
    >>> ember.tensor([[1., 5.], [7., 2.]]).max(1).indices
    tensor([1, 0])
    """
    return _extreme(input, dim, keepdim, other, "max", AMax, "argmax", max_return)


@tensor_method()
def min(input: Tensor, dim=None, keepdim: bool = False, *, other=None):
    """Smallest element (a 0-d tensor), or ``(values, indices)`` along ``dim``; ``min(a, b)`` is ``minimum``."""
    return _extreme(input, dim, keepdim, other, "min", AMin, "argmin", min_return)


@tensor_method()
def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """Largest value over ``dim`` (int or tuple; ``()`` for all); ties share the gradient evenly."""
    axes = norm_axes(dim, input.data.ndim, "amax")
    _empty_check(input, axes, "amax")
    return AMax.apply(input, axes=axes, keepdim=keepdim)


@tensor_method()
def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """Smallest value over ``dim`` (int or tuple; ``()`` for all); ties share the gradient evenly."""
    axes = norm_axes(dim, input.data.ndim, "amin")
    _empty_check(input, axes, "amin")
    return AMin.apply(input, axes=axes, keepdim=keepdim)


class _ArgExtreme(Op):
    differentiable = False
    fn = None

    def forward(self, x, axis, keepdim):
        xp = self.xp
        if axis is None:
            out = getattr(xp, self.fn)(x.reshape(-1))
            return xp.reshape(out, (1,) * x.ndim) if keepdim else out
        return getattr(xp, self.fn)(x, axis=axis, keepdims=keepdim).astype(_dt.int64.np, copy=False)


class ArgMax(_ArgExtreme):
    fn = "argmax"


class ArgMin(_ArgExtreme):
    fn = "argmin"


def _arg(cls, input, dim, keepdim, op):
    axis = None if dim is None else norm_axis(int(dim), input.data.ndim, op)
    _empty_check(input, None if axis is None or input.data.ndim == 0 else (axis,), op)
    if input.data.ndim == 0:
        return _wrap(input.xp.zeros((), _dt.int64.np))
    return cls.apply(input, axis=axis, keepdim=keepdim)


@tensor_method()
def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (of the flattened tensor when ``dim`` is None); first one among ties."""
    return _arg(ArgMax, input, dim, keepdim, "argmax")


@tensor_method()
def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value (of the flattened tensor when ``dim`` is None); first one among ties."""
    return _arg(ArgMin, input, dim, keepdim, "argmin")


class _Moment(Op):
    """var/std with Bessel's ``correction``: d var/dx = 2 (x - mean) / (N - correction)."""

    save_inputs = (0,)
    save_output = True
    fn = None

    def forward(self, x, axes, keepdim, correction):
        return getattr(x, self.fn)(axis=axes, keepdims=keepdim, ddof=correction)

    def backward(self, g):
        (x,) = self.saved_tensors
        a = self.attrs
        axes, keepdim = a["axes"], a["keepdim"]
        shape = x.data.shape
        gk = _kept(g, shape, axes, keepdim)
        centered = x - mean(x, axes, keepdim=True)
        dof = builtins.max(_count(shape, axes) - a["correction"], 0)
        if self.fn == "var":
            return gk * centered * (2.0 / dof if dof else math.inf)
        out = _kept(self.output, shape, axes, keepdim)
        zero = out == 0
        scale = _wh.where(zero, 0.0, gk / _wh.where(zero, 1.0, out))
        return scale * centered * (1.0 / dof if dof else math.inf)


class Var(_Moment):
    fn = "var"


class Std(_Moment):
    fn = "std"


def _moment(cls, input, dim, unbiased, keepdim, correction, op):
    if isinstance(dim, bool):           # var(x, True): the legacy ``unbiased`` positional form
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise OpError(f"{op}: pass either unbiased= or correction=, not both")
    if correction is None:
        correction = 0 if unbiased is False else 1
    _float_only(input, op)
    axes = norm_axes(dim, input.data.ndim, op)
    return cls.apply(input, axes=axes, keepdim=keepdim, correction=correction)


@tensor_method()
def var(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Variance over ``dim`` with ``correction`` (default 1, Bessel's; ``unbiased=False`` means 0).

    >>> import ember
    >>> ember.tensor([1., 2., 3., 4.]).var()
    tensor(1.6667)
    """
    return _moment(Var, input, dim, unbiased, keepdim, correction, "var")


@tensor_method()
def std(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Standard deviation over ``dim`` with ``correction`` (default 1); gradient 0 where the result is 0."""
    return _moment(Std, input, dim, unbiased, keepdim, correction, "std")


class Norm(Op):
    """Vector p-norm over ``axes``; the gradient is 0 (not nan) where the norm is 0, as in PyTorch."""

    save_inputs = (0,)
    save_output = True

    def forward(self, x, p, axes, keepdim):
        xp = self.xp
        if p == 2:
            return xp.sqrt((x * x).sum(axis=axes, keepdims=keepdim))
        a = xp.abs(x)
        if p == math.inf:
            return a.max(axis=axes, keepdims=keepdim)
        if p == -math.inf:
            return a.min(axis=axes, keepdims=keepdim)
        if p == 0:
            return (x != 0).sum(axis=axes, keepdims=keepdim).astype(x.dtype)
        if p == 1:
            return a.sum(axis=axes, keepdims=keepdim)
        return ((a ** p).sum(axis=axes, keepdims=keepdim) ** (1.0 / p)).astype(x.dtype, copy=False)

    def backward(self, g):
        (x,) = self.saved_tensors
        a = self.attrs
        p, axes, keepdim = a["p"], a["axes"], a["keepdim"]
        if p == 0:
            return None         # piecewise constant: no gradient, as in PyTorch
        xd = x.data
        shape = xd.shape
        gk = _kept(g, shape, axes, keepdim)
        sign = _wrap(self.xp.sign(xd))
        if p == 1:
            return gk * sign
        out = _kept(self.output, shape, axes, keepdim)
        if math.isinf(p):
            return gk * sign * _tie_weights(self.xp.abs(xd), out.data, axes)
        zero = out == 0
        safe_out = _wh.where(zero, 1.0, out)
        if p == 2:
            return _wh.where(zero, 0.0, gk * x / safe_out)
        xzero = _wrap(xd == 0)
        safe_abs = _wh.where(xzero, 1.0, x * sign)
        scaled = sign * _wh.where(xzero, 0.0, safe_abs ** (p - 1))
        return scaled * _wh.where(zero, 0.0, gk / safe_out ** (p - 1))


@tensor_method()
def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over ``dim`` (all elements by default): p = 2/'fro' (default), 1, inf, -inf, 0 or any float.

    >>> import ember
    >>> ember.tensor([3., 4.]).norm()
    tensor(5.)
    """
    if dtype is not None:
        input = _ew.cast(input, dtype)
    _float_only(input, "norm")
    if p is None or p == "fro":
        p = 2.0
    elif isinstance(p, str):
        raise OpError(f"norm: p={p!r} is not supported (matrix norms other than 'fro'); use p='fro' or a number")
    p = float(p)
    axes = norm_axes(dim, input.data.ndim, "norm")
    if p < 0:
        _empty_check(input, axes, "norm")
    return Norm.apply(input, p=p, axes=axes, keepdim=keepdim)


class LogSumExp(Op):
    """``log(sum(exp(x)))`` computed after subtracting the maximum, so large values stay finite."""

    save_inputs = (0,)
    save_output = True

    def forward(self, x, axes, keepdim):
        xp = self.xp
        m = x.max(axis=axes, keepdims=True) if x.size else xp.zeros(_kept_shape(x.shape, axes), x.dtype)
        m = xp.where(xp.isfinite(m), m, 0)
        s = xp.exp(x - m).sum(axis=axes, keepdims=True)
        pos = s > 0
        out = xp.where(pos, xp.log(xp.where(pos, s, 1)), -xp.inf) + m
        return out if keepdim else xp.squeeze(out, axis=axes if axes is not None else tuple(range(x.ndim)))

    def backward(self, g):
        (x,) = self.saved_tensors
        axes, keepdim = self.attrs["axes"], self.attrs["keepdim"]
        shape = x.data.shape
        return _kept(g, shape, axes, keepdim) * _un.exp(x - _kept(self.output, shape, axes, keepdim))


@tensor_method()
def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(input), dim))``, stable for large values; an all ``-inf`` slice gives ``-inf``.

    >>> import ember
    >>> ember.tensor([1000., 1000.]).logsumexp(0)
    tensor(1000.6932)
    """
    if not _dt.is_float(input.data.dtype):
        input = _ew.cast(input, _dt.get_default_dtype())
    axes = norm_axes(dim, input.data.ndim, "logsumexp")
    return LogSumExp.apply(input, axes=axes, keepdim=keepdim)


class _Logical(Op):
    differentiable = False
    fn = None

    def forward(self, x, axes, keepdim):
        return getattr(self.xp, self.fn)(x, axis=axes, keepdims=keepdim)


class All(_Logical):
    fn = "all"


class Any(_Logical):
    fn = "any"


@tensor_method()
def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element over ``dim`` is non-zero (a bool tensor)."""
    return All.apply(input, axes=norm_axes(dim, input.data.ndim, "all"), keepdim=keepdim)


@tensor_method()
def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element over ``dim`` is non-zero (a bool tensor)."""
    return Any.apply(input, axes=norm_axes(dim, input.data.ndim, "any"), keepdim=keepdim)


class CountNonzero(Op):
    differentiable = False

    def forward(self, x, axes):
        return (x != 0).sum(axis=axes).astype(_dt.int64.np)


@tensor_method()
def count_nonzero(input: Tensor, dim=None) -> Tensor:
    """Number of non-zero elements over ``dim`` (int, tuple or None for all), as int64."""
    return CountNonzero.apply(input, axes=norm_axes(dim, input.data.ndim, "count_nonzero"))


class CumSum(Op):
    """Running sum along ``axis``; the gradient is the running sum from the other end."""

    def forward(self, x, axis, reverse=False, dtype=None):
        xp = self.xp
        if reverse:
            return xp.flip(xp.cumsum(xp.flip(x, axis), axis=axis, dtype=dtype), axis)
        return xp.cumsum(x, axis=axis, dtype=dtype)

    def backward(self, g):
        a = self.attrs
        return CumSum.apply(g, axis=a["axis"], reverse=not a["reverse"], dtype=None)


@tensor_method()
def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Cumulative sum along ``dim``; bool and integer tensors give int64 as in PyTorch.

    >>> import ember
    >>> ember.tensor([1., 2., 3.]).cumsum(0)
    tensor([1., 3., 6.])
    """
    axis = norm_axis(int(dim), input.data.ndim, "cumsum")
    if input.data.ndim == 0:
        return _sh.reshape(CumSum.apply(_sh.reshape(input, (1,)), axis=0, reverse=False,
                                           dtype=_int_to_long(input, dtype)), ())
    return CumSum.apply(input, axis=axis, reverse=False, dtype=_int_to_long(input, dtype))
