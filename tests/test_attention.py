"""Attention: scaled_dot_product_attention, MultiheadAttention, Transformer layers and Keras-style attention layers,
each against PyTorch (forward, input and parameter gradients) plus float64 gradchecks and clear errors."""
import numpy as np
import pytest
import torch

import ember
from helpers.modcheck import check_module
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional
EF = ember.nn.functional

rng = np.random.default_rng(0)


def _mask(shape, p=0.3, seed=1, dead_row=None):
    m = np.random.default_rng(seed).random(shape) > p
    m[..., 0] = True                      # every query keeps a key unless a dead row is asked for
    if dead_row is not None:
        m[..., dead_row, :] = False
    return Arr(m, grad=False)


def _pad_mask(shape, p=0.6, seed=1):
    """A boolean mask in PyTorch's MHA convention (True = masked out) that leaves key 0 to every query."""
    m = np.random.default_rng(seed).random(shape) > p
    m[..., 0] = False
    return Arr(m, grad=False)


def _sdpa(**kw):
    def e(q, k, v, *m):
        return EF.scaled_dot_product_attention(q, k, v, *m, **kw)

    def t(q, k, v, *m):
        return F.scaled_dot_product_attention(q, k, v, *m, **kw)
    return e, t


# ---------------------------------------------------------------- scaled_dot_product_attention
SDPA = [
    ("basic", _sdpa(), [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]),
    ("L_ne_S_Ev", _sdpa(), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)]),
    ("batch1", _sdpa(), [(1, 1, 3, 4), (1, 1, 5, 4), (1, 1, 5, 2)]),
    ("3d", _sdpa(), [(2, 3, 4), (2, 5, 4), (2, 5, 3)]),
    ("2d", _sdpa(), [(3, 4), (5, 4), (5, 3)]),
    ("broadcast_batch", _sdpa(), [(2, 3, 4, 5), (1, 3, 6, 5), (3, 6, 2)]),
    ("scale", _sdpa(scale=0.3), [(2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 3)]),
    ("causal", _sdpa(is_causal=True), [(2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 3)]),
    ("causal_L_lt_S", _sdpa(is_causal=True), [(2, 2, 3, 4), (2, 2, 6, 4), (2, 2, 6, 3)]),
    ("causal_L_gt_S", _sdpa(is_causal=True), [(1, 2, 6, 4), (1, 2, 3, 4), (1, 2, 3, 3)]),
    ("bool_mask_LS", _sdpa(), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 3), _mask((4, 6))]),
    ("bool_mask_heads_bcast", _sdpa(), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 3), _mask((2, 1, 4, 6))]),
    ("bool_mask_full", _sdpa(), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 3), _mask((2, 3, 4, 6))]),
    ("float_mask_LS", _sdpa(), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 3), (4, 6)]),
    ("float_mask_batch", _sdpa(), [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 3), (2, 1, 1, 6)]),
    ("float_mask_const", _sdpa(), [(2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 3), Arr(rng.standard_normal((4, 6)), False)]),
    ("float_mask_scale", _sdpa(scale=2.0), [(1, 2, 4, 5), (1, 2, 6, 5), (1, 2, 6, 3), (1, 2, 4, 6)]),
    ("gqa", _sdpa(enable_gqa=True), [(2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 3)]),
    ("gqa_mask", _sdpa(enable_gqa=True), [(1, 6, 3, 4), (1, 3, 5, 4), (1, 3, 5, 2), _mask((1, 6, 3, 5))]),
]


@pytest.mark.parametrize("name,fns,specs", SDPA, ids=[c[0] for c in SDPA])
def test_sdpa(name, fns, specs):
    check_op(*fns, specs)


def test_sdpa_fully_masked_rows_give_zeros_like_torch():
    # torch 2.13 (CPU) gives zeros, not NaN, for a query whose keys are all masked, and zero gradients
    dead_bool = _mask((4, 6), dead_row=1)
    check_op(*_sdpa(), [(2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 3), dead_bool])
    fm = np.zeros((4, 6))
    fm[2] = -np.inf
    check_op(*_sdpa(), [(2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 3), Arr(fm, grad=False)])
    q = ember.randn(1, 4, 3)
    out = EF.scaled_dot_product_attention(q, q, q, attn_mask=ember.tensor(dead_bool.value[:, :4]))
    assert not np.isnan(out.numpy()).any() and np.all(out.numpy()[0, 1] == 0)


def test_sdpa_second_derivatives():
    x = [ember.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3))]
    m = ember.tensor(_mask((3, 5), dead_row=2).value)
    assert ember.autograd.gradgradcheck(lambda q, k, v: EF.scaled_dot_product_attention(q, k, v, attn_mask=m), x)
    fm = ember.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda q, k, v, f: EF.scaled_dot_product_attention(q, k, v, attn_mask=f),
                                        x + [fm])


def test_attention_weights_output_first_and_second_derivatives():
    from ember.ops.attention import _attention
    x = [ember.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3))]
    m = ember.tensor(rng.standard_normal((3, 5)), requires_grad=True)

    def f(q, k, v, m):
        ember.manual_seed(1)
        out, w = _attention(q, k, v, m, 0.3, need_weights=True)
        return out, w.mean(1)
    assert ember.autograd.gradcheck(f, x + [m])
    assert ember.autograd.gradgradcheck(f, x + [m])


def test_sdpa_dropout_uses_embers_rng():
    q, k, v = (ember.tensor(rng.standard_normal((2, 2, 4, 5)), requires_grad=True) for _ in range(3))

    def f(q, k, v):
        ember.manual_seed(3)
        return EF.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    out = f(q, k, v)
    ember.manual_seed(3)
    keep = ember.backend.rng().random((2, 2, 4, 4), dtype="float64") >= 0.4
    p = EF.softmax(q @ k.transpose(-1, -2) / np.sqrt(5), -1) * ember.tensor(keep / 0.6)
    np.testing.assert_allclose(out.detach().numpy(), (p @ v).detach().numpy(), atol=1e-12)
    assert not np.allclose(out.detach().numpy(), EF.scaled_dot_product_attention(q, k, v).detach().numpy())
    assert ember.autograd.gradcheck(f, [q, k, v])
    assert ember.autograd.gradgradcheck(f, [q, k, v])


@pytest.mark.parametrize("kwargs,match", [
    (dict(attn_mask=ember.ones(3, 5, dtype=ember.bool), is_causal=True), "attn_mask should not be set"),
    (dict(attn_mask=ember.ones(4, 5, dtype=ember.bool)), r"attn_mask of shape \(4, 5\) does not broadcast"),
    (dict(attn_mask=ember.ones(3, 5, dtype=ember.float64)), "boolean or have the query's dtype"),
    (dict(dropout_p=1.0), "dropout_p"),
])
def test_sdpa_errors(kwargs, match):
    q, k = ember.randn(2, 3, 4), ember.randn(2, 5, 4)
    with pytest.raises(ember.autograd.OpError, match=match):
        EF.scaled_dot_product_attention(q, k, k, **kwargs)


def test_sdpa_output_changed_in_place_is_caught():
    q = ember.randn(2, 3, 4, requires_grad=True)
    out = EF.scaled_dot_product_attention(q, q, q)
    out.add_(1)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.sum().backward()


def test_sdpa_shape_errors():
    with pytest.raises(ember.autograd.OpError, match="same embedding size"):
        EF.scaled_dot_product_attention(ember.randn(2, 3, 4), ember.randn(2, 5, 3), ember.randn(2, 5, 3))
    with pytest.raises(ember.autograd.OpError, match="same sequence length"):
        EF.scaled_dot_product_attention(ember.randn(2, 3, 4), ember.randn(2, 5, 4), ember.randn(2, 6, 4))
    with pytest.raises(ember.autograd.OpError, match="same dtype"):
        EF.scaled_dot_product_attention(ember.randn(3, 4), ember.randn(5, 4).double(), ember.randn(5, 4))
    with pytest.raises(ember.autograd.OpError, match="multiple of the key heads"):
        EF.scaled_dot_product_attention(ember.randn(1, 3, 2, 4), ember.randn(1, 2, 5, 4), ember.randn(1, 2, 5, 4),
                                        enable_gqa=True)


# ---------------------------------------------------------------- MultiheadAttention
def _pair(cls_e, cls_t, *args, **kw):
    torch.manual_seed(0)
    return cls_e(*args, **kw), cls_t(*args, **kw)


def _mha(**kw):
    return _pair(ember.nn.MultiheadAttention, torch.nn.MultiheadAttention, 8, 2, **kw)


def _self_call(**kw):
    return lambda m, x, *masks: m(x, x, x, *masks[:1], **kw) if masks else m(x, x, x, **kw)


def _call(**kw):
    def call(m, q, k, v, *masks):
        extra = dict(kw)
        for name, mask in zip(extra.pop("mask_names", ()), masks):
            extra[name] = mask
        return m(q, k, v, **extra)
    return call


MHA = [
    ("self_seq_first", {}, _self_call(), [(5, 3, 8)]),
    ("self_batch_first", dict(batch_first=True), _self_call(), [(3, 5, 8)]),
    ("cross_batch_first", dict(batch_first=True), _call(), [(2, 4, 8), (2, 6, 8), (2, 6, 8)]),
    ("cross_seq_first", {}, _call(), [(4, 2, 8), (6, 2, 8), (6, 2, 8)]),
    ("batch1", dict(batch_first=True), _call(), [(1, 4, 8), (1, 3, 8), (1, 3, 8)]),
    ("kdim_vdim", dict(kdim=5, vdim=3, batch_first=True), _call(), [(2, 4, 8), (2, 6, 5), (2, 6, 3)]),
    ("no_bias", dict(bias=False), _call(), [(4, 2, 8), (6, 2, 8), (6, 2, 8)]),
    ("no_weights", {}, _call(need_weights=False), [(4, 2, 8), (6, 2, 8), (6, 2, 8)]),
    ("per_head_weights", dict(batch_first=True), _call(average_attn_weights=False), [(2, 4, 8), (2, 6, 8), (2, 6, 8)]),
    ("unbatched", {}, _call(), [(4, 8), (6, 8), (6, 8)]),
    ("unbatched_per_head", {}, _call(average_attn_weights=False), [(4, 8), (6, 8), (6, 8)]),
    ("kpm_bool", dict(batch_first=True), _call(mask_names=("key_padding_mask",)),
     [(2, 4, 8), (2, 6, 8), (2, 6, 8), _pad_mask((2, 6))]),
    ("kpm_float", {}, _call(mask_names=("key_padding_mask",)),
     [(4, 2, 8), (6, 2, 8), (6, 2, 8), Arr(rng.standard_normal((2, 6)), False)]),
    ("attn_mask_2d_bool", {}, _call(mask_names=("attn_mask",)),
     [(4, 2, 8), (6, 2, 8), (6, 2, 8), _pad_mask((4, 6))]),
    ("attn_mask_3d_bool", dict(batch_first=True), _call(mask_names=("attn_mask",)),
     [(2, 4, 8), (2, 6, 8), (2, 6, 8), _pad_mask((4, 4, 6))]),
    ("attn_mask_2d_float", {}, _call(mask_names=("attn_mask",), need_weights=False),
     [(4, 2, 8), (6, 2, 8), (6, 2, 8), Arr(rng.standard_normal((4, 6)), False)]),
    ("attn_mask_3d_float", {}, _call(mask_names=("attn_mask",)),
     [(4, 2, 8), (6, 2, 8), (6, 2, 8), Arr(rng.standard_normal((4, 4, 6)), False)]),
    ("both_masks_bool", dict(batch_first=True), _call(mask_names=("attn_mask", "key_padding_mask")),
     [(2, 4, 8), (2, 6, 8), (2, 6, 8), _pad_mask((4, 6)), _pad_mask((2, 6), seed=5)]),
    ("both_masks_float", {}, _call(mask_names=("attn_mask", "key_padding_mask")),
     [(4, 2, 8), (6, 2, 8), (6, 2, 8), Arr(rng.standard_normal((4, 6)), False),
      Arr(rng.standard_normal((2, 6)), False)]),
    ("unbatched_masks", {}, _call(mask_names=("attn_mask", "key_padding_mask")),
     [(4, 8), (6, 8), (6, 8), _pad_mask((2, 4, 6)), _pad_mask((6,), seed=5)]),
    ("kpm_whole_batch_masked", dict(batch_first=True), _call(mask_names=("key_padding_mask",), need_weights=False),
     [(2, 4, 8), (2, 6, 8), (2, 6, 8), Arr(np.array([[False] * 6, [True] * 6]), False)]),
    ("bias_kv", dict(add_bias_kv=True), _call(), [(4, 2, 8), (6, 2, 8), (6, 2, 8)]),
    ("zero_attn", dict(add_zero_attn=True, batch_first=True), _call(), [(2, 4, 8), (2, 6, 8), (2, 6, 8)]),
    ("bias_kv_zero_attn_masks", dict(add_bias_kv=True, add_zero_attn=True), _call(mask_names=("attn_mask",
                                                                                             "key_padding_mask")),
     [(4, 2, 8), (6, 2, 8), (6, 2, 8), _pad_mask((4, 6)), _pad_mask((2, 6), seed=5)]),
]


@pytest.mark.parametrize("name,kw,call,specs", MHA, ids=[c[0] for c in MHA])
def test_multihead_attention(name, kw, call, specs):
    e, t = _mha(**kw)
    check_module(e, t, specs, call=call)


@pytest.mark.parametrize("name", ["self_seq_first", "kdim_vdim", "bias_kv_zero_attn_masks", "unbatched"])
def test_multihead_attention_gradcheck(name):
    _, kw, call, specs = next(c for c in MHA if c[0] == name)
    e, t = _mha(**kw)
    check_module(e, t, specs, call=call, gradcheck=True)


def test_multihead_attention_eval_and_causal():
    e, t = _mha(dropout=0.3, batch_first=True)
    causal = Arr(np.triu(np.ones((5, 5), dtype=bool), 1), grad=False)
    check_module(e, t, [(2, 5, 8), causal], train=False,
                 call=lambda m, x, am: m(x, x, x, attn_mask=am, is_causal=True, need_weights=False))
    out, _ = e(ember.randn(2, 5, 8), ember.randn(2, 5, 8), ember.randn(2, 5, 8), is_causal=True)
    assert out.shape == (2, 5, 8)


def test_multihead_attention_dropout_in_training():
    e, _ = _mha(dropout=0.5, batch_first=True)
    x = ember.randn(2, 5, 8)
    e.train()
    ember.manual_seed(0)
    a = e(x, x, x)[1]
    e.eval()
    b = e(x, x, x)[1]
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    np.testing.assert_allclose(b.detach().numpy().sum(-1), 1, rtol=1e-5)


def test_multihead_attention_state_dict_names():
    for kw in ({}, dict(kdim=3, vdim=5, add_bias_kv=True), dict(bias=False)):
        e, t = _mha(**kw)
        es, ts = e.state_dict(), t.state_dict()
        assert list(es) == list(ts)
        assert all(tuple(es[k].shape) == tuple(ts[k].shape) for k in ts)


@pytest.mark.parametrize("args,call,match", [
    ((6, 4), None, "divisible by num_heads"),
    ((8, 2), lambda m: m(ember.randn(4, 2, 8), ember.randn(6, 2, 8), ember.randn(6, 2, 8),
                         attn_mask=ember.ones(4, 5, dtype=ember.bool)), r"2-D attn_mask should be \(4, 6\)"),
    ((8, 2), lambda m: m(ember.randn(4, 2, 8), ember.randn(6, 2, 8), ember.randn(6, 2, 8),
                         attn_mask=ember.ones(2, 4, 6, dtype=ember.bool)), r"3-D attn_mask should be \(4, 4, 6\)"),
    ((8, 2), lambda m: m(ember.randn(4, 2, 8), ember.randn(6, 2, 8), ember.randn(6, 2, 8),
                         key_padding_mask=ember.ones(6, 2, dtype=ember.bool)), r"key_padding_mask of shape \(2, 6\)"),
    ((8, 2), lambda m: m(ember.randn(4, 2, 7), ember.randn(6, 2, 8), ember.randn(6, 2, 8)), "8 features"),
    ((8, 2), lambda m: m(ember.randn(4, 2, 8), ember.randn(6, 8), ember.randn(6, 8)), "must be 3-D too"),
])
def test_multihead_attention_errors(args, call, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        m = ember.nn.MultiheadAttention(*args)
        call(m)


# ---------------------------------------------------------------- Transformer layers
def _enc_layer(**kw):
    return _pair(ember.nn.TransformerEncoderLayer, torch.nn.TransformerEncoderLayer, 8, 2, dim_feedforward=12,
                 dropout=0.0, **kw)


ENC = [
    ("relu_post", dict(), [(5, 2, 8)]),
    ("gelu_post_bf", dict(activation="gelu", batch_first=True), [(2, 5, 8)]),
    ("relu_pre", dict(norm_first=True), [(5, 2, 8)]),
    ("gelu_pre_bf", dict(activation="gelu", norm_first=True, batch_first=True), [(2, 5, 8)]),
    ("no_bias", dict(bias=False, batch_first=True), [(2, 5, 8)]),
    ("eps_batch1", dict(layer_norm_eps=1e-3, batch_first=True), [(1, 4, 8)]),
    ("unbatched", dict(), [(5, 8)]),
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,kw,specs", ENC, ids=[c[0] for c in ENC])
def test_transformer_encoder_layer(name, kw, specs, train):
    check_module(*_enc_layer(**kw), specs, train=train)


def test_transformer_encoder_layer_masks_and_callable_activation():
    e, t = _enc_layer(batch_first=True)
    e.activation, t.activation = EF.silu, F.silu
    causal = Arr(np.triu(np.ones((5, 5), dtype=bool), 1), grad=False)
    check_module(e, t, [(2, 5, 8), causal, _pad_mask((2, 5))],
                 call=lambda m, x, am, kpm: m(x, src_mask=am, src_key_padding_mask=kpm))
    e, t = _enc_layer(norm_first=True)
    check_module(e, t, [(5, 2, 8), causal], call=lambda m, x, am: m(x, src_mask=am, is_causal=True))


def test_transformer_encoder_layer_gradcheck():
    e, t = _pair(ember.nn.TransformerEncoderLayer, torch.nn.TransformerEncoderLayer, 4, 2, dim_feedforward=6,
                 dropout=0.0, activation="gelu", norm_first=True, batch_first=True)
    check_module(e, t, [(2, 3, 4)], gradcheck=True)


@pytest.mark.parametrize("norm", [False, True])
def test_transformer_encoder(norm):
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True)
    t = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(8) if norm else None, enable_nested_tensor=False)
    e = ember.nn.TransformerEncoder(ember.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True), 2,
                                    norm=ember.nn.LayerNorm(8) if norm else None)
    assert list(e.state_dict()) == list(t.state_dict())
    assert e.layers[0] is not e.layers[1] and e.layers[0].linear1.weight is not e.layers[1].linear1.weight
    check_module(e, t, [(2, 5, 8), _pad_mask((2, 5))], call=lambda m, x, kpm: m(x, src_key_padding_mask=kpm))
    check_module(e, t, [(2, 5, 8)], train=False)


def _dec_layer(**kw):
    return _pair(ember.nn.TransformerDecoderLayer, torch.nn.TransformerDecoderLayer, 8, 2, dim_feedforward=12,
                 dropout=0.0, **kw)


DEC = [
    ("relu_post", dict(), [(4, 2, 8), (6, 2, 8)]),
    ("gelu_pre_bf", dict(activation="gelu", norm_first=True, batch_first=True), [(2, 4, 8), (2, 6, 8)]),
    ("relu_pre_batch1", dict(norm_first=True, batch_first=True), [(1, 4, 8), (1, 3, 8)]),
    ("unbatched", dict(activation="gelu"), [(4, 8), (6, 8)]),
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,kw,specs", DEC, ids=[c[0] for c in DEC])
def test_transformer_decoder_layer(name, kw, specs, train):
    check_module(*_dec_layer(**kw), specs, train=train)


def test_transformer_decoder_layer_masks_and_gradcheck():
    e, t = _dec_layer(batch_first=True)
    causal = Arr(np.triu(np.ones((4, 4), dtype=bool), 1), grad=False)

    def call(m, x, mem, tm, tkpm, mkpm):
        return m(x, mem, tgt_mask=tm, tgt_key_padding_mask=tkpm, memory_key_padding_mask=mkpm, tgt_is_causal=True)
    check_module(e, t, [(2, 4, 8), (2, 6, 8), causal, _pad_mask((2, 4)), _pad_mask((2, 6), seed=3)], call=call)
    mm = Arr(np.random.default_rng(0).standard_normal((4, 6)), False)
    check_module(e, t, [(2, 4, 8), (2, 6, 8), mm], call=lambda m, x, mem, mm: m(x, mem, memory_mask=mm))
    e, t = _pair(ember.nn.TransformerDecoderLayer, torch.nn.TransformerDecoderLayer, 4, 2, dim_feedforward=6,
                 dropout=0.0)
    check_module(e, t, [(3, 1, 4), (2, 1, 4)], gradcheck=True)


def test_transformer_decoder_and_full_transformer():
    torch.manual_seed(0)
    tl = torch.nn.TransformerDecoderLayer(8, 2, 12, dropout=0.0)
    t = torch.nn.TransformerDecoder(tl, 2, norm=torch.nn.LayerNorm(8))
    e = ember.nn.TransformerDecoder(ember.nn.TransformerDecoderLayer(8, 2, 12, dropout=0.0), 2,
                                    norm=ember.nn.LayerNorm(8))
    check_module(e, t, [(4, 2, 8), (5, 2, 8)])
    torch.manual_seed(0)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=12, dropout=0.0,
              batch_first=True)
    t = torch.nn.Transformer(**kw)
    e = ember.nn.Transformer(**kw)
    tm = Arr(torch.nn.Transformer.generate_square_subsequent_mask(4).numpy().astype(np.float64), False)
    np.testing.assert_array_equal(ember.nn.Transformer.generate_square_subsequent_mask(4).numpy(), tm.value)
    check_module(e, t, [(2, 5, 8), (2, 4, 8), tm], call=lambda m, s, tg, tm: m(s, tg, tgt_mask=tm))


def test_transformer_layer_errors():
    with pytest.raises(RuntimeError, match="relu/gelu"):
        ember.nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="divisible"):
        ember.nn.TransformerEncoderLayer(10, 3)


def test_sinusoidal_positional_encoding():
    pe = ember.nn.SinusoidalPositionalEncoding(6, max_len=20, batch_first=True)
    assert pe.state_dict() == {} and pe.pe.shape == (20, 6)
    pos, i = 7, 2
    assert pe.pe[pos, 2 * i].item() == pytest.approx(np.sin(pos / 10000 ** (2 * i / 6)), rel=1e-6)
    assert pe.pe[pos, 2 * i + 1].item() == pytest.approx(np.cos(pos / 10000 ** (2 * i / 6)), rel=1e-6)
    x = ember.randn(2, 5, 6)
    np.testing.assert_allclose(pe(x).numpy(), x.numpy() + pe.pe[:5].numpy()[None])
    seq_first = ember.nn.SinusoidalPositionalEncoding(6, max_len=20)
    np.testing.assert_allclose(seq_first(x.transpose(0, 1)).numpy(), pe(x).transpose(0, 1).numpy())
    assert ember.nn.SinusoidalPositionalEncoding(5, 4).pe.shape == (4, 5)
    with pytest.raises(ValueError, match="max_len=20"):
        pe(ember.randn(2, 21, 6))


# ---------------------------------------------------------------- Keras-style layers
def _keras_mha_torch(weights, q, v, k, H, kd, mask=None, causal=False):
    """Keras' MultiHeadAttention written in torch ops on the Keras weight layout."""
    wq, bq, wk, bk, wv, bv, wo, bo = weights

    def proj(x, w, b):
        return torch.einsum("btd,dhk->bhtk", x, w) + b[None, :, None, :]
    qh, kh, vh = proj(q, wq, bq), proj(k, wk, bk), proj(v, wv, bv)
    s = qh @ kh.transpose(-1, -2) / np.sqrt(kd)
    if causal:
        cm = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
        mask = cm if mask is None else mask & cm
    if mask is not None:
        s = s.masked_fill(~mask.unsqueeze(-3) if mask.ndim == 3 else ~mask, float("-inf"))
    p = torch.softmax(s, -1)
    out = torch.einsum("bhtv,hvo->bto", p @ vh, wo.reshape(wo.shape[0], wo.shape[1], -1)) + bo.reshape(-1)
    return out.reshape(out.shape[:2] + tuple(wo.shape[2:])), p


KMHA = [
    ("self", dict(num_heads=2, key_dim=3), [(2, 5, 6)], {}),
    ("cross_value_dim", dict(num_heads=3, key_dim=2, value_dim=4), [(2, 4, 6), (2, 5, 3)], {}),
    ("separate_key", dict(num_heads=2, key_dim=3), [(1, 4, 6), (1, 5, 3), (1, 5, 7)], {}),
    ("output_shape", dict(num_heads=2, key_dim=3, output_shape=(2, 5)), [(2, 4, 6), (2, 3, 6)], {}),
    ("no_bias_causal", dict(num_heads=2, key_dim=3, use_bias=False), [(2, 5, 6)], dict(use_causal_mask=True)),
    ("mask", dict(num_heads=2, key_dim=3), [(2, 4, 6), (2, 5, 6)], dict(attention_mask=_mask((2, 4, 5)))),
    ("mask_and_causal", dict(num_heads=2, key_dim=3), [(2, 5, 6)], dict(attention_mask=_mask((2, 5, 5)),
                                                                         use_causal_mask=True)),
]


@pytest.mark.parametrize("name,cfg,shapes,kw", KMHA, ids=[c[0] for c in KMHA])
def test_keras_multi_head_attention_matches_torch(name, cfg, shapes, kw):
    r = np.random.default_rng(2)
    xs = [r.standard_normal(s).astype(np.float32) for s in shapes]
    layer = ember.layers.MultiHeadAttention(**cfg, bias_initializer="random_normal")
    e_in = [ember.tensor(x, requires_grad=True) for x in xs]
    ekw = {k: (ember.tensor(v.value) if isinstance(v, Arr) else v) for k, v in kw.items()}
    out, scores = layer(e_in[0], e_in[-1] if len(e_in) < 3 else e_in[1], key=e_in[2] if len(e_in) == 3 else None,
                        return_attention_scores=True, **ekw)
    subs = [layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense]
    assert tuple(subs[0].kernel.shape) == (shapes[0][-1], cfg["num_heads"], cfg["key_dim"])
    params = [w for s in subs for w in (s.kernel, s.bias)]
    t_w = [torch.tensor(p.detach().numpy(), requires_grad=True) if p is not None
           else torch.zeros(tuple(s.kernel.shape[2 if s is layer.output_dense else 1:])) for p, s in
           zip(params, [s for s in subs for _ in (0, 1)])]
    t_in = [torch.tensor(x, requires_grad=True) for x in xs]
    tq, tv = t_in[0], (t_in[-1] if len(t_in) < 3 else t_in[1])
    tk = t_in[2] if len(t_in) == 3 else tv
    tmask = torch.tensor(kw["attention_mask"].value) if "attention_mask" in kw else None
    t_out, t_scores = _keras_mha_torch(t_w, tq, tv, tk, cfg["num_heads"], cfg["key_dim"], tmask,
                                       kw.get("use_causal_mask", False))
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(scores.detach().numpy(), t_scores.detach().numpy(), atol=1e-6)
    g = r.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (out * ember.tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    for a, b in zip(e_in, t_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-4)
    for p, t in zip(params, t_w):
        if p is not None:
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), atol=1e-4)


def test_keras_multi_head_attention_equals_torch_module_with_reshaped_weights():
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=4, bias_initializer="random_normal")
    x = ember.randn(3, 5, 8)
    out = layer(x, x)
    t = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    H, kd = 2, 4
    w = {n: getattr(layer, n).kernel.detach().numpy() for n in ("query_dense", "key_dense", "value_dense")}
    b = {n: getattr(layer, n).bias.detach().numpy() for n in ("query_dense", "key_dense", "value_dense")}
    with torch.no_grad():
        t.in_proj_weight.copy_(torch.tensor(np.concatenate([w[n].reshape(8, H * kd).T for n in w])))
        t.in_proj_bias.copy_(torch.tensor(np.concatenate([b[n].reshape(-1) for n in b])))
        t.out_proj.weight.copy_(torch.tensor(layer.output_dense.kernel.detach().numpy().reshape(H * kd, 8).T))
        t.out_proj.bias.copy_(torch.tensor(layer.output_dense.bias.detach().numpy()))
    tx = torch.tensor(x.numpy())
    np.testing.assert_allclose(out.detach().numpy(), t(tx, tx, tx)[0].detach().numpy(), atol=1e-5)


def test_keras_multi_head_attention_gradcheck_and_dropout():
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.3).double()
    q, v = ember.randn(2, 3, 4).double().requires_grad_(), ember.randn(2, 4, 4).double().requires_grad_()
    layer(q, v)
    layer.double()
    assert ember.autograd.gradcheck(lambda a, b: layer(a, b, use_causal_mask=False), [q, v])
    a = layer(q, v, training=True)
    assert not np.allclose(a.detach().numpy(), layer(q, v).detach().numpy())


def test_keras_multi_head_attention_config_model_and_saving(tmp_path):
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2, dropout=0.1, output_shape=5,
                                            kernel_initializer="he_normal", name="mha")
    cfg = layer.get_config()
    clone = ember.layers.MultiHeadAttention.from_config(cfg)
    assert clone.get_config() == cfg and cfg["output_shape"] == [5]
    inp = ember.layers.Input((6, 4))
    h = ember.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp)
    h = ember.layers.Add()([h, ember.layers.SinePositionEncoding()(inp), ember.layers.PositionEmbedding(6)(inp)])
    model = ember.Model(inp, ember.layers.Dense(1)(ember.layers.Flatten()(h)))
    assert tuple(model(ember.ones(2, 6, 4)).shape) == (2, 1)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 6, 4)).astype(np.float32)
    hist = model.fit(x, x.sum((1, 2))[:, None], epochs=3, batch_size=8, verbose=0)
    assert len(hist.history["loss"]) == 3 and np.isfinite(hist.history["loss"]).all()
    path = str(tmp_path / "mha.ember")
    model.save(path)
    loaded = ember.models.load_model(path)
    np.testing.assert_allclose(loaded(ember.tensor(x)).detach().numpy(), model(ember.tensor(x)).detach().numpy(),
                               atol=1e-6)


def test_keras_multi_head_attention_errors():
    with pytest.raises(ValueError, match="num_heads and key_dim must be positive"):
        ember.layers.MultiHeadAttention(num_heads=0, key_dim=2)
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    with pytest.raises(ValueError, match="except the last one"):
        layer(ember.ones(2, 3, 4), ember.ones(2, 5, 4), key=ember.ones(2, 6, 4))
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    with pytest.raises(ValueError, match=r"does not broadcast to \(batch, T, S\)"):
        layer(ember.ones(2, 3, 4), ember.ones(2, 5, 4), attention_mask=ember.ones(2, 3, 4, dtype=ember.bool))


# ---- MultiHeadAttention: implicit Keras masks (Keras 3's _compute_attention_mask) and attention_axes
def _bool(shape, seed, p=0.35):
    m = np.random.default_rng(seed).random(shape) > p
    m[..., 0] = True
    return m


def _kmha(**cfg):
    return ember.layers.MultiHeadAttention(bias_initializer="random_normal", **cfg)


def _masked(x, m):
    """``x`` as a tensor carrying the Keras mask ``m``, as Embedding(mask_zero=True) leaves it."""
    t = ember.tensor(x)
    t._keras_mask = ember.tensor(m)
    return t


MASK_CASES = [
    ("query", dict(q=True), {}),
    ("value", dict(v=True), {}),
    ("query_value", dict(q=True, v=True), {}),
    ("query_value_key", dict(q=True, v=True, k=True), {}),
    ("all_and_explicit", dict(q=True, v=True, k=True), dict(attention_mask=_bool((2, 4, 5), 7))),
    ("all_and_causal", dict(q=True, v=True), dict(use_causal_mask=True)),
    ("value_and_2d_explicit", dict(v=True), dict(attention_mask=_bool((4, 5), 8))),
]


@pytest.mark.parametrize("name,which,kw", MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_keras_mha_implicit_masks_equal_explicit_attention_mask(name, which, kw):
    r = np.random.default_rng(3)
    B, T, S = 2, 4, 5
    q, v, k = (r.standard_normal(s).astype(np.float32) for s in ((B, T, 6), (B, S, 6), (B, S, 3)))
    qm, vm, km = _bool((B, T), 1), _bool((B, S), 2), _bool((B, S), 3)
    if kw.get("use_causal_mask"):
        T, S = 5, 5
        q, qm, k, km = v.copy(), vm[:, ::-1].copy(), None, None
        which = dict(which, k=False)
    layer = _kmha(num_heads=2, key_dim=3)
    eq = _masked(q, qm) if which.get("q") else ember.tensor(q)
    ev = _masked(v, vm) if which.get("v") else ember.tensor(v)
    ek = None if k is None else (_masked(k, km) if which.get("k") else ember.tensor(k))
    out, scores = layer(eq, ev, key=ek, return_attention_scores=True,
                        **{a: (ember.tensor(b) if a == "attention_mask" else b) for a, b in kw.items()})
    full = np.ones((B, T, S), bool)                  # the equivalent explicit mask, built as Keras documents it
    if which.get("q"):
        full &= qm[:, :, None]
    if which.get("v"):
        full &= vm[:, None, :]
    if which.get("k"):
        full &= km[:, None, :]
    if kw.get("use_causal_mask"):
        full &= np.tril(np.ones((T, S), bool))
    if "attention_mask" in kw:
        full &= kw["attention_mask"]
    ref_out, ref_scores = layer(ember.tensor(q), ember.tensor(v), key=None if k is None else ember.tensor(k),
                                attention_mask=ember.tensor(full), return_attention_scores=True)
    np.testing.assert_array_equal(out.detach().numpy(), ref_out.detach().numpy())
    np.testing.assert_array_equal(scores.detach().numpy(), ref_scores.detach().numpy())
    if which.get("q"):
        assert out._keras_mask.tolist() == qm.tolist()       # the output carries the query's mask, as in Keras
    else:
        assert getattr(out, "_keras_mask", None) is None
    # the same masks given as call arguments
    arg_out = layer(ember.tensor(q), ember.tensor(v), key=None if k is None else ember.tensor(k),
                    query_mask=qm if which.get("q") else None, value_mask=vm if which.get("v") else None,
                    key_mask=ember.tensor(km) if which.get("k") else None,
                    **{a: (ember.tensor(b) if a == "attention_mask" else b) for a, b in kw.items()})
    np.testing.assert_array_equal(arg_out.detach().numpy(), ref_out.detach().numpy())


def _torch_mha_from_keras(layer, dim, H, kd):
    t = torch.nn.MultiheadAttention(dim, H, batch_first=True)
    w = {n: getattr(layer, n).kernel.detach().numpy() for n in ("query_dense", "key_dense", "value_dense")}
    b = {n: getattr(layer, n).bias.detach().numpy() for n in ("query_dense", "key_dense", "value_dense")}
    with torch.no_grad():
        t.in_proj_weight.copy_(torch.tensor(np.concatenate([w[n].reshape(dim, H * kd).T for n in w])))
        t.in_proj_bias.copy_(torch.tensor(np.concatenate([b[n].reshape(-1) for n in b])))
        t.out_proj.weight.copy_(torch.tensor(layer.output_dense.kernel.detach().numpy().reshape(H * kd, dim).T))
        t.out_proj.bias.copy_(torch.tensor(layer.output_dense.bias.detach().numpy()))
    return t


def test_keras_mha_value_mask_equals_torch_key_padding_mask():
    r = np.random.default_rng(4)
    x = r.standard_normal((3, 6, 8)).astype(np.float32)
    vm = _bool((3, 6), 5, p=0.5)
    layer = _kmha(num_heads=2, key_dim=4)
    ex = _masked(x, vm)
    ex.requires_grad_()
    out, scores = layer(ember.tensor(x), ex, return_attention_scores=True)
    t = _torch_mha_from_keras(layer, 8, 2, 4)
    tx = torch.tensor(x, requires_grad=True)
    t_out, t_w = t(torch.tensor(x), tx, tx, key_padding_mask=torch.tensor(~vm), average_attn_weights=False)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(scores.detach().numpy(), t_w.detach().numpy(), atol=1e-6)
    g = r.standard_normal((3, 6, 8)).astype(np.float32)
    (out * ember.tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(layer.key_dense.kernel.grad.numpy().reshape(8, 8).T,
                               t.in_proj_weight.grad[8:16].numpy(), atol=1e-4)


# (input shape, attention_axes, Keras' dot-product / combine einsums on the (B, *dims, heads, d) projections)
AXES = [
    ("2d_hw", (2, 3, 4, 6), (1, 2), "bijnd,bxynd->bnijxy", "bnijxy,bxynd->bijnd"),
    ("2d_negative", (1, 2, 3, 5), (-3, -2), "bijnd,bxynd->bnijxy", "bnijxy,bxynd->bijnd"),
    ("axis_1_of_4d", (2, 3, 4, 6), (1,), "bijnd,bxjnd->bjnix", "bjnix,bxjnd->bijnd"),
    ("axis_2_of_4d", (2, 3, 4, 6), (2,), "bijnd,bixnd->binjx", "binjx,bixnd->bijnd"),
    ("default_all_of_4d", (2, 3, 2, 5), None, "bijnd,bxynd->bnijxy", "bnijxy,bxynd->bijnd"),
    ("axes_1_3_of_5d", (1, 2, 3, 2, 4), (1, 3), "bijknd,bxjynd->bjnikxy", "bjnikxy,bxjynd->bijknd"),
]


def _keras_axes_torch(w, q, v, H, kd, dot_eq, combine_eq, k_axes, mask=None):
    """Keras' MultiHeadAttention with attention_axes, in torch ops on the Keras weight layout."""
    wq, bq, wk, bk, wv, bv, wo, bo = w
    qh = torch.einsum("...c,chd->...hd", q, wq) + bq
    kh = torch.einsum("...c,chd->...hd", v, wk) + bk
    vh = torch.einsum("...c,chd->...hd", v, wv) + bv
    s = torch.einsum(dot_eq, qh / np.sqrt(kd), kh)
    if mask is not None:
        s = s.masked_fill(~mask.unsqueeze(-2 * k_axes - 1), float("-inf"))
    p = torch.softmax(s.flatten(-k_axes), -1).reshape(s.shape)
    out = torch.einsum(combine_eq, p, vh)
    return torch.einsum("...hd,hdo->...o", out, wo) + bo, p


@pytest.mark.parametrize("name,shape,axes,dot_eq,combine_eq", AXES, ids=[c[0] for c in AXES])
def test_keras_mha_attention_axes_match_torch(name, shape, axes, dot_eq, combine_eq):
    r = np.random.default_rng(5)
    vshape = shape[:-1] + (3,)
    x, y = r.standard_normal(shape).astype(np.float32), r.standard_normal(vshape).astype(np.float32)
    H, kd = 2, 3
    layer = ember.layers.MultiHeadAttention(num_heads=H, key_dim=kd, attention_axes=axes,
                                            bias_initializer="random_normal")
    ex, ey = ember.tensor(x, requires_grad=True), ember.tensor(y, requires_grad=True)
    rank = len(shape)
    ax = tuple(a % rank for a in axes) if axes is not None else tuple(range(1, rank - 1))
    other = [a for a in range(1, rank - 1) if a not in ax]
    mshape = (shape[0],) + tuple(shape[a] for a in other) + tuple(shape[a] for a in ax) * 2
    m = np.random.default_rng(6).random(mshape) > 0.3
    m.reshape(mshape[:len(mshape) - 2 * len(ax)] + (-1,))[..., 0] = True
    out, scores = layer(ex, ey, attention_mask=ember.tensor(m), return_attention_scores=True)
    subs = [layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense]
    params = [w for s in subs for w in (s.kernel, s.bias)]
    tw = [torch.tensor(p.detach().numpy(), requires_grad=True) for p in params]
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    t_out, t_scores = _keras_axes_torch(tw, tx, ty, H, kd, dot_eq, combine_eq, len(ax), torch.tensor(m))
    assert tuple(out.shape) == shape and tuple(scores.shape) == tuple(t_scores.shape)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(scores.detach().numpy(), t_scores.detach().numpy(), atol=1e-6)
    g = r.standard_normal(shape).astype(np.float32)
    (out * ember.tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(ey.grad.numpy(), ty.grad.numpy(), atol=1e-4)
    for p, t in zip(params, tw):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), atol=1e-4)


def test_keras_mha_attention_axes_gradcheck_and_implicit_masks():
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=(1, 2),
                                            bias_initializer="random_normal")
    x = ember.randn(2, 2, 3, 4).double().requires_grad_()
    layer(x, x)
    layer.double()
    qm = _bool((2, 2, 3), 9)
    assert ember.autograd.gradcheck(lambda a: layer(a, a, query_mask=qm, value_mask=qm), [x])
    params = [p for p in layer.parameters()]
    assert ember.autograd.gradcheck(lambda *ps: layer(x.detach(), x.detach(), value_mask=qm), params)
    # implicit (B, H, W) masks equal the explicit (B, H, W, H, W) mask
    xm = _masked(x.detach().numpy(), qm)
    full = qm[:, :, :, None, None] & qm[:, None, None, :, :]
    np.testing.assert_array_equal(layer(xm, xm).detach().numpy(),
                                  layer(x.detach(), x.detach(), attention_mask=full).detach().numpy())


def test_keras_mha_attention_axes_config_round_trip_and_model():
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=(1, 2), name="img_mha")
    cfg = layer.get_config()
    assert cfg["attention_axes"] == [1, 2]
    clone = ember.layers.MultiHeadAttention.from_config(cfg)
    assert clone.get_config() == cfg and clone.attention_axes == (1, 2)
    assert ember.layers.MultiHeadAttention(num_heads=1, key_dim=2, attention_axes=2).get_config()[
        "attention_axes"] == [2]
    inp = ember.layers.Input((3, 4, 5))
    h = ember.layers.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=(1, 2), name="img_attn")(inp, inp)
    model = ember.Model(inp, ember.layers.Dense(1)(ember.layers.Flatten()(h)))
    x = np.random.default_rng(0).standard_normal((8, 3, 4, 5)).astype(np.float32)
    assert tuple(model(ember.tensor(x)).shape) == (8, 1)
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(x, x.sum((1, 2, 3))[:, None], epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    rebuilt = ember.Model.from_config(model.get_config())
    assert rebuilt.get_layer("img_attn").attention_axes == (1, 2)


@pytest.mark.slow
def test_keras_mha_functional_model_with_embedding_mask_trains():
    tokens = ember.layers.Input((6,), dtype="int64")
    emb = ember.layers.Embedding(20, 8, mask_zero=True, name="emb")(tokens)
    mha = ember.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    h = mha(emb, emb)
    model = ember.Model(tokens, ember.layers.Dense(1)(ember.layers.GlobalAveragePooling1D()(h)))
    r = np.random.default_rng(1)
    ids = r.integers(1, 20, (16, 6))
    ids[:, 4:] = 0                                    # padding the mask hides
    ids[::3, 2:] = 0
    y = (ids > 10).sum(1, keepdims=True).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(ids, y, epochs=3, batch_size=8, verbose=0)
    assert len(hist.history["loss"]) == 3 and np.isfinite(hist.history["loss"]).all()
    # inside the model the attention used the Embedding's mask: padded keys get zero weight
    e = model.get_layer("emb")(ember.tensor(ids))
    _, scores = mha(e, e, return_attention_scores=True)
    pad = ids == 0
    assert np.all(scores.detach().numpy().transpose(0, 2, 1, 3)[np.broadcast_to(
        pad[:, None, None, :], (16, 6, 2, 6))] == 0)
    # and the padding's embedding row cannot change the model's output
    out = model(ember.tensor(ids)).detach().numpy()
    table = model.get_layer("emb").embeddings
    table.data[0] += 5.0
    np.testing.assert_allclose(model(ember.tensor(ids)).detach().numpy(), out, atol=1e-5)


def test_keras_mha_axes_and_mask_errors():
    for bad in [(0,), (3,), (-1,), (-3, 1)]:
        layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=bad)
        with pytest.raises(ValueError, match=r"attention_axes=.*invalid for inputs of rank 4"):
            layer(ember.ones(2, 3, 4, 5), ember.ones(2, 3, 4, 5))
    for bad in ["a", (), (1.5,), (1, 1)]:
        with pytest.raises(ValueError, match="attention_axes must be an int or a non-empty list"):
            ember.layers.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=bad)
    layer = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=(1, 2))
    x = ember.ones(2, 3, 4, 5)
    with pytest.raises(ValueError, match="use_causal_mask needs a single attention axis"):
        layer(x, x, use_causal_mask=True)
    with pytest.raises(ValueError, match="must match in the batch axis and every axis that is not an attention"):
        ember.layers.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=(2,))(x, ember.ones(2, 2, 4, 5))
    with pytest.raises(ValueError, match="one rank >= 3"):
        layer(x, ember.ones(2, 12, 5))
    with pytest.raises(ValueError, match=r"attention_mask of shape \(2, 3, 4\) does not broadcast to"):
        layer(x, x, attention_mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match=r"query_mask of shape \(2, 5\) does not broadcast to the input's"):
        layer(x, x, query_mask=np.ones((2, 5), bool))
    seq = ember.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    with pytest.raises(ValueError, match=r"value_mask of shape \(2, 4\) does not broadcast"):
        seq(ember.ones(2, 3, 4), _masked(np.ones((2, 5, 4), np.float32), np.ones((2, 4), bool)))


def test_position_layers():
    pos = ember.layers.PositionEmbedding(sequence_length=8, initializer="random_normal")
    x = ember.randn(2, 5, 3)
    out = pos(x)
    assert tuple(pos.embeddings.shape) == (8, 3) and list(dict(pos.named_parameters())) == ["embeddings"]
    np.testing.assert_array_equal(out.detach().numpy()[1], pos.embeddings.detach().numpy()[:5])
    np.testing.assert_array_equal(pos(x, start_index=2).detach().numpy()[0], pos.embeddings.detach().numpy()[2:7])
    (out * 2).sum().backward()
    assert pos.embeddings.grad.numpy()[:5].tolist() == np.full((5, 3), 4.0).tolist()
    assert ember.layers.PositionEmbedding.from_config(pos.get_config()).get_config() == pos.get_config()
    with pytest.raises(ValueError, match="do not fit"):
        pos(ember.randn(2, 9, 3))
    enc = ember.layers.SinePositionEncoding(max_wavelength=100)
    e = enc(ember.zeros(2, 4, 6), start_index=1).numpy()
    pos_i, i = 3, 1
    assert e[0, pos_i - 1, 2 * i] == pytest.approx(np.sin(pos_i / 100 ** (2 * i / 6)), rel=1e-6)
    assert e[1, pos_i - 1, 2 * i + 1] == pytest.approx(np.cos(pos_i / 100 ** (2 * i / 6)), rel=1e-6)
    assert ember.layers.SinePositionEncoding.from_config(enc.get_config()).max_wavelength == 100
    np.testing.assert_allclose(ember.layers.SinePositionEncoding()(ember.zeros(1, 7, 4)).numpy()[0],
                               ember.nn.SinusoidalPositionalEncoding(4, 7).pe.numpy(), rtol=1e-6)


@pytest.mark.slow
def test_transformer_sort_example_learns_to_sort(capsys):
    import pathlib
    import runpy
    mod = runpy.run_path(str(pathlib.Path(__file__).resolve().parents[1] / "examples" / "transformer_sort.py"))
    acc = mod["main"](["--steps", "800"])
    assert "held-out token accuracy" in capsys.readouterr().out
    assert acc >= 0.95
