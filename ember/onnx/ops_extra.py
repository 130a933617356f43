"""ONNX converters outside the core math: quantization, signal processing (DFT, STFT, windows), box
suppression, cache updates, bit casts and string ops (registered in :mod:`ember.onnx.registry`).

DFT and STFT are products with cosine/sine matrices and DequantizeLinear multiplies by its scale with
Ember's ops, so gradients reach signals and (trainable) scales; the rest produce integers, booleans or
strings and compute with NumPy.
"""
from __future__ import annotations

import re

import numpy as np

from .. import ops as E
from .ops_math import _np_dtype, as_dtype, ints, is_float, wrap
from .registry import converter

_INT_RANGES = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max) for t in (np.uint8, np.int8, np.uint16, np.int16)}


# ------------------------------------------------------------------ quantization
def _per_axis(v: np.ndarray, shape, axis: int, block: int = 0) -> np.ndarray:
    """A scale or zero point shaped to broadcast against an input of ``shape`` (per tensor, axis or block)."""
    if v.ndim == 0 or v.size == 1 and not block:
        return v.reshape(())
    if not block:
        dims = [1] * len(shape)
        dims[axis] = v.size
        return v.reshape(dims)
    return np.take(np.repeat(v, block, axis=axis), np.arange(shape[axis]), axis=axis)


def _optional(inputs, i):
    return inputs[i] if len(inputs) > i and inputs[i] is not None else None


@converter("QuantizeLinear", since=10)
def _quantize(ctx, inputs, attrs):
    x, scale, zp = inputs[0], inputs[1], _optional(inputs, 2)
    if zp is not None:
        out = zp.data.dtype
    elif attrs.get("output_dtype"):
        out = np.dtype(_np_dtype(attrs["output_dtype"]))
    else:
        out = np.dtype(np.uint8)
    axis = attrs.get("axis", 1) % max(x.data.ndim, 1)
    block = attrs.get("block_size", 0)
    s = _per_axis(scale.data, x.data.shape, axis, block)
    y = x.data.astype(np.float32) / s.astype(np.float32)
    limits = _int_range(out)
    if limits is None:                 # float8 / float4 targets: saturate (float8) or round to the nearest value
        if zp is not None and out.name.startswith("float4"):
            y = y + _per_axis(zp.data, x.data.shape, axis, block).astype(np.float32)
        if out.name.startswith("float8") and attrs.get("saturate", 1):
            from onnx.numpy_helper import saturate_cast
            return wrap(saturate_cast(y, out))
        return wrap(y.astype(out))
    q = np.rint(y).astype(np.int32)
    if zp is not None:
        q = q + _per_axis(zp.data, x.data.shape, axis, block).astype(np.int32)
    return wrap(np.clip(q, *limits).astype(out))


def _int_range(dtype):
    """``(min, max)`` of an integer quantization type (NumPy's or ml_dtypes' int4/int2), None for float types."""
    if dtype in _INT_RANGES:
        return _INT_RANGES[dtype]
    try:
        import ml_dtypes
        info = ml_dtypes.iinfo(dtype)
        return int(info.min), int(info.max)
    except (ImportError, TypeError, ValueError):
        return None


@converter("DequantizeLinear", since=10)
def _dequantize(ctx, inputs, attrs):
    x, scale, zp = inputs[0], inputs[1], _optional(inputs, 2)
    axis = attrs.get("axis", 1) % max(x.data.ndim, 1)
    block = attrs.get("block_size", 0)
    dx = x.data.astype(np.float32)
    if zp is not None:
        dx = dx - _per_axis(zp.data, x.data.shape, axis, block).astype(np.float32)
    out = np.dtype(_np_dtype(attrs["output_dtype"]) if attrs.get("output_dtype") else scale.data.dtype)
    if not is_float(scale):
        return wrap(dx * _per_axis(scale.data, x.data.shape, axis, block), out)
    # the scale is often a trainable initializer: keep it in the graph so that it can be fine-tuned
    s = scale
    if scale.data.size > 1 and not block:
        s = scale.reshape(tuple(scale.data.size if i == axis else 1 for i in range(x.data.ndim)))
    elif block:
        s = scale[(slice(None),) * axis + (np.repeat(np.arange(scale.data.shape[axis]), block)[:x.data.shape[axis]],)]
    elif scale.data.ndim:
        s = scale.reshape(())
    return as_dtype(wrap(dx.astype(scale.data.dtype)) * s, out)


@converter("DynamicQuantizeLinear", since=11)
def _dynamic_quantize(ctx, inputs, attrs):
    x = inputs[0].data.astype(np.float32)
    lo, hi = min(float(x.min(initial=0)), 0.0), max(float(x.max(initial=0)), 0.0)
    scale = np.float32((hi - lo) / 255.0)
    zp = np.clip(np.rint(-lo / scale) if scale else 0, 0, 255)
    y = np.clip(np.rint(x / scale) + zp if scale else zp + 0 * x, 0, 255)
    return wrap(y, np.uint8), wrap(np.array(scale), np.float32), wrap(np.array(zp), np.uint8)


@converter("MatMulInteger", since=10)
def _matmul_integer(ctx, inputs, attrs):
    a, b = inputs[0].data.astype(np.int32), inputs[1].data.astype(np.int32)
    za, zb = _optional(inputs, 2), _optional(inputs, 3)
    if za is not None:
        za = za.data.astype(np.int32)
        a = a - (za.reshape(-1, 1) if za.ndim == 1 and za.size > 1 else za)
    if zb is not None:
        b = b - zb.data.astype(np.int32)
    return wrap(np.matmul(a, b), np.int32)


@converter("QLinearMatMul", since=10)
def _qlinear_matmul(ctx, inputs, attrs):
    a, sa, za, b, sb, zb, sy, zy = (t.data for t in inputs)
    fa = (a.astype(np.float64) - za.astype(np.float64)) * sa.astype(np.float64)
    fb = (b.astype(np.float64) - zb.astype(np.float64)) * sb.astype(np.float64)
    y = np.rint(np.matmul(fa, fb) / sy.astype(np.float64)) + zy.astype(np.float64)
    return wrap(np.clip(y, *_INT_RANGES[zy.dtype]), zy.dtype)


# ------------------------------------------------------------------ signal processing
def _fit(t, n: int):
    """The last axis cut or zero-padded to ``n``."""
    m = t.data.shape[-1]
    return t[..., :n] if m > n else E.pad(t, (0, n - m)) if m < n else t


def _const(a: np.ndarray, like) -> object:
    return wrap(a.astype(like.data.dtype))


def _dft_last(xr, xi, n: int, inverse: bool, onesided: bool):
    """DFT of ``xr + i xi`` along the last axis as products with cosine/sine matrices (differentiable)."""
    xr = _fit(xr, n)
    xi = None if xi is None else _fit(xi, n)
    bins = n // 2 + 1 if onesided else n
    ang = 2 * np.pi * np.outer(np.arange(n), np.arange(bins)) / n
    c, s = _const(np.cos(ang) / (n if inverse else 1), xr), _const(np.sin(ang) / (n if inverse else 1), xr)
    sign = 1 if inverse else -1                          # e^{sign * i * ang}
    yr, yi = E.matmul(xr, c), E.matmul(xr, s) * sign
    if xi is not None:
        yr = yr - E.matmul(xi, s) * sign
        yi = yi + E.matmul(xi, c)
    return yr, yi


def _irfft_last(xr, xi, n: int):
    """The real signal of length ``n`` whose half spectrum is ``xr + i xi`` (the last axis)."""
    m = min(xr.data.shape[-1], n // 2 + 1)
    xr, xi = xr[..., :m], (None if xi is None else xi[..., :m])
    k = np.arange(m)
    w = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0)[:, None] / n
    ang = 2 * np.pi * np.outer(k, np.arange(n)) / n
    y = E.matmul(xr, _const(w * np.cos(ang), xr))
    return y if xi is None else y - E.matmul(xi, _const(w * np.sin(ang), xr))


def _parts(x):
    """Real and imaginary parts of an ONNX signal ``[..., 1 or 2]`` (imaginary None when real)."""
    return x[..., 0], (x[..., 1] if x.data.shape[-1] == 2 else None)


@converter("DFT", since=17)
def _dft(ctx, inputs, attrs):
    x = inputs[0]
    if not is_float(x):
        raise TypeError(f"DFT expects a floating signal, got {x.data.dtype}")
    length = _optional(inputs, 1)
    if ctx.opset >= 20:
        ax = _optional(inputs, 2)
        axis = ints(ctx, ax)[0] if ax is not None else -2
    else:
        axis = attrs.get("axis", 1)
    axis = axis % x.data.ndim
    inverse, onesided = bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0))
    xr, xi = _parts(x)
    perm = [i for i in range(xr.data.ndim) if i != axis] + [axis]     # the signal axis last
    back = list(np.argsort(perm))
    xr, xi = xr.permute(*perm), (None if xi is None else xi.permute(*perm))
    size = xr.data.shape[-1]
    n = ints(ctx, length)[0] if length is not None and length.data.size else \
        (2 * (size - 1) if inverse and onesided else size)
    if inverse and onesided:   # a half spectrum back to a real signal
        return E.unsqueeze(_irfft_last(xr, xi, n).permute(*back), -1)
    yr, yi = _dft_last(xr, xi, n, inverse, onesided)
    return E.stack([yr.permute(*back), yi.permute(*back)], dim=-1)


@converter("STFT", since=17)
def _stft(ctx, inputs, attrs):
    x = inputs[0]
    if not is_float(x):
        raise TypeError(f"STFT expects a floating signal, got {x.data.dtype}")
    step = ints(ctx, inputs[1])[0]
    window, flen = _optional(inputs, 2), _optional(inputs, 3)
    n = ints(ctx, flen)[0] if flen is not None else (window.data.shape[0] if window is not None else x.data.shape[-2])
    frames = 1 + (x.data.shape[-2] - n) // step
    idx = np.arange(frames)[:, None] * step + np.arange(n)[None, :]
    xr, xi = _parts(x[:, idx])                                        # (batch, frames, n)
    if window is not None:
        w = window if is_float(window) else wrap(window.data.astype(x.data.dtype))
        xr, xi = xr * w, (None if xi is None else xi * w)
    yr, yi = _dft_last(xr, xi, n, False, bool(attrs.get("onesided", 1)))
    return E.stack([yr, yi], dim=-1)


def _window(kind: str):
    def conv(ctx, inputs, attrs):
        size = ints(ctx, inputs[0])[0]
        n = size if attrs.get("periodic", 1) else size - 1
        k = np.arange(size, dtype=np.float64)
        if kind == "hann":
            w = 0.5 - 0.5 * np.cos(2 * np.pi * k / n)
        elif kind == "hamming":
            w = 25 / 46 - (21 / 46) * np.cos(2 * np.pi * k / n)
        else:
            w = 0.42 - 0.5 * np.cos(2 * np.pi * k / n) + 0.08 * np.cos(4 * np.pi * k / n)
        return wrap(w, _np_dtype(attrs.get("output_datatype", 1)))
    return conv


@converter("MelWeightMatrix", since=17)
def _mel_weight_matrix(ctx, inputs, attrs):
    """Triangular mel filters, ``[dft_length // 2 + 1, num_mel_bins]``, each peaking at 1 (ONNX's definition:
    num_mel_bins + 2 points evenly spaced on the mel scale, mapped to DFT bins)."""
    mels, n_dft, rate = (ints(ctx, t)[0] for t in inputs[:3])
    lo, hi = (float(t.data.reshape(-1)[0]) for t in inputs[3:5])
    mel_lo, mel_hi = 2595 * np.log10(1 + lo / 700), 2595 * np.log10(1 + hi / 700)
    points = np.arange(mels + 2) * (mel_hi - mel_lo) / (mels + 2) + mel_lo
    edges = (((n_dft + 1) * (700 * (10 ** (points / 2595) - 1))) // rate).astype(int)
    out = np.zeros((n_dft // 2 + 1, mels))
    for i in range(mels):
        left, center, right = edges[i:i + 3]
        if center == left:
            out[center, i] = 1
        else:
            out[left:center + 1, i] = (np.arange(left, center + 1) - left) / (center - left)
        if right > center:
            out[center:right, i] = (right - np.arange(center, right)) / (right - center)
    return wrap(out, _np_dtype(attrs.get("output_datatype", 1)))


converter("HannWindow", since=17)(_window("hann"))
converter("HammingWindow", since=17)(_window("hamming"))
converter("BlackmanWindow", since=17)(_window("blackman"))


# ------------------------------------------------------------------ detection and caches
def _corners(b: np.ndarray, center: int) -> np.ndarray:
    """Boxes as (y_min, x_min, y_max, x_max)."""
    if center:
        x, y, w, h = b[:, 0], b[:, 1], b[:, 2] / 2, b[:, 3] / 2
        return np.stack([y - h, x - w, y + h, x + w], axis=1)
    return np.stack([np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
                     np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3])], axis=1)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    ih = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iw = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    with np.errstate(all="ignore"):
        return np.where((inter > 0) & (union > 0) & (area > 0) & (areas > 0), inter / union, 0.0)


@converter("NonMaxSuppression", since=10)
def _nms(ctx, inputs, attrs):
    boxes, scores = inputs[0].data, inputs[1].data
    limit = _optional(inputs, 2)
    max_out = ints(ctx, limit)[0] if limit is not None and limit.data.size else 0
    iou_t = _optional(inputs, 3)
    iou_t = float(iou_t.data.reshape(-1)[0]) if iou_t is not None and iou_t.data.size else 0.0
    score_t = _optional(inputs, 4)
    score_t = float(score_t.data.reshape(-1)[0]) if score_t is not None and score_t.data.size else None
    center = attrs.get("center_point_box", 0)
    out = []
    for b in range(boxes.shape[0]):
        corners = _corners(boxes[b].astype(np.float64), center)
        for c in range(scores.shape[1]):
            s = scores[b, c]
            cand = [i for i in np.lexsort((np.arange(s.size), -s)) if score_t is None or s[i] > score_t]
            kept: list = []
            for i in cand:
                if len(kept) >= max_out:
                    break
                if not kept or not (_iou(corners[i], corners[kept]) > iou_t).any():
                    kept.append(i)
                    out.append((b, c, i))
    return wrap(np.array(out, dtype=np.int64).reshape(-1, 3))


@converter("TensorScatter", since=24)
def _tensor_scatter(ctx, inputs, attrs):
    past, upd = inputs[0], inputs[1]
    wi = _optional(inputs, 2)
    axis = attrs.get("axis", -2) % past.data.ndim
    n_max, n_seq = past.data.shape[axis], upd.data.shape[axis]
    starts = wi.data.astype(np.int64) if wi is not None else np.zeros(past.data.shape[0], np.int64)
    pos = starts.reshape((-1,) + (1,) * axis) + np.arange(n_seq).reshape((1,) * axis + (-1,)) * \
        np.ones((1,) + past.data.shape[1:axis] + (1,), np.int64)    # (batch, D1.., seq)
    if attrs.get("mode", "linear") == "circular":
        pos = pos % n_max
    grids = list(np.indices(pos.shape, sparse=True))
    key = tuple(np.broadcast_to(g, pos.shape) for g in grids[:axis]) + (pos,)
    if is_float(past):
        return past.index_put(tuple(wrap(k) for k in key), as_dtype(upd, past.data.dtype))
    out = past.data.copy()
    out[key] = upd.data
    return wrap(out)


@converter("CenterCropPad", since=18)
def _center_crop_pad(ctx, inputs, attrs):
    x = inputs[0]
    shape = ints(ctx, inputs[1])
    axes = attrs.get("axes") or list(range(x.data.ndim))
    for a, want in zip(axes, shape):
        a %= x.data.ndim
        have = x.data.shape[a]
        if want < have:
            start = (have - want) // 2
            key = (slice(None),) * a + (slice(start, start + want),)
            x = x[key] if is_float(x) else wrap(x.data[key])
        elif want > have:
            before = (want - have) // 2
            pads = [(0, 0)] * x.data.ndim
            pads[a] = (before, want - have - before)
            if is_float(x):
                x = E.pad(x, [p for b, e in reversed(pads) for p in (b, e)], mode="constant", value=0.0)
            else:
                x = wrap(np.pad(x.data, pads))
    return x


@converter("BitCast", since=26)
def _bitcast(ctx, inputs, attrs):
    x = inputs[0].data
    to = np.dtype(_np_dtype(attrs["to"]))
    if to.itemsize != x.dtype.itemsize:
        raise TypeError(f"BitCast from {x.dtype} to {to}: the types must have the same size")
    return wrap(x.copy().view(to))


# ------------------------------------------------------------------ strings
def _str(a: np.ndarray) -> np.ndarray:
    return a.astype(object)


@converter("StringConcat", since=20)
def _string_concat(ctx, inputs, attrs):
    a, b = (_str(t.data) for t in inputs)
    return wrap(np.asarray(np.char.add(a.astype(str), b.astype(str)), dtype=object))


@converter("RegexFullMatch", since=20)
def _regex_full_match(ctx, inputs, attrs):
    pat = re.compile(attrs["pattern"])
    x = inputs[0].data
    return wrap(np.array([pat.fullmatch(str(s)) is not None for s in x.reshape(-1)], dtype=bool).reshape(x.shape))


@converter("StringSplit", since=20)
def _string_split(ctx, inputs, attrs):
    x = inputs[0].data
    delim = attrs.get("delimiter") or None
    maxsplit = attrs.get("maxsplit", -1)
    parts = [str(s).split(delim, maxsplit if maxsplit is not None else -1) for s in x.reshape(-1)]
    if delim is None:
        parts = [[p for p in ps if p] for ps in parts]
    width = max((len(p) for p in parts), default=0)
    y = np.array([p + [""] * (width - len(p)) for p in parts], dtype=object).reshape(x.shape + (width,))
    return wrap(y), wrap(np.array([len(p) for p in parts], dtype=np.int64).reshape(x.shape))


@converter("StringNormalizer", since=10)
def _string_normalizer(ctx, inputs, attrs):
    x = inputs[0].data
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise ValueError(f"StringNormalizer expects a [C] or [1, C] string tensor, got shape {x.shape}")
    action, sensitive = attrs.get("case_change_action", "NONE"), attrs.get("is_case_sensitive", 0)
    stops = set(attrs.get("stopwords", []))
    words = [str(w) for w in x.reshape(-1)]
    if stops:
        words = [w for w in words if w not in stops] if sensitive else \
            [w for w in words if w.lower() not in {s.lower() for s in stops}]
    words = [w.lower() if action == "LOWER" else w.upper() if action == "UPPER" else w for w in words] or [""]
    out = np.array(words, dtype=object)
    return wrap(out.reshape(1, -1) if x.ndim == 2 else out)


@converter("TfIdfVectorizer", since=9)
def _tfidf(ctx, inputs, attrs):
    x = inputs[0].data
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    pool = attrs.get("pool_int64s") or attrs.get("pool_strings")
    starts = list(attrs["ngram_counts"]) + [len(pool)]
    indexes = attrs["ngram_indexes"]
    grams: dict = {}
    k = 0
    for n in range(1, len(starts)):
        for s in range(starts[n - 1], starts[n], n):
            grams[tuple(pool[s:s + n])] = indexes[k]
            k += 1
    lo, hi, skips = attrs["min_gram_length"], attrs["max_gram_length"], attrs["max_skip_count"]
    out = np.zeros((rows.shape[0], max(indexes) + 1), np.float32)
    for r, row in enumerate(rows):
        items = [v if isinstance(v, str) else int(v) for v in row.tolist()]
        for n in range(lo, hi + 1):
            for skip in range(skips + 1 if n > 1 else 1):
                step = skip + 1
                for s in range(len(items) - (n - 1) * step):
                    idx = grams.get(tuple(items[s + j * step] for j in range(n)))
                    if idx is not None:
                        out[r, idx] += 1
    weights = np.ones(out.shape[1], np.float32)   # the i-th weight belongs to the i-th n-gram of the pool
    if attrs.get("weights"):
        weights[np.asarray(indexes)] = attrs["weights"]
    mode = attrs["mode"]
    if mode == "IDF":
        out = (out > 0) * weights
    elif mode == "TFIDF":
        out = out * weights
    return wrap(out.reshape(-1) if x.ndim == 1 else out, np.float32)
