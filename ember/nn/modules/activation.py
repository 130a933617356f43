"""Activation layers: thin modules over the activation ops of :mod:`ember.nn.functional`.

``inplace=True`` is accepted for compatibility with PyTorch code; Ember computes out of place.
"""
from __future__ import annotations

from .._util import functional as _F
from ..module import Module

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
           "Softplus", "Softsign", "Hardtanh", "Hardsigmoid", "Hardswish", "LogSigmoid", "Tanhshrink", "Softmax",
           "LogSoftmax", "Softmin", "Threshold", "Softshrink", "Hardshrink"]


def _inplace(inplace: bool) -> str:
    return "inplace=True" if inplace else ""


class _Simple(Module):
    """An activation without settings: ``forward`` calls ``F.<fn>``."""

    fn = ""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return getattr(_F(), self.fn)(input)

    def extra_repr(self) -> str:
        return _inplace(self.inplace)


class _QuietInplace(_Simple):
    """PyTorch does not print ``inplace`` for these."""

    def extra_repr(self) -> str:
        return ""


class ReLU(_Simple):
    """``max(0, x)``.

    >>> import ember
    >>> ember.nn.ReLU()(ember.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """

    fn = "relu"


class ReLU6(_Simple):
    """``min(max(0, x), 6)``."""

    fn = "relu6"


class SELU(_Simple):
    """Scaled ELU with the self-normalising constants."""

    fn = "selu"


class SiLU(_Simple):
    """``x * sigmoid(x)`` (swish)."""

    fn = "silu"


class Mish(_Simple):
    """``x * tanh(softplus(x))``."""

    fn = "mish"


class Hardsigmoid(_QuietInplace):
    fn = "hardsigmoid"


class Hardswish(_QuietInplace):
    fn = "hardswish"


class _NoArgs(Module):
    fn = ""

    def forward(self, input):
        return getattr(_F(), self.fn)(input)


class Sigmoid(_NoArgs):
    """``1 / (1 + exp(-x))``."""

    fn = "sigmoid"


class Tanh(_NoArgs):
    fn = "tanh"


class Softsign(_NoArgs):
    fn = "softsign"


class LogSigmoid(_NoArgs):
    fn = "logsigmoid"


class Tanhshrink(_NoArgs):
    fn = "tanhshrink"


class LeakyReLU(Module):
    """``x`` for x >= 0, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return _F().leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Module):
    """Leaky ReLU with a learnable slope (one, or one per channel of dim 1)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        from ...creation import full
        from ..parameter import Parameter
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(full((num_parameters,), init, dtype=dtype, device=device))

    def forward(self, input):
        return _F().prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""

    fn = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return getattr(_F(), self.fn)(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class CELU(ELU):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    fn = "celu"


class GELU(Module):
    """Gaussian error linear unit; ``approximate='tanh'`` uses the tanh formula."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return _F().gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold`` for stability."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return _F().softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """``x`` clipped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return _F().hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class Threshold(Module):
    """``x`` where x > threshold, else ``value``."""

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input):
        return _F().threshold(input, self.threshold, self.value)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class Softshrink(Module):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""

    fn = "softshrink"

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input):
        return getattr(_F(), self.fn)(input, self.lambd)

    def extra_repr(self) -> str:
        return str(self.lambd)


class Hardshrink(Softshrink):
    """``x`` where ``|x| > lambd``, else 0."""

    fn = "hardshrink"


def _softmax_dim(ndim: int) -> int:
    """PyTorch's legacy choice when ``dim`` is not given: 0 for 0-, 1- and 3-D inputs, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


class _SoftmaxBase(Module):
    fn = ""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = self.dim if self.dim is not None else _softmax_dim(input.ndim)
        return getattr(_F(), self.fn)(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """``exp(x) / sum(exp(x))`` along ``dim``.

    >>> import ember
    >>> ember.nn.Softmax(dim=-1)
    Softmax(dim=-1)
    """

    fn = "softmax"


class LogSoftmax(_SoftmaxBase):
    """``log(softmax(x))`` along ``dim``, computed stably."""

    fn = "log_softmax"


class Softmin(_SoftmaxBase):
    """``softmax(-x)`` along ``dim``."""

    fn = "softmin"
