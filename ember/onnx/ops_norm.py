"""ONNX converters for normalization: BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, MeanVarianceNormalization, LRN and RMSNormalization, on Ember's fused normalization ops
where ONNX's form matches them and composed from reductions otherwise.
"""
from __future__ import annotations

import ember as E

from ..tensor import Tensor
from .ops_nn import axis_of, node_error, outputs, wants
from .registry import converter

__all__: list[str] = []

_LOW_PRECISION = ("float16",)      # stash_type=1: statistics of these dtypes are computed in float32


def _stash(x: Tensor, attrs):
    """``x`` in the precision its statistics are computed in (``stash_type``) and the dtype to return to."""
    if attrs.get("stash_type", 1) == 1 and x.data.dtype.name in _LOW_PRECISION:
        return x.float(), x.dtype
    return x, None


def _channel_shape(x: Tensor) -> tuple:
    return (1, -1) + (1,) * (x.ndim - 2)


@converter("BatchNormalization")
def batch_normalization(ctx, inputs, attrs):
    """Inference form (running statistics); with ``training_mode=1`` (opset 14+) the batch statistics and the
    updated running mean and variance as ONNX defines them (``running * momentum + batch * (1 - momentum)``)."""
    x, scale, bias, mean, var = inputs[:5]
    if scale.dtype != x.dtype:                  # opset 15 allows parameters in another float type than X
        scale, bias, mean, var = (t.to(x.dtype) for t in (scale, bias, mean, var))
    eps = float(attrs.get("epsilon", 1e-5))
    if ctx.opset < 9 and attrs.get("spatial", 1) == 0:
        c = tuple(x.shape[1:])
        shape = (1,) + c
        y = (x - mean.reshape(shape)) * (var.reshape(shape) + eps).rsqrt() * scale.reshape(shape) + bias.reshape(shape)
        return outputs(ctx, y)
    if ctx.opset >= 14 and attrs.get("training_mode", 0):
        momentum = float(attrs.get("momentum", 0.9))
        axes = tuple(i for i in range(x.ndim) if i != 1)
        y = E.batch_norm(x, None, None, scale, bias, training=True, eps=eps)
        if not (wants(ctx, 1) or wants(ctx, 2)):
            return outputs(ctx, y)
        xd = x.detach()
        bm, bv = xd.mean(axes), xd.var(axes, correction=0)
        return outputs(ctx, y, mean * momentum + bm * (1 - momentum), var * momentum + bv * (1 - momentum))
    return outputs(ctx, E.batch_norm(x, mean, var, scale, bias, training=False, eps=eps))


@converter("InstanceNormalization")
def instance_normalization(ctx, inputs, attrs):
    x, scale, bias = inputs[:3]
    # group norm with one channel per group is instance norm, and allows a single spatial element
    return E.group_norm(x, x.shape[1], scale, bias, float(attrs.get("epsilon", 1e-5)))


@converter("LayerNormalization", since=17)
def layer_normalization(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = axis_of(ctx, attrs.get("axis", -1), x.ndim)
    eps = float(attrs.get("epsilon", 1e-5))
    xs, back = _stash(x, attrs)
    norm_shape = tuple(x.shape[axis:])
    fused_w = scale is not None and tuple(scale.shape) == norm_shape and back is None
    fused_b = bias is None or tuple(bias.shape) == norm_shape
    if fused_w and fused_b:
        y = E.layer_norm(xs, norm_shape, scale, bias, eps)
    else:
        y = E.layer_norm(xs, norm_shape, None, None, eps)
        if back is not None:
            y = y.to(back)
        y = y * scale if scale is not None else y
        y = y + bias if bias is not None else y
    if not (wants(ctx, 1) or wants(ctx, 2)):
        return outputs(ctx, y)
    axes = tuple(range(axis, x.ndim))
    m = xs.mean(axes, keepdim=True)
    d = xs - m
    inv = ((d * d).mean(axes, keepdim=True) + eps).rsqrt()
    return outputs(ctx, y, m, inv)


@converter("GroupNormalization", since=18)
def group_normalization(ctx, inputs, attrs):
    x, scale, bias = inputs[:3]
    g = int(attrs["num_groups"])
    c = x.shape[1]
    if g < 1 or c % g:
        raise node_error(ctx, f"num_groups={g} must divide the {c} channels of the input {tuple(x.shape)}")
    eps = float(attrs.get("epsilon", 1e-5))
    xs, back = _stash(x, attrs)
    if ctx.opset < 21 or tuple(scale.shape) != (c,):       # opset 18: one scale and bias per group
        if tuple(scale.shape) == (g,) and g != c:
            scale = scale.reshape(g, 1).expand(g, c // g).reshape(c)
            bias = bias.reshape(g, 1).expand(g, c // g).reshape(c)
    if back is not None:
        y = E.group_norm(xs, g, None, None, eps).to(back)
        return y * scale.reshape(_channel_shape(x)) + bias.reshape(_channel_shape(x))
    return E.group_norm(xs, g, scale, bias, eps)


@converter("MeanVarianceNormalization", since=9)
def mean_variance_normalization(ctx, inputs, attrs):
    x = inputs[0]
    axes = tuple(axis_of(ctx, a, x.ndim) for a in attrs.get("axes", [0, 2, 3]))
    d = x - x.mean(axes, keepdim=True)
    return d * ((d * d).mean(axes, keepdim=True) + 1e-9).rsqrt()


@converter("LRN")
def lrn(ctx, inputs, attrs):
    x = inputs[0]
    size = int(attrs["size"])
    alpha, beta, bias = float(attrs.get("alpha", 1e-4)), float(attrs.get("beta", 0.75)), float(attrs.get("bias", 1.0))
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    c = x.shape[1]
    sq = E.pad(x * x, [0, 0] * (x.ndim - 2) + [lo, hi])        # zero channels on both sides of dim 1
    acc = None
    for j in range(size):                                      # a sum over the window's channel offsets
        sl = sq[:, j:j + c]
        acc = sl if acc is None else acc + sl
    return x / (acc * (alpha / size) + bias) ** beta


@converter("RMSNormalization", since=23)
def rms_normalization(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    axis = axis_of(ctx, attrs.get("axis", -1), x.ndim)
    eps = float(attrs.get("epsilon", 1e-5))
    xs, back = _stash(x, attrs)
    axes = tuple(range(axis, x.ndim))
    y = xs * ((xs * xs).mean(axes, keepdim=True) + eps).rsqrt()
    if back is not None:
        y = y.to(back)
    return y * scale
