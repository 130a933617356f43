"""Keras-style attention layers: ``MultiHeadAttention`` and the position layers ``PositionEmbedding`` (learned)
and ``SinePositionEncoding`` (fixed), as in Keras 3 / KerasHub (names, arguments, weight layouts)."""
from __future__ import annotations

import math

from .. import initializers as _initializers
from ..autograd.node import OpError
from ..backend import broadcast_shapes
from ..tensor import Tensor, _wrap
from .layer import Layer

__all__ = ["MultiHeadAttention", "PositionEmbedding", "SinePositionEncoding"]


class _Projection(Layer):
    """One of MultiHeadAttention's dense projections (Keras' ``EinsumDense``): ``kernel`` has the input
    dims first and the output dims last, e.g. (dim, num_heads, key_dim), ``bias`` the output dims."""

    def __init__(self, kernel_shape, bias_shape, kernel_initializer, bias_initializer, use_bias: bool, **kwargs):
        super().__init__(**kwargs)
        self.kernel = self.add_weight(kernel_shape, kernel_initializer, "kernel")
        if use_bias:
            self.bias = self.add_weight(bias_shape, bias_initializer, "bias")
        else:
            self.register_parameter("bias", None)
        self.__dict__["built"] = True

    def call(self, x, n_in: int = 1):
        """``x (..., in_dims)`` times the kernel, as one matrix product over the flattened in/out dims."""
        k = self.kernel
        in_size = math.prod(k.shape[:n_in])
        out_shape = tuple(k.shape[n_in:])
        if x.dtype != k.dtype:
            x = x.to(k.dtype)
        lead = tuple(x.shape[:x.ndim - n_in])
        out = x.reshape(lead + (in_size,)) @ k.reshape(in_size, -1)
        if self.bias is not None:
            out = out + self.bias.reshape(-1)
        return out.reshape(lead + out_shape)


class MultiHeadAttention(Layer):
    """Multi-head attention (Keras' ``MultiHeadAttention``): project query/key/value into ``num_heads`` heads,
    attend with ``softmax(q k^T / sqrt(key_dim))``, project the concatenated heads back.

    Weights (built from the first call's shapes): ``query_dense.kernel`` (query_dim, num_heads, key_dim),
    ``key_dense.kernel`` (key_dim_in, num_heads, key_dim), ``value_dense.kernel`` (value_dim_in, num_heads,
    value_dim), each with a (num_heads, size) bias, and ``output_dense.kernel`` (num_heads, value_dim,
    *output_shape) with an (output_shape) bias; output_shape defaults to the query's last dim.

    ``call(query, value, key=None, attention_mask=None, return_attention_scores=False, training=None,
    use_causal_mask=False)``: query (B, T, dim), value (B, S, dim), key defaults to value; attention_mask
    is boolean (B, T, S) (or broadcastable; True/1 = may attend); returns (B, T, *output_shape) and, when
    asked, the scores (B, num_heads, T, S). Only rank-3 inputs (a single attention axis) are supported;
    ``flash_attention`` is accepted for Keras compatibility and ignored (Ember always runs its fused kernel).
    Unlike Keras, a query with no key left to attend gets zeros (Keras' additive -1e9 mask gives it the
    unmasked distribution), and with dropout active the returned scores are the dropped-out ones.
    Memory: the (B, num_heads, T, S) attention weights are kept for the backward.

    >>> import ember
    >>> mha = ember.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> mha(ember.ones(3, 5, 8), ember.ones(3, 6, 8)).shape
    ember.Size([3, 5, 8])
    >>> tuple(mha.query_dense.kernel.shape), tuple(mha.output_dense.kernel.shape)
    ((8, 2, 4), (2, 4, 8))
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape=None, attention_axes=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) <= 0 or int(key_dim) <= 0:
            raise ValueError(f"MultiHeadAttention: num_heads and key_dim must be positive, got num_heads="
                             f"{num_heads}, key_dim={key_dim}")
        if attention_axes is not None and tuple(attention_axes if isinstance(attention_axes, (list, tuple))
                                                else (attention_axes,)) not in ((1,), (-2,)):
            raise ValueError(f"MultiHeadAttention: only attention over the sequence axis of (B, T, dim) inputs is "
                             f"supported, got attention_axes={attention_axes!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim) if value_dim else self.key_dim
        self.dropout, self.use_bias, self.seed = float(dropout), bool(use_bias), seed
        if output_shape is not None and not isinstance(output_shape, (int, list, tuple)):
            raise ValueError(f"MultiHeadAttention: invalid output_shape {output_shape!r}: expected an int, a list "
                             "or a tuple")
        self._output_shape = ((int(output_shape),) if isinstance(output_shape, int)
                              else tuple(int(s) for s in output_shape) if output_shape else None)
        self.attention_axes = attention_axes
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)

    def __call__(self, query, value=None, key=None, **kwargs):
        if value is None:
            raise TypeError("MultiHeadAttention: call(query, value, key=None, ...) needs a value tensor")
        if not self.built and isinstance(query, Tensor) and isinstance(value, Tensor):
            self.build(tuple(query.shape), tuple(value.shape), tuple(key.shape) if key is not None else None)
            self.__dict__["built"] = True
        return super().__call__(query, value, key=key, **kwargs)

    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None:                          # Layer._build_from passes the list of input shapes
            shapes = list(query_shape)
            query_shape, value_shape = shapes[0], shapes[1]
            key_shape = shapes[2] if len(shapes) > 2 else None
        key_shape = value_shape if key_shape is None else key_shape
        for name, s in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(s) != 3 or s[-1] is None:
                raise ValueError(f"MultiHeadAttention {self.name!r}: expected {name} of shape (batch, seq, dim) "
                                 f"with a known dim, got {tuple(s)}")
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(f"MultiHeadAttention {self.name!r}: all dimensions of value and key, except the last "
                             f"one, must be equal; got value_shape={tuple(value_shape)}, key_shape={tuple(key_shape)}")
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self._output_shape or (int(query_shape[-1]),)

        def proj(name, kernel_shape, bias_shape):
            return _Projection(kernel_shape, bias_shape, _clone(self.kernel_initializer),
                               _clone(self.bias_initializer), self.use_bias, name=name, dtype=self._dtype)
        self.query_dense = proj("query", (int(query_shape[-1]), h, kd), (h, kd))
        self.key_dense = proj("key", (int(key_shape[-1]), h, kd), (h, kd))
        self.value_dense = proj("value", (int(value_shape[-1]), h, vd), (h, vd))
        self.output_dense = proj("attention_output", (h, vd) + out, out)

    def call(self, query, value, key=None, attention_mask=None, return_attention_scores: bool = False,
             training=None, use_causal_mask: bool = False):
        from ..ops.attention import _attention
        from ..ops.shape import permute
        key = value if key is None else key
        for name, t in (("query", query), ("value", value), ("key", key)):
            if t.ndim != 3:
                raise OpError(f"MultiHeadAttention {self.name!r}: expected {name} of shape (batch, seq, dim), got "
                              f"{tuple(t.shape)}")
        if key.shape[:-1] != value.shape[:-1]:
            raise OpError(f"MultiHeadAttention {self.name!r}: key {tuple(key.shape)} and value {tuple(value.shape)} "
                          "must match in all but the last dim")
        B, T, S = query.shape[0], query.shape[1], value.shape[1]
        mask = self._mask(query, attention_mask, use_causal_mask, B, T, S)
        q = permute(self.query_dense(query), (0, 2, 1, 3))           # (B, H, T, key_dim)
        k = permute(self.key_dense(key), (0, 2, 1, 3))
        v = permute(self.value_dense(value), (0, 2, 1, 3))
        p = self.dropout if training else 0.0
        out, scores = _attention(q, k, v, mask, p, False, 1.0 / math.sqrt(self.key_dim), need_weights=True)
        out = self.output_dense(permute(out, (0, 2, 1, 3)), n_in=2)   # (B, T, H, value_dim) -> (B, T, *out)
        return (out, scores) if return_attention_scores else out

    def _mask(self, query, attention_mask, use_causal_mask, B, T, S):
        xp = query.xp
        mask = None
        if attention_mask is not None:
            m = attention_mask.data if isinstance(attention_mask, Tensor) else xp.asarray(attention_mask)
            m = m.astype(bool)
            while m.ndim < 3:
                m = m[None]
            try:
                ok = broadcast_shapes(m.shape, (B, T, S)) == (B, T, S)
            except ValueError:
                ok = False
            if not ok:
                raise OpError(f"MultiHeadAttention {self.name!r}: attention_mask of shape {tuple(m.shape)} does not "
                              f"broadcast to (batch, T, S) = {(B, T, S)}") from None
            mask = m
        if use_causal_mask:
            causal = xp.tril(xp.ones((T, S), dtype=bool))
            mask = causal if mask is None else mask & causal
        if mask is None:
            return None
        return _wrap(mask[..., None, :, :] if mask.ndim == 3 else mask)   # a head axis

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        return query_shape[:-1] + self._output_shape if self._output_shape else query_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": list(self._output_shape) if self._output_shape else None,
                "attention_axes": self.attention_axes,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer), "seed": self.seed}

    def extra_repr(self):
        return f"name={self.name!r}, num_heads={self.num_heads}, key_dim={self.key_dim}"


def _clone(initializer):
    """A fresh copy of an initializer object, so each projection draws its own values (as Keras)."""
    return _initializers.deserialize(_initializers.serialize(initializer))


class PositionEmbedding(Layer):
    """A learned position embedding (KerasHub's ``PositionEmbedding``): a (sequence_length, dim) table whose
    first ``seq`` rows (from ``start_index``) are returned broadcast to the input's shape (B, seq, dim); add it
    to the token embeddings yourself. The weight is ``embeddings``.

    >>> import ember
    >>> pos = ember.layers.PositionEmbedding(sequence_length=10)
    >>> x = ember.zeros(2, 6, 4)
    >>> (x + pos(x)).shape, tuple(pos.embeddings.shape)
    (ember.Size([2, 6, 4]), (10, 4))
    """

    def __init__(self, sequence_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if sequence_length is None or int(sequence_length) <= 0:
            raise ValueError(f"PositionEmbedding: sequence_length must be a positive integer, got {sequence_length!r}")
        self.sequence_length = int(sequence_length)
        self.initializer = _initializers.get(initializer)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"PositionEmbedding {self.name!r}: expected inputs (..., seq, dim) with a known dim, "
                             f"got {tuple(input_shape)}")
        self.embeddings = self.add_weight((self.sequence_length, int(input_shape[-1])), self.initializer,
                                          "embeddings")

    def call(self, inputs, start_index: int = 0):
        seq, dim = inputs.shape[-2], inputs.shape[-1]
        if start_index + seq > self.sequence_length or dim != self.embeddings.shape[1]:
            raise OpError(f"PositionEmbedding {self.name!r}: positions {start_index}..{start_index + seq - 1} with "
                          f"{dim} features do not fit the table ({self.sequence_length}, {self.embeddings.shape[1]})"
                          f"; input shape {tuple(inputs.shape)}")
        return self.embeddings[start_index:start_index + seq].expand(tuple(inputs.shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": _initializers.serialize(self.initializer)}


class SinePositionEncoding(Layer):
    """The fixed sinusoidal position encoding (KerasHub's ``SinePositionEncoding``), broadcast to the input's
    shape (B, seq, dim); add it to the token embeddings yourself. No weights.

    ``PE[pos, 2i] = sin(pos / max_wavelength^(2i / dim))``, ``PE[pos, 2i+1] = cos(pos / max_wavelength^(2i / dim))``
    with ``pos`` counted from ``start_index``.

    >>> import ember
    >>> enc = ember.layers.SinePositionEncoding()
    >>> enc(ember.zeros(2, 5, 4))[0, 1].tolist() == enc(ember.zeros(1, 5, 4))[0, 1].tolist()
    True
    """

    def __init__(self, max_wavelength: float = 10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.__dict__["built"] = True

    def call(self, inputs, start_index: int = 0):
        from ..nn.modules.transformer import sinusoidal_table
        seq, dim = inputs.shape[-2], inputs.shape[-1]
        table = sinusoidal_table(start_index + seq, dim, float(self.max_wavelength), xp=inputs.xp,
                                 dtype=inputs.data.dtype if inputs.data.dtype.kind == "f" else self.dtype.name)
        return _wrap(table[start_index:]).expand(tuple(inputs.shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}
