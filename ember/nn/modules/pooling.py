"""Pooling and upsampling modules (PyTorch names): max/average/adaptive pooling 1-D and 2-D, ``Upsample``.

Each module stores its arguments as PyTorch does (same ``repr``) and calls the functional op in
:mod:`ember.ops.pool`, whose docstrings state the memory each kernel needs.
"""
from __future__ import annotations

from ...autograd.node import OpError
from ..module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling over ``(N, C, L)`` or ``(C, L)`` (PyTorch's ``nn.MaxPool1d``); ``stride`` defaults to
    ``kernel_size``. Memory: the output plus a small (int16) window offset per output (see :func:`ember.max_pool1d`).

    >>> import ember
    >>> ember.nn.MaxPool1d(2)(ember.arange(6.).reshape(1, 1, 6))
    tensor([[[1., 3., 5.]]])
    """

    def forward(self, input):
        from ...ops.pool import max_pool1d
        return max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling over ``(N, C, H, W)`` or ``(C, H, W)`` (PyTorch's ``nn.MaxPool2d``).

    Args: ``kernel_size``, ``stride=None`` (= kernel_size), ``padding=0`` (counts as -inf), ``dilation=1``,
    ``return_indices=False`` (also return flat ``h*W + w`` indices), ``ceil_mode=False``.
    Memory: the output plus a small (int16) window offset per output (see :func:`ember.max_pool2d`).

    >>> import ember
    >>> pool = ember.nn.MaxPool2d(2)
    >>> pool
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> pool(ember.ones(1, 3, 5, 5)).shape
    ember.Size([1, 3, 2, 2])
    """

    def forward(self, input):
        from ...ops.pool import max_pool2d
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class AvgPool1d(Module):
    """1-D average pooling over ``(N, C, L)`` or ``(C, L)`` (PyTorch's ``nn.AvgPool1d``).

    Memory: the output (plus a padded copy of the input when padding or ceil_mode needs one).

    >>> import ember
    >>> ember.nn.AvgPool1d(2)(ember.arange(4.).reshape(1, 1, 4))
    tensor([[[0.5000, 2.5000]]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        def single(v):
            return tuple(v) if isinstance(v, (list, tuple)) else (v,)
        self.kernel_size = single(kernel_size)
        self.stride = single(stride if stride is not None else kernel_size)
        self.padding = single(padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input):
        from ...ops.pool import avg_pool1d
        return avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class AvgPool2d(Module):
    """2-D average pooling over ``(N, C, H, W)`` or ``(C, H, W)`` (PyTorch's ``nn.AvgPool2d``).

    Args: ``kernel_size``, ``stride=None`` (= kernel_size), ``padding=0``, ``ceil_mode=False``,
    ``count_include_pad=True`` (zero padding counts in the divisor), ``divisor_override=None``.
    Memory: the output (plus a padded copy of the input when padding or ceil_mode needs one).

    >>> import ember
    >>> pool = ember.nn.AvgPool2d(3, stride=2, padding=1)
    >>> pool
    AvgPool2d(kernel_size=3, stride=2, padding=1)
    >>> pool(ember.ones(2, 3, 7, 7)).shape
    ember.Size([2, 3, 4, 4])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input):
        from ...ops.pool import avg_pool2d
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)


class _AdaptiveAvgPoolNd(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of ``(N, C, L)`` to a fixed length (PyTorch's ``nn.AdaptiveAvgPool1d``).

    >>> import ember
    >>> ember.nn.AdaptiveAvgPool1d(2)(ember.arange(4.).reshape(1, 1, 4))
    tensor([[[0.5000, 2.5000]]])
    """

    def forward(self, input):
        from ...ops.pool import adaptive_avg_pool1d
        return adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling of ``(N, C, H, W)`` to a fixed ``(OH, OW)`` (PyTorch's ``nn.AdaptiveAvgPool2d``);
    ``None`` in ``output_size`` keeps that input size. Memory: see :func:`ember.adaptive_avg_pool2d`.

    >>> import ember
    >>> ember.nn.AdaptiveAvgPool2d((1, 1))(ember.ones(2, 3, 5, 7)).shape
    ember.Size([2, 3, 1, 1])
    """

    def forward(self, input):
        from ...ops.pool import adaptive_avg_pool2d
        return adaptive_avg_pool2d(input, self.output_size)


class _AdaptiveMaxPoolNd(Module):
    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = bool(return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of ``(N, C, L)`` to a fixed length (PyTorch's ``nn.AdaptiveMaxPool1d``).

    >>> import ember
    >>> ember.nn.AdaptiveMaxPool1d(2)(ember.arange(4.).reshape(1, 1, 4))
    tensor([[[1., 3.]]])
    """

    def forward(self, input):
        from ...ops.pool import adaptive_max_pool1d
        return adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling of ``(N, C, H, W)`` to a fixed ``(OH, OW)`` (PyTorch's ``nn.AdaptiveMaxPool2d``).

    Memory: one gathered copy of all windows (see :func:`ember.adaptive_max_pool2d`).

    >>> import ember
    >>> ember.nn.AdaptiveMaxPool2d(2)(ember.ones(1, 3, 5, 7)).shape
    ember.Size([1, 3, 2, 2])
    """

    def forward(self, input):
        from ...ops.pool import adaptive_max_pool2d
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)


_UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "area")


class Upsample(Module):
    """Resize by ``size`` or ``scale_factor`` (PyTorch's ``nn.Upsample``): modes 'nearest', 'nearest-exact',
    'area' (3-D or 4-D input), 'linear' (3-D), 'bilinear', 'bicubic' (4-D); ``align_corners`` applies to
    'linear', 'bilinear' and 'bicubic'. Memory and arithmetic as :func:`ember.interpolate`.

    >>> import ember
    >>> up = ember.nn.Upsample(scale_factor=2, mode="nearest")
    >>> up
    Upsample(scale_factor=2.0, mode='nearest')
    >>> up(ember.ones(1, 1, 2, 3)).shape
    ember.Size([1, 1, 4, 6])
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None):
        super().__init__()
        if mode not in _UPSAMPLE_MODES:
            raise ValueError(f"Upsample: mode {mode!r} is not supported; expected one of {list(_UPSAMPLE_MODES)}")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        if align_corners is not None and mode not in ("linear", "bilinear", "bicubic"):
            raise ValueError("Upsample: align_corners option can only be set with the interpolating modes "
                             "'linear', 'bilinear' and 'bicubic'")
        self.size = size
        if isinstance(scale_factor, (list, tuple)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor is not None else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"

    def forward(self, input):
        from ...ops.resize import interpolate
        if input.ndim not in (3, 4):
            raise OpError(f"{type(self).__name__}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape "
                          f"{tuple(input.shape)}")
        return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                           self.recompute_scale_factor)


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour 2-D upsampling (PyTorch's ``nn.UpsamplingNearest2d``).

    >>> import ember
    >>> ember.nn.UpsamplingNearest2d(scale_factor=2)(ember.ones(1, 1, 2, 2)).shape
    ember.Size([1, 1, 4, 4])
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear 2-D upsampling with ``align_corners=True`` (PyTorch's ``nn.UpsamplingBilinear2d``).

    >>> import ember
    >>> ember.nn.UpsamplingBilinear2d(size=(3, 5))(ember.ones(1, 1, 2, 2)).shape
    ember.Size([1, 1, 3, 5])
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
