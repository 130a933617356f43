"""Attention modules (PyTorch names): ``MultiheadAttention``, the Transformer encoder/decoder layers and
stacks, ``Transformer``, and a sinusoidal positional encoding.

Parameter names and shapes are PyTorch's, so a ``torch.nn.Transformer*`` state dict loads as is.
"""
from __future__ import annotations

import copy
import math

from ... import dtypes as _dt
from ...autograd.node import OpError
from ...creation import empty
from ...tensor import Tensor, _wrap
from .. import init
from ..module import Module
from ..parameter import Parameter
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
           "TransformerDecoder", "Transformer", "SinusoidalPositionalEncoding"]


# ---------------------------------------------------------------- masks
def _canonical(mask, name: str, dtype):
    """A mask as the raw boolean array (True = masked out, PyTorch's MHA convention) or a float Tensor."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        mask = Tensor(mask)
    if mask.data.dtype.kind == "b":
        return mask.data
    if not _dt.is_float(mask.data.dtype):
        raise OpError(f"MultiheadAttention: only bool and floating types of masks are supported, got {name} of "
                      f"dtype {mask.dtype}")
    return mask if mask.data.dtype == dtype else mask.to(_dt.from_np(dtype))


def _as_float(mask, xp, dtype):
    """A boolean (True = masked) array as an additive 0/-inf Tensor; floats pass through."""
    if isinstance(mask, Tensor):
        return mask
    return _wrap(xp.where(mask, dtype.type(-math.inf), dtype.type(0)))


def _pad_last(mask, xp, n: int):
    """Append ``n`` not-masked columns (the bias_k / zero-attention keys) to a mask's last dim."""
    if isinstance(mask, Tensor):
        from ...ops.join import pad
        return pad(mask, (0, n))
    return xp.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, n)])


def _merge_masks(attn_mask, kpm, xp, dtype, bsz: int, heads: int, L: int, S: int, extra: int):
    """Fold ``attn_mask`` ((L, S) or (N*H, L, S)) and ``key_padding_mask`` ((N, S)) into one mask for
    ``(N, H, L, S + extra)`` scores: a boolean Tensor (True = may attend) when both are boolean, else an
    additive float Tensor. ``extra`` keys (bias_k, zero attention) are never masked."""
    if attn_mask is None and kpm is None:
        return None
    if isinstance(attn_mask, Tensor) or isinstance(kpm, Tensor):
        attn_mask = _as_float(attn_mask, xp, dtype) if attn_mask is not None else None
        kpm = _as_float(kpm, xp, dtype) if kpm is not None else None
    if attn_mask is not None:
        if extra:
            attn_mask = _pad_last(attn_mask, xp, extra)
        if attn_mask.ndim == 3:
            attn_mask = attn_mask.reshape(bsz, heads, L, S + extra)
    if kpm is not None:
        if extra:
            kpm = _pad_last(kpm, xp, extra)
        kpm = kpm.reshape(bsz, 1, 1, S + extra)
    if isinstance(attn_mask, Tensor) or isinstance(kpm, Tensor):
        return kpm if attn_mask is None else (attn_mask if kpm is None else attn_mask + kpm)
    masked = kpm if attn_mask is None else (attn_mask if kpm is None else attn_mask | kpm)
    return _wrap(~masked)


def _causal_mask(xp, L: int, S: int):
    return xp.triu(xp.ones((L, S), dtype=bool), 1)


# ---------------------------------------------------------------- multi-head attention
class MultiheadAttention(Module):
    """Multi-head attention (PyTorch's ``nn.MultiheadAttention``): ``softmax(QK^T/sqrt(d) + mask) V`` per head.

    Args:
        embed_dim: model size E; num_heads: heads (E must divide evenly, head size E / num_heads).
        dropout: dropout on the attention weights during training.
        bias: biases on the input and output projections.
        add_bias_kv: learn one extra key and value (``bias_k``, ``bias_v`` of shape (1, 1, E)) appended to
            the keys. add_zero_attn: append a key and value of zeros.
        kdim, vdim: sizes of key and value inputs (default E); when either differs the projections are
            ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` instead of the packed ``in_proj_weight``
            (3E, E). The output projection is ``out_proj`` (a Linear(E, E)).
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` takes query (L, N, E), key (S, N, kdim), value
    (S, N, vdim) (or unbatched (L, E), ...), a key_padding_mask (N, S) and an attn_mask (L, S) or
    (N*num_heads, L, S); boolean masks mark with True what may *not* be attended, float masks are added
    to the scores. It returns the output (L, N, E) and, when ``need_weights``, the attention weights
    (N, L, S) averaged over heads or (N, num_heads, L, S). ``is_causal`` is a hint that attn_mask is the
    causal mask; unlike PyTorch (which requires the mask), Ember builds the causal mask when none is given.

    A query whose keys are all masked out gets a zero output (PyTorch returns NaN there when
    ``need_weights=True`` and zeros otherwise). Memory: the (N, H, L, S) attention weights are kept for
    the backward (twice with dropout).

    >>> import ember
    >>> mha = ember.nn.MultiheadAttention(8, 2, batch_first=True)
    >>> out, w = mha(ember.ones(3, 5, 8), ember.ones(3, 6, 8), ember.ones(3, 6, 8))
    >>> out.shape, w.shape
    (ember.Size([3, 5, 8]), ember.Size([3, 5, 6]))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.kdim = int(kdim) if kdim is not None else self.embed_dim
        self.vdim = int(vdim) if vdim is not None else self.embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.head_dim = embed_dim // num_heads
        dt = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * E, E, dtype=dt, device=device))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty(E, E, dtype=dt, device=device))
            self.k_proj_weight = Parameter(empty(E, self.kdim, dtype=dt, device=device))
            self.v_proj_weight = Parameter(empty(E, self.vdim, dtype=dt, device=device))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * E, dtype=dt, device=device))
        else:
            self.register_parameter("in_proj_bias", None)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, E, dtype=dt, device=device))
            self.bias_v = Parameter(empty(1, 1, E, dtype=dt, device=device))
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.add_zero_attn = bool(add_zero_attn)
        self.out_proj = Linear(E, E, bias=bias, device=device, dtype=dt)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"

    # ------------------------------------------------------------ forward
    def _check(self, query, key, value, kpm, attn_mask):
        def fail(why):
            raise OpError(f"MultiheadAttention: {why}; got query {tuple(query.shape)}, key {tuple(key.shape)}, "
                          f"value {tuple(value.shape)}" + (f", key_padding_mask {tuple(kpm.shape)}" if kpm is not None
                                                           else "") +
                          (f", attn_mask {tuple(attn_mask.shape)}" if attn_mask is not None else ""))
        for t in (query, key, value):
            if not isinstance(t, Tensor):
                raise OpError(f"MultiheadAttention: query, key and value must be Tensors, got {type(t).__name__}")
        nd = query.ndim
        if nd not in (2, 3):
            fail("expected a 3-D (batched) or 2-D (unbatched) query")
        if key.ndim != nd or value.ndim != nd:
            fail(f"for a {nd}-D query, key and value must be {nd}-D too")
        if kpm is not None and kpm.ndim != nd - 1:
            fail(f"for a {nd}-D query, key_padding_mask must be {nd - 1}-D")
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            fail(f"attn_mask's dimension {attn_mask.ndim} is not supported (expected 2-D or 3-D)")
        for name, t, d in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != d:
                fail(f"expected {name} to have {d} features in its last dim")
        if key.shape[:-1] != value.shape[:-1]:
            fail("key and value must have the same sequence length and batch size")
        seq_q, seq_k = (query.shape[1], key.shape[1]) if self.batch_first and nd == 3 else (query.shape[0],
                                                                                              key.shape[0])
        if nd == 3:
            bq = query.shape[0] if self.batch_first else query.shape[1]
            bk = key.shape[0] if self.batch_first else key.shape[1]
            if bq != bk:
                fail("query and key must have the same batch size")
        else:
            bq = 1
        if kpm is not None and tuple(kpm.shape) != ((bq, seq_k) if nd == 3 else (seq_k,)):
            fail(f"expected key_padding_mask of shape {(bq, seq_k) if nd == 3 else (seq_k,)}")
        if attn_mask is not None:
            want = (seq_q, seq_k) if attn_mask.ndim == 2 else (bq * self.num_heads, seq_q, seq_k)
            if tuple(attn_mask.shape) != want:
                fail(f"the shape of the {attn_mask.ndim}-D attn_mask should be {want}")

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        from ...ops.attention import _attention
        from ...ops.join import cat
        from ...ops.linalg import linear
        from ...ops.shape import permute, reshape
        self._check(query, key, value, key_padding_mask, attn_mask)
        batched = query.ndim == 3
        xp, dtype = query.xp, query.data.dtype
        kpm = _canonical(key_padding_mask, "key_padding_mask", dtype)
        am = _canonical(attn_mask, "attn_mask", dtype)
        if not batched:
            key_u = key.unsqueeze(1)
            query = key_u if query is key else query.unsqueeze(1)
            value = key_u if value is key else value.unsqueeze(1)
            key = key_u
            if kpm is not None:
                kpm = kpm.reshape(1, -1)
        # work in the input's own layout (no transposed copies before the projections): sd = the sequence dim
        sd = 1 if batched and self.batch_first else 0
        bsz, L, S, E = query.shape[1 - sd], query.shape[sd], key.shape[sd], self.embed_dim
        H, hd = self.num_heads, self.head_dim
        if is_causal and am is None:
            am = _causal_mask(xp, L, S)
        q, k, v = self._in_projection(query, key, value, linear)
        extra = 0
        one = (bsz, 1, E) if sd else (1, bsz, E)
        if self.bias_k is not None:
            k = cat([k, self.bias_k.expand(*one)], sd)
            v = cat([v, self.bias_v.expand(*one)], sd)
            extra += 1
        if self.add_zero_attn:
            zeros = _wrap(xp.zeros(one, dtype=dtype))
            k, v = cat([k, zeros], sd), cat([v, zeros], sd)
            extra += 1
        mask = _merge_masks(am, kpm, xp, dtype, bsz, H, L, S, extra)
        # (N, seq, E) or (seq, N, E) -> (N, H, seq, hd): views, the head dim stays contiguous for the matmuls
        axes = (0, 2, 1, 3) if sd else (1, 2, 0, 3)
        q = permute(reshape(q, tuple(q.shape[:2]) + (H, hd)), axes)
        k = permute(reshape(k, tuple(k.shape[:2]) + (H, hd)), axes)
        v = permute(reshape(v, tuple(v.shape[:2]) + (H, hd)), axes)
        p = self.dropout if self.training else 0.0
        res = _attention(q, k, v, mask, p, False, None, need_weights=need_weights)
        out, weights = res if need_weights else (res, None)
        if sd:
            out = reshape(permute(out, (0, 2, 1, 3)), (bsz, L, E))
        else:
            out = reshape(permute(out, (2, 0, 1, 3)), (L, bsz, E))
        out = linear(out, self.out_proj.weight, self.out_proj.bias)
        if not batched:
            out = out.squeeze(1)
        if weights is not None:
            if average_attn_weights:
                weights = weights.mean(1)
            if not batched:
                weights = weights.squeeze(0)
        return out, weights

    def _in_projection(self, query, key, value, linear):
        from ...ops.join import split
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if not self._qkv_same_embed_dim:
            return (linear(query, self.q_proj_weight, bq), linear(key, self.k_proj_weight, bk),
                    linear(value, self.v_proj_weight, bv))
        w = self.in_proj_weight
        if query is key and key is value:
            # self-attention: one matmul for the three projections, one split node (one concat in the backward)
            return split(linear(query, w, b), E, -1)
        if key is value:
            k, v = split(linear(key, w[E:], None if b is None else b[E:]), E, -1)
            return linear(query, w[:E], bq), k, v
        return linear(query, w[:E], bq), linear(key, w[E:2 * E], bk), linear(value, w[2 * E:], bv)


# ---------------------------------------------------------------- encoder / decoder layers
def _activation(activation):
    if isinstance(activation, str):
        from ...ops.activation import gelu, relu
        if activation == "relu":
            return relu
        if activation == "gelu":
            return gelu
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"activation should be 'relu', 'gelu' or a callable, got {activation!r}")
    return activation


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with a residual connection and LayerNorm
    (PyTorch's ``nn.TransformerEncoderLayer``; submodules ``self_attn``, ``linear1``, ``dropout``, ``linear2``,
    ``norm1``, ``norm2``, ``dropout1``, ``dropout2``).

    ``norm_first=False`` (post-norm): ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``; ``norm_first=True``:
    ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``, with ``ff(x) = linear2(dropout(activation(linear1(x))))``.
    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``; src is (S, N, E), or
    (N, S, E) with batch_first, or unbatched (S, E).

    >>> import ember
    >>> layer = ember.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True)
    >>> layer(ember.randn(2, 5, 16)).shape
    ember.Size([2, 5, 16])
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        from .normalization import LayerNorm
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, src: Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's ``memory``, then feed-forward, each with a residual
    connection and LayerNorm (PyTorch's ``nn.TransformerDecoderLayer``; submodules ``self_attn``,
    ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1..3``, ``dropout1..3``).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``.

    >>> import ember
    >>> layer = ember.nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> layer(ember.randn(5, 2, 16), ember.randn(7, 2, 16)).shape
    ember.Size([5, 2, 16])
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        from .normalization import LayerNorm
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                                 **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


# ---------------------------------------------------------------- stacks
class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0``, ``layers.1``, ...) and an optional final
    ``norm`` (PyTorch's ``nn.TransformerEncoder``). ``forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None)``. Padded positions are computed as in training; PyTorch's inference fast path (nested
    tensors, under ``no_grad``) returns zeros there instead. The other positions agree.

    >>> import ember
    >>> layer = ember.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32)
    >>> ember.nn.TransformerEncoder(layer, num_layers=2)(ember.randn(5, 2, 16)).shape
    ember.Size([5, 2, 16])
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None, is_causal: bool | None = None) -> Tensor:
        out = src
        for mod in self.layers:
            out = mod(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(out) if self.norm is not None else out


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer`` and an optional final ``norm`` (PyTorch's
    ``nn.TransformerDecoder``). ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``.

    >>> import ember
    >>> layer = ember.nn.TransformerDecoderLayer(16, 4, dim_feedforward=32)
    >>> ember.nn.TransformerDecoder(layer, 2)(ember.randn(5, 2, 16), ember.randn(3, 2, 16)).shape
    ember.Size([5, 2, 16])
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        out = tgt
        for mod in self.layers:
            out = mod(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return self.norm(out) if self.norm is not None else out


class Transformer(Module):
    """The encoder-decoder Transformer (PyTorch's ``nn.Transformer``): ``encoder`` and ``decoder`` stacks, each
    ending in a LayerNorm, every weight matrix Xavier-uniform initialised.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
    memory_is_causal=False)`` returns (T, N, E) (or (N, T, E) with batch_first).

    >>> import ember
    >>> model = ember.nn.Transformer(d_model=16, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
    ...                              dim_feedforward=32)
    >>> model(ember.randn(6, 2, 16), ember.randn(5, 2, 16)).shape
    ember.Size([5, 2, 16])
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        from .normalization import LayerNorm
        kw = {"device": device, "dtype": dtype}
        layer_kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                        layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias, **kw)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, **layer_kw), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, **layer_kw), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src: Tensor, tgt: Tensor, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        batched = src.ndim == 3
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise OpError(f"Transformer: the feature number of src and tgt must be equal to d_model={self.d_model}, "
                          f"got src {tuple(src.shape)} and tgt {tuple(tgt.shape)}")
        if batched and src.shape[0 if self.batch_first else 1] != tgt.shape[0 if self.batch_first else 1]:
            raise OpError(f"Transformer: the batch number of src and tgt must be equal, got src {tuple(src.shape)} "
                          f"and tgt {tuple(tgt.shape)} (batch_first={self.batch_first})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
        """A float (sz, sz) causal mask: 0 on and below the diagonal, ``-inf`` above."""
        from ...creation import full
        m = full((sz, sz), -math.inf, dtype=dtype, device=device)
        return _wrap(m.xp.triu(m.data, 1))


# ---------------------------------------------------------------- positional encoding
class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal position code of "Attention Is All You Need" to a sequence of embeddings.

    ``PE[pos, 2i] = sin(pos / 10000^(2i / d_model))``, ``PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))``;
    ``forward(x)`` returns ``dropout(x + PE[:seq_len])`` for x of shape (S, N, d_model), (N, S, d_model) with
    ``batch_first=True``, or unbatched (S, d_model). Not a PyTorch module (its tutorials define it
    inline); the table is the non-persistent buffer ``pe`` (max_len, d_model), so no state-dict entry.

    >>> import ember
    >>> pe = ember.nn.SinusoidalPositionalEncoding(8, max_len=50, batch_first=True)
    >>> pe(ember.zeros(2, 10, 8)).shape
    ember.Size([2, 10, 8])
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0, batch_first: bool = False):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = int(d_model), int(max_len), bool(batch_first)
        self.dropout = Dropout(dropout)
        self.register_buffer("pe", _wrap(sinusoidal_table(self.max_len, self.d_model)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.shape[1] if self.batch_first and x.ndim == 3 else x.shape[0]
        if x.shape[-1] != self.d_model or seq > self.max_len:
            raise OpError(f"SinusoidalPositionalEncoding: expected (..., d_model={self.d_model}) with at most "
                          f"max_len={self.max_len} positions, got input {tuple(x.shape)} "
                          f"(batch_first={self.batch_first})")
        pe = self.pe[:seq]
        if x.ndim == 3 and not self.batch_first:
            pe = pe.unsqueeze(1)
        return self.dropout(x + pe.to(x.dtype))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


def sinusoidal_table(length: int, d_model: int, base: float = 10000.0, xp=None, dtype="float32"):
    """The (length, d_model) array of :class:`SinusoidalPositionalEncoding` (odd d_model allowed), computed in
    float64 on the array module ``xp`` (default: the CPU's)."""
    if xp is None:
        from ...backend import cpu
        xp = cpu.xp
    pos = xp.arange(length, dtype="float64")[:, None]
    div = xp.exp(xp.arange(0, d_model, 2, dtype="float64") * (-math.log(base) / d_model))
    table = xp.zeros((length, d_model), dtype="float64")
    table[:, 0::2] = xp.sin(pos * div)
    table[:, 1::2] = xp.cos(pos * div[: d_model // 2])
    return table.astype(dtype)
