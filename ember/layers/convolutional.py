"""Keras-style convolution layers: Conv1D/2D, Conv1DTranspose/2DTranspose, DepthwiseConv1D/2D, SeparableConv1D/2D.

Kernels keep Keras' layouts (``(kh, kw, in/groups, filters)`` for Conv2D) and are transposed into the
``(out, in/groups, kh, kw)`` layout of the shared ops in :mod:`ember.ops.conv` on each call (a cheap view
of a small tensor). ``channels_last`` inputs are transposed to channels-first once on the way in and once
on the way out; the convolution itself is always the one NCHW op.

Padding follows Keras/TensorFlow: ``'valid'`` is none; ``'same'`` gives ``ceil(size / stride)`` outputs by
padding ``total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)``, the odd element at the
bottom/right (so strided 'same' pads asymmetrically, which PyTorch's ``padding='same'`` cannot express);
``'causal'`` (Conv1D) pads ``dilation * (k - 1)`` on the left.
"""
from __future__ import annotations

from .. import activations as _activations
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..autograd.node import OpError
from .layer import Layer

__all__ = ["Conv1D", "Conv2D", "Conv1DTranspose", "Conv2DTranspose", "DepthwiseConv1D", "DepthwiseConv2D",
           "SeparableConv1D", "SeparableConv2D", "Convolution1D", "Convolution2D", "Convolution1DTranspose",
           "Convolution2DTranspose", "SeparableConvolution1D", "SeparableConvolution2D"]


# ---------------------------------------------------------------- shared helpers (also used by pooling)
def normalize_tuple(value, n: int, name: str, owner: str) -> tuple:
    """An int or a sequence of ``n`` positive ints as a tuple of ``n`` ints (Keras' ``normalize_tuple``)."""
    t = tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * n
    if len(t) != n or min(t) < 1:
        raise ValueError(f"{owner}: {name} must be a positive int or a tuple of {n} positive ints, got {value!r}")
    return t


def normalize_data_format(value, owner: str) -> str:
    """``None`` means ``'channels_last'`` (Keras' default image data format)."""
    fmt = "channels_last" if value is None else str(value).lower()
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f"{owner}: data_format must be 'channels_last' or 'channels_first', got {value!r}")
    return fmt


def normalize_padding(value, owner: str, allowed=("valid", "same")) -> str:
    p = str(value).lower()
    if p not in allowed:
        raise ValueError(f"{owner}: padding must be one of {list(allowed)}, got {value!r}")
    return p


def same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple:
    """TensorFlow's 'same' padding ``(before, after)`` of one dim: ``ceil(size/stride)`` outputs, odd pad after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_out_length(size, k: int, padding: str, stride: int, dilation: int = 1):
    """Output length of a Keras convolution or pooling along one dim (``None`` stays unknown)."""
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    if padding == "causal":
        return (size - 1) // stride + 1
    return max((size - dilation * (k - 1) - 1) // stride + 1, 0)


def to_channels_first(x, data_format: str):
    """``(N, *spatial, C)`` → ``(N, C, *spatial)`` for channels_last (one transposed view), else ``x``."""
    from ..ops.shape import permute
    if data_format == "channels_first":
        return x
    return permute(x, (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))


def from_channels_first(x, data_format: str):
    from ..ops.shape import permute
    if data_format == "channels_first":
        return x
    return permute(x, (0,) + tuple(range(2, x.ndim)) + (1,))


def keras_conv(x, weight, bias, rank: int, strides: tuple, padding: str, dilation: tuple, groups: int = 1):
    """A channels-first convolution with Keras padding; ``weight`` in PyTorch's ``(out, in/groups, *k)`` layout.

    Stride-1 'same' uses the op's own 'same'; strided 'same' that is symmetric passes the pad to the op;
    otherwise (odd total) the input is zero-padded first (one padded copy of ``x``).
    """
    from ..ops.conv import conv1d, conv2d
    from ..ops.join import pad as fpad
    conv = conv1d if rank == 1 else conv2d
    kernel = tuple(weight.shape[2:])
    spatial = tuple(x.shape[2:])
    pad = 0
    if padding == "causal":
        x = fpad(x, (dilation[0] * (kernel[0] - 1), 0))
    elif padding == "same":
        if all(s == 1 for s in strides):
            pad = "same"
        else:
            pairs = [same_pads(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation)]
            if all(lo == hi for lo, hi in pairs):
                pad = tuple(lo for lo, _ in pairs)
            else:
                x = fpad(x, tuple(p for pair in reversed(pairs) for p in pair))
    return conv(x, weight, bias, strides if rank == 2 else strides[0], pad, dilation if rank == 2 else dilation[0],
                groups)


def _torch_kernel(kernel, rank: int):
    """Keras ``(*k, a, b)`` kernel as PyTorch's ``(b, a, *k)`` (a transposed view)."""
    from ..ops.shape import permute
    return permute(kernel, (rank + 1, rank) + tuple(range(rank)))


def _channels(layer, input_shape, rank: int) -> int:
    name = type(layer).__name__
    spatial = "steps" if rank == 1 else "rows, cols"
    want = f"(batch, {spatial}, channels)" if layer.data_format == "channels_last" else f"(batch, channels, {spatial})"
    check_rank(layer, input_shape, rank + 2, want)
    c = input_shape[-1] if layer.data_format == "channels_last" else input_shape[1]
    if c is None:
        raise ValueError(f"{name} {layer.name!r}: the channel dimension of the inputs must be known, got shape "
                         f"{tuple(input_shape)}")
    return int(c)


def _check_call(layer, inputs, rank: int, weight):
    """Inputs must match the rank and channel count the layer was built for (a clear error, not a matmul one);
    they are cast to the weights' dtype, as Keras casts to the layer's compute dtype."""
    c = layer._in_channels
    axis = rank + 1 if layer.data_format == "channels_last" else 1
    if inputs.ndim != rank + 2 or inputs.shape[axis] != c:
        raise OpError(f"{type(layer).__name__} {layer.name!r}: expected a {rank + 2}-D {layer.data_format} input "
                      f"with {c} channels on axis {axis}, got shape {tuple(inputs.shape)} ({inputs.dtype})")
    return inputs if inputs.dtype == weight.dtype else inputs.to(weight.dtype)


def _reg(value):
    return _regularizers.get(value) if value else None


def _reg_config(value):
    return _regularizers.serialize(value) if value else None


def check_rank(layer, shape, ndim: int, what: str) -> None:
    """A clear error when a (possibly symbolic) input shape has the wrong rank for ``layer``."""
    if len(shape) != ndim:
        raise ValueError(f"{type(layer).__name__} {layer.name!r}: expected a {ndim}-D input {what}, got shape "
                         f"{tuple(shape)}")


# ---------------------------------------------------------------- layers
class _Conv(Layer):
    """Shared arguments, checks, build and config of the Keras convolutions of any rank."""

    rank = 2

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups: int = 1, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        owner, r = type(self).__name__, self.rank
        if filters is not None and int(filters) <= 0:
            raise ValueError(f"{owner}: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters) if filters is not None else None
        self.kernel_size = normalize_tuple(kernel_size, r, "kernel_size", owner)
        self.strides = normalize_tuple(strides, r, "strides", owner)
        allowed = ("valid", "same", "causal") if r == 1 and not isinstance(self, _ConvTranspose) else ("valid", "same")
        self.padding = normalize_padding(padding, owner, allowed)
        self.data_format = normalize_data_format(data_format, owner)
        self.dilation_rate = normalize_tuple(dilation_rate, r, "dilation_rate", owner)
        if int(groups) <= 0:
            raise ValueError(f"{owner}: groups must be a positive integer, got {groups!r}")
        self.groups = int(groups)
        if self.filters is not None and self.filters % self.groups:
            raise ValueError(f"{owner}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _reg(kernel_regularizer)
        self.bias_regularizer = _reg(bias_regularizer)
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)
            self.__dict__["built"] = True

    def build(self, input_shape):
        c = _channels(self, input_shape, self.rank)
        if c % self.groups:
            raise ValueError(f"{type(self).__name__} {self.name!r}: the input channels ({c}) must be divisible by "
                             f"groups ({self.groups}); input shape {tuple(input_shape)}")
        self.__dict__["_in_channels"] = c
        self.kernel = self.add_weight(self.kernel_size + (c // self.groups, self.filters), self.kernel_initializer,
                                      "kernel", regularizer=self.kernel_regularizer)
        self._add_bias(self.filters)

    def _add_bias(self, n: int) -> None:
        if self.use_bias:
            self.bias = self.add_weight((n,), self.bias_initializer, "bias", regularizer=self.bias_regularizer)

    def _bias(self):
        return self.bias if self.use_bias else None

    def call(self, inputs):
        inputs = _check_call(self, inputs, self.rank, self.kernel)
        x = to_channels_first(inputs, self.data_format)
        y = keras_conv(x, _torch_kernel(self.kernel, self.rank), self._bias(), self.rank, self.strides, self.padding,
                       self.dilation_rate, self.groups)
        y = from_channels_first(y, self.data_format)
        return self.activation(y) if self.activation is not _activations.linear else y

    def _out_spatial(self, spatial) -> list:
        return [conv_out_length(n, k, self.padding, s, d)
                for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)]

    def _out_channels(self) -> int:
        return self.filters

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        _channels(self, input_shape, self.rank)
        if self.data_format == "channels_last":
            return (input_shape[0], *self._out_spatial(input_shape[1:-1]), self._out_channels())
        return (input_shape[0], self._out_channels(), *self._out_spatial(input_shape[2:]))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _reg_config(self.kernel_regularizer),
                "bias_regularizer": _reg_config(self.bias_regularizer)}

    def extra_repr(self):
        return (f"name={self.name!r}, filters={self.filters}, kernel_size={self.kernel_size}, "
                f"strides={self.strides}, padding={self.padding!r}")


class Conv1D(_Conv):
    """1-D convolution over ``(batch, steps, channels)`` (Keras' ``Conv1D``); kernel ``(k, in/groups, filters)``.

    ``padding`` is 'valid', 'same' (TensorFlow's rule) or 'causal' (left padding, for sequence models).
    Memory: one im2col matrix of ``N*L_out*C_in*K`` elements during the forward.

    >>> import ember
    >>> layer = ember.layers.Conv1D(4, 3, padding="causal")
    >>> layer(ember.ones(2, 10, 3)).shape, tuple(layer.kernel.shape)
    (ember.Size([2, 10, 4]), (3, 3, 4))
    """

    rank = 1


class Conv2D(_Conv):
    """2-D convolution (Keras' ``Conv2D``): ``activation(conv(inputs, kernel) + bias)``.

    Args: ``filters``, ``kernel_size``, ``strides=1``, ``padding`` ('valid' or 'same', TensorFlow's rule,
    any stride), ``data_format`` (``None`` = 'channels_last', inputs ``(batch, rows, cols, channels)``),
    ``dilation_rate=1``, ``groups=1``, ``activation``, ``use_bias``, initializers and regularizers.
    ``kernel`` is ``(kh, kw, in/groups, filters)``. Memory: one im2col matrix of ``N*OH*OW*C_in*KH*KW``
    elements during the forward, plus a transposed copy of a channels_last input.

    >>> import ember
    >>> layer = ember.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")
    >>> layer(ember.ones(2, 9, 9, 3)).shape, tuple(layer.kernel.shape)
    (ember.Size([2, 5, 5, 8]), (3, 3, 3, 8))
    """

    rank = 2


class _ConvTranspose(_Conv):
    """Keras' transposed convolutions: the full transposed convolution, cropped as TensorFlow's gradient of a
    'same'/'valid' convolution would be."""

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        self.output_padding = None if output_padding is None else \
            tuple(int(v) for v in (output_padding if isinstance(output_padding, (list, tuple))
                                   else (output_padding,) * self.rank))
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, **kwargs)
        if self.output_padding is not None:
            if len(self.output_padding) != self.rank:
                raise ValueError(f"{type(self).__name__}: output_padding must be an int or a tuple of {self.rank} "
                                 f"ints, got {output_padding!r}")
            for o, s in zip(self.output_padding, self.strides):
                if not 0 <= o < s:
                    raise ValueError(f"{type(self).__name__}: output_padding {self.output_padding} must be smaller "
                                     f"than the strides {self.strides}")

    def build(self, input_shape):
        c = _channels(self, input_shape, self.rank)
        self.__dict__["_in_channels"] = c
        self.kernel = self.add_weight(self.kernel_size + (self.filters, c), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer)
        self._add_bias(self.filters)

    def _out_spatial(self, spatial) -> list:
        out = []
        for i, n in enumerate(spatial):
            k = self.dilation_rate[i] * (self.kernel_size[i] - 1) + 1
            s = self.strides[i]
            if n is None:
                out.append(None)
            elif self.output_padding is None:
                out.append(n * s + max(k - s, 0) if self.padding == "valid" else n * s)
            else:
                pad = k // 2 if self.padding == "same" else 0
                out.append((n - 1) * s + k - 2 * pad + self.output_padding[i])
        return out

    def call(self, inputs):
        from ..ops.conv import conv_transpose1d, conv_transpose2d
        from ..ops.join import pad as fpad
        from ..ops.shape import reshape
        inputs = _check_call(self, inputs, self.rank, self.kernel)
        x = to_channels_first(inputs, self.data_format)
        if self.rank == 2:
            full = conv_transpose2d(x, _torch_kernel(self.kernel, 2), None, self.strides, 0, 0, 1, self.dilation_rate)
        else:
            full = conv_transpose1d(x, _torch_kernel(self.kernel, 1), None, self.strides[0], 0, 0, 1,
                                     self.dilation_rate[0])
        crops = []
        for n, size, target, k, s, d in zip(x.shape[2:], full.shape[2:], self._out_spatial(x.shape[2:]),
                                            self.kernel_size, self.strides, self.dilation_rate):
            # TensorFlow: the gradient of a conv on a `target`-sized input, which pads `before` on the left
            before = max((n - 1) * s + d * (k - 1) + 1 - target, 0) // 2 if self.padding == "same" else 0
            crops.append((-before, target + before - size))
        y = fpad(full, tuple(p for pair in reversed(crops) for p in pair))
        if self.use_bias:
            y = y + reshape(self.bias, (1, -1) + (1,) * self.rank)
        y = from_channels_first(y, self.data_format)
        return self.activation(y) if self.activation is not _activations.linear else y

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("groups")
        cfg["output_padding"] = list(self.output_padding) if self.output_padding is not None else None
        return cfg


class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution (Keras' ``Conv1DTranspose``) over ``(batch, steps, channels)``; kernel
    ``(k, filters, in)``. Output lengths and cropping as :class:`Conv2DTranspose`; runs as a transposed 2-D
    convolution on a unit height (memory ``N*L*filters*K`` elements for the window contributions).

    >>> import ember
    >>> layer = ember.layers.Conv1DTranspose(4, 3, strides=2, padding="same")
    >>> layer(ember.ones(1, 5, 2)).shape, tuple(layer.kernel.shape)
    (ember.Size([1, 10, 4]), (3, 4, 2))
    """

    rank = 1


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution (Keras' ``Conv2DTranspose``); kernel ``(kh, kw, filters, in)``.

    Output size per dim, as Keras: without ``output_padding``, ``size * stride`` ('same') or
    ``size * stride + max(k - stride, 0)`` ('valid'); with it,
    ``(size - 1) * stride + k - 2 * pad + output_padding`` (``pad = k // 2`` for 'same', dilated ``k``).
    Computed as the full transposed convolution, then cropped as TensorFlow's gradient of a 'same'/'valid'
    convolution would be. Memory: ``N*H*W*filters*KH*KW`` elements for the window contributions.

    >>> import ember
    >>> layer = ember.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
    >>> layer(ember.ones(1, 5, 5, 2)).shape, tuple(layer.kernel.shape)
    (ember.Size([1, 10, 10, 4]), (3, 3, 4, 2))
    """

    rank = 2


class _DepthwiseConv(_Conv):
    """Keras' depthwise convolutions: one grouped convolution with ``groups = in`` channels."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier: int = 1, data_format=None,
                 dilation_rate=1, activation=None, use_bias: bool = True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        if int(depth_multiplier) <= 0:
            raise ValueError(f"{type(self).__name__}: depth_multiplier must be a positive integer, got "
                             f"{depth_multiplier!r}")
        self.depth_multiplier = int(depth_multiplier)
        super().__init__(None, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer, **kwargs)

    def build(self, input_shape):
        c = _channels(self, input_shape, self.rank)
        self.__dict__["_in_channels"] = c
        self.kernel = self.add_weight(self.kernel_size + (c, self.depth_multiplier), self.kernel_initializer,
                                      "kernel", regularizer=self.kernel_regularizer)
        self._add_bias(c * self.depth_multiplier)

    def _out_channels(self) -> int:
        return self._in_channels * self.depth_multiplier

    def call(self, inputs):
        inputs = _check_call(self, inputs, self.rank, self.kernel)
        x = to_channels_first(inputs, self.data_format)
        y = keras_conv(x, depthwise_weight(self.kernel), self._bias(), self.rank, self.strides, self.padding,
                       self.dilation_rate, self._in_channels)
        y = from_channels_first(y, self.data_format)
        return self.activation(y) if self.activation is not _activations.linear else y

    def get_config(self):
        cfg = super().get_config()
        for key in ("filters", "groups", "kernel_initializer", "kernel_regularizer"):
            cfg.pop(key)
        cfg.update(depth_multiplier=self.depth_multiplier,
                   depthwise_initializer=_initializers.serialize(self.kernel_initializer),
                   depthwise_regularizer=_reg_config(self.kernel_regularizer))
        return cfg


class DepthwiseConv1D(_DepthwiseConv):
    """Depthwise 1-D convolution (Keras' ``DepthwiseConv1D``) over ``(batch, steps, channels)``; ``kernel`` is
    ``(k, in, depth_multiplier)``. Memory: one im2col matrix of ``N*L_out*C_in*K`` elements.

    >>> import ember
    >>> layer = ember.layers.DepthwiseConv1D(3, depth_multiplier=2)
    >>> layer(ember.ones(1, 6, 4)).shape, tuple(layer.kernel.shape)
    (ember.Size([1, 4, 8]), (3, 4, 2))
    """

    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    """Depthwise 2-D convolution (Keras' ``DepthwiseConv2D``): each input channel convolved with its own
    ``depth_multiplier`` filters; ``kernel`` is ``(kh, kw, in, depth_multiplier)``, bias ``(in * dm,)``.

    Runs as one grouped convolution (``groups = in``); output channel ``c * dm + m`` is input channel ``c``'s
    filter ``m``, as in Keras. Memory: one im2col matrix of ``N*OH*OW*C_in*KH*KW`` elements.

    >>> import ember
    >>> layer = ember.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> layer(ember.ones(1, 6, 6, 4)).shape, tuple(layer.kernel.shape)
    (ember.Size([1, 6, 6, 8]), (3, 3, 4, 2))
    """

    rank = 2


def depthwise_weight(kernel):
    """A Keras depthwise kernel ``(*k, in, dm)`` as PyTorch's grouped weight ``(in * dm, 1, *k)``."""
    from ..ops.shape import permute, reshape
    *k, c, m = kernel.shape
    r = len(k)
    return reshape(permute(reshape(kernel, (*k, c * m)), (r,) + tuple(range(r))), (c * m, 1, *k))


class _SeparableConv(_Conv):
    """Keras' separable convolutions: depthwise (strides, padding, dilation) then pointwise, then bias."""


    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier: int = 1, activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, **kwargs):
        if int(depth_multiplier) <= 0:
            raise ValueError(f"{type(self).__name__}: depth_multiplier must be a positive integer, got "
                             f"{depth_multiplier!r}")
        self.depth_multiplier = int(depth_multiplier)
        self.pointwise_initializer = _initializers.get(pointwise_initializer)
        self.pointwise_regularizer = _reg(pointwise_regularizer)
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer, **kwargs)

    def build(self, input_shape):
        c = _channels(self, input_shape, self.rank)
        self.__dict__["_in_channels"] = c
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight(self.kernel_size + (c, m), self.kernel_initializer,
                                                "depthwise_kernel", regularizer=self.kernel_regularizer)
        self.pointwise_kernel = self.add_weight((1,) * self.rank + (c * m, self.filters), self.pointwise_initializer,
                                                "pointwise_kernel", regularizer=self.pointwise_regularizer)
        self._add_bias(self.filters)

    def call(self, inputs):
        inputs = _check_call(self, inputs, self.rank, self.depthwise_kernel)
        x = to_channels_first(inputs, self.data_format)
        r = self.rank
        y = keras_conv(x, depthwise_weight(self.depthwise_kernel), None, r, self.strides, self.padding,
                       self.dilation_rate, self._in_channels)
        y = keras_conv(y, _torch_kernel(self.pointwise_kernel, r), self._bias(), r, (1,) * r, "valid", (1,) * r)
        y = from_channels_first(y, self.data_format)
        return self.activation(y) if self.activation is not _activations.linear else y

    def get_config(self):
        cfg = super().get_config()
        for key in ("groups", "kernel_initializer", "kernel_regularizer"):
            cfg.pop(key)
        cfg.update(depth_multiplier=self.depth_multiplier,
                   depthwise_initializer=_initializers.serialize(self.kernel_initializer),
                   pointwise_initializer=_initializers.serialize(self.pointwise_initializer),
                   depthwise_regularizer=_reg_config(self.kernel_regularizer),
                   pointwise_regularizer=_reg_config(self.pointwise_regularizer))
        return cfg


class SeparableConv1D(_SeparableConv):
    """Depthwise separable 1-D convolution (Keras' ``SeparableConv1D``): ``depthwise_kernel``
    ``(k, in, depth_multiplier)``, ``pointwise_kernel`` ``(1, in * depth_multiplier, filters)``.

    >>> import ember
    >>> layer = ember.layers.SeparableConv1D(8, 3, padding="same")
    >>> layer(ember.ones(1, 6, 4)).shape, tuple(layer.pointwise_kernel.shape)
    (ember.Size([1, 6, 8]), (1, 4, 8))
    """

    rank = 1


class SeparableConv2D(_SeparableConv):
    """Depthwise separable 2-D convolution (Keras' ``SeparableConv2D``): a depthwise convolution (strides,
    padding and dilation apply here) then a 1×1 pointwise one to ``filters`` channels, then bias.

    Weights: ``depthwise_kernel`` ``(kh, kw, in, depth_multiplier)``, ``pointwise_kernel``
    ``(1, 1, in * depth_multiplier, filters)``, ``bias`` ``(filters,)``. Memory: the depthwise im2col
    (``N*OH*OW*C_in*KH*KW``) plus the intermediate ``N*OH*OW*C_in*dm``.

    >>> import ember
    >>> layer = ember.layers.SeparableConv2D(8, 3, padding="same")
    >>> layer(ember.ones(1, 6, 6, 4)).shape, tuple(layer.pointwise_kernel.shape)
    (ember.Size([1, 6, 6, 8]), (1, 1, 4, 8))
    """

    rank = 2


Convolution1D, Convolution2D = Conv1D, Conv2D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
