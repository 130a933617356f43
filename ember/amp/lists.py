"""Which Ember ops autocast runs in low precision, in float32, or at the widest input dtype.

The lists follow PyTorch's "Autocast Op Reference" (CPU and CUDA lists, torch 2.x), mapped onto
Ember's op classes. An op that is in no list runs in the dtype its inputs already have.

* ``LOWER``: float32 inputs are cast to the autocast dtype (float16 / bfloat16); float64 is left alone.
* ``FP32``: low-precision inputs are cast to float32 (numerically sensitive ops: losses, exp/log, sums).
* ``PROMOTE``: every floating input is cast to the widest floating dtype among them.
* ``FOLLOW``: the result takes the first input's dtype (PyTorch's norms: a bfloat16 input with float32
  weight and bias gives a bfloat16 output).
* ``BANNED``: raise (PyTorch refuses ``binary_cross_entropy`` under CUDA autocast: use the logits form).

An entry may also be a function ``(inputs, attrs) -> policy`` for ops whose PyTorch twin depends on
arguments (``scalar / tensor`` is float32 on CUDA, ``tensor / tensor`` is not).
"""
from __future__ import annotations

from ..nn._cross_entropy import CrossEntropy, NLLLoss
from ..nn._losses import BinaryCrossEntropy
from ..ops import activation, attention, conv, elementwise, index, join, linalg, normalization, reduce, rnn, shape
from ..ops import unary
from ..ops.softmax import LogSoftmax, Softmax
from ..ops.where import Where
from ..tensor import Tensor

__all__ = ["LOWER", "FP32", "PROMOTE", "FOLLOW", "BANNED", "CPU", "CUDA", "PASSTHROUGH", "policy_table", "policy_of"]

LOWER, FP32, PROMOTE, FOLLOW, BANNED = "lower", "fp32", "promote", "follow", "banned"

# PyTorch CPU: conv1d/2d/3d, conv_transpose*, bmm, mm, baddbmm, addmm, linear, matmul, einsum (via bmm),
# scaled_dot_product_attention, mkldnn LSTM; fp32: prod and the losses; promote: cat, stack, index_copy.
CPU: dict = {
    linalg.MatMul: LOWER, linalg.Linear: LOWER, linalg.Einsum: LOWER,
    conv.Conv2d: LOWER, conv.ConvTranspose2d: LOWER,
    attention.ScaledDotProductAttention: LOWER,
    rnn.RecurrentScan: lambda inputs, attrs: LOWER if attrs.get("mode") == "lstm" else None,
    reduce.Prod: FP32,
    CrossEntropy: FP32, NLLLoss: FP32, BinaryCrossEntropy: FP32,
    join.Cat: PROMOTE, index.IndexPut: PROMOTE,
    normalization.Normalize: FOLLOW, normalization.ChannelAffine: FOLLOW,
}


def _rdiv(inputs, attrs):
    """``scalar / tensor`` (``__rtruediv__``) is on CUDA's float32 list; ``tensor / x`` is in no list."""
    return FP32 if not isinstance(inputs[0], Tensor) else None


# PyTorch CUDA: the same matmul/conv family in low precision (plus the RNN cells), a longer float32 list
# (pow, exp/log family, softmax, sums, norms, losses), promote for index_put/cat-like ops.
CUDA: dict = {
    linalg.MatMul: LOWER, linalg.Linear: LOWER, linalg.Einsum: LOWER,
    conv.Conv2d: LOWER, conv.ConvTranspose2d: LOWER,
    attention.ScaledDotProductAttention: LOWER, rnn.RecurrentScan: LOWER,
    unary.Exp: FP32, unary.Expm1: FP32, unary.Log: FP32, unary.Log2: FP32, unary.Log10: FP32, unary.Log1p: FP32,
    elementwise.Pow: FP32, elementwise.Div: _rdiv, unary.Reciprocal: FP32, unary.Rsqrt: FP32,
    unary.Sinh: FP32, unary.Cosh: FP32, unary.Tan: FP32, unary.Asin: FP32, unary.Acos: FP32,
    activation.Softplus: FP32, Softmax: FP32, LogSoftmax: FP32,
    reduce.Sum: FP32, reduce.Prod: FP32, reduce.CumSum: FP32, reduce.Norm: FP32, reduce.LogSumExp: FP32,
    # layer_norm / group_norm (per-sample statistics) are float32; batch norm keeps its input's dtype
    normalization.Normalize: lambda inputs, attrs: FP32 if attrs.get("per_sample") else FOLLOW,
    normalization.ChannelAffine: FOLLOW,
    CrossEntropy: FP32, NLLLoss: FP32, BinaryCrossEntropy: BANNED,
    index.IndexPut: PROMOTE, join.Cat: PROMOTE, Where: PROMOTE,
}

# Ops that only move or select elements: they run natively on low-precision arrays on the CPU too
# (everything else with low-precision inputs is computed in float32 there and rounded, see autocast.py).
PASSTHROUGH = frozenset({
    elementwise.Cast, shape.Reshape, shape.ViewDtype, shape.Expand, shape.Permute, shape.Flip, shape.Roll,
    shape.Clone, join.Cat, join.Split, join.ConstantPad, index.GetItem,
})


_RESOLVED: dict = {"cpu": {}, "cuda": {}}


def policy_table(device_type: str) -> dict:
    """The op-class -> policy table for ``'cpu'`` or ``'cuda'``."""
    return CUDA if device_type == "cuda" else CPU


def policy_of(device_type: str, cls):
    """The entry for op class ``cls``, inherited from its bases (einsum makes a subclass per arity); memoized."""
    cache = _RESOLVED[device_type]
    try:
        return cache[cls]
    except KeyError:
        table = policy_table(device_type)
        entry = next((table[c] for c in cls.__mro__ if c in table), None)
        cache[cls] = entry
        return entry
