"""ONNX export: every layer type and a few whole models, exported with a dynamic batch axis, checked with
``onnx.checker`` (full check) and run in onnxruntime at two batch sizes against Ember's eval-mode output."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import ember
import ember.layers as L
import ember.nn as nn
import ember.nn.functional as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from bench_cnn import lenet, resnet8  # noqa: E402

ATOL = RTOL = 1e-4


class Wrap(nn.Module):
    """A module around a function of its sub-modules (multi-input layers, layers called with options)."""

    def __init__(self, fn, **mods):
        super().__init__()
        self.fn = fn
        for k, m in mods.items():
            setattr(self, k, m)

    def forward(self, *xs):
        return self.fn(self, *xs)


def _leaves(out) -> list:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _leaves(o)]
    return [] if out is None else [out]


def _randomize_stats(model) -> None:
    """Running statistics away from 0/1, so that eval-mode normalization is really checked."""
    rng = np.random.default_rng(1)
    for name, b in model.named_buffers():
        if b is None or b.data.dtype.kind != "f":
            continue
        if "var" in name:
            b.data[...] = rng.uniform(0.5, 2.0, b.data.shape)
        elif "mean" in name:
            b.data[...] = rng.normal(0, 0.5, b.data.shape)


def roundtrip(model, make, axes=(0,), sizes=(2, 3), atol=ATOL, opset=17):
    """Export ``model`` on ``make(sizes[0])`` with ``axes[i]`` of input i dynamic; compare onnxruntime with Ember
    at every size. ``make(n)`` returns a tuple of NumPy inputs with batch size ``n``."""
    inputs = make(sizes[0])
    names = [f"in{i}" for i in range(len(inputs))]
    if hasattr(model, "named_buffers"):
        _randomize_stats(model)
    dyn = {n: {ax: "batch"} for n, ax in zip(names, axes) if ax is not None}
    m = ember.onnx.export(model, tuple(ember.tensor(a) for a in inputs), None, input_names=names, dynamic_axes=dyn,
                          opset_version=opset)
    assert m.opset_import[0].version == opset
    onnx.checker.check_model(m, full_check=True)
    for inp, ax in zip(m.graph.input, axes):
        if ax is not None:
            assert inp.type.tensor_type.shape.dim[ax].dim_param, "the batch axis must be symbolic in the file"
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    if hasattr(model, "eval"):
        model.eval()
    for n in sizes:
        arrays = make(n)
        with ember.no_grad():
            ref = [t.detach().numpy() for t in _leaves(model(*[ember.tensor(a) for a in arrays]))]
        got = sess.run(None, dict(zip(names, arrays)))
        assert len(got) == len(ref)
        for r, g in zip(ref, got):
            assert g.shape == r.shape and g.dtype == r.dtype, (g.shape, r.shape, g.dtype, r.dtype)
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), atol=atol, rtol=RTOL)
    return m


def x(*shape, lo=-2.0, hi=2.0):
    """``make(n)``: one float32 input of shape ``(n, *shape)``."""
    def make(n):
        return (np.random.default_rng(n).uniform(lo, hi, (n, *shape)).astype(np.float32),)
    return make


def x_axis(axis, *shape):
    """One float32 input with the batch size at ``axis`` of ``shape`` (``None`` there)."""
    def make(n):
        s = tuple(n if d is None else d for d in shape)
        return (np.random.default_rng(n).standard_normal(s).astype(np.float32),)
    return make


def tokens(seq, vocab):
    def make(n):
        return (np.random.default_rng(n).integers(0, vocab, (n, seq)).astype(np.int64),)
    return make


def two(*shape):
    def make(n):
        rng = np.random.default_rng(n)
        return tuple(rng.standard_normal((n, *shape)).astype(np.float32) for _ in range(2))
    return make


def causal(n):
    return ember.tensor(np.triu(np.full((n, n), -np.inf, np.float32), 1))


# ---------------------------------------------------------------- ember.nn layers
NN_CASES = {
    "Linear": (lambda: nn.Linear(8, 5), x(8)),
    "Linear3d_nobias": (lambda: nn.Linear(8, 5, bias=False), x(4, 8)),
    "Conv1d": (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), x(3, 16)),
    "Conv1d_dil_groups": (lambda: nn.Conv1d(4, 6, 3, dilation=2, groups=2, padding="same"), x(4, 15)),
    "Conv2d_stride_groups": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), x(4, 11, 12)),
    "Conv2d_dilation_same": (lambda: nn.Conv2d(3, 4, (3, 5), padding="same", dilation=2), x(3, 12, 13)),
    "Conv2d_depthwise": (lambda: nn.Conv2d(4, 8, 3, groups=4, bias=False), x(4, 9, 9)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
                        x(4, 5, 6)),
    "ConvTranspose2d_dilation": (lambda: nn.ConvTranspose2d(3, 2, (2, 3), dilation=2), x(3, 4, 5)),
    "ConvTranspose1d": (lambda: nn.ConvTranspose1d(3, 2, 4, stride=2, padding=1), x(3, 7)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), x(3, 9, 10)),
    "MaxPool2d_ceil_dilation": (lambda: nn.MaxPool2d(2, ceil_mode=True, dilation=(1, 2)), x(2, 7, 9)),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, 2), x(3, 11)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), x(3, 9, 10)),
    "AvgPool2d_ceil": (lambda: nn.AvgPool2d(2, ceil_mode=True), x(2, 7, 7)),
    "AvgPool2d_divisor": (lambda: nn.AvgPool2d(2, divisor_override=3), x(2, 6, 6)),
    "AvgPool1d": (lambda: nn.AvgPool1d(3, padding=1), x(3, 10)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((3, 2)), x(3, 7, 5)),
    "AdaptiveAvgPool2d_1": (lambda: nn.AdaptiveAvgPool2d(1), x(3, 7, 5)),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(4), x(3, 10)),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d((3, 2)), x(3, 7, 5)),
    "AdaptiveMaxPool2d_even": (lambda: nn.AdaptiveMaxPool2d(2), x(3, 8, 6)),
    "AdaptiveMaxPool1d": (lambda: nn.AdaptiveMaxPool1d(3), x(2, 10)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(6), x(6)),
    "BatchNorm1d_3d": (lambda: nn.BatchNorm1d(6), x(6, 10)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(4), x(4, 5, 6)),
    "BatchNorm2d_batch_stats": (lambda: nn.BatchNorm2d(4, affine=False, track_running_stats=False), x(4, 5, 6)),
    "BatchNorm3d": (lambda: nn.BatchNorm3d(3), x(3, 4, 4, 4)),
    "InstanceNorm1d": (lambda: nn.InstanceNorm1d(4, affine=True), x(4, 10)),
    "InstanceNorm2d": (lambda: nn.InstanceNorm2d(3), x(3, 6, 7)),
    "LayerNorm": (lambda: nn.LayerNorm((5, 6)), x(4, 5, 6)),
    "GroupNorm": (lambda: nn.GroupNorm(2, 6), x(6, 4, 5)),
    "RMSNorm": (lambda: nn.RMSNorm(8), x(3, 8)),
    "Embedding": (lambda: nn.Embedding(10, 4, padding_idx=0), tokens(7, 10)),
    "Dropout": (lambda: nn.Dropout(0.3), x(5)),
    "Identity": (lambda: nn.Identity(), x(5)),
    "Flatten": (lambda: nn.Flatten(), x(3, 4, 5)),
    "Unflatten": (lambda: nn.Unflatten(1, (2, 4)), x(8, 3)),
    "ConstantPad1d": (lambda: nn.ConstantPad1d((1, 2), 0.5), x(3, 5)),
    "ConstantPad2d_crop": (lambda: nn.ConstantPad2d((1, -1, 2, 0), -1.0), x(2, 4, 5)),
    "ConstantPad3d": (lambda: nn.ConstantPad3d(1, 0.0), x(2, 3, 3, 3)),
    "ZeroPad2d": (lambda: nn.ZeroPad2d((1, 0, 2, 1)), x(2, 4, 5)),
    "ReflectionPad1d": (lambda: nn.ReflectionPad1d((2, 1)), x(3, 6)),
    "ReflectionPad2d": (lambda: nn.ReflectionPad2d(1), x(2, 4, 5)),
    "ReplicationPad2d": (lambda: nn.ReplicationPad2d((2, 0, 1, 3)), x(2, 4, 5)),
    "CircularPad1d": (lambda: nn.CircularPad1d(2), x(3, 6)),
    "CircularPad2d": (lambda: nn.CircularPad2d(1), x(2, 4, 5)),
    "Upsample_nearest": (lambda: nn.Upsample(scale_factor=2, mode="nearest"), x(2, 3, 4)),
    "Upsample_nearest_size": (lambda: nn.Upsample(size=(5, 7), mode="nearest"), x(2, 3, 4)),
    "Upsample_bilinear": (lambda: nn.Upsample(size=(5, 7), mode="bilinear"), x(2, 3, 4)),
    "Upsample_bilinear_corners": (lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                  x(2, 3, 4)),
    "Upsample_bicubic": (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), x(2, 3, 4)),
    "Upsample_linear1d": (lambda: nn.Upsample(scale_factor=3, mode="linear"), x(2, 5)),
    "UpsamplingNearest2d": (lambda: nn.UpsamplingNearest2d(scale_factor=2), x(2, 3, 3)),
    "UpsamplingBilinear2d": (lambda: nn.UpsamplingBilinear2d(scale_factor=2), x(2, 3, 3)),
    "RNN_relu_2layers": (lambda: nn.RNN(5, 6, num_layers=2, nonlinearity="relu"), x_axis(1, 7, None, 5), (1,)),
    "RNN_tanh_batch_first": (lambda: nn.RNN(5, 6, batch_first=True), x(7, 5)),
    "LSTM_bidirectional_batch_first": (lambda: nn.LSTM(5, 6, bidirectional=True, batch_first=True), x(7, 5)),
    "LSTM_2layers": (lambda: nn.LSTM(5, 6, num_layers=2), x_axis(1, 7, None, 5), (1,)),
    "GRU_bidirectional": (lambda: nn.GRU(5, 6, bidirectional=True, num_layers=2), x_axis(1, 7, None, 5), (1,)),
    "GRU_batch_first": (lambda: nn.GRU(5, 6, batch_first=True), x(7, 5)),
    "RNNCell": (lambda: nn.RNNCell(5, 6), x(5)),
    "LSTMCell": (lambda: nn.LSTMCell(5, 6), x(5)),
    "GRUCell": (lambda: nn.GRUCell(5, 6), x(5)),
    "MultiheadAttention": (lambda: Wrap(lambda s, q: s.m(q, q, q), m=nn.MultiheadAttention(8, 2, batch_first=True)),
                           x(5, 8)),
    "MultiheadAttention_causal": (lambda: Wrap(lambda s, q: s.m(q, q, q, attn_mask=causal(5), need_weights=False),
                                               m=nn.MultiheadAttention(8, 2)), x_axis(1, 5, None, 8), (1,)),
    "TransformerEncoderLayer_mask": (
        lambda: Wrap(lambda s, q: s.m(q, src_mask=causal(6)),
                     m=nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)), x(6, 8)),
    "TransformerEncoderLayer_norm_first_gelu": (
        lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, activation="gelu", norm_first=True), x_axis(
            1, 6, None, 8), (1,)),
    "TransformerDecoderLayer": (
        lambda: Wrap(lambda s, t, m: s.m(t, m, tgt_mask=causal(6)),
                     m=nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, batch_first=True)), two(6, 8), (0, 0)),
    "Transformer": (lambda: nn.Transformer(8, 2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16,
                                           batch_first=True), two(5, 8), (0, 0)),
    "SinusoidalPositionalEncoding": (lambda: nn.SinusoidalPositionalEncoding(8), x_axis(1, 5, None, 8), (1,)),
    "SinusoidalPositionalEncoding_dynamic_seq": (lambda: nn.SinusoidalPositionalEncoding(8), x(3, 8)),
    "PReLU": (lambda: nn.PReLU(3), x(3, 4)),
    "Softmax": (lambda: nn.Softmax(dim=1), x(5, 3)),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=-1), x(5)),
    "Softmin": (lambda: nn.Softmin(dim=1), x(5)),
}
for _name, _make in {
    "ReLU": nn.ReLU, "ReLU6": nn.ReLU6, "SELU": nn.SELU, "SiLU": nn.SiLU, "Mish": nn.Mish, "Sigmoid": nn.Sigmoid,
    "Hardsigmoid": nn.Hardsigmoid, "Hardswish": nn.Hardswish, "Tanh": nn.Tanh, "Softsign": nn.Softsign,
    "LogSigmoid": nn.LogSigmoid, "Tanhshrink": nn.Tanhshrink, "LeakyReLU": lambda: nn.LeakyReLU(0.1),
    "ELU": lambda: nn.ELU(0.5), "CELU": lambda: nn.CELU(0.7), "GELU": nn.GELU,
    "GELU_tanh": lambda: nn.GELU("tanh"), "Softplus": lambda: nn.Softplus(beta=2, threshold=3),
    "Hardtanh": lambda: nn.Hardtanh(-0.5, 0.8), "Threshold": lambda: nn.Threshold(0.1, -2.0),
    "Softshrink": lambda: nn.Softshrink(0.3), "Hardshrink": lambda: nn.Hardshrink(0.4),
}.items():
    NN_CASES[_name] = (_make, x(3, 7, lo=-4.0, hi=4.0))


@pytest.mark.parametrize("case", sorted(NN_CASES))
def test_nn_layer(case):
    build, make, *axes = NN_CASES[case]
    ember.manual_seed(0)
    roundtrip(build(), make, axes[0] if axes else (0,))


# ---------------------------------------------------------------- Keras-style layers
def merge(layer):
    return lambda: Wrap(lambda s, a, b: s.m([a, b]), m=layer)


KERAS_CASES = {
    "Dense": (lambda: L.Dense(5, activation="relu"), x(8)),
    "Dense_3d": (lambda: L.Dense(5, use_bias=False), x(4, 8)),
    "Activation": (lambda: L.Activation("gelu"), x(6)),
    "Conv1D": (lambda: L.Conv1D(4, 3, strides=2, padding="same"), x(11, 3)),
    "Conv2D": (lambda: L.Conv2D(6, 3, strides=2, padding="same", activation="relu"), x(9, 10, 3)),
    "Conv2D_dilation_groups": (lambda: L.Conv2D(4, (3, 2), dilation_rate=2, groups=2), x(9, 10, 4)),
    "Conv2D_channels_first": (lambda: L.Conv2D(4, 3, data_format="channels_first"), x(3, 8, 8)),
    "Conv1DTranspose": (lambda: L.Conv1DTranspose(4, 3, strides=2), x(6, 3)),
    "Conv2DTranspose": (lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same"), x(5, 6, 3)),
    "DepthwiseConv1D": (lambda: L.DepthwiseConv1D(3, depth_multiplier=2), x(9, 3)),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, padding="same"), x(6, 7, 3)),
    "SeparableConv1D": (lambda: L.SeparableConv1D(4, 3), x(9, 3)),
    "SeparableConv2D": (lambda: L.SeparableConv2D(5, 3, strides=2), x(9, 8, 3)),
    "MaxPooling1D": (lambda: L.MaxPooling1D(2), x(9, 3)),
    "MaxPooling2D_same": (lambda: L.MaxPooling2D(3, strides=2, padding="same"), x(9, 8, 3)),
    "AveragePooling1D": (lambda: L.AveragePooling1D(3, strides=2), x(10, 3)),
    "AveragePooling2D_same": (lambda: L.AveragePooling2D(2, padding="same"), x(7, 8, 3)),
    "GlobalAveragePooling1D": (lambda: L.GlobalAveragePooling1D(), x(9, 3)),
    "GlobalAveragePooling2D": (lambda: L.GlobalAveragePooling2D(), x(5, 6, 3)),
    "GlobalMaxPooling1D": (lambda: L.GlobalMaxPooling1D(), x(9, 3)),
    "GlobalMaxPooling2D": (lambda: L.GlobalMaxPooling2D(), x(5, 6, 3)),
    "BatchNormalization": (lambda: L.BatchNormalization(), x(5, 6, 3)),
    "LayerNormalization": (lambda: L.LayerNormalization(), x(4, 6)),
    "GroupNormalization": (lambda: L.GroupNormalization(groups=2), x(5, 4)),
    "Dropout": (lambda: L.Dropout(0.5), x(6)),
    "Flatten": (lambda: L.Flatten(), x(3, 4, 2)),
    "Reshape": (lambda: L.Reshape((4, 3)), x(12)),
    "Reshape_infer": (lambda: L.Reshape((-1, 2)), x(3, 4)),
    "Permute": (lambda: L.Permute((2, 1)), x(3, 4)),
    "RepeatVector": (lambda: L.RepeatVector(3), x(4)),
    "UpSampling1D": (lambda: L.UpSampling1D(2), x(4, 3)),
    "UpSampling2D": (lambda: L.UpSampling2D((2, 3)), x(3, 4, 2)),
    "UpSampling2D_bilinear": (lambda: L.UpSampling2D(2, interpolation="bilinear"), x(3, 4, 2)),
    "ZeroPadding1D": (lambda: L.ZeroPadding1D(2), x(4, 3)),
    "ZeroPadding2D": (lambda: L.ZeroPadding2D(((1, 0), (2, 1))), x(4, 5, 3)),
    "Cropping1D": (lambda: L.Cropping1D((1, 2)), x(7, 3)),
    "Cropping2D": (lambda: L.Cropping2D(((1, 0), (2, 1))), x(6, 7, 3)),
    "Embedding": (lambda: L.Embedding(12, 4), tokens(6, 12)),
    "LSTM": (lambda: L.LSTM(6), x(7, 5)),
    "LSTM_sequences_state": (lambda: L.LSTM(6, return_sequences=True, return_state=True), x(7, 5)),
    "GRU": (lambda: L.GRU(6, return_sequences=True), x(7, 5)),
    "GRU_v1": (lambda: L.GRU(6, reset_after=False), x(7, 5)),
    "SimpleRNN": (lambda: L.SimpleRNN(6, go_backwards=True), x(7, 5)),
    "Bidirectional_LSTM": (lambda: L.Bidirectional(L.LSTM(4, return_sequences=True)), x(7, 5)),
    "TimeDistributed_Dense": (lambda: L.TimeDistributed(L.Dense(3)), x(4, 5)),
    "MultiHeadAttention": (lambda: Wrap(lambda s, q: s.m(q, q), m=L.MultiHeadAttention(2, 4)), x(5, 8)),
    "MultiHeadAttention_causal": (lambda: Wrap(lambda s, q: s.m(q, q, use_causal_mask=True),
                                               m=L.MultiHeadAttention(2, 4)), x(5, 8)),
    "PositionEmbedding": (lambda: L.PositionEmbedding(6), x(6, 4)),
    "SinePositionEncoding": (lambda: L.SinePositionEncoding(), x(6, 4)),
    "Add": (merge(L.Add()), two(4), (0, 0)),
    "Subtract": (merge(L.Subtract()), two(4), (0, 0)),
    "Multiply": (merge(L.Multiply()), two(4), (0, 0)),
    "Average": (merge(L.Average()), two(4), (0, 0)),
    "Maximum": (merge(L.Maximum()), two(4), (0, 0)),
    "Minimum": (merge(L.Minimum()), two(4), (0, 0)),
    "Concatenate": (merge(L.Concatenate()), two(4), (0, 0)),
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_layer(case):
    build, make, *axes = KERAS_CASES[case]
    ember.manual_seed(0)
    roundtrip(build(), make, axes[0] if axes else (0,))


# ---------------------------------------------------------------- single ops (functions of one input)
_W = ember.tensor(np.random.default_rng(7).standard_normal((5, 3)).astype(np.float32))
_MASK = ember.tensor(np.tril(np.ones((5, 5), bool)) & np.array([False, True, True, True, True])[:, None])
OP_CASES = {
    "exp": lambda t: t.exp(), "exp2": lambda t: ember.exp2(t), "expm1": lambda t: t.expm1(),
    "log": lambda t: (t.abs() + 0.5).log(), "log2": lambda t: (t.abs() + 0.5).log2(),
    "log10": lambda t: (t.abs() + 0.5).log10(), "log1p": lambda t: t.abs().log1p(),
    "sqrt": lambda t: t.abs().sqrt(), "rsqrt": lambda t: (t.abs() + 0.5).rsqrt(), "sin": lambda t: t.sin(),
    "cos": lambda t: t.cos(), "tan": lambda t: (t * 0.5).tan(), "sinh": lambda t: t.sinh(), "cosh": lambda t: t.cosh(),
    "asin": lambda t: (t / 3).asin(), "acos": lambda t: (t / 3).acos(), "atan": lambda t: t.atan(),
    "tanh": lambda t: t.tanh(), "sigmoid": lambda t: t.sigmoid(), "abs": lambda t: t.abs(), "sign": lambda t: t.sign(),
    "floor": lambda t: t.floor(), "ceil": lambda t: t.ceil(), "trunc": lambda t: t.trunc(),
    "round": lambda t: t.round(), "round_decimals": lambda t: ember.round(t, decimals=1),
    "frac": lambda t: t.frac(), "reciprocal": lambda t: (t.abs() + 0.5).reciprocal(), "square": lambda t: t.square(),
    "erf": lambda t: ember.erf(t), "erfc": lambda t: ember.erfc(t), "clamp": lambda t: t.clamp(-0.5, 0.7),
    "clamp_min": lambda t: t.clamp(min=0.2), "nan_to_num": lambda t: ember.nan_to_num(t.log(), nan=-1.0),
    "add_scalar": lambda t: t + 2, "rsub": lambda t: 1 - t, "mul_tensor": lambda t: t * t.flip(2),
    "div": lambda t: t / 1.5, "rdiv": lambda t: 2 / (t.abs() + 0.5), "pow": lambda t: t ** 3,
    "pow_float": lambda t: t.abs() ** 1.5, "rpow": lambda t: 2 ** t, "neg": lambda t: -t,
    "maximum": lambda t: ember.maximum(t, t.flip(1)), "minimum": lambda t: ember.minimum(t, t * 2),
    "eq": lambda t: t.round() == 1, "ne": lambda t: t.round() != 1, "lt": lambda t: t < 0.3, "le": lambda t: t <= 0.3,
    "gt": lambda t: t > 0.3, "ge": lambda t: t >= 0.3, "logical_and": lambda t: ember.logical_and(t > 0, t < 1),
    "logical_or": lambda t: ember.logical_or(t > 1, t < -1), "logical_xor": lambda t: ember.logical_xor(t > 0, t > 1),
    "logical_not": lambda t: ember.logical_not(t > 0), "floor_divide": lambda t: ember.floor_divide(t, 0.7),
    "remainder": lambda t: ember.remainder(t, 0.7), "fmod": lambda t: ember.fmod(t, 0.7),
    "where": lambda t: ember.where(t > 0, t, -t * 2), "cast": lambda t: t.double() * 2,
    "cast_int": lambda t: (t * 3).long(), "int_compare_float": lambda t: (t * 3).long() < 0.5,
    "int_arith": lambda t: ember.floor_divide((t * 3).long(), 2) + ember.remainder((t * 3).long(), 3),
    "sum": lambda t: t.sum(1), "sum_all": lambda t: t.sum(), "mean": lambda t: t.mean((1, 2), keepdim=True),
    "prod": lambda t: t.prod(2), "amax": lambda t: t.amax(-1), "amin": lambda t: t.amin(1),
    "max_dim": lambda t: t.max(1)[0], "min_dim": lambda t: t.min(2, keepdim=True)[0],
    "argmax": lambda t: t.argmax(1), "argmin": lambda t: t.argmin(2, keepdim=True), "var": lambda t: t.var(1),
    "std": lambda t: t.std(2, correction=0), "norm2": lambda t: t.norm(dim=1), "norm1": lambda t: t.norm(1, dim=2),
    "norm3": lambda t: t.norm(3, dim=2), "norm_inf": lambda t: t.norm(float("inf"), dim=2),
    "logsumexp": lambda t: t.logsumexp(1), "all": lambda t: (t > -1.5).all(1), "any": lambda t: (t > 1.5).any(2),
    "count_nonzero": lambda t: ember.count_nonzero(t.round(), 1), "cumsum": lambda t: t.cumsum(1),
    "reshape": lambda t: t.reshape(t.shape[0], -1), "transpose": lambda t: t.transpose(1, 2),
    "permute": lambda t: t.permute(2, 0, 1), "flip": lambda t: t.flip((1, 2)), "roll": lambda t: t.roll(2, 2),
    "roll_flat": lambda t: t.roll(3), "unsqueeze": lambda t: t.unsqueeze(1), "squeeze": lambda t: t[:, :1].squeeze(1),
    "expand": lambda t: t[:, :1].expand(-1, 3, 5), "cat": lambda t: ember.cat([t, t * 2], 1),
    "stack": lambda t: ember.stack([t, -t], 1), "split": lambda t: t.split(2, 2), "chunk": lambda t: t.chunk(2, 1),
    "slice": lambda t: t[:, 1:3, ::2], "slice_negative_step": lambda t: t[:, ::-1, 3:0:-2],
    "index_int": lambda t: t[:, -1], "index_none": lambda t: t[..., None, :2], "index_list": lambda t: t[:, [0, 2]],
    "index_tensor": lambda t: t[:, :, ember.tensor(np.array([[4, 0], [1, 1]]))],
    "index_select": lambda t: ember.index_select(t, 2, ember.tensor(np.array([3, 1, 1]))),
    "pad_constant": lambda t: F.pad(t, (1, 2, 0, 1), value=0.5), "pad_reflect": lambda t: F.pad(t, (2, 1), "reflect"),
    "matmul": lambda t: t @ _W, "bmm": lambda t: t @ t.transpose(1, 2), "linear": lambda t: F.linear(t, _W.t()),
    "einsum": lambda t: ember.einsum("bij,jk->bik", t.transpose(1, 2), t[0]),
    "softmax": lambda t: t.softmax(1), "log_softmax": lambda t: F.log_softmax(t, -1),
    "sdpa_bool_mask_dead_row": lambda t: F.scaled_dot_product_attention(t, t, t, attn_mask=_MASK),
    "sdpa_float_mask": lambda t: F.scaled_dot_product_attention(t, t, t, attn_mask=ember.tensor(
        np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32))),
    "sdpa_causal_scale": lambda t: F.scaled_dot_product_attention(t, t, t, is_causal=True, scale=0.3),
    "interpolate_nearest_exact": lambda t: F.interpolate(t, scale_factor=1.5, mode="nearest-exact"),
    "interpolate_area": lambda t: F.interpolate(t, size=3, mode="area"),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_op(case):
    roundtrip(OP_CASES[case], x(5, 5))


@pytest.mark.parametrize("case", ["and", "or", "xor", "not"])
def test_bitwise_ops_opset_18(case):
    fns = {"and": lambda a: a & 6, "or": lambda a: a | 5, "xor": lambda a: a ^ 3, "not": lambda a: ~a}
    roundtrip(lambda t: fns[case]((t * 4).long()), x(4), opset=18)
    with pytest.raises(NotImplementedError, match="opset_version >= 18"):
        ember.onnx.export(lambda t: fns[case]((t * 4).long()), ember.randn(2, 4), None)


@pytest.mark.parametrize("opset", [18, 20])
@pytest.mark.parametrize("case", ["mean", "sum", "prod", "amax", "amin", "norm2", "logsumexp", "all", "var", "max_dim",
                                  "sdpa_causal_scale", "interpolate_area"])
def test_op_newer_opsets(case, opset):
    """From op set 18 the reductions take their axes as an input instead of an attribute."""
    roundtrip(OP_CASES[case], x(5, 5), opset=opset)


# ---------------------------------------------------------------- whole models
class LSTMClassifier(nn.Module):
    def __init__(self, vocab=20, dim=8, hidden=12, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


class Encoder(nn.Module):
    def __init__(self, vocab=20, dim=16, seq=6):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.SinusoidalPositionalEncoding(dim)
        layer = nn.TransformerEncoderLayer(dim, 4, dim_feedforward=32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(dim, 4)
        self.seq = seq

    def forward(self, tokens):
        h = self.embed(tokens)
        h = self.pos(h.transpose(0, 1)).transpose(0, 1)
        h = self.encoder(h, mask=causal(self.seq))
        return self.head(h.mean(1))


def keras_cnn():
    from ember.models import Sequential
    return Sequential([L.Conv2D(4, 3, padding="same", activation="relu"), L.BatchNormalization(), L.MaxPooling2D(),
                       L.Conv2D(8, 3, activation="relu"), L.GlobalAveragePooling2D(), L.Dropout(0.2),
                       L.Dense(5, activation="softmax")])


def keras_functional():
    from ember.models import Model
    inp = L.Input((10, 6))
    h = L.Conv1D(8, 3, padding="same", activation="relu")(inp)
    h = L.LayerNormalization()(L.Add()([h, L.MultiHeadAttention(2, 4)(h, h)]))
    return Model(inp, L.Dense(3)(L.GlobalAveragePooling1D()(h)))


MODELS = {
    "KerasFunctional": (keras_functional, x(10, 6)),
    "LeNet5": (lambda: lenet(nn, F), x(1, 28, 28)),
    "ResNet8": (lambda: resnet8(nn, F), x(3, 16, 16)),
    "LSTMClassifier": (LSTMClassifier, tokens(9, 20)),
    "TransformerEncoder": (Encoder, tokens(6, 20)),
    "KerasSequentialCNN": (keras_cnn, x(12, 12, 3)),
}


@pytest.mark.parametrize("case", sorted(MODELS))
def test_model(case):
    build, make = MODELS[case]
    ember.manual_seed(0)
    roundtrip(build(), make, sizes=(2, 5))


def test_lstm_classifier_dynamic_batch_and_sequence():
    ember.manual_seed(0)
    model = LSTMClassifier()
    m = ember.onnx.export(model, ember.tensor(np.zeros((2, 9), np.int64)), None, input_names=["tokens"],
                          output_names=["logits"], dynamic_axes={"tokens": {0: "batch", 1: "time"}})
    onnx.checker.check_model(m, full_check=True)
    dims = [d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time"]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    model.eval()
    for n, t in ((2, 9), (4, 3), (1, 15)):
        toks = np.random.default_rng(n).integers(0, 20, (n, t)).astype(np.int64)
        with ember.no_grad():
            ref = model(ember.tensor(toks)).numpy()
        np.testing.assert_allclose(sess.run(None, {"tokens": toks})[0], ref, atol=ATOL, rtol=RTOL)


def test_dynamic_sequence_axis():
    """The sequence length as the dynamic axis: causal masks, positional tables and reshapes follow it."""
    roundtrip(lambda t: F.scaled_dot_product_attention(t, t, t, is_causal=True), x_axis(1, 2, None, 4), (1,),
              sizes=(3, 6))
    ember.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    roundtrip(Wrap(lambda s, q: s.m(s.pos(q.transpose(0, 1)).transpose(0, 1)), m=layer,
                   pos=nn.SinusoidalPositionalEncoding(8)), x_axis(1, 2, None, 8), (1,), sizes=(4, 7))
    for norm in (nn.BatchNorm1d(6), nn.InstanceNorm1d(6, affine=True), nn.GroupNorm(3, 6),
                 nn.BatchNorm1d(6, track_running_stats=False)):
        roundtrip(norm, x_axis(2, 2, 6, None), (2,), sizes=(5, 8))
    mask = Wrap(lambda s, q: s.m(q, src_mask=nn.Transformer.generate_square_subsequent_mask(q.shape[1])), m=layer)
    with pytest.raises(NotImplementedError, match="follows a dynamic axis"):
        ember.onnx.export(mask, ember.randn(2, 5, 8), None, dynamic_axes={"input": {1: "time"}})


@pytest.mark.parametrize("case", ["GroupNorm", "InstanceNorm2d", "LayerNorm", "BatchNorm2d_batch_stats", "Flatten",
                                  "LSTM_bidirectional_batch_first", "TransformerEncoderLayer_mask",
                                  "Conv2d_stride_groups"])
def test_example_batch_of_one(case):
    """An example input with batch 1 still gives a graph that is right at other batch sizes."""
    build, make, *axes = NN_CASES[case]
    ember.manual_seed(0)
    roundtrip(build(), make, axes[0] if axes else (0,), sizes=(1, 3))


# ---------------------------------------------------------------- names, files, errors
def test_names_and_initializers_match_state_dict(tmp_path):
    ember.manual_seed(0)
    model = lenet(nn, F)
    path = tmp_path / "lenet.onnx"
    m = ember.onnx.export(model, ember.randn(2, 1, 28, 28), path, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": [0]})
    loaded = onnx.load(str(path))
    assert loaded.SerializeToString() == m.SerializeToString()
    assert [i.name for i in loaded.graph.input] == ["image"]
    assert [o.name for o in loaded.graph.output] == ["logits"]
    state = model.state_dict()
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    for name, value in state.items():
        assert name in inits, f"{name} is not an initializer ({sorted(inits)[:8]}...)"
        np.testing.assert_array_equal(inits[name], value.numpy())
    assert loaded.opset_import[0].version == 17
    assert [o.name for o in os.scandir(tmp_path)] == ["lenet.onnx"]     # no temporary file left behind


def test_export_restores_training_mode_and_opset_18():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.LayerNorm(4))
    model.train()
    m = ember.onnx.export(model, ember.randn(3, 4), None, opset_version=18, dynamic_axes={"input": [0]})
    assert model.training and all(mod.training for mod in model.modules())
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version == 18
    model.eval()
    a = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    with ember.no_grad():
        np.testing.assert_allclose(sess.run(None, {"input": a})[0], model(ember.tensor(a)).numpy(), atol=ATOL)


def test_static_export_has_fixed_shapes():
    m = ember.onnx.export(nn.Linear(3, 2), ember.randn(4, 3), None)
    onnx.checker.check_model(m, full_check=True)
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [4, 3]
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [4, 2]


class _Reinterprets(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).view(ember.int32)          # a bit reinterpretation: no ONNX form


def test_unexportable_op_names_op_and_supported_list(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    with pytest.raises(NotImplementedError) as info:
        ember.onnx.export(_Reinterprets(), ember.randn(2, 4), path)
    msg = str(info.value)
    assert "'view'" in msg and "in layer <root> (_Reinterprets)" in msg
    assert "Exportable ops:" in msg and "conv2d" in msg and "recurrent_scan" in msg
    assert path.read_bytes() == b"old"                     # a failed export leaves the old file as it was
    assert sorted(o.name for o in os.scandir(tmp_path)) == ["model.onnx"]


def test_unexportable_op_names_the_layer():
    class Proj(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, proj_size=3)

        def forward(self, x):
            return self.lstm(x)[0]
    with pytest.raises(NotImplementedError, match=r"recurrent_scan' in layer lstm \(LSTM\): .*proj_size"):
        ember.onnx.export(Proj(), ember.randn(5, 2, 4), None)


def test_every_op_is_lowered_or_listed_as_not_exportable():
    """Every Ember op class has a lowering, or is one of the ops no inference graph needs (gradients,
    training-only randomness) or that ONNX cannot express; a new op must be added to one of the two."""
    from ember.autograd.node import Op
    from ember.onnx.export_ops import LOWERINGS, supported_ops
    supported_ops()
    not_exportable = {"sumto", "conv2d_weight_grad", "embedding_backward", "indexbackward", "indexput",
                      "max_pool_backward", "max_pool_gather", "avg_pool_backward", "pool_scatter", "dropoutmask",
                      "view", "fused"}
    todo, missing = list(Op.__subclasses__()), []
    while todo:
        c = todo.pop()
        todo.extend(c.__subclasses__())
        if c.__name__.startswith("_") and c.__subclasses__() or not c.__module__.startswith("ember."):
            continue                                   # abstract bases (_Unary, _Compare, ...), tests' own ops
        if not any(k in LOWERINGS for k in c.__mro__) and c.op_name() not in not_exportable:
            missing.append(c.op_name())
    assert not missing, f"ops with no ONNX lowering: {missing}"


def test_graph_mode_epilogues_lower_to_product_and_relu():
    """The fused ops graph mode's passes make (linear+relu, conv+relu) lower as the pair they replace."""
    from ember.graph.epilogue import fuse_epilogues
    from ember.onnx.export_ops import LOWERINGS
    from ember.graph.epilogue import Conv2dRelu, LinearRelu
    assert LinearRelu in LOWERINGS and Conv2dRelu in LOWERINGS
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.ReLU())
    g = fuse_epilogues(ember.graph.trace(model, ember.randn(2, 1, 6, 6)))
    assert [n.name for n in g.nodes if n.name.endswith("_relu")] == ["conv2d_relu", "linear_relu"]


@pytest.mark.parametrize("loss", ["cross_entropy", "cross_entropy_weighted_sum", "nll_none_ignore", "bce"])
def test_models_returning_their_loss_export(loss, tmp_path):
    """Losses lower to ONNX's SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss, binary cross entropy to its
    clamped formula; onnxruntime gives Ember's values."""
    import onnxruntime as ort
    F = nn.functional
    lin = nn.Linear(6, 4)
    weight = ember.tensor([1.0, 2.0, 0.5, 1.5])

    def fn(x, t):
        z = lin(x)
        if loss == "cross_entropy":
            return F.cross_entropy(z, t)
        if loss == "cross_entropy_weighted_sum":
            return F.cross_entropy(z, t, weight=weight, reduction="sum")
        if loss == "nll_none_ignore":
            return F.nll_loss(F.log_softmax(z, 1), t, ignore_index=2, reduction="none")
        return F.binary_cross_entropy(z.sigmoid(), (t[:, None] == ember.arange(4)).float())

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x, t):
            return fn(x, t)
    rng = np.random.default_rng(0)
    x, t = ember.tensor(rng.standard_normal((5, 6)).astype(np.float32)), ember.tensor(rng.integers(0, 4, 5))
    path = str(tmp_path / "loss.onnx")
    m = ember.onnx.export(Wrapped(), (x, t), path, input_names=["x", "t"])
    onnx.checker.check_model(m, full_check=True)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy(), "t": t.numpy()})
    with ember.no_grad():
        want = fn(x, t).numpy()
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
