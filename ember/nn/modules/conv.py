"""Convolution modules: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (PyTorch names and state-dict layout).

Every module is a thin shell over the functional ops in :mod:`ember.ops.conv`: it owns the weight and bias,
PyTorch's initialisation and argument checks, and applies non-zero ``padding_mode`` with ``F.pad``.
"""
from __future__ import annotations

import math

from ... import dtypes as _dt
from ...autograd.node import OpError
from ...creation import empty
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n: int, name: str, owner: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} must be an int or a tuple of {n} ints, got {value!r}")
        return tuple(int(v) for v in value)
    return (int(value),) * n


class _ConvNd(Module):
    """Shared state of the convolution modules: sizes as tuples, weight and bias as in PyTorch."""

    _dims = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation, output_padding,
                 groups: int, bias: bool, padding_mode: str, device, dtype):
        super().__init__()
        n, owner = self._dims, type(self).__name__
        if int(groups) <= 0:
            raise ValueError(f"{owner}: groups must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"{owner}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{owner}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{owner}: padding_mode must be one of {list(_PADDING_MODES)}, got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{owner}: only 'zeros' padding_mode is supported, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size", owner)
        self.stride = _ntuple(stride, n, "stride", owner)
        self.dilation = _ntuple(dilation, n, "dilation", owner)
        self.output_padding = _ntuple(output_padding, n, "output_padding", owner)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(f"{owner}: kernel_size, stride and dilation must be positive, got "
                             f"{self.kernel_size}, {self.stride}, {self.dilation}")
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self._transposed:
                allowed = "an int or a tuple" if self._transposed else "an int, a tuple, 'same' or 'valid'"
                raise ValueError(f"{owner}: padding must be {allowed}, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{owner}: padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride})")
            self.padding = padding
            if padding == "same":
                pads = []
                for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                    total = d * (k - 1)
                    pads += [total // 2, total - total // 2]
                self._reversed_padding_repeated_twice = tuple(pads)
            else:
                self._reversed_padding_repeated_twice = (0,) * (2 * n)
        else:
            self.padding = _ntuple(padding, n, "padding", owner)
            if min(self.padding) < 0:
                raise ValueError(f"{owner}: padding must be non-negative, got {padding!r}")
            self._reversed_padding_repeated_twice = tuple(p for p in reversed(self.padding) for _ in range(2))
        self.padding_mode = padding_mode
        dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(empty(*shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(self.out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight ~ kaiming_uniform(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        n = self._dims
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def _check_input(self, input) -> None:
        n = self._dims
        nd = input.ndim
        spatial = "L" if n == 1 else "H, W"
        if nd not in (n + 1, n + 2):
            raise OpError(f"{self!r}: expected a {n + 2}-D (N, C, {spatial}) or {n + 1}-D (C, {spatial}) input, "
                          f"got shape {tuple(input.shape)}")
        c = input.shape[nd - n - 1]
        if c != self.in_channels:
            raise OpError(f"{type(self).__name__}(in_channels={self.in_channels}): expected an input with "
                          f"{self.in_channels} channels (dim {nd - n - 1}), got shape {tuple(input.shape)}")

    def _padded(self, input):
        """The input padded in ``padding_mode`` (non-zero modes pad explicitly, then convolve unpadded)."""
        from ...ops.join import pad
        return pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)


class _Conv(_ConvNd):
    """``Conv1d``/``Conv2d``: PyTorch's argument order; explicit padding modes pad first, then the shared op."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):
        from ...ops.conv import conv1d, conv2d
        op = conv1d if self._dims == 1 else conv2d
        self._check_input(input)
        if self.padding_mode != "zeros":
            return op(self._padded(input), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return op(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D convolution over ``(N, C_in, L)`` or ``(C_in, L)`` (PyTorch's ``nn.Conv1d``).

    Args: ``in_channels``, ``out_channels``, ``kernel_size``, ``stride=1``, ``padding=0`` (int, 'same' or
    'valid'), ``dilation=1``, ``groups=1``, ``bias=True``, ``padding_mode`` ('zeros', 'reflect', 'replicate',
    'circular'). ``weight`` is ``(C_out, C_in / groups, K)``. Output length
    ``(L + 2*padding - dilation*(K-1) - 1) // stride + 1``. Memory: one im2col matrix of
    ``N*L_out*C_in*K`` elements, kept until the backward when the weight needs a gradient (see
    :func:`ember.conv1d`).

    >>> import ember
    >>> conv = ember.nn.Conv1d(2, 4, 3, padding=1)
    >>> conv
    Conv1d(2, 4, kernel_size=(3,), stride=(1,), padding=(1,))
    >>> conv(ember.ones(5, 2, 7)).shape
    ember.Size([5, 4, 7])
    """

    _dims = 1


class Conv2d(_Conv):
    """2-D convolution over ``(N, C_in, H, W)`` or ``(C_in, H, W)`` (PyTorch's ``nn.Conv2d``).

    Args: ``in_channels``, ``out_channels``, ``kernel_size``, ``stride=1``, ``padding=0`` (int, pair, 'same'
    or 'valid'), ``dilation=1``, ``groups=1`` (``in_channels`` for depthwise), ``bias=True``,
    ``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular'). ``weight`` is
    ``(C_out, C_in / groups, KH, KW)``, initialised as PyTorch does. Memory: one im2col matrix of
    ``N*OH*OW*C_in*KH*KW`` elements, kept until the backward when the weight needs a gradient (see
    :func:`ember.conv2d`).

    >>> import ember
    >>> conv = ember.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    >>> conv
    Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
    >>> conv(ember.ones(1, 3, 9, 9)).shape
    ember.Size([1, 8, 5, 5])
    """

    _dims = 2


class _ConvTransposeNd(_ConvNd):
    """``ConvTranspose1d``/``ConvTranspose2d``: PyTorch's argument order, ``output_size`` in the forward."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
                         bias, padding_mode, device, dtype)

    def forward(self, input, output_size=None):
        from ...ops.conv import conv_transpose1d, conv_transpose2d
        op = conv_transpose1d if self._dims == 1 else conv_transpose2d
        self._check_input(input)
        opad = self._output_padding(input, output_size)
        return op(input, self.weight, self.bias, self.stride, self.padding, opad, self.groups, self.dilation)

    def _output_padding(self, input, output_size) -> tuple:
        """PyTorch's rule: the ``output_padding`` that makes the output ``output_size`` (spatial dims)."""
        if output_size is None:
            return self.output_padding
        n = self._dims
        size = [int(s) for s in output_size]
        if len(size) not in (n, n + 1, n + 2):
            raise ValueError(f"{type(self).__name__}: output_size must have {n} or {n + 2} elements, got "
                             f"{output_size!r}")
        size = size[-n:]
        out = []
        for i in range(n):
            in_size = input.shape[input.ndim - n + i]
            lo = ((in_size - 1) * self.stride[i] - 2 * self.padding[i]
                  + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            hi = lo + self.stride[i] - 1
            if not lo <= size[i] <= hi:
                raise ValueError(f"{type(self).__name__}: requested an output size of {size}, but valid sizes "
                                 f"for dim {i} range from {lo} to {hi} (for an input of shape {tuple(input.shape)})")
            out.append(size[i] - lo)
        return tuple(out)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution (the gradient of :class:`Conv2d` in its input), PyTorch's ``nn.ConvTranspose2d``.

    Args: ``in_channels``, ``out_channels``, ``kernel_size``, ``stride=1``, ``padding=0``,
    ``output_padding=0``, ``groups=1``, ``bias=True``, ``dilation=1``. ``weight`` is
    ``(C_in, C_out / groups, KH, KW)``. Output ``(H-1)*stride - 2*padding + dilation*(KH-1) +
    output_padding + 1``; ``forward(input, output_size=...)`` picks ``output_padding`` from a wanted size.
    Memory: ``N*H*W*C_out*KH*KW`` elements for the window contributions (see :func:`ember.conv_transpose2d`).

    >>> import ember
    >>> up = ember.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    >>> up
    ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))
    >>> up(ember.ones(1, 4, 5, 5)).shape
    ember.Size([1, 2, 10, 10])
    """

    _dims = 2


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution over ``(N, C_in, L)`` or ``(C_in, L)`` (PyTorch's ``nn.ConvTranspose1d``).

    ``weight`` is ``(C_in, C_out / groups, K)``; output length
    ``(L-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1``. Runs as a transposed 2-D convolution
    on a unit height (memory ``N*L*C_out*K`` elements for the window contributions).

    >>> import ember
    >>> ember.nn.ConvTranspose1d(3, 2, 4, stride=2)(ember.ones(1, 3, 5)).shape
    ember.Size([1, 2, 12])
    """

    _dims = 1
