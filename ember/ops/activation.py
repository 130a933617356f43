"""Activation functions (``torch.nn.functional`` names and defaults), each forward beside its gradient.

``relu``, ``sigmoid`` and ``tanh`` sit on the hot path of training, so their gradients come from the
saved output with one expression; the others are written for clarity and numerical stability
(no overflow for large ``|x|``).
"""
from __future__ import annotations

import math

from ..autograd.grad_mode import _state
from ..dtypes import is_float
from ._util import Op, OpError, Tensor, describe, tensor_method
from .unary import _erf_forward, _float_input, _sigmoid_array, erf, exp, masked, sigmoid, tanh
from .where import where

__all__ = ["relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "softplus", "softsign", "hardtanh",
           "hardsigmoid", "hardswish", "mish", "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "threshold",
           "prelu"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_K = math.sqrt(2.0 / math.pi)


def _softplus_array(xp, z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def _check(x, name: str, floats: bool = True) -> Tensor:
    """Activations take a Tensor; most need a floating one (as PyTorch's kernels)."""
    if not isinstance(x, Tensor):
        raise OpError(f"{name}: expected a Tensor, got {describe((x,))}")
    if x.data.dtype.kind == "b" or (floats and not is_float(x.data.dtype)):
        raise OpError(f"{name}: expected a floating point tensor, got {describe((x,))}")
    return x


class Relu(Op):
    """``max(x, 0)``; the gradient ``g * (y > 0)`` reads the saved output."""

    save_output = True

    def forward(self, x):
        return self.xp.maximum(x, 0)

    def backward(self, g):
        y = self.output
        if not _state.enabled:
            return masked(g, y.data > 0)
        return where(y > 0, g, 0.0)


@tensor_method()
def relu(input: Tensor) -> Tensor:
    """Rectified linear unit ``max(input, 0)`` (integers stay integers).

    >>> import ember
    >>> ember.relu(ember.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    return Relu.apply(_check(input, "relu", floats=False))


class Hardtanh(Op):
    """``clamp(x, lo, hi)`` whose gradient passes strictly inside ``(lo, hi)``, as PyTorch's hardtanh."""

    save_inputs = (0,)

    def forward(self, x, lo, hi):
        return self.xp.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(self, g):
        x = self.saved_tensors[0].data
        return masked(g, (x > self.attrs["lo"]) & (x < self.attrs["hi"]))


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``input`` clamped to ``[min_val, max_val]``."""
    _check(input, "hardtanh", floats=False)
    if min_val > max_val:
        raise OpError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return Hardtanh.apply(input, lo=min_val, hi=max_val)


def relu6(input: Tensor) -> Tensor:
    """``min(max(input, 0), 6)``."""
    return hardtanh(_check(input, "relu6", floats=False), 0.0, 6.0)


class LeakyRelu(Op):
    save_inputs = (0,)

    def forward(self, x, slope):
        return self.xp.where(x > 0, x, x * slope)

    def backward(self, g):
        x = self.saved_tensors[0]
        return where(x > 0, g, g * self.attrs["slope"])


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``input`` where positive, else ``negative_slope * input``."""
    return LeakyRelu.apply(_check(input, "leaky_relu"), slope=float(negative_slope))


class Elu(Op):
    """``scale * (x if x > 0 else alpha * (exp(x * input_scale) - 1))``: ELU, SELU and CELU in one op."""

    save_inputs = (0,)

    def forward(self, x, alpha, scale, input_scale):
        xp = self.xp
        neg = xp.expm1(xp.minimum(x, 0) * input_scale) * (alpha * scale)
        return xp.where(x > 0, x * scale, neg)

    def backward(self, g):
        from .elementwise import minimum
        x = self.saved_tensors[0]
        a = self.attrs
        neg = g * (exp(minimum(x, 0.0) * a["input_scale"]) * (a["alpha"] * a["scale"] * a["input_scale"]))
        return where(x > 0, g * a["scale"], neg)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """Exponential linear unit: ``input`` if positive, else ``alpha * (exp(input) - 1)``."""
    return Elu.apply(_check(input, "elu"), alpha=float(alpha), scale=1.0, input_scale=1.0)


def selu(input: Tensor) -> Tensor:
    """Self-normalising ELU with PyTorch's fixed ``alpha`` and ``scale``."""
    return Elu.apply(_check(input, "selu"), alpha=_SELU_ALPHA, scale=_SELU_SCALE, input_scale=1.0)


def celu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise OpError("celu: alpha must not be 0 (it divides the input)")
    return Elu.apply(_check(input, "celu"), alpha=float(alpha), scale=1.0, input_scale=1.0 / alpha)


class Gelu(Op):
    """Gaussian error linear unit, exact (``x * Phi(x)`` with erf) or with PyTorch's tanh approximation."""

    save_inputs = (0,)

    def forward(self, x, approximate):
        xp = self.xp
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_TANH_K * (x + 0.044715 * x * x * x)))
        return 0.5 * x * (1 + _erf_forward(xp, x * _SQRT_HALF, complement=False))

    def backward(self, g):
        x = self.saved_tensors[0]
        if self.attrs["approximate"] == "tanh":
            x2 = x * x
            t = tanh(_TANH_K * (x + 0.044715 * x2 * x))
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * (_TANH_K * (1 + 3 * 0.044715 * x2)))
        cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
        pdf = exp(x * x * -0.5) * _INV_SQRT_2PI
        return g * (cdf + x * pdf)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """GELU ``input * Phi(input)``; ``approximate='tanh'`` uses the tanh formula, as PyTorch.

    >>> import ember
    >>> ember.gelu(ember.tensor([-1.0, 0.0, 1.0]))
    tensor([-0.1587,  0.0000,  0.8413])
    """
    if approximate not in ("none", "tanh"):
        raise OpError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(_check(input, "gelu"), approximate=approximate)


class Silu(Op):
    """``x * sigmoid(x)`` (swish); the gradient is ``s * (1 + x * (1 - s))``."""

    save_inputs = (0,)

    def forward(self, x):
        return x * _sigmoid_array(self.xp, x)

    def backward(self, g):
        x = self.saved_tensors[0]
        s = sigmoid(x)
        return g * (s * (1 + x * (1 - s)))


def silu(input: Tensor) -> Tensor:
    """SiLU / swish: ``input * sigmoid(input)``."""
    return Silu.apply(_check(input, "silu"))


class Softplus(Op):
    """``log(1 + exp(beta * x)) / beta``, computed as ``max(z, 0) + log1p(exp(-|z|))``; linear past ``threshold``."""

    save_inputs = (0,)

    def forward(self, x, beta, threshold):
        z = x * beta if beta != 1 else x
        soft = _softplus_array(self.xp, z)
        return self.xp.where(z > threshold, x, soft / beta if beta != 1 else soft)

    def backward(self, g):
        x = self.saved_tensors[0]
        beta, threshold = self.attrs["beta"], self.attrs["threshold"]
        z = x * beta if beta != 1 else x
        return where(z > threshold, g, g * sigmoid(z))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """Smooth relu ``log(1 + exp(beta * input)) / beta``, reverting to ``input`` where ``beta * input > threshold``."""
    if beta == 0:
        raise OpError("softplus: beta must not be 0 (it divides the result)")
    return Softplus.apply(_check(input, "softplus"), beta=float(beta), threshold=float(threshold))


class Softsign(Op):
    save_inputs = (0,)

    def forward(self, x):
        return x / (1 + self.xp.abs(x))

    def backward(self, g):
        from .unary import abs as abs_
        d = 1 + abs_(self.saved_tensors[0])
        return g / (d * d)


def softsign(input: Tensor) -> Tensor:
    """``input / (1 + |input|)``."""
    return Softsign.apply(_float_input(_check(input, "softsign", floats=False)))


class Hardsigmoid(Op):
    save_inputs = (0,)

    def forward(self, x):
        return self.xp.clip(x / 6 + 0.5, 0, 1)

    def backward(self, g):
        x = self.saved_tensors[0].data
        return masked(g, (x > -3) & (x < 3)) * (1 / 6)


def hardsigmoid(input: Tensor) -> Tensor:
    """Piecewise-linear sigmoid ``relu6(input + 3) / 6``."""
    return Hardsigmoid.apply(_check(input, "hardsigmoid"))


class Hardswish(Op):
    save_inputs = (0,)

    def forward(self, x):
        return x * self.xp.clip(x / 6 + 0.5, 0, 1)

    def backward(self, g):
        x = self.saved_tensors[0]
        inside = (x > -3) & (x < 3)
        return where(inside, g * (x / 3 + 0.5), where(x >= 3, g, 0.0))


def hardswish(input: Tensor) -> Tensor:
    """``input * relu6(input + 3) / 6`` (MobileNetV3)."""
    return Hardswish.apply(_check(input, "hardswish"))


class Mish(Op):
    """``x * tanh(softplus(x))``."""

    save_inputs = (0,)

    def forward(self, x):
        return x * self.xp.tanh(_softplus_array(self.xp, x))

    def backward(self, g):
        x = self.saved_tensors[0]
        t = tanh(Softplus.apply(x, beta=1.0, threshold=20.0))
        return g * (t + x * sigmoid(x) * (1 - t * t))


def mish(input: Tensor) -> Tensor:
    """Mish ``input * tanh(softplus(input))``."""
    return Mish.apply(_check(input, "mish"))


class Logsigmoid(Op):
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``; the gradient is ``sigmoid(-x)``."""

    save_inputs = (0,)

    def forward(self, x):
        xp = self.xp
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, g):
        return g * sigmoid(-self.saved_tensors[0])


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(input))`` without overflow or log(0)."""
    return Logsigmoid.apply(_check(input, "logsigmoid"))


class Tanhshrink(Op):
    save_inputs = (0,)

    def forward(self, x):
        return x - self.xp.tanh(x)

    def backward(self, g):
        t = tanh(self.saved_tensors[0])
        return g * (t * t)


def tanhshrink(input: Tensor) -> Tensor:
    """``input - tanh(input)``."""
    return Tanhshrink.apply(_float_input(_check(input, "tanhshrink", floats=False)))


class Softshrink(Op):
    save_inputs = (0,)

    def forward(self, x, lambd):
        xp = self.xp
        return xp.where(x > lambd, x - lambd, xp.where(x < -lambd, x + lambd, 0)).astype(x.dtype, copy=False)

    def backward(self, g):
        x = self.saved_tensors[0].data
        lambd = self.attrs["lambd"]
        return masked(g, (x > lambd) | (x < -lambd))


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input - lambd`` above ``lambd``, ``input + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise OpError(f"softshrink: lambd must be at least 0, got {lambd}")
    return Softshrink.apply(_check(input, "softshrink"), lambd=float(lambd))


class Hardshrink(Op):
    save_inputs = (0,)

    def forward(self, x, lambd):
        return self.xp.where((x > lambd) | (x < -lambd), x, 0).astype(x.dtype, copy=False)

    def backward(self, g):
        x = self.saved_tensors[0].data
        lambd = self.attrs["lambd"]
        return masked(g, (x > lambd) | (x < -lambd))


@tensor_method()
def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input`` where ``|input| > lambd``, else 0."""
    return Hardshrink.apply(_check(input, "hardshrink"), lambd=float(lambd))


class Threshold(Op):
    save_inputs = (0,)

    def forward(self, x, threshold, value):
        return self.xp.where(x > threshold, x, value).astype(x.dtype, copy=False)

    def backward(self, g):
        return masked(g, self.saved_tensors[0].data > self.attrs["threshold"])


def threshold(input: Tensor, threshold: float, value: float) -> Tensor:
    """``input`` where ``input > threshold``, else ``value``."""
    return Threshold.apply(_check(input, "threshold", floats=False), threshold=threshold, value=value)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``input`` where positive, else ``weight * input``; ``weight`` has 1 or ``C = input.shape[1]`` elements."""
    _check(input, "prelu")
    if not isinstance(weight, Tensor) or weight.data.ndim > 1:
        raise OpError(f"prelu: weight must be a 0-d or 1-d tensor, got {describe((weight,))}")
    n = weight.data.size
    channels = input.data.shape[1] if input.data.ndim >= 2 else 1
    if n != 1 and n != channels:
        raise OpError(f"prelu: weight has {n} elements but the input {describe((input,))} has {channels} channels "
                      "(dim 1); expected 1 or that many")
    if n != 1 and input.data.ndim > 2:
        weight = weight.reshape((n,) + (1,) * (input.data.ndim - 2))
    return where(input > 0, input, weight * input)

