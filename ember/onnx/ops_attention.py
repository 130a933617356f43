"""ONNX converters for Attention (opsets 23-25: 3-D and 4-D inputs, grouped-query heads, masks, causal, key/value
cache, softcap, the QK-product output, padded key lengths, sliding windows), RotaryEmbedding, and the losses
NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Attention runs on Ember's fused ``scaled_dot_product_attention`` when ONNX asks for nothing it lacks (softcap, the
QK-product output), else as the same computation in Ember ops; masks become one additive bias either way.
"""
from __future__ import annotations

import math

import numpy as np

import ember as E

from ..ops.attention import scaled_dot_product_attention
from .ops_nn import const_tensor, node_error, optional, outputs, wants
from .registry import converter

__all__: list[str] = []


# ---------------------------------------------------------------- Attention
def _heads(x, n: int):
    """A 3-D (B, S, n*D) input as (B, n, S, D)."""
    b, s, hidden = tuple(x.shape)
    return x.reshape(b, s, n, hidden // n).permute(0, 2, 1, 3)


def _repeat_heads(t, hq: int):
    """Grouped-query attention: each of the key/value heads shared by ``hq / hk`` consecutive query heads."""
    b, hk, s, d = tuple(t.shape)
    if hk == hq:
        return t
    return t.unsqueeze(2).expand(b, hk, hq // hk, s, d).reshape(b, hq, s, d)


def _allowed(ctx, attrs, L: int, S: int, past: int, nonpad):
    """The boolean constraints that causal, sliding-window and padded-length attention put on the scores
    (broadcastable to (B, 1, L, S)), or None when there are none."""
    causal = bool(attrs.get("is_causal", 0))
    left, right = int(attrs.get("left_window_size", -1)), int(attrs.get("right_window_size", -1))
    if nonpad is not None and not past:
        offset = (nonpad.reshape(-1) - L).reshape(-1, 1, 1, 1)
    else:
        offset = past
    i = np.arange(L).reshape(L, 1)
    j = np.arange(S).reshape(1, S)
    diff = i + offset - j
    allowed = None

    def both(a, b):
        return b if a is None else a & b
    if causal:
        allowed = both(allowed, diff >= 0)
    if left >= 0:
        allowed = both(allowed, diff <= left)
    if right >= 0:
        allowed = both(allowed, -diff <= right)
    if nonpad is not None:
        allowed = both(allowed, (np.arange(S)[None, :] < nonpad.reshape(-1, 1)).reshape(-1, 1, 1, S))
    return allowed


@converter("Attention", since=23)
def attention(ctx, inputs, attrs):
    q, k, v = inputs[0], inputs[1], inputs[2]
    mask, past_k, past_v, nonpad_t = (optional(inputs, i) for i in (3, 4, 5, 6))
    three_d = q.ndim == 3
    if three_d:
        if "q_num_heads" not in attrs or "kv_num_heads" not in attrs:
            raise node_error(ctx, "3-D inputs need the q_num_heads and kv_num_heads attributes")
        q, k, v = _heads(q, attrs["q_num_heads"]), _heads(k, attrs["kv_num_heads"]), _heads(v, attrs["kv_num_heads"])
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise node_error(ctx, f"expected 3-D or 4-D Q, K, V, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    past = 0
    if past_k is not None:
        past = past_k.shape[2]
        k, v = E.cat([past_k, k], 2), E.cat([past_v, v], 2)
    present_k, present_v = k, v
    hq = q.shape[1]
    if hq % k.shape[1]:
        raise node_error(ctx, f"the {hq} query heads are not a multiple of the {k.shape[1]} key/value heads")
    kr, vr = _repeat_heads(k, hq), _repeat_heads(v, hq)
    if q.data.dtype == np.float16:             # half precision: compute in float32, as the reference does
        y, qk = _attention_core(ctx, attrs, q.float(), kr.float(), vr.float(), mask, past, nonpad_t)
        return _attention_outputs(ctx, y.half(), three_d, present_k, present_v, None if qk is None else qk.half())
    y, qk = _attention_core(ctx, attrs, q, kr, vr, mask, past, nonpad_t)
    return _attention_outputs(ctx, y, three_d, present_k, present_v, qk)


def _attention_outputs(ctx, y, three_d, present_k, present_v, qk):
    """ONNX's outputs: Y (back to (B, L, H*Ev) for 3-D inputs), present key and value, the QK output."""
    if three_d:
        y = y.permute(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return outputs(ctx, y, present_k, present_v, qk)


def _attention_core(ctx, attrs, q, kr, vr, mask, past, nonpad_t):
    """``(Y, qk_output or None)`` in (B, H, L, Ev) from 4-D, head-matched Q, K, V."""
    L, S = q.shape[2], kr.shape[2]
    dtype = q.data.dtype
    scale = attrs.get("scale")
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    nonpad = None if nonpad_t is None else np.asarray(ctx.const(nonpad_t)).astype(np.int64)
    bias = None
    if mask is not None:
        m = mask
        if m.data.dtype.kind == "b":
            m = E.where(m, E.zeros((), dtype=q.dtype), E.full((), -math.inf, dtype=q.dtype))
        else:
            m = m.to(q.dtype)
        if m.shape[-1] < S:
            m = E.pad(m, [0, S - m.shape[-1]], value=-math.inf)
        bias = m
    allowed = _allowed(ctx, attrs, L, S, past, nonpad)
    if allowed is not None:
        c = const_tensor(np.where(allowed, 0.0, -np.inf).astype(dtype))
        bias = c if bias is None else bias + c
    softcap = float(attrs.get("softcap", 0.0))
    mode = int(attrs.get("qk_matmul_output_mode", 0))
    if softcap <= 0 and not wants(ctx, 3):
        y = scaled_dot_product_attention(q, kr, vr, attn_mask=bias, scale=scale)
        qk = None
    else:
        scores = E.matmul(q, kr.transpose(-1, -2)) * scale
        if softcap > 0:
            scores = E.tanh(scores / softcap) * softcap
        qk = scores
        with_bias = scores if bias is None else scores + bias
        if mode == 2:
            qk = with_bias
        if bias is None:
            p = E.softmax(with_bias, -1)
        else:                   # rows whose every key is masked out give zeros (as the reference), not NaN
            dead = E.amax(bias.detach(), -1, keepdim=True) == -math.inf
            zero = E.zeros((), dtype=q.dtype)
            p = E.where(dead, zero, E.softmax(E.where(dead, zero, with_bias), -1))
        if mode == 3:
            qk = p
        y = E.matmul(p, vr)
    return y, qk


# ---------------------------------------------------------------- RotaryEmbedding
@converter("RotaryEmbedding", since=23)
def rotary_embedding(ctx, inputs, attrs):
    x, cos, sin = inputs[0], inputs[1], inputs[2]
    pos = inputs[3] if len(inputs) > 3 else None
    shape = tuple(x.shape)
    if x.ndim == 4:
        x = x.permute(0, 2, 1, 3)
    elif x.ndim == 3:
        nh = int(attrs.get("num_heads", 0))
        if nh < 1:
            raise node_error(ctx, f"a 3-D input {shape} needs the num_heads attribute")
        x = x.reshape(shape[0], shape[1], nh, shape[2] // nh)
    else:
        raise node_error(ctx, f"expected a 3-D or 4-D input, got shape {shape}")
    head = x.shape[3]
    rd = int(attrs.get("rotary_embedding_dim", 0)) or head
    if pos is not None:
        ids = pos.reshape(-1)
        cos = E.index_select(cos, 0, ids).reshape(*tuple(pos.shape), cos.shape[-1])
        sin = E.index_select(sin, 0, ids).reshape(*tuple(pos.shape), sin.shape[-1])
    if cos.shape[-1] != rd // 2:
        raise node_error(ctx, f"the cos/sin caches' last dim {cos.shape[-1]} is not rotary_embedding_dim/2 = {rd // 2}")
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    rot, keep = x[..., :rd], x[..., rd:]
    interleaved = bool(attrs.get("interleaved", 0))
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :rd // 2], rot[..., rd // 2:]
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    rot = E.stack([real, imag], -1).reshape(tuple(rot.shape)) if interleaved else E.cat([real, imag], -1)
    out = E.cat([rot, keep], -1) if rd < head else rot
    return out.reshape(shape) if len(shape) == 3 else out.permute(0, 2, 1, 3)


# ---------------------------------------------------------------- losses
def _nll(ctx, logp, target, weight, attrs):
    """ONNX's weighted negative log-likelihood of ``logp`` (N, C, d...) at integer ``target`` (N, d...)."""
    reduction = attrs.get("reduction", "mean")
    ignore = attrs.get("ignore_index")
    c = logp.shape[1]
    if tuple(target.shape) != (logp.shape[0],) + tuple(logp.shape[2:]):
        raise node_error(ctx, f"target shape {tuple(target.shape)} does not match input {tuple(logp.shape)} "
                              "(expected (N, d1, ...))")
    t = target.long()
    safe = E.clamp(t, 0, c - 1)
    valid = None if ignore is None else t != int(ignore)
    if valid is not None:
        safe = E.where(valid, safe, E.zeros_like(safe))
    loss = -E.gather(logp, 1, safe.unsqueeze(1)).squeeze(1)
    w = None
    if weight is not None:
        w = E.index_select(weight, 0, safe.reshape(-1)).reshape(tuple(safe.shape))
    if valid is not None:
        vf = valid.to(logp.dtype)
        w = vf if w is None else w * vf
    if w is not None:
        loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise node_error(ctx, f"unknown reduction {reduction!r}")
    return loss.sum() / w.sum() if w is not None else loss.mean()


@converter("NegativeLogLikelihoodLoss", since=12)
def negative_log_likelihood_loss(ctx, inputs, attrs):
    return _nll(ctx, inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, attrs)


@converter("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy_loss(ctx, inputs, attrs):
    scores = inputs[0]
    logp = E.log_softmax(scores, 1)
    loss = _nll(ctx, logp, inputs[1], inputs[2] if len(inputs) > 2 else None, attrs)
    return outputs(ctx, loss, logp)
