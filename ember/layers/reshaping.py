"""Keras-style reshaping layers: UpSampling1D/2D, ZeroPadding1D/2D, Cropping1D/2D, RepeatVector, Permute.

None has weights. Padding and cropping are one ``F.pad`` each (negative pads crop), nearest upsampling
is an ``index_select`` per spatial axis, bilinear upsampling is ``F.interpolate`` on channels-first data.
"""
from __future__ import annotations

from ..autograd.node import OpError
from .convolutional import check_rank, from_channels_first, normalize_data_format, normalize_tuple, to_channels_first
from .layer import Layer

__all__ = ["UpSampling1D", "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
           "RepeatVector", "Permute"]


def _check_rank(layer, inputs, ndim: int, what: str) -> None:
    if inputs.ndim != ndim:
        raise OpError(f"{type(layer).__name__} {layer.name!r}: expected a {ndim}-D input {what}, got shape "
                      f"{tuple(inputs.shape)}")


def _pairs(value, n: int, name: str, owner: str, nonneg: bool = True) -> tuple:
    """Keras' padding/cropping argument as ``n`` ``(before, after)`` pairs: an int, ``n`` ints (symmetric) or
    ``n`` pairs (1-D layers also take one pair)."""
    def bad():
        return ValueError(f"{owner}: {name} must be an int, a tuple of {n} ints or a tuple of {n} pairs of ints, "
                          f"got {value!r}")
    if isinstance(value, int):
        out = ((value, value),) * n
    elif isinstance(value, (list, tuple)) and n == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        out = (tuple(value),)
    elif isinstance(value, (list, tuple)) and len(value) == n:
        out = []
        for v in value:
            if isinstance(v, int):
                out.append((v, v))
            elif isinstance(v, (list, tuple)) and len(v) == 2:
                out.append((int(v[0]), int(v[1])))
            else:
                raise bad()
        out = tuple(out)
    else:
        raise bad()
    if nonneg and min(p for pair in out for p in pair) < 0:
        raise ValueError(f"{owner}: {name} must be non-negative, got {value!r}")
    return out


def _spatial_axes(rank: int, data_format: str) -> tuple:
    return tuple(range(1, rank + 1)) if data_format == "channels_last" else tuple(range(2, rank + 2))


def _flat_pad(ndim: int, axes: tuple, pairs: tuple, sign: int = 1) -> tuple:
    """``F.pad``'s last-dim-first tuple padding ``axes`` by ``pairs`` (``sign=-1`` crops)."""
    per_axis = {a: p for a, p in zip(axes, pairs)}
    out = []
    for a in range(ndim - 1, min(axes) - 1, -1):
        lo, hi = per_axis.get(a, (0, 0))
        out += [sign * lo, sign * hi]
    return tuple(out)


class _Padding(Layer):
    rank = 2
    sign = 1
    arg = "padding"

    def _pad(self, inputs, pairs):
        from ..ops.join import pad
        nd = self.rank + 2
        _check_rank(self, inputs, nd, f"({self.data_format})")
        axes = _spatial_axes(self.rank, self.data_format)
        if self.sign < 0:
            for a, (lo, hi) in zip(axes, pairs):
                if lo + hi >= inputs.shape[a]:
                    raise OpError(f"{type(self).__name__} {self.name!r}: cropping {pairs} removes all of axis {a} "
                                  f"of an input of shape {tuple(inputs.shape)}")
        return pad(inputs, _flat_pad(nd, axes, pairs, self.sign))

    def call(self, inputs):
        return self._pad(inputs, getattr(self, self.arg))

    def compute_output_shape(self, input_shape):
        s = list(input_shape)
        check_rank(self, s, self.rank + 2, f"({self.data_format})")
        for a, (lo, hi) in zip(_spatial_axes(self.rank, self.data_format), getattr(self, self.arg)):
            if s[a] is not None:
                s[a] += self.sign * (lo + hi)
        return tuple(s)

    def get_config(self):
        cfg = {**super().get_config(), self.arg: [list(p) for p in getattr(self, self.arg)]}
        if self.rank == 2 or self.arg == "padding":
            cfg["data_format"] = self.data_format
        return cfg


class ZeroPadding1D(_Padding):
    """Zeros before and after the steps axis (Keras' ``ZeroPadding1D``): ``padding`` an int or ``(before, after)``.

    >>> import ember
    >>> ember.layers.ZeroPadding1D((1, 2))(ember.ones(2, 3, 4)).shape
    ember.Size([2, 6, 4])
    """

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pairs(padding, 1, "padding", "ZeroPadding1D")
        self.data_format = normalize_data_format(data_format, "ZeroPadding1D")


class ZeroPadding2D(_Padding):
    """Zero rows and columns around an image (Keras' ``ZeroPadding2D``): ``padding`` an int, ``(rows, cols)``
    (symmetric) or ``((top, bottom), (left, right))``.

    >>> import ember
    >>> ember.layers.ZeroPadding2D(((1, 0), (2, 2)))(ember.ones(1, 4, 4, 3)).shape
    ember.Size([1, 5, 8, 3])
    """

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pairs(padding, 2, "padding", "ZeroPadding2D")
        self.data_format = normalize_data_format(data_format, "ZeroPadding2D")


class Cropping1D(_Padding):
    """Remove steps at the start and end of the sequence (Keras' ``Cropping1D``): ``cropping`` ``(start, end)``.

    >>> import ember
    >>> ember.layers.Cropping1D((1, 2))(ember.ones(2, 6, 4)).shape
    ember.Size([2, 3, 4])
    """

    rank, sign, arg = 1, -1, "cropping"
    data_format = "channels_last"

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, 1, "cropping", "Cropping1D")


class Cropping2D(_Padding):
    """Remove rows and columns at the edges of an image (Keras' ``Cropping2D``): ``cropping`` an int,
    ``(rows, cols)`` or ``((top, bottom), (left, right))``.

    >>> import ember
    >>> ember.layers.Cropping2D(((1, 0), (2, 2)))(ember.ones(1, 6, 6, 3)).shape
    ember.Size([1, 5, 2, 3])
    """

    rank, sign, arg = 2, -1, "cropping"

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, 2, "cropping", "Cropping2D")
        self.data_format = normalize_data_format(data_format, "Cropping2D")


def _repeat_axis(x, axis: int, times: int):
    """Each index of ``axis`` repeated ``times`` in place (nearest upsampling): one ``index_select``."""
    from ..creation import arange
    from ..ops.index import index_select
    if times == 1:
        return x
    return index_select(x, axis, arange(x.shape[axis] * times, device=x.device) // times)


class UpSampling1D(Layer):
    """Repeat each step ``size`` times along the steps axis of ``(batch, steps, features)`` (Keras' ``UpSampling1D``).

    >>> import ember
    >>> ember.layers.UpSampling1D(3)(ember.ones(2, 4, 5)).shape
    ember.Size([2, 12, 5])
    """

    def __init__(self, size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 1, "size", "UpSampling1D")[0]

    def call(self, inputs):
        _check_rank(self, inputs, 3, "(batch, steps, features)")
        return _repeat_axis(inputs, 1, self.size)

    def compute_output_shape(self, input_shape):
        s = tuple(input_shape)
        check_rank(self, s, 3, "(batch, steps, features)")
        return (s[0], None if s[1] is None else s[1] * self.size, s[2])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling2D(Layer):
    """Scale an image up by integer factors ``size=(rows, cols)`` (Keras' ``UpSampling2D``).

    ``interpolation='nearest'`` repeats rows and columns (one ``index_select`` per axis, in either data
    format); ``'bilinear'`` interpolates with half-pixel centres (PyTorch's ``align_corners=False``, as
    Keras/TensorFlow ``resize``), on channels-first data.

    >>> import ember
    >>> ember.layers.UpSampling2D((2, 3))(ember.ones(1, 4, 4, 3)).shape
    ember.Size([1, 8, 12, 3])
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 2, "size", "UpSampling2D")
        self.data_format = normalize_data_format(data_format, "UpSampling2D")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        from ..ops.resize import interpolate
        _check_rank(self, inputs, 4, f"({self.data_format})")
        if self.interpolation == "nearest":
            y = inputs
            for axis, f in zip(_spatial_axes(2, self.data_format), self.size):
                y = _repeat_axis(y, axis, f)
            return y
        x = to_channels_first(inputs, self.data_format)
        y = interpolate(x, scale_factor=tuple(float(f) for f in self.size), mode="bilinear", align_corners=False)
        return from_channels_first(y, self.data_format)

    def compute_output_shape(self, input_shape):
        s = list(input_shape)
        check_rank(self, s, 4, f"({self.data_format})")
        for a, f in zip(_spatial_axes(2, self.data_format), self.size):
            s[a] = None if s[a] is None else s[a] * f
        return tuple(s)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


class RepeatVector(Layer):
    """``(batch, features)`` → ``(batch, n, features)`` (Keras' ``RepeatVector``); a broadcast view, no copy.

    >>> import ember
    >>> ember.layers.RepeatVector(3)(ember.ones(2, 5)).shape
    ember.Size([2, 3, 5])
    """

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = normalize_tuple(n, 1, "n", "RepeatVector")[0]

    def call(self, inputs):
        from ..ops.shape import expand, unsqueeze
        _check_rank(self, inputs, 2, "(batch, features)")
        return expand(unsqueeze(inputs, 1), (inputs.shape[0], self.n, inputs.shape[1]))

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 2, "(batch, features)")
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Reorder the non-batch axes (Keras' ``Permute``): ``dims`` is a permutation of ``1..ndim-1``.

    >>> import ember
    >>> ember.layers.Permute((2, 1))(ember.ones(4, 3, 5)).shape
    ember.Size([4, 5, 3])
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute: dims must be a permutation of 1..{len(self.dims)} (the batch axis 0 stays "
                             f"first), got {dims!r}")

    def call(self, inputs):
        from ..ops.shape import permute
        _check_rank(self, inputs, len(self.dims) + 1, f"for dims={self.dims}")
        return permute(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        s = tuple(input_shape)
        check_rank(self, s, len(self.dims) + 1, f"for dims={self.dims}")
        return (s[0],) + tuple(s[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}
