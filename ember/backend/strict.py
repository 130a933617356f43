"""A strict CPU array module: NumPy restricted to what CuPy also offers, to prove ops stay portable.

``EMBER_STRICT_BACKEND=1`` makes it the CPU device's array module (``xp``): every op then sees a module
that has only names CuPy has with the same meaning (no ``errstate``, no ufunc methods such as
``add.at``, no ``where=``/``initial=`` on reductions, no Python lists where CuPy wants arrays), and the
arrays it makes are :class:`StrictArray`, an ``ndarray`` subclass, so oneDNN and numba fast paths (which
check ``xp is numpy`` or ``type(a) is numpy.ndarray``) are skipped exactly as they are for CuPy.
A name missing here raises ``AttributeError`` naming it: either route the op through a backend helper
with a CuPy twin (:func:`ember.backend.scatter_add_at`) or add the name after checking CuPy's API.
Arrays turn back into plain NumPy at the boundary (``Tensor.numpy()``).
"""
from __future__ import annotations

import functools
import types

import numpy

__all__ = ["StrictArray", "module", "to_numpy"]


class StrictArray(numpy.ndarray):
    """A NumPy array made by the strict module; ufunc results and views keep this type.

    Fresh results own their memory (``.base`` is None), as NumPy's do: Ember tells views from new arrays by
    ``.base``, so a fresh result must not be a view of a plain array.
    """

    __slots__ = ()

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        if type(arr) is numpy.ndarray and arr.base is None:
            return _own(arr)                 # a 0-d result stays an array, as CuPy's do
        return numpy.ndarray.__array_wrap__(self, arr, context, return_scalar)


def _own(r):
    """A StrictArray owning a copy of the plain, owning array ``r``."""
    a = numpy.ndarray.__new__(StrictArray, r.shape, r.dtype)
    numpy.copyto(a, r)
    return a


def to_numpy(a):
    """A plain ``numpy.ndarray`` view of ``a`` (unchanged when it already is one)."""
    return a.view(numpy.ndarray) if type(a) is StrictArray else a


def _strict(r):
    t = type(r)
    if t is numpy.ndarray:      # a view of a plain input stays plain (its .base must stay that input; both are CPU)
        return _own(r) if r.base is None else r
    if t is tuple or t is list:
        return t(_strict(x) for x in r)
    if isinstance(r, numpy.generic):      # CuPy returns 0-d arrays where NumPy returns scalars
        return _own(numpy.asarray(r))
    return r


# CuPy's names with NumPy's meaning (cupy 13/14 top level); anything not listed is treated as NumPy-only.
_UFUNCS = """add subtract multiply divide true_divide floor_divide negative positive power float_power remainder mod
fmod divmod absolute fabs rint sign exp exp2 log log2 log10 expm1 log1p sqrt square cbrt reciprocal sin cos tan
arcsin arccos arctan arctan2 hypot sinh cosh tanh arcsinh arccosh arctanh deg2rad rad2deg degrees radians greater
greater_equal less less_equal not_equal equal logical_and logical_or logical_xor logical_not maximum minimum fmax
fmin bitwise_and bitwise_or bitwise_xor bitwise_not invert left_shift right_shift isfinite isinf isnan signbit
copysign nextafter modf ldexp frexp floor ceil trunc logaddexp logaddexp2 gcd lcm conj conjugate""".split()
_ALIASES = {"abs": "absolute"}
_FUNCTIONS = """array asarray asanyarray ascontiguousarray asfortranarray empty empty_like zeros zeros_like ones
ones_like full full_like arange linspace logspace eye identity tri tril triu diag diagflat diagonal trace meshgrid
indices ix_ copy reshape ravel squeeze expand_dims atleast_1d atleast_2d atleast_3d transpose swapaxes moveaxis
rollaxis broadcast_to broadcast_arrays concatenate stack vstack hstack dstack column_stack split array_split hsplit
vsplit tile repeat flip fliplr flipud roll rot90 where nonzero argwhere flatnonzero count_nonzero select choose
compress extract clip around round fix isclose allclose array_equal any all sum prod mean var std median average
amax amin max min ptp argmax argmin nansum nanmean nanmax nanmin nanvar nanstd nanprod nancumsum nanargmax
nanargmin cumsum cumprod diff percentile quantile histogram bincount digitize sinc interp convolve cov corrcoef
isscalar iscomplexobj isrealobj real imag angle may_share_memory shares_memory sort argsort lexsort partition
argpartition searchsorted unique isin take take_along_axis put_along_axis put place putmask copyto matmul dot vdot
inner outer
kron tensordot einsum ravel_multi_index unravel_index nan_to_num pad result_type can_cast promote_types
common_type min_scalar_type issubdtype finfo iinfo dtype ndim shape size packbits unpackbits apply_along_axis
triu_indices tril_indices diag_indices fill_diagonal append resize trim_zeros""".split()
_TYPES = """ndarray bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64
complex128 intp uintp generic number integer signedinteger unsignedinteger floating complexfloating inexact
newaxis pi e inf nan euler_gamma""".split()
_LINALG = "norm det inv solve svd qr cholesky eigh eigvalsh slogdet pinv lstsq matrix_power matrix_rank".split()
_NO_KWARGS = ("where", "initial")    # NumPy-only keywords of reductions and ufuncs
_REDUCTIONS = set("""sum prod mean var std amax amin max min any all nansum nanmean nanmax nanmin nanvar nanstd nanprod
""".split())


def _wrap(fn, name: str):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        for k in _NO_KWARGS if name in _REDUCTIONS else ():
            if k in kwargs:
                raise TypeError(f"strict backend: {name}(..., {k}=) is NumPy-only (CuPy has no {k}= argument)")
        return _strict(fn(*args, **kwargs))
    return call


class _Ufunc:
    """A ufunc without NumPy's methods (``at``, ``reduce``, ``outer``...): CuPy's do not all have them."""

    __slots__ = ("_f", "__name__", "nin", "nout")

    def __init__(self, f):
        self._f, self.__name__, self.nin, self.nout = f, f.__name__, f.nin, f.nout

    def __call__(self, *args, **kwargs):
        if "where" in kwargs:
            raise TypeError(f"strict backend: {self.__name__}(..., where=) is NumPy-only")
        r = self._f(*args, **kwargs)
        return _strict(r) if type(r) is not StrictArray else r

    def __getattr__(self, attr):
        raise AttributeError(f"strict backend: {self.__name__}.{attr} is NumPy-only (CuPy's ufuncs lack it); use a "
                             f"backend helper with a CuPy twin (e.g. ember.backend.scatter_add_at for add.at)")


class _StrictModule(types.ModuleType):
    def __getattr__(self, name):
        raise AttributeError(f"strict backend: xp.{name} is NumPy-only or not known to exist in CuPy with the same "
                             f"meaning; route it through an ember.backend helper with a CuPy twin")


def _build() -> types.ModuleType:
    m = _StrictModule("ember.backend.strict.xp", "NumPy restricted to CuPy's API (see ember.backend.strict)")
    for name in _UFUNCS:
        setattr(m, name, _Ufunc(getattr(numpy, name)))
    for alias, name in _ALIASES.items():
        setattr(m, alias, getattr(m, name))
    for name in _FUNCTIONS:
        setattr(m, name, _wrap(getattr(numpy, name), name))
    for name in _TYPES:
        setattr(m, name, getattr(numpy, name))
    linalg = _StrictModule("ember.backend.strict.xp.linalg")
    for name in _LINALG:
        setattr(linalg, name, _wrap(getattr(numpy.linalg, name), "linalg." + name))
    m.linalg = linalg
    lib = _StrictModule("ember.backend.strict.xp.lib")
    lib.stride_tricks = _StrictModule("ember.backend.strict.xp.lib.stride_tricks")
    lib.stride_tricks.as_strided = _wrap(numpy.lib.stride_tricks.as_strided, "lib.stride_tricks.as_strided")
    lib.stride_tricks.sliding_window_view = _wrap(numpy.lib.stride_tricks.sliding_window_view,
                                                  "lib.stride_tricks.sliding_window_view")
    m.lib = lib
    m.random = _StrictModule("ember.backend.strict.xp.random")
    m.random.default_rng = numpy.random.default_rng     # cupy.random.default_rng: a generator of this device's arrays
    m.__name__ = "ember.backend.strict.xp"
    return m


module = _build()
