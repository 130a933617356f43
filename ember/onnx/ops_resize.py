"""ONNX converters for Resize (opsets 10-19: nearest with its rounding modes, linear and cubic with every
coordinate_transformation_mode, antialias, exclude_outside, axes, keep_aspect_ratio_policy, tf_crop_and_resize)
and Upsample.

Resizing is separable: along each resized axis the output is a gather (nearest) or a product with a small
(out, in) interpolation matrix (linear, cubic, antialiased filters), both differentiable. The matrices are built
from the axis' coordinates with NumPy, vectorised over the output positions.
"""
from __future__ import annotations

import numpy as np

import ember as E

from .ops_nn import const_tensor, node_error, optional, unsupported
from .registry import converter

__all__: list[str] = []


# ---------------------------------------------------------------- source coordinates and filter taps
def _source(mode: str, x, scale: float, n: int, out: int, roi):
    """The input coordinate of every output position ``x`` along one axis (ONNX's coordinate transforms)."""
    width = scale * n
    if mode == "align_corners":
        return np.zeros_like(x) if width == 1 else x * (n - 1) / (width - 1)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_crop_and_resize":
        lo, hi = roi
        src = (np.full_like(x, (hi - lo) * (n - 1) / 2) if width == 1 else x * (hi - lo) * (n - 1) / (width - 1))
        return src + lo * (n - 1)
    if mode == "pytorch_half_pixel":
        return np.full_like(x, -0.5) if width == 1 else (x + 0.5) / scale - 0.5
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = n / 2 * (1 - out / width)
        return offset + (x + 0.5) / scale - 0.5
    raise ValueError(mode)


def _cubic(t, a):
    """The cubic-convolution kernel at distances ``t`` (any sign) with coefficient ``a``."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _coeffs(mode, ratio, scale, attrs):
    """``(out, n)`` filter weights at the offsets ``start .. start + n - 1`` around each source coordinate."""
    ratio = ratio[:, None]
    if mode == "nearest":
        nm = attrs.get("nearest_mode", "round_prefer_floor")
        exact = ratio == 1
        if nm == "round_prefer_floor":
            up = ratio > 0.5
        elif nm == "round_prefer_ceil":
            up = ratio >= 0.5
        elif nm == "floor":
            up = np.zeros_like(ratio, dtype=bool)
        elif nm == "ceil":
            up = np.ones_like(ratio, dtype=bool)
        else:
            raise ValueError(f"nearest_mode {nm!r}")
        up = up | exact
        return np.concatenate([~up, up], axis=1).astype(np.float64)
    antialias = bool(attrs.get("antialias", 0))
    if mode == "linear":
        if not antialias:
            return np.concatenate([1 - ratio, ratio], axis=1)
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        args = (np.arange(start, 2 - start)[None, :] - ratio) * s
        c = np.clip(1 - np.abs(args), 0, 1)
        return c / c.sum(axis=1, keepdims=True)
    a = float(attrs.get("cubic_coeff_a", -0.75))
    if not antialias:
        return _cubic(np.arange(-1, 3)[None, :] - ratio, a)
    s = min(scale, 1.0)
    start = int(np.floor(-2 / s) + 1)
    c = _cubic(s * (np.arange(start, 2 - start)[None, :] - ratio), a)
    return c / c.sum(axis=1, keepdims=True)


def _axis_plan(mode, ctm, n: int, out: int, scale: float, roi, attrs):
    """``(index, weights, valid)`` for one axis: the ``(out, taps)`` source indices (edge-clamped) and weights
    (None for nearest), and for tf_crop_and_resize which outputs fall inside the input."""
    x = np.arange(out, dtype=np.float64)
    src = _source(ctm, x, scale, n, out, roi)
    valid = None
    if ctm == "tf_crop_and_resize":
        valid = (src >= 0) & (src <= n - 1)
    fl = np.floor(src)
    exact = src == fl
    ratio = np.where(exact, 1.0, src - fl)
    c = _coeffs(mode, ratio, scale, attrs)
    taps = c.shape[1]
    # ONNX picks the ``taps`` cells of the edge-padded axis nearest to the coordinate (ties to the lower one)
    pad = -(-taps // 2)
    start = np.where(exact, src - taps // 2, fl - taps // 2 + 1) + pad
    start = np.clip(start, 0, n + 2 * pad - taps).astype(np.int64)
    orig = start[:, None] + np.arange(taps)[None, :] - pad
    if attrs.get("exclude_outside", 0) and mode != "nearest":
        c = np.where((orig < 0) | (orig >= n), 0.0, c)
        c = c / c.sum(axis=1, keepdims=True)
    idx = np.clip(orig, 0, n - 1)
    if valid is not None:
        c = np.where(valid[:, None], c, 0.0)
    if mode == "nearest":
        return idx[np.arange(out), c.argmax(axis=1)], None, valid
    return idx, c, valid


def _resize(ctx, x, scales, sizes, roi, attrs, mode, ctm):
    nd = x.ndim
    axes = [a % nd for a in (attrs.get("axes") or range(nd))]
    shape = tuple(x.shape)
    if sizes is not None:
        sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
        if len(sizes) != len(axes):
            raise node_error(ctx, f"sizes {sizes} must give one size per resized axis {axes}")
        sc = [s / shape[a] for s, a in zip(sizes, axes)]
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            k = min(sc) if policy == "not_larger" else max(sc)
            sc = [k] * len(axes)
            sizes = [int(k * shape[a] + 0.5) for a in axes]
        out = sizes
    else:
        sc = [float(s) for s in np.asarray(scales).reshape(-1)]
        if len(sc) != len(axes):
            raise node_error(ctx, f"scales {sc} must give one scale per resized axis {axes}")
        if any(s <= 0 for s in sc):
            raise node_error(ctx, f"scales must be positive, got {sc}")
        out = [int(s * shape[a]) for s, a in zip(sc, axes)]
    rois = [(0.0, 1.0)] * len(axes)
    if roi is not None and ctm == "tf_crop_and_resize":
        r = np.asarray(roi, dtype=np.float64).reshape(-1)
        if r.size == 2 * nd and len(axes) != nd:
            r = np.concatenate([r[:nd][axes], r[nd:][axes]])
        rois = [(r[i], r[len(axes) + i]) for i in range(len(axes))]
    if mode not in ("nearest", "linear", "cubic"):
        raise unsupported(ctx, f"mode {mode!r}")
    if mode != "nearest" and x.data.dtype.kind != "f":     # integer images: interpolate in float32, round back
        info = np.iinfo(x.data.dtype)
        y = _resize(ctx, x.float(), scales, sizes, roi, attrs, mode, ctm)
        return E.clamp(E.round(y), info.min, info.max).to(x.dtype)
    y = x
    valid_all = None
    for a, n, o, s, rr in zip(axes, (shape[a] for a in axes), out, sc, rois):
        if o == n and np.isclose(s, 1.0) and rr == (0.0, 1.0):
            continue
        idx, w, valid = _axis_plan(mode, ctm, n, o, s, rr, attrs)
        if w is None:
            y = E.index_select(y, a, E.tensor(idx))
        else:
            mat = np.zeros((o, n))
            for k in range(idx.shape[1]):               # a few filter taps
                np.add.at(mat, (np.arange(o), idx[:, k]), w[:, k])
            y = E.movedim(E.matmul(E.movedim(y, a, -1), const_tensor(mat.T, x)), -1, a)
        if valid is not None:
            v = valid.reshape([-1 if i == a else 1 for i in range(nd)])
            valid_all = v if valid_all is None else valid_all & v
    if valid_all is not None and not valid_all.all():
        ev = float(attrs.get("extrapolation_value", 0.0))
        if ev != 0.0:
            y = y + const_tensor(np.where(valid_all, 0.0, ev), x)
    return y


@converter("Resize", since=10)
def resize(ctx, inputs, attrs):
    x = inputs[0]
    mode = attrs.get("mode", "nearest")

    def get(i):
        return ctx.const(optional(inputs, i))
    if ctx.opset < 11:
        return _resize(ctx, x, get(1), None, None, {**attrs, "nearest_mode": "floor"}, mode, "asymmetric")
    roi, scales, sizes = get(1), get(2), get(3)
    if scales is not None and scales.size == 0:
        scales = None
    if sizes is not None and sizes.size == 0:
        sizes = None
    if (scales is None) == (sizes is None):
        raise node_error(ctx, "exactly one of the scales and sizes inputs must be given")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    if ctm == "tf_half_pixel_for_nn":
        raise unsupported(ctx, "coordinate_transformation_mode 'tf_half_pixel_for_nn'")
    return _resize(ctx, x, scales, sizes, roi, attrs, mode, ctm)


@converter("Upsample", since=7, until=9)
def upsample(ctx, inputs, attrs):
    x = inputs[0]
    scales = attrs.get("scales") if ctx.opset < 9 else ctx.const(inputs[1])
    if scales is None:
        raise node_error(ctx, "no scales given")
    mode = attrs.get("mode", "nearest")
    mode = "linear" if mode == "bilinear" else mode
    return _resize(ctx, x, scales, None, None, {"nearest_mode": "floor"}, mode, "asymmetric")
