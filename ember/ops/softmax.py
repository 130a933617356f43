"""The softmax family: ``softmax`` and ``log_softmax`` along one dim, stable for any input range.

Both subtract the maximum before exponentiating, and both differentiate from their saved
output with Ember ops, so second derivatives work.
"""
from __future__ import annotations

from ..dtypes import is_float
from . import elementwise as _ew
from . import reduce as _rd
from . import unary as _un
from ._util import Op, OpError, Tensor, norm_axis, tensor_method

__all__ = ["softmax", "log_softmax"]


class Softmax(Op):
    """``exp(x - max) / sum(exp(x - max))``; gradient ``out * (g - sum(g * out))``."""

    save_output = True

    def forward(self, x, axis):
        e = self.xp.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        return e

    def backward(self, g):
        out = self.output
        return out * (g - _rd.sum(g * out, self.attrs["axis"], keepdim=True))


class LogSoftmax(Op):
    """``x - max - log(sum(exp(x - max)))``; gradient ``g - exp(out) * sum(g)``."""

    save_output = True

    def forward(self, x, axis):
        xp = self.xp
        shifted = x - x.max(axis=axis, keepdims=True)
        shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return shifted

    def backward(self, g):
        return g - _un.exp(self.output) * _rd.sum(g, self.attrs["axis"], keepdim=True)


def _prepare(input: Tensor, dim, dtype, op: str):
    if dim is None:
        raise OpError(f"{op}: pass the dim to normalise over, e.g. {op}(x, dim=-1) for an input of shape "
                      f"{tuple(input.shape)} (PyTorch's implicit choice of dim is deprecated)")
    if dtype is not None:
        input = _ew.cast(input, dtype)
    if not is_float(input.data.dtype):
        raise OpError(f"{op}: expected a floating point tensor, got {input.dtype}; pass dtype=ember.float32 "
                      "or call .float() first")
    nd = input.data.ndim
    axis = norm_axis(int(dim), nd, op)
    return input, (axis if nd else None)


@tensor_method()
def softmax(input: Tensor, dim=None, dtype=None, *, _stacklevel: int = 3) -> Tensor:
    """Normalise ``exp(input)`` to sum to 1 along ``dim`` (``_stacklevel`` is accepted for ``F.softmax`` code).

    >>> import ember
    >>> ember.tensor([1000., 1000.]).softmax(0)
    tensor([0.5000, 0.5000])
    """
    x, axis = _prepare(input, dim, dtype, "softmax")
    return Softmax.apply(x, axis=axis)


@tensor_method()
def log_softmax(input: Tensor, dim=None, dtype=None, *, _stacklevel: int = 3) -> Tensor:
    """Logarithm of :func:`softmax`, computed directly (no ``log(0)`` for very negative inputs).

    >>> import ember
    >>> ember.tensor([0., -1000.]).log_softmax(0)
    tensor([    0., -1000.])
    """
    x, axis = _prepare(input, dim, dtype, "log_softmax")
    return LogSoftmax.apply(x, axis=axis)

