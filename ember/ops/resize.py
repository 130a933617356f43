"""Resizing: ``interpolate`` (nearest, nearest-exact, linear, bilinear, bicubic, area), as PyTorch's.

Each resized axis is a weighted sum of a few ``index_select`` gathers of the input along that axis, so
the gradient (and every higher one) goes through existing Ember ops; no loop runs over pixels.
"""
from __future__ import annotations

import math

from ._util import OpError, Tensor, _wrap
from .pool import _adaptive_avg, _pair

__all__ = ["interpolate"]

_INTERP_DIMS = {"nearest": (3, 4), "nearest-exact": (3, 4), "area": (3, 4), "linear": (3,), "bilinear": (4,),
                "bicubic": (4,)}
_ALIGNING = ("linear", "bilinear", "bicubic")
_LAYOUT = {3: "3-D (N, C, L)", 4: "4-D (N, C, H, W)"}
_CUBIC_A = -0.75
_LINEAR_SKIP = ("linear", "bilinear")      # PyTorch leaves an axis of unchanged size as it is, whatever the scale


def _scale(n: int, o: int, scale, align_corners: bool) -> float:
    """PyTorch's ``area_pixel_compute_scale``: output-to-input coordinate ratio."""
    if align_corners:
        return (n - 1) / (o - 1) if o > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n / o


def _cubic_weights(xp, t):
    """The four cubic-convolution weights (A = -0.75, as PyTorch) for taps at offsets -1, 0, 1, 2 from floor."""
    a = _CUBIC_A

    def near(x):       # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):        # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


def _taps(xp, n: int, o: int, scale, mode: str, align_corners: bool, nd: int):
    """``[(index, weight), ...]`` along one axis: output ``i`` = sum of ``weight[i] * x[index[i]]``.

    Source coordinates as PyTorch's upsample kernels compute them (nearest modes in float32).
    """
    i = xp.arange(o)
    if mode == "nearest" and nd == 4 and o == 2 * n:      # PyTorch's 2-D kernel shortcut, whatever the scale
        return [(i // 2, None)]
    if mode in ("nearest", "nearest-exact"):
        sc = xp.float32(1.0 / scale if scale is not None and scale > 0 else n / o)
        pos = i.astype(xp.float32) + xp.float32(0.5 if mode == "nearest-exact" else 0.0)
        return [(xp.minimum(xp.floor(pos * sc).astype(xp.int64), n - 1), None)]
    sc = _scale(n, o, scale, align_corners)
    src = i * sc if align_corners else (i + 0.5) * sc - 0.5
    if mode != "bicubic":
        src = xp.maximum(src, 0.0)
        i0 = xp.minimum(xp.floor(src).astype(xp.int64), n - 1)
        lam = src - i0
        return [(i0, 1.0 - lam), (xp.minimum(i0 + 1, n - 1), lam)]
    i0 = xp.floor(src).astype(xp.int64)
    w = _cubic_weights(xp, src - i0)
    return [(xp.clip(i0 + k - 1, 0, n - 1), w[k]) for k in range(4)]


def _resize_axis(y: Tensor, axis: int, taps, dtype) -> Tensor:
    """Weighted sum of ``index_select`` gathers along ``axis`` (differentiable to any order)."""
    from .index import index_select
    out = None
    for idx, w in taps:
        g = index_select(y, axis, _wrap(idx))
        if w is not None:
            w = w.astype(dtype)
            g = g * _wrap(w[:, None] if axis == y.data.ndim - 2 else w)
        out = g if out is None else out + g
    return out


def _interp_sizes(input: Tensor, size, scale_factor, recompute_scale_factor, d: int):
    """Output spatial sizes and the scale factors the kernels use (None: derive from the sizes)."""
    shape = tuple(input.data.shape)
    if size is not None and scale_factor is not None:
        raise OpError("interpolate: only one of size and scale_factor should be given, got both")
    if size is None and scale_factor is None:
        raise OpError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        if recompute_scale_factor:
            raise OpError("interpolate: recompute_scale_factor is not meaningful with an explicit size")
        if isinstance(size, (list, tuple)) and len(size) != d:
            raise OpError(f"interpolate: size must be an int or a tuple of {d} ints for a {d + 2}-D input "
                          f"{shape}, got {size!r}")
        out = _pair(size, d, "size", "interpolate")
        scales = (None,) * d
    else:
        scales = tuple(scale_factor) if isinstance(scale_factor, (list, tuple)) else (scale_factor,) * d
        if len(scales) != d:
            raise OpError(f"interpolate: scale_factor must be a float or a tuple of {d} floats for a {d + 2}-D "
                          f"input {shape}, got {scale_factor!r}")
        scales = tuple(float(f) for f in scales)
        out = tuple(int(math.floor(n * f)) for n, f in zip(shape[2:], scales))
        if recompute_scale_factor:
            scales = (None,) * d
    if min(out) < 1:
        raise OpError(f"interpolate: output size {out} must be positive (input {shape})")
    return out, scales


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize an (N, C, L) or (N, C, H, W) input, as ``torch.nn.functional.interpolate``.

    Modes: 'nearest', 'nearest-exact' and 'area' (3-D or 4-D input), 'linear' (3-D), 'bilinear' and
    'bicubic' (4-D; cubic convolution with A = -0.75, edge cells repeated). ``align_corners`` applies to
    'linear', 'bilinear' and 'bicubic'. Give exactly one of ``size`` (int or one per spatial dim) and
    ``scale_factor`` (float or one per dim; output ``floor(size * scale)``; the kernels use ``1 / scale``
    unless ``recompute_scale_factor`` is True, which uses input/output size instead, as PyTorch).
    'area' is :func:`adaptive_avg_pool1d` / :func:`adaptive_avg_pool2d` to the output size.

    The other modes are separable: each axis is a weighted sum of 1 (nearest), 2 (linear) or 4 (cubic)
    differentiable ``index_select`` gathers, so the gradient is a scatter-add and double backward works.
    Memory: per resized axis, that many gathered copies of the current tensor at the new size
    (e.g. bicubic 4-D: four N*C*OH*W intermediates, then four N*C*OH*OW) plus the output.

    >>> import ember
    >>> ember.interpolate(ember.tensor([[[[1., 2.]]]]), scale_factor=2).shape
    ember.Size([1, 1, 2, 4])
    >>> ember.interpolate(ember.tensor([[[0., 1.]]]), size=3, mode="linear", align_corners=True)
    tensor([[[0.0000, 0.5000, 1.0000]]])
    """
    if mode not in _INTERP_DIMS:
        raise OpError(f"interpolate: mode {mode!r} is not supported; expected one of {list(_INTERP_DIMS)}")
    if align_corners is not None and mode not in _ALIGNING:
        raise OpError(f"interpolate: align_corners option can only be set with the interpolating modes "
                      f"'linear', 'bilinear' and 'bicubic', not mode {mode!r}")
    if antialias:
        raise OpError("interpolate: antialias=True is not supported")
    nd = input.data.ndim
    if nd not in (3, 4):
        raise OpError(f"interpolate: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape "
                      f"{tuple(input.data.shape)}")
    if nd not in _INTERP_DIMS[mode]:
        raise OpError(f"interpolate: mode {mode!r} expects a {_LAYOUT[_INTERP_DIMS[mode][0]]} input, got "
                      f"{nd}-D input of shape {tuple(input.data.shape)}"
                      + ("; use mode 'linear' for 3-D input" if nd == 3 else "")
                      + ("; use mode 'bilinear' for 4-D input" if mode == "linear" else ""))
    if mode not in ("nearest", "nearest-exact") and input.data.dtype.kind != "f":
        raise OpError(f"interpolate: mode {mode!r} needs a floating-point input, got dtype {input.dtype}; "
                      f"cast it first or use mode 'nearest'")
    d = nd - 2
    out, scales = _interp_sizes(input, size, scale_factor, recompute_scale_factor, d)
    if mode == "area":
        return _adaptive_avg(input, out, d, "interpolate")
    xp = input.xp
    y = input
    for axis, n, o, sc in zip(range(2, nd), input.data.shape[2:], out, scales):
        if o == n and (sc is None or sc == 1.0 or mode in _LINEAR_SKIP or (mode == "nearest" and nd == 4)):
            continue
        y = _resize_axis(y, axis, _taps(xp, n, o, sc, mode, bool(align_corners), nd), input.data.dtype)
    return y
