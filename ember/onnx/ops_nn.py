"""ONNX converters for neural-network ops: activations, the softmax family, Gemm, Dropout, DepthToSpace and
SpaceToDepth here; convolution and pooling (:mod:`.ops_conv`), normalization (:mod:`.ops_norm`), recurrent
layers (:mod:`.ops_rnn`), resizing (:mod:`.ops_resize`), attention and losses (:mod:`.ops_attention`), all
registered in :mod:`ember.onnx.registry` when this module is imported.

Every converter computes with Ember's differentiable ops, so gradients flow through an imported model.
"""
from __future__ import annotations

import math

import numpy as np

import ember as E

from ..tensor import Tensor
from .registry import UnsupportedOpError, converter

__all__: list[str] = []


# ---------------------------------------------------------------- helpers shared by the nn converter modules
def node_error(ctx, msg: str) -> Exception:
    """A ValueError naming the ONNX node (``ctx.name``) and op type, for attribute or shape problems."""
    return ValueError(f"ONNX {ctx.node.op_type} node '{ctx.name}': {msg}")


def unsupported(ctx, what: str) -> Exception:
    """An :class:`UnsupportedOpError` naming the node and the feature Ember cannot run."""
    return UnsupportedOpError(f"ONNX {ctx.node.op_type} node '{ctx.name}' (opset {ctx.opset}): {what} is not "
                              "supported by Ember's importer")


def n_outputs(ctx) -> int:
    """How many outputs the node declares (trailing optional ones may be left out)."""
    return len(ctx.node.output)


def wants(ctx, i: int) -> bool:
    """Whether the node's output ``i`` exists and is named (an empty name means an omitted optional output)."""
    return len(ctx.node.output) > i and bool(ctx.node.output[i])


def outputs(ctx, *vals):
    """The first ``n_outputs(ctx)`` values: one per declared node output (a single Tensor for one)."""
    vals = vals[:max(1, n_outputs(ctx))]
    return vals[0] if len(vals) == 1 else tuple(vals)


def optional(inputs, i: int):
    """Input ``i`` of a node, or None when it is omitted (empty name) or past the end of the input list."""
    return inputs[i] if len(inputs) > i else None


def const_tensor(a, like: Tensor | None = None) -> Tensor:
    """A constant (no gradient) Tensor from a NumPy array, in ``like``'s dtype when given."""
    a = np.asarray(a)
    if like is not None:
        a = a.astype(like.data.dtype, copy=False)
    return Tensor(a)


def axis_of(ctx, axis: int, ndim: int) -> int:
    """``axis`` in ``[0, ndim)``, or a clear error naming the node."""
    if not -ndim <= axis < max(ndim, 1):
        raise node_error(ctx, f"axis {axis} is out of range for an input with {ndim} dims")
    return axis % max(ndim, 1)


# ---------------------------------------------------------------- activations
@converter("Relu")
def relu(ctx, inputs, attrs):
    return E.relu(inputs[0])


@converter("LeakyRelu")
def leaky_relu(ctx, inputs, attrs):
    return E.leaky_relu(inputs[0], attrs.get("alpha", 0.01))


@converter("PRelu")
def prelu(ctx, inputs, attrs):
    x, slope = inputs[0], inputs[1]
    return E.where(x > 0, x, x * slope)       # ``slope`` broadcasts to x (unidirectional broadcasting)


@converter("Elu")
def elu(ctx, inputs, attrs):
    return E.elu(inputs[0], attrs.get("alpha", 1.0))


@converter("Selu")
def selu(ctx, inputs, attrs):
    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
    return E.elu(inputs[0], float(alpha)) * float(gamma)


@converter("Celu", since=12)
def celu(ctx, inputs, attrs):
    return E.celu(inputs[0], attrs.get("alpha", 1.0))


@converter("Gelu", since=20)
def gelu(ctx, inputs, attrs):
    return E.gelu(inputs[0], attrs.get("approximate", "none"))


@converter("Sigmoid")
def sigmoid(ctx, inputs, attrs):
    return E.sigmoid(inputs[0])


@converter("HardSigmoid")
def hard_sigmoid(ctx, inputs, attrs):
    return E.clamp(inputs[0] * attrs.get("alpha", 0.2) + attrs.get("beta", 0.5), 0.0, 1.0)


@converter("HardSwish", since=14)
def hard_swish(ctx, inputs, attrs):
    return E.hardswish(inputs[0])


@converter("Softplus")
def softplus(ctx, inputs, attrs):
    return E.softplus(inputs[0])


@converter("Softsign")
def softsign(ctx, inputs, attrs):
    return E.softsign(inputs[0])


@converter("Mish", since=18)
def mish(ctx, inputs, attrs):
    return E.mish(inputs[0])


@converter("ThresholdedRelu", since=10)
def thresholded_relu(ctx, inputs, attrs):
    return E.threshold(inputs[0], float(attrs.get("alpha", 1.0)), 0.0)


@converter("Shrink", since=9)
def shrink(ctx, inputs, attrs):
    x = inputs[0]
    lambd, bias = attrs.get("lambd", 0.5), attrs.get("bias", 0.0)
    if x.data.dtype.kind in "iu":
        lambd, bias = type(x.data.dtype.type(0).item())(lambd), int(bias)
    return E.where(x < -lambd, x + bias, E.where(x > lambd, x - bias, E.zeros_like(x)))


@converter("Swish", since=24)
def swish(ctx, inputs, attrs):
    x, alpha = inputs[0], attrs.get("alpha", 1.0)
    return E.silu(x) if alpha == 1.0 else x * E.sigmoid(x * alpha)


# ---------------------------------------------------------------- softmax family
def _flat_2d(ctx, x: Tensor, axis: int):
    """Opset < 13 semantics: ``x`` as (prod(shape[:axis]), prod(shape[axis:])) and the shape to restore."""
    shape = tuple(x.shape)
    axis = axis_of(ctx, axis, len(shape))
    return x.reshape(math.prod(shape[:axis]), math.prod(shape[axis:])), shape


def _softmax_like(ctx, x: Tensor, attrs, fn):
    if ctx.opset < 13:
        flat, shape = _flat_2d(ctx, x, attrs.get("axis", 1))
        return fn(flat, 1).reshape(shape)
    return fn(x, axis_of(ctx, attrs.get("axis", -1), x.ndim))


@converter("Softmax")
def softmax(ctx, inputs, attrs):
    return _softmax_like(ctx, inputs[0], attrs, E.softmax)


@converter("LogSoftmax")
def log_softmax(ctx, inputs, attrs):
    return _softmax_like(ctx, inputs[0], attrs, E.log_softmax)


def _hardmax(x: Tensor, axis: int) -> Tensor:
    """One-hot of the first maximum along ``axis`` (piecewise constant: no gradient)."""
    n = x.shape[axis]
    hot = E.one_hot(E.argmax(x.detach(), axis), n)
    return E.movedim(hot, -1, axis).to(x.dtype)


@converter("Hardmax")
def hardmax(ctx, inputs, attrs):
    return _softmax_like(ctx, inputs[0], attrs, _hardmax)


# ---------------------------------------------------------------- Gemm
@converter("Gemm")
def gemm(ctx, inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    ta, tb = attrs.get("transA", 0), attrs.get("transB", 0)
    if a.ndim != 2 or b.ndim != 2:
        raise node_error(ctx, f"expected 2-D A and B, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if ta:
        a = a.t()
    if tb and alpha == 1.0 and not ta and (c is None or (beta == 1.0 and c.ndim == 1 and c.shape[0] == b.shape[0])):
        return E.linear(a, b, c)           # the fused x @ W^T + b of a dense layer
    y = E.matmul(a, b.t() if tb else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None and beta != 0.0:
        y = y + (c * beta if beta != 1.0 else c)
    return y


# ---------------------------------------------------------------- Dropout
@converter("Dropout")
def dropout(ctx, inputs, attrs):
    """Identity in inference (the ONNX default), with an all-True mask; real dropout only when the opset-12+
    ``training_mode`` input is true (opset < 7 ``is_test=0`` graphs also run as inference, as onnxruntime does)."""
    x = inputs[0]
    ratio, training = float(attrs.get("ratio", 0.5)), False
    if ctx.opset >= 12:
        if len(inputs) > 1 and inputs[1] is not None:
            ratio = float(ctx.const(inputs[1]).reshape(()))
        if len(inputs) > 2 and inputs[2] is not None:
            training = bool(ctx.const(inputs[2]).reshape(()))
    if not training or ratio == 0.0:
        mask = E.ones(tuple(x.shape), dtype=E.bool_) if wants(ctx, 1) else None
        return outputs(ctx, x, mask)
    if not 0.0 <= ratio < 1.0:
        raise node_error(ctx, f"ratio must be in [0, 1), got {ratio}")
    keep = E.rand(*tuple(x.shape)) >= ratio
    return outputs(ctx, x * keep.to(x.dtype) * (1.0 / (1.0 - ratio)), keep)


# ---------------------------------------------------------------- DepthToSpace / SpaceToDepth
@converter("DepthToSpace")
def depth_to_space(ctx, inputs, attrs):
    x, bs = inputs[0], int(attrs["blocksize"])
    mode = attrs.get("mode", "DCR")
    n, c, h, w = tuple(x.shape)
    if c % (bs * bs):
        raise node_error(ctx, f"channels {c} of input {tuple(x.shape)} are not divisible by blocksize^2 = {bs * bs}")
    if mode == "DCR":
        y = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (bs * bs), bs, bs, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (bs * bs), h * bs, w * bs)


@converter("SpaceToDepth")
def space_to_depth(ctx, inputs, attrs):
    x, bs = inputs[0], int(attrs["blocksize"])
    mode = attrs.get("mode", "DCR")
    n, c, h, w = tuple(x.shape)
    if h % bs or w % bs:
        raise node_error(ctx, f"spatial size {(h, w)} of input {tuple(x.shape)} is not divisible by blocksize {bs}")
    y = x.reshape(n, c, h // bs, bs, w // bs, bs)
    y = y.permute(0, 3, 5, 1, 2, 4) if mode == "DCR" else y.permute(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * bs * bs, h // bs, w // bs)


from . import ops_attention, ops_conv, ops_norm, ops_resize, ops_rnn  # noqa: E402,F401  (register their converters)
