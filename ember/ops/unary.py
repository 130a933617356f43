"""Elementwise math functions: each forward on ``xp`` beside its derivative."""
from __future__ import annotations

from ._util import Op, Tensor, tensor_method

__all__ = ["exp", "log", "trunc"]


def _float_input(x: Tensor) -> Tensor:
    """Math functions of integer tensors work in the default float dtype, as in PyTorch."""
    if x.data.dtype.kind != "f":
        from .. import dtypes as _dt
        from .elementwise import cast
        return cast(x, _dt.get_default_dtype())
    return x


class Exp(Op):
    save_output = True

    def forward(self, x):
        return self.xp.exp(x)

    def backward(self, g):
        return g * self.output


@tensor_method()
def exp(input: Tensor) -> Tensor:
    """``e ** input``."""
    return Exp.apply(_float_input(input))


class Log(Op):
    save_inputs = (0,)

    def forward(self, x):
        return self.xp.log(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / x


@tensor_method()
def log(input: Tensor) -> Tensor:
    """Natural logarithm."""
    return Log.apply(_float_input(input))


class Trunc(Op):
    def forward(self, x):
        return self.xp.trunc(x)

    def backward(self, g):
        return g * 0


@tensor_method()
def trunc(input: Tensor) -> Tensor:
    """Round towards zero (gradient zero)."""
    return Trunc.apply(input)
