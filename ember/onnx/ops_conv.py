"""ONNX converters for convolution and pooling: Conv, ConvTranspose (1-D, 2-D, 3-D), MaxPool, AveragePool,
LpPool and their Global forms.

2-D work runs on Ember's convolution and max-pooling ops; 3-D convolutions are sums of 2-D ones over the kernel's
depth offsets; pooling with ONNX's own geometry (asymmetric pads, ceil_mode, dilations, any rank) is separable: one
strided-slice reduction per axis and kernel offset, never a loop over output positions.
"""
from __future__ import annotations

import math

import numpy as np

import ember as E

from ..tensor import Tensor
from .ops_nn import const_tensor, node_error, outputs, unsupported, wants
from .registry import converter

__all__: list[str] = []


# ---------------------------------------------------------------- geometry
def _geometry(ctx, attrs, spatial, kernel, ceil_mode=False):
    """``(strides, dilations, pads_begin, pads_end, out)`` from ONNX's attributes (auto_pad included)."""
    nd = len(spatial)
    strides = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    if len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd or len(kernel) != nd:
        raise node_error(ctx, f"strides {strides}, dilations {dil}, pads {pads} and kernel {list(kernel)} do not "
                              f"match the {nd} spatial dims of the input")
    auto = attrs.get("auto_pad", "NOTSET")
    begin, end, out = pads[:nd], pads[nd:], []
    for i, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dil)):
        dk = d * (k - 1) + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-n // s)
            total = max(0, (o - 1) * s + dk - n)
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begin[i], end[i] = lo, total - lo
        elif auto == "VALID":
            begin[i] = end[i] = 0
            o = (n - dk) // s + 1
        else:
            if auto not in ("NOTSET", ""):
                raise node_error(ctx, f"unknown auto_pad {auto!r}")
            span = n + begin[i] + end[i] - dk
            o = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (o - 1) * s >= n + begin[i]:
                o -= 1                              # a window may not start in the right padding
        if o < 1:
            raise node_error(ctx, f"the input's spatial size {tuple(spatial)} (pads {pads}) is smaller than the "
                                  f"{'dilated ' if d > 1 else ''}kernel {tuple(kernel)}: empty output")
        out.append(o)
    return strides, dil, begin, end, out


def _pad_spatial(x: Tensor, before, after, value=0.0) -> Tensor:
    """``x`` padded (negative: cropped) on its trailing spatial dims; ``before``/``after`` list them first to last."""
    flat = []
    for b, a in zip(reversed(before), reversed(after)):
        flat += [int(b), int(a)]
    if not any(flat):
        return x
    return E.pad(x, flat, value=value)


# ---------------------------------------------------------------- Conv
def _conv3d(x, w, stride, dil, group):
    """3-D convolution (no padding) as a sum over the kernel's depth offsets of 2-D convolutions of depth slices."""
    n, c, depth = tuple(x.shape[:3])
    kd = w.shape[2]
    od = (depth - dil[0] * (kd - 1) - 1) // stride[0] + 1
    xt = x.permute(0, 2, 1, 3, 4)                               # (N, D, C, H, W)
    acc = None
    for j in range(kd):
        start = j * dil[0]
        sl = xt[:, start:start + stride[0] * (od - 1) + 1:stride[0]]
        sl = sl.reshape(n * od, c, *tuple(x.shape[3:]))
        y = E.conv2d(sl, w[:, :, j], None, tuple(stride[1:]), 0, tuple(dil[1:]), group)
        acc = y if acc is None else acc + y
    return acc.reshape(n, od, *tuple(acc.shape[1:])).permute(0, 2, 1, 3, 4)


def _bias(y: Tensor, b) -> Tensor:
    return y if b is None else y + b.reshape(1, -1, *([1] * (y.ndim - 2)))


@converter("Conv")
def conv(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    nd = x.ndim - 2
    kernel = list(attrs.get("kernel_shape") or w.shape[2:])
    if tuple(kernel) != tuple(w.shape[2:]):
        raise node_error(ctx, f"kernel_shape {kernel} does not match the weight's shape {tuple(w.shape)}")
    stride, dil, begin, end, _ = _geometry(ctx, attrs, tuple(x.shape[2:]), kernel)
    group = int(attrs.get("group", 1))
    if nd not in (1, 2, 3):
        raise unsupported(ctx, f"a {nd}-D convolution (input {tuple(x.shape)})")
    if begin == end and nd < 3:
        pad = begin[0] if nd == 1 else tuple(begin)
    else:
        x, pad = _pad_spatial(x, begin, end), 0
    if nd == 1:
        return E.conv1d(x, w, b, stride[0], pad, dil[0], group)
    if nd == 2:
        return E.conv2d(x, w, b, tuple(stride), pad, tuple(dil), group)
    return _bias(_conv3d(x, w, stride, dil, group), b)


# ---------------------------------------------------------------- ConvTranspose
def _conv_transpose3d(x, w, stride, dil, group):
    """Transposed 3-D convolution (no padding): per depth offset a transposed 2-D one, placed at its depths."""
    n, c, depth = tuple(x.shape[:3])
    kd = w.shape[2]
    full = (depth - 1) * stride[0] + dil[0] * (kd - 1) + 1
    xt = x.permute(0, 2, 1, 3, 4).reshape(n * depth, c, *tuple(x.shape[3:]))
    acc = None
    for j in range(kd):
        y = E.conv_transpose2d(xt, w[:, :, j], None, tuple(stride[1:]), 0, 0, group, tuple(dil[1:]))
        y = y.reshape(n, depth, *tuple(y.shape[1:]))                # (N, D, O, OH, OW)
        if stride[0] > 1:                                          # depth d lands at d * stride: interleave zeros
            y = E.pad(y.unsqueeze(2), [0, 0] * 3 + [0, stride[0] - 1])
            y = y.reshape(n, depth * stride[0], *tuple(y.shape[3:]))[:, :(depth - 1) * stride[0] + 1]
        start = j * dil[0]
        y = E.pad(y, [0, 0] * 3 + [start, full - start - y.shape[1]])
        acc = y if acc is None else acc + y
    return acc.permute(0, 2, 1, 3, 4)


@converter("ConvTranspose")
def conv_transpose(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    nd = x.ndim - 2
    spatial = tuple(x.shape[2:])
    kernel = list(attrs.get("kernel_shape") or w.shape[2:])
    stride = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    opad = list(attrs.get("output_padding") or [0] * nd)
    group = int(attrs.get("group", 1))
    auto = attrs.get("auto_pad", "NOTSET")
    full = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(spatial, stride, dil, kernel)]
    out_shape = attrs.get("output_shape")
    if out_shape is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [n * s for n, s in zip(spatial, stride)]
    if out_shape is not None:
        out_shape = list(out_shape)[-nd:]
        total = [f + o - t for f, o, t in zip(full, opad, out_shape)]
        # a negative total (output larger than the full result) puts the extra zeros at the end either way:
        # SAME_UPPER halves toward zero (as onnxruntime), the others as the ONNX reference, t - floor(t / 2)
        begin = [int(t / 2) for t in total] if auto == "SAME_UPPER" else [t - t // 2 for t in total]
        end = [t - lo for t, lo in zip(total, begin)]
    elif auto == "VALID":
        begin = end = [0] * nd
    else:
        pads = list(attrs.get("pads") or [0] * (2 * nd))
        begin, end = pads[:nd], pads[nd:]
    if nd == 1:
        y = E.conv_transpose1d(x, w, None, stride[0], 0, 0, group, dil[0])
    elif nd == 2:
        y = E.conv_transpose2d(x, w, None, tuple(stride), 0, 0, group, tuple(dil))
    elif nd == 3:
        y = _conv_transpose3d(x, w, stride, dil, group)
    else:
        raise unsupported(ctx, f"a {nd}-D transposed convolution (input {tuple(x.shape)})")
    y = _pad_spatial(y, [-p for p in begin], [o - p for o, p in zip(opad, end)])
    return _bias(y, b)


# ---------------------------------------------------------------- pooling
def _lowest(x: Tensor) -> float:
    kind = x.data.dtype.kind
    return -math.inf if kind == "f" else int(np.iinfo(x.data.dtype).min)


def _separable_pool(x, kernel, stride, dil, begin, out, fill, reduce):
    """Window reduction over every spatial axis in turn: pad (``fill``), then combine the kernel offsets'
    strided slices with ``reduce`` (``E.maximum`` or add)."""
    nd = len(kernel)
    for i in range(nd):
        axis = 2 + i
        n = x.shape[axis]
        need = (out[i] - 1) * stride[i] + dil[i] * (kernel[i] - 1) + 1
        before, after = [0] * nd, [0] * nd
        before[i], after[i] = begin[i], need - n - begin[i]
        xi = _pad_spatial(x, before, after, fill)
        acc = None
        for j in range(kernel[i]):
            idx = [slice(None)] * x.ndim
            idx[axis] = slice(j * dil[i], j * dil[i] + stride[i] * (out[i] - 1) + 1, stride[i])
            sl = xi[tuple(idx)]
            acc = sl if acc is None else reduce(acc, sl)
        x = acc
    return x


def _window_counts(spatial, kernel, stride, dil, begin, end, out, include_pad: bool):
    """The number of cells each window averages over: in-bounds cells, or cells inside the padded input."""
    counts = None
    for n, k, s, d, b, e, o in zip(spatial, kernel, stride, dil, begin, end, out):
        pos = np.arange(o)[:, None] * s - b + np.arange(k)[None, :] * d
        lo, hi = (-b, n + e) if include_pad else (0, n)
        c = ((pos >= lo) & (pos < hi)).sum(axis=1).astype(np.float64)
        counts = c if counts is None else np.multiply.outer(counts, c)
    return counts


def _pool_args(ctx, x, attrs):
    kernel = list(attrs["kernel_shape"])
    ceil = bool(attrs.get("ceil_mode", 0))
    stride, dil, begin, end, out = _geometry(ctx, attrs, tuple(x.shape[2:]), kernel, ceil)
    return kernel, stride, dil, begin, end, out


def _max_indices(ctx, x: Tensor, kernel, stride, dil, begin, out, storage_order: int) -> Tensor:
    """ONNX's int64 Indices output: each maximum's flat position in the (unpadded) input, row or column major."""
    a = x.detach().numpy()
    nd = len(kernel)
    lowest = -np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).min
    need = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(out, stride, dil, kernel)]
    padw = [(0, 0), (0, 0)] + [(b, max(0, m - n - b)) for b, m, n in zip(begin, need, a.shape[2:])]
    ap = np.pad(a, padw, constant_values=lowest)
    best = np.full(a.shape[:2] + tuple(out), lowest, dtype=a.dtype)
    pos = [np.zeros(best.shape, dtype=np.int64) for _ in range(nd)]
    for off in np.ndindex(*kernel):
        sl = tuple(slice(j * d, j * d + s * (o - 1) + 1, s) for j, d, s, o in zip(off, dil, stride, out))
        v = ap[(slice(None), slice(None)) + sl]
        upd = v > best
        best = np.where(upd, v, best)
        for i in range(nd):
            grid = (np.arange(out[i]) * stride[i] - begin[i] + off[i] * dil[i]).reshape(
                (-1,) + (1,) * (nd - 1 - i))
            pos[i] = np.where(upd, grid, pos[i])
    spatial = a.shape[2:]
    dims = list(range(nd)) if storage_order == 0 else list(range(nd))[::-1]
    flat = np.zeros(best.shape, dtype=np.int64)
    for i in dims:
        flat = flat * spatial[i] + pos[i]
    base = np.arange(a.shape[0] * a.shape[1]).reshape(a.shape[0], a.shape[1], *([1] * nd)) * math.prod(spatial)
    return Tensor(flat + base)


@converter("MaxPool")
def max_pool(ctx, inputs, attrs):
    x = inputs[0]
    kernel, stride, dil, begin, end, out = _pool_args(ctx, x, attrs)
    # symmetric pads of at most half the kernel: Ember's (PyTorch's) max pooling, whose output size rules agree
    # with ONNX's there; ceil_mode only where it changes the size (auto_pad='VALID' ignores it)
    geo = list(zip(x.shape[2:], kernel, stride, begin, dil))
    floor_out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in geo]
    if len(kernel) == 2 and begin == end and all(2 * p <= k for _, k, _, p, _ in geo) and x.data.dtype.kind == "f":
        y = E.max_pool2d(x, tuple(kernel), tuple(stride), tuple(begin), tuple(dil), out != floor_out)
    else:
        y = _separable_pool(x, kernel, stride, dil, begin, out, _lowest(x), E.maximum)
    idx = None
    if wants(ctx, 1):
        idx = _max_indices(ctx, x, kernel, stride, dil, begin, out, int(attrs.get("storage_order", 0)))
    return outputs(ctx, y, idx)


@converter("AveragePool")
def average_pool(ctx, inputs, attrs):
    x = inputs[0]
    kernel, stride, dil, begin, end, out = _pool_args(ctx, x, attrs)
    s = _separable_pool(x, kernel, stride, dil, begin, out, 0.0, lambda a, b: a + b)
    include = bool(attrs.get("count_include_pad", 0))
    counts = _window_counts(tuple(x.shape[2:]), kernel, stride, dil, begin, end, out, include)
    return s / const_tensor(counts, x)


@converter("LpPool")
def lp_pool(ctx, inputs, attrs):
    x = inputs[0]
    p = float(attrs.get("p", 2))
    kernel, stride, dil, begin, end, out = _pool_args(ctx, x, attrs)
    s = _separable_pool(E.abs(x) ** p, kernel, stride, dil, begin, out, 0.0, lambda a, b: a + b)
    return s ** (1.0 / p)


@converter("GlobalAveragePool")
def global_average_pool(ctx, inputs, attrs):
    x = inputs[0]
    return x.mean(tuple(range(2, x.ndim)), keepdim=True)


@converter("GlobalMaxPool")
def global_max_pool(ctx, inputs, attrs):
    x = inputs[0]
    return E.amax(x, tuple(range(2, x.ndim)), keepdim=True)


@converter("GlobalLpPool")
def global_lp_pool(ctx, inputs, attrs):
    x, p = inputs[0], float(attrs.get("p", 2))
    return (E.abs(x) ** p).sum(tuple(range(2, x.ndim)), keepdim=True) ** (1.0 / p)
