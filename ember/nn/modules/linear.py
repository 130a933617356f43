"""Affine layers: ``Linear`` and ``Identity``."""
from __future__ import annotations

import math

from ... import dtypes as _dt
from ...creation import empty
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["Linear", "Identity"]


class Identity(Module):
    """Returns its input unchanged (a placeholder that accepts and ignores any arguments)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` (PyTorch's ``nn.Linear``), over the last dim of ``x``.

    ``weight`` has shape (out_features, in_features) and, like ``bias``, starts as
    U(-1/sqrt(in_features), 1/sqrt(in_features)) (PyTorch's default initialisation).

    >>> import ember
    >>> fc = ember.nn.Linear(3, 2)
    >>> fc
    Linear(in_features=3, out_features=2, bias=True)
    >>> fc(ember.ones(5, 3)).shape
    ember.Size([5, 2])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"Linear: in_features and out_features must be >= 0, got {in_features}, {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        from ...ops.linalg import linear
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
