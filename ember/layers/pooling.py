"""Keras-style pooling layers: MaxPooling1D/2D, AveragePooling1D/2D and the global poolings.

Pooling runs on the shared channels-first ops of :mod:`ember.ops.pool` (one transpose in and one out for
``channels_last``). Keras' ``'same'`` padding follows TensorFlow: ``ceil(size / strides)`` outputs, the
odd padding element at the bottom/right; max pooling ignores the padding (it counts as -inf) and average
pooling leaves it out of each window's count.
"""
from __future__ import annotations

from ..autograd.node import OpError
from .convolutional import (
    check_rank,
    conv_out_length,
    from_channels_first,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    same_pads,
    to_channels_first,
)
from .layer import Layer

__all__ = ["MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "MaxPool1D", "MaxPool2D",
           "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D"]


def _pool_cf(x, rank: int, kind: str, pool: tuple, strides: tuple, padding: str):
    """Channels-first Keras pooling; 'same' pads explicitly (-inf for max), average divides by real counts.

    Memory: the output, a padded copy of ``x`` for asymmetric 'same' padding, and for max pooling one copy
    of all windows (the argmax).
    """
    from ..creation import ones
    from ..ops.join import pad as fpad
    from ..ops.pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
    pads = [same_pads(n, k, s) for n, k, s in zip(x.shape[2:], pool, strides)] if padding == "same" else []
    flat = tuple(p for pair in reversed(pads) for p in pair)
    k, s = (pool, strides) if rank == 2 else (pool[0], strides[0])
    if kind == "max":
        if any(flat):
            x = fpad(x, flat, value=float("-inf"))
        return (max_pool2d if rank == 2 else max_pool1d)(x, k, s)
    avg = avg_pool2d if rank == 2 else avg_pool1d
    if not any(flat):
        return avg(x, k, s)
    # sum over real cells / count of real cells: the count is the same average of a padded ones image
    count = avg(fpad(ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device), flat), k, s)
    return avg(fpad(x, flat), k, s) / count


class _Pooling(Layer):
    rank = 2
    kind = "max"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", owner)
        self.strides = normalize_tuple(strides, self.rank, "strides", owner) if strides is not None else self.pool_size
        self.padding = normalize_padding(padding, owner)
        self.data_format = normalize_data_format(data_format, owner)

    def call(self, inputs):
        if inputs.ndim != self.rank + 2:
            raise OpError(f"{type(self).__name__} {self.name!r}: expected a {self.rank + 2}-D {self.data_format} "
                          f"input, got shape {tuple(inputs.shape)}")
        x = to_channels_first(inputs, self.data_format)
        spatial = x.shape[2:]
        if self.padding == "valid" and any(n < k for n, k in zip(spatial, self.pool_size)):
            raise OpError(f"{type(self).__name__} {self.name!r}: input {tuple(inputs.shape)} is smaller than "
                          f"pool_size {self.pool_size} with padding='valid'; use padding='same' or a smaller pool")
        y = _pool_cf(x, self.rank, self.kind, self.pool_size, self.strides, self.padding)
        return from_channels_first(y, self.data_format)

    def compute_output_shape(self, input_shape):
        s = tuple(input_shape)
        check_rank(self, s, self.rank + 2, f"({self.data_format})")
        last = self.data_format == "channels_last"
        spatial = s[1:-1] if last else s[2:]
        out = [conv_out_length(n, k, self.padding, st) for n, k, st in zip(spatial, self.pool_size, self.strides)]
        return (s[0], *out, s[-1]) if last else (s[0], s[1], *out)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}

    def extra_repr(self):
        return f"name={self.name!r}, pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"


class MaxPooling1D(_Pooling):
    """Max over windows of ``pool_size`` steps (Keras' ``MaxPooling1D``), inputs ``(batch, steps, features)``.

    >>> import ember
    >>> ember.layers.MaxPooling1D(2, padding="same")(ember.ones(1, 5, 3)).shape
    ember.Size([1, 3, 3])
    """

    rank, kind = 1, "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class MaxPooling2D(_Pooling):
    """2-D max pooling (Keras' ``MaxPooling2D``): ``pool_size=(2, 2)``, ``strides=None`` (= pool_size),
    ``padding`` 'valid' or 'same', ``data_format`` (``None`` = channels_last).

    Memory: the output plus one copy of all windows for the argmax.

    >>> import ember
    >>> ember.layers.MaxPooling2D()(ember.ones(2, 7, 7, 3)).shape
    ember.Size([2, 3, 3, 3])
    """

    rank, kind = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling1D(_Pooling):
    """Average over windows of ``pool_size`` steps (Keras' ``AveragePooling1D``); 'same' padding is not counted.

    >>> import ember
    >>> ember.layers.AveragePooling1D(2)(ember.ones(1, 5, 3)).shape
    ember.Size([1, 2, 3])
    """

    rank, kind = 1, "avg"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_Pooling):
    """2-D average pooling (Keras' ``AveragePooling2D``); with 'same' padding each window averages its real cells.

    Memory: the output (plus padded copies of the input and of a ones image for 'same').

    >>> import ember
    >>> ember.layers.AveragePooling2D(padding="same")(ember.ones(1, 5, 5, 2)).shape
    ember.Size([1, 3, 3, 2])
    """

    rank, kind = 2, "avg"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling(Layer):
    rank = 2
    kind = "avg"

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)

    def _axes(self) -> tuple:
        return tuple(range(1, self.rank + 1)) if self.data_format == "channels_last" else \
            tuple(range(2, self.rank + 2))

    def call(self, inputs, mask=None):
        from ..ops.reduce import amax, mean
        from ..ops.reduce import sum as _sum
        if inputs.ndim != self.rank + 2:
            raise OpError(f"{type(self).__name__} {self.name!r}: expected a {self.rank + 2}-D {self.data_format} "
                          f"input, got shape {tuple(inputs.shape)}")
        axes = self._axes()
        if self.kind == "max":
            return amax(inputs, axes, keepdim=self.keepdims)
        if mask is None:
            mask = getattr(inputs, "_keras_mask", None)          # set by e.g. Embedding(mask_zero=True)
        if mask is not None and self.rank == 1:
            m = mask.to(inputs.dtype).reshape(mask.shape[0], *(
                (-1, 1) if self.data_format == "channels_last" else (1, -1)))
            return _sum(inputs * m, axes, keepdim=self.keepdims) / _sum(m, axes, keepdim=self.keepdims)
        return mean(inputs, axes, keepdim=self.keepdims)

    def compute_output_shape(self, input_shape):
        s = list(input_shape)
        check_rank(self, s, self.rank + 2, f"({self.data_format})")
        axes = self._axes()
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(s))
        return tuple(d for i, d in enumerate(s) if i not in axes)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps axis (Keras' ``GlobalAveragePooling1D``); an optional ``mask`` (batch, steps)
    averages only the unmasked steps.

    >>> import ember
    >>> ember.layers.GlobalAveragePooling1D()(ember.ones(2, 5, 3)).shape
    ember.Size([2, 3])
    """

    rank, kind = 1, "avg"


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over the spatial axes (Keras' ``GlobalAveragePooling2D``); ``keepdims=True`` keeps them as 1.

    >>> import ember
    >>> ember.layers.GlobalAveragePooling2D(keepdims=True)(ember.ones(2, 5, 5, 3)).shape
    ember.Size([2, 1, 1, 3])
    """

    rank, kind = 2, "avg"


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over the steps axis (Keras' ``GlobalMaxPooling1D``).

    >>> import ember
    >>> ember.layers.GlobalMaxPooling1D(data_format="channels_first")(ember.ones(2, 3, 5)).shape
    ember.Size([2, 3])
    """

    rank, kind = 1, "max"

    def call(self, inputs):
        return super().call(inputs)


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over the spatial axes (Keras' ``GlobalMaxPooling2D``).

    >>> import ember
    >>> ember.layers.GlobalMaxPooling2D()(ember.ones(2, 5, 5, 3)).shape
    ember.Size([2, 3])
    """

    rank, kind = 2, "max"

    def call(self, inputs):
        return super().call(inputs)


MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
