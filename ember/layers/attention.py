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

    ``call(query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
    return_attention_scores=False, training=None, use_causal_mask=False)``: query (B, T, dim), value (B, S, dim),
    key defaults to value; attention_mask is boolean (B, T, S) (or broadcastable; True/1 = may attend); returns
    (B, T, *output_shape) and, when asked, the scores (B, num_heads, T, S).

    Masks (Keras 3): ``query_mask`` (B, T) and ``value_mask``/``key_mask`` (B, S) default to the inputs' Keras
    masks (``_keras_mask``, e.g. from ``Embedding(mask_zero=True)``); they become (B, T, 1) and (B, 1, S) masks
    and are and-ed with ``attention_mask`` and the causal mask. The output carries ``query_mask`` as its mask.

    ``attention_axes`` (Keras): the axes of inputs (B, *dims, dim) to attend over, e.g. ``(1, 2)`` for 2-D
    attention over (H, W) of (B, H, W, C); the other dims are batch dims. ``None`` attends over all of ``dims``
    (the sequence axis of a 3-D input). Scores are then (B, *other dims, num_heads, *query attention dims,
    *key attention dims) and attention_mask the same without the heads axis. The attended dims are flattened
    into one sequence, so every case runs on the fused ``scaled_dot_product_attention`` kernel.
    ``flash_attention`` is accepted for Keras compatibility and ignored.

    Unlike Keras, a query with no key left to attend gets zeros (Keras' additive -1e9 mask gives it the
    unmasked distribution), and with dropout active the returned scores are the dropped-out ones; an explicit
    ``query_mask`` is used (Keras 3 replaces it with the query's own mask), and with ``use_causal_mask`` the
    causal mask runs along the single attention axis (Keras always uses axis 1; several axes raise an error).
    Memory: the (B, num_heads, T, S) attention weights are kept for the backward.

    >>> import ember
    >>> mha = ember.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> mha(ember.ones(3, 5, 8), ember.ones(3, 6, 8)).shape
    ember.Size([3, 5, 8])
    >>> tuple(mha.query_dense.kernel.shape), tuple(mha.output_dense.kernel.shape)
    ((8, 2, 4), (2, 4, 8))
    >>> img = ember.layers.MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(1, 2))
    >>> out, scores = img(ember.ones(2, 3, 4, 8), ember.ones(2, 3, 4, 8), return_attention_scores=True)
    >>> tuple(out.shape), tuple(scores.shape)
    ((2, 3, 4, 8), (2, 2, 3, 4, 3, 4))
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape=None, attention_axes=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) <= 0 or int(key_dim) <= 0:
            raise ValueError(f"MultiHeadAttention: num_heads and key_dim must be positive, got num_heads="
                             f"{num_heads}, key_dim={key_dim}")
        if attention_axes is not None:
            axes = tuple(attention_axes) if isinstance(attention_axes, (list, tuple)) else (attention_axes,)
            if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes) \
                    or len(set(axes)) != len(axes):
                raise ValueError(f"MultiHeadAttention: attention_axes must be an int or a non-empty list of distinct "
                                 f"ints, got {attention_axes!r}")
            attention_axes = axes
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

    def _axes(self, rank: int) -> tuple:
        """The attention axes for inputs of ``rank``, made non-negative (checked: not batch, not features)."""
        if self.attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = tuple(a + rank if a < 0 else a for a in self.attention_axes)
        if any(not 1 <= a <= rank - 2 for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"MultiHeadAttention {self.name!r}: attention_axes={self.attention_axes!r} is invalid "
                             f"for inputs of rank {rank}: each axis must be one of 1..{rank - 2} (or "
                             f"{-(rank - 1)}..-2), not the batch axis 0 nor the feature axis {rank - 1}, and distinct")
        return axes

    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None:                          # Layer._build_from passes the list of input shapes
            shapes = list(query_shape)
            query_shape, value_shape = shapes[0], shapes[1]
            key_shape = shapes[2] if len(shapes) > 2 else None
        key_shape = value_shape if key_shape is None else key_shape
        rank = len(query_shape)
        for name, s in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(s) != rank or rank < 3 or s[-1] is None:
                raise ValueError(f"MultiHeadAttention {self.name!r}: expected query, value and key of one rank >= 3, "
                                 f"(batch, seq, dim) or (batch, *dims, dim), with a known dim; got {name} of shape "
                                 f"{tuple(s)} with query {tuple(query_shape)}")
        self._axes(rank)
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

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores: bool = False, training=None, use_causal_mask: bool = False):
        from ..ops.attention import _attention
        from ..ops.shape import permute
        # Keras 3 fills each *_mask argument from the matching input's Keras mask
        query_mask = getattr(query, "_keras_mask", None) if query_mask is None else query_mask
        value_mask = getattr(value, "_keras_mask", None) if value_mask is None else value_mask
        if key is not None and key_mask is None:
            key_mask = getattr(key, "_keras_mask", None)
        key = value if key is None else key
        rank = query.ndim
        for name, t in (("query", query), ("value", value), ("key", key)):
            if t.ndim != rank or rank < 3:
                raise OpError(f"MultiHeadAttention {self.name!r}: expected query, value and key of one rank >= 3, "
                              f"(batch, seq, dim) or (batch, *dims, dim); got {name} of shape {tuple(t.shape)} with "
                              f"query {tuple(query.shape)}")
        if key.shape[:-1] != value.shape[:-1]:
            raise OpError(f"MultiHeadAttention {self.name!r}: key {tuple(key.shape)} and value {tuple(value.shape)} "
                          "must match in all but the last dim")
        axes = self._axes(rank)
        other = tuple(a for a in range(1, rank - 1) if a not in axes)      # batch-like dims besides axis 0
        qs, vs = tuple(query.shape), tuple(value.shape)
        if qs[0] != vs[0] or any(qs[a] != vs[a] for a in other):
            raise OpError(f"MultiHeadAttention {self.name!r}: query {qs} and value {vs} must match in the batch axis "
                          f"and every axis that is not an attention axis (attention_axes={axes})")
        nb = (qs[0],) + tuple(qs[a] for a in other)
        T, S = math.prod(qs[a] for a in axes), math.prod(vs[a] for a in axes)
        mask = self._mask(query, value, attention_mask, query_mask, value_mask, key_mask, use_causal_mask, axes, other)
        # (B, *dims, H, d) -> (B, *other, H, *axes, d) -> (B, *other, H, T, d): one flat sequence per batch item
        perm = (0,) + other + (rank - 1,) + axes + (rank,)
        H = self.num_heads

        def heads(x, n):
            x = permute(x, perm)
            return x if len(axes) == 1 else x.reshape(nb + (H, n, x.shape[-1]))
        q, k, v = heads(self.query_dense(query), T), heads(self.key_dense(key), S), heads(self.value_dense(value), S)
        p = self.dropout if training else 0.0
        out, scores = _attention(q, k, v, mask, p, False, 1.0 / math.sqrt(self.key_dim), need_weights=True)
        q_att = tuple(qs[a] for a in axes)
        if len(axes) > 1:
            out = out.reshape(nb + (H,) + q_att + (self.value_dim,))
        inv = [0] * (rank + 1)
        for i, a in enumerate(perm):
            inv[a] = i
        out = self.output_dense(permute(out, tuple(inv)), n_in=2)         # (B, *dims, H, value_dim) -> (B, *dims, *out)
        if query_mask is not None:
            out._keras_mask = query_mask if isinstance(query_mask, Tensor) else Tensor(query.xp.asarray(query_mask))
        if not return_attention_scores:
            return out
        return out, (scores if len(axes) == 1 else scores.reshape(nb + (H,) + q_att + tuple(vs[a] for a in axes)))

    def _mask(self, query, value, attention_mask, query_mask, value_mask, key_mask, use_causal_mask, axes, other):
        """The and of all masks (Keras' ``_compute_attention_mask``) as a boolean Tensor that broadcasts to the
        flat scores (B, *other, H, T, S), or None."""
        xp = query.xp
        qs, vs = tuple(query.shape), tuple(value.shape)
        k = len(axes)
        nb = (qs[0],) + tuple(qs[a] for a in other)
        q_att, k_att = tuple(qs[a] for a in axes), tuple(vs[a] for a in axes)
        T, S = math.prod(q_att), math.prod(k_att)
        parts = []

        def as_bool(m):
            return (m.data if isinstance(m, Tensor) else xp.asarray(m)).astype(bool)

        def input_mask(m, name, shape, is_query):
            """A (B, *dims) input mask as (B, *other, 1, T, 1) (query) or (B, *other, 1, 1, S) (value, key)."""
            m = as_bool(m)
            try:
                m = xp.broadcast_to(m, shape[:-1])
            except ValueError:
                raise OpError(f"MultiHeadAttention {self.name!r}: {name} of shape {tuple(m.shape)} does not broadcast "
                              f"to the input's (batch, *dims) = {tuple(shape[:-1])}") from None
            m = m.transpose((0,) + other + axes).reshape(nb + (1, -1))
            return m[..., :, None] if is_query else m[..., None, :]
        if query_mask is not None:
            parts.append(input_mask(query_mask, "query_mask", qs, True))
        for name, m in (("value_mask", value_mask), ("key_mask", key_mask)):
            if m is not None:
                parts.append(input_mask(m, name, vs, False))
        if use_causal_mask:
            if k != 1:
                raise ValueError(f"MultiHeadAttention {self.name!r}: use_causal_mask needs a single attention axis, "
                                 f"got attention axes {axes}")
            parts.append(xp.tril(xp.ones((T, S), dtype=bool)))
        if attention_mask is not None:
            m = as_bool(attention_mask)
            given = tuple(m.shape)
            full = nb + (self.num_heads,) + q_att + k_att    # Keras' scores shape, heads after the batch dims
            while m.ndim < 2 * k:
                m = m[None]
            while m.ndim < len(full):                         # Keras expands at the heads axis
                m = xp.expand_dims(m, m.ndim - 2 * k)
            try:
                ok = m.ndim == len(full) and broadcast_shapes(m.shape, full) == full
            except ValueError:
                ok = False
            if not ok:
                want = "(batch, T, S)" if len(full) == 4 else \
                    "(batch, *other dims, [num_heads,] *query attention dims, *key attention dims)"
                raise OpError(f"MultiHeadAttention {self.name!r}: attention_mask of shape {given} does not "
                              f"broadcast to {want} = {full[:-2 * k - 1] + full[-2 * k:]}") from None
            if k > 1:                                         # flatten the attention dims into (T, S)
                lead = m.shape[:-2 * k]
                m = xp.broadcast_to(m, lead + q_att + k_att).reshape(lead + (T, S))
            parts.append(m)
        if not parts:
            return None
        mask = parts[0]
        for m in parts[1:]:
            mask = mask & m
        return _wrap(mask)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        return query_shape[:-1] + self._output_shape if self._output_shape else query_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": list(self._output_shape) if self._output_shape else None,
                "attention_axes": list(self.attention_axes) if self.attention_axes is not None else None,
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
