"""Pooling, upsampling, padding and reshaping layers: ``ember.nn`` modules against PyTorch's, Keras-style layers
against a direct window-by-window reference (TensorFlow's 'same' rule), shapes, configs and errors."""
import json

import numpy as np
import pytest
import torch

import ember
from ember import layers
from helpers.modcheck import check_module

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional


def _pair(name, *args, **kw):
    return lambda: (getattr(ember.nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw))


# (case, modules, input specs)
POOL_MODULES = [
    ("max2_basic", _pair("MaxPool2d", 2), [(2, 3, 6, 7)]),
    ("max2_stride_pad", _pair("MaxPool2d", 3, stride=2, padding=1), [(1, 2, 7, 6)]),
    ("max2_ceil", _pair("MaxPool2d", 3, stride=2, ceil_mode=True), [(2, 2, 6, 8)]),
    ("max2_dilation", _pair("MaxPool2d", (2, 3), stride=1, dilation=(2, 1)), [(1, 2, 6, 7)]),
    ("max2_unbatched", _pair("MaxPool2d", 2, stride=1), [(3, 4, 5)]),
    ("max2_indices", _pair("MaxPool2d", 2, return_indices=True), [(1, 2, 5, 4)]),
    ("max1_basic", _pair("MaxPool1d", 3, stride=2, padding=1), [(2, 3, 8)]),
    ("max1_ceil_indices", _pair("MaxPool1d", 2, ceil_mode=True, return_indices=True), [(1, 2, 7)]),
    ("avg2_basic", _pair("AvgPool2d", 2), [(2, 3, 6, 7)]),
    ("avg2_pad_include", _pair("AvgPool2d", 3, stride=2, padding=1), [(1, 2, 7, 6)]),
    ("avg2_pad_exclude", _pair("AvgPool2d", 3, stride=2, padding=1, count_include_pad=False), [(1, 2, 7, 6)]),
    ("avg2_ceil", _pair("AvgPool2d", 2, ceil_mode=True, count_include_pad=False), [(2, 2, 5, 7)]),
    ("avg2_divisor", _pair("AvgPool2d", 2, divisor_override=3), [(1, 2, 4, 4)]),
    ("avg1_basic", _pair("AvgPool1d", 3, stride=2, padding=1), [(2, 3, 8)]),
    ("avg1_ceil_exclude", _pair("AvgPool1d", 2, ceil_mode=True, count_include_pad=False), [(1, 2, 7)]),
    ("aavg2", _pair("AdaptiveAvgPool2d", (3, 2)), [(2, 3, 7, 5)]),
    ("aavg2_one", _pair("AdaptiveAvgPool2d", 1), [(2, 3, 4, 5)]),
    ("aavg2_none", _pair("AdaptiveAvgPool2d", (None, 2)), [(1, 2, 3, 5)]),
    ("aavg1", _pair("AdaptiveAvgPool1d", 3), [(2, 3, 7)]),
    ("amax2", _pair("AdaptiveMaxPool2d", (2, 3)), [(2, 3, 5, 7)]),
    ("amax2_indices", _pair("AdaptiveMaxPool2d", 2, return_indices=True), [(1, 2, 5, 5)]),
    ("amax1", _pair("AdaptiveMaxPool1d", 4), [(2, 3, 9)]),
    ("up_nearest_scale", _pair("Upsample", scale_factor=2), [(1, 2, 3, 4)]),
    ("up_nearest_size", _pair("Upsample", size=(5, 7)), [(2, 2, 3, 4)]),
    ("up_bilinear", _pair("Upsample", scale_factor=(2, 3), mode="bilinear"), [(1, 2, 3, 4)]),
    ("up_bilinear_ac", _pair("Upsample", size=(5, 6), mode="bilinear", align_corners=True), [(1, 2, 3, 4)]),
    ("up_linear", _pair("Upsample", scale_factor=2, mode="linear"), [(2, 3, 5)]),
    ("up_nearest_1d", _pair("Upsample", size=7, mode="nearest"), [(2, 3, 5)]),
    ("up_nearest_1d_scale_down", _pair("Upsample", scale_factor=0.6), [(1, 2, 9)]),
    ("up_linear_ac_size", _pair("Upsample", size=8, mode="linear", align_corners=True), [(1, 2, 5)]),
    ("up_linear_down_recompute", _pair("Upsample", scale_factor=0.7, mode="linear", recompute_scale_factor=True),
     [(2, 2, 9)]),
    ("up_linear_size_tuple", _pair("Upsample", size=(4,), mode="linear", align_corners=False), [(1, 3, 7)]),
    ("up_exact_1d", _pair("Upsample", scale_factor=1.7, mode="nearest-exact"), [(2, 2, 5)]),
    ("up_exact_2d", _pair("Upsample", size=(5, 9), mode="nearest-exact"), [(1, 2, 3, 4)]),
    ("up_bicubic", _pair("Upsample", scale_factor=2, mode="bicubic"), [(1, 2, 3, 4)]),
    ("up_bicubic_ac", _pair("Upsample", size=(4, 7), mode="bicubic", align_corners=True), [(2, 1, 5, 3)]),
    ("up_area_1d", _pair("Upsample", size=4, mode="area"), [(1, 2, 9)]),
    ("up_area_2d", _pair("Upsample", scale_factor=0.5, mode="area"), [(1, 2, 6, 8)]),
    ("up_nearest2d", _pair("UpsamplingNearest2d", scale_factor=3), [(1, 2, 2, 3)]),
    ("up_bilinear2d", _pair("UpsamplingBilinear2d", size=(4, 5)), [(1, 2, 3, 3)]),
]

PAD_MODULES = [
    ("zero1", _pair("ZeroPad1d", (1, 2)), [(2, 3, 4)]),
    ("zero2", _pair("ZeroPad2d", (1, 0, 2, 1)), [(1, 2, 3, 4)]),
    ("zero2_int_unbatched", _pair("ZeroPad2d", 2), [(2, 3, 4)]),
    ("const1", _pair("ConstantPad1d", 2, 1.5), [(2, 3, 4)]),
    ("const2", _pair("ConstantPad2d", (0, 1, 2, 0), -2.0), [(1, 2, 3, 4)]),
    ("reflect1", _pair("ReflectionPad1d", (2, 1)), [(2, 3, 4)]),
    ("reflect2", _pair("ReflectionPad2d", (1, 2, 2, 0)), [(1, 2, 3, 4)]),
    ("reflect2_unbatched", _pair("ReflectionPad2d", 1), [(2, 3, 4)]),
    ("replicate1", _pair("ReplicationPad1d", (2, 1)), [(2, 3, 4)]),
    ("replicate2", _pair("ReplicationPad2d", (1, 2, 2, 0)), [(1, 2, 3, 4)]),
    ("circular1", _pair("CircularPad1d", (2, 1)), [(2, 3, 4)]),
    ("circular2", _pair("CircularPad2d", 1), [(1, 2, 3, 4)]),
    ("zero3", _pair("ZeroPad3d", (1, 0, 0, 1, 1, 1)), [(1, 2, 2, 3, 2)]),
    ("replicate3", _pair("ReplicationPad3d", 1), [(1, 1, 2, 3, 2)]),
]


@pytest.mark.parametrize("case,make,specs", POOL_MODULES + PAD_MODULES,
                         ids=[c[0] for c in POOL_MODULES + PAD_MODULES])
def test_module_matches_torch(case, make, specs):
    em, tm = make()
    check_module(em, tm, specs, gradcheck=True)
    assert repr(em) == repr(tm)


@pytest.mark.parametrize("make,x,match", [
    (lambda: ember.nn.MaxPool2d(2), ember.ones(5, 5), "max_pool2d: expected a 3-D or 4-D input"),
    (lambda: ember.nn.Upsample(scale_factor=2, mode="bilinear"), ember.ones(1, 2, 5), "expects a 4-D"),
    (lambda: ember.nn.Upsample(scale_factor=2), ember.ones(1, 2), "Upsample"),
    (lambda: ember.nn.Upsample(scale_factor=2, mode="bicubic"), ember.ones(1, 2, 5), "'bicubic' expects a 4-D"),
    (lambda: ember.nn.Upsample(size=3, mode="linear"), ember.ones(1, 2, 5, 5), "'linear' expects a 3-D"),
    (lambda: ember.nn.ReflectionPad2d(1), ember.ones(5), "ReflectionPad2d: expected a 3-D or 4-D input"),
    (lambda: ember.nn.ReflectionPad1d(3), ember.ones(1, 2, 3), "reflect padding"),
])
def test_module_bad_inputs(make, x, match):
    with pytest.raises(ember.autograd.node.OpError, match=match):
        make()(x)


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        ember.nn.Upsample()
    with pytest.raises(ValueError, match="mode 'trilinear' is not supported"):
        ember.nn.Upsample(scale_factor=2, mode="trilinear")
    with pytest.raises(ValueError, match="align_corners"):
        ember.nn.Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="align_corners"):
        ember.nn.Upsample(scale_factor=2, mode="area", align_corners=False)
    with pytest.raises(ValueError, match="padding must be an int or a tuple of 4"):
        ember.nn.ZeroPad2d((1, 2))


# ---------------------------------------------------------------- Keras-style pooling against a direct reference
def ref_pool(x, kind, pool, strides, padding):
    """Window by window on a channels-first torch tensor; 'same' as TensorFlow: padding never counts."""
    spatial = x.shape[2:]
    ranges = []
    for n, k, s in zip(spatial, pool, strides):
        if padding == "same":
            out = -(-n // s)
            before = max((out - 1) * s + k - n, 0) // 2
        else:
            out, before = (n - k) // s + 1, 0
        ranges.append([(max(i * s - before, 0), min(i * s - before + k, n)) for i in range(out)])
    reduce = (lambda w: w.amax(dim=tuple(range(2, w.ndim)))) if kind == "max" else \
        (lambda w: w.mean(dim=tuple(range(2, w.ndim))))
    if len(spatial) == 1:
        return torch.stack([reduce(x[:, :, a:b]) for a, b in ranges[0]], -1)
    rows = [torch.stack([reduce(x[:, :, a:b, c:d]) for c, d in ranges[1]], -1) for a, b in ranges[0]]
    return torch.stack(rows, -2)


def _cf(x, fmt):
    return x if fmt == "channels_first" else x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def _cl(x, fmt):
    return x if fmt == "channels_first" else x.permute(0, *range(2, x.ndim), 1)


def keras_vs_torch(layer, shape, ref, seed=0):
    rng = np.random.default_rng(seed)
    xn = rng.standard_normal(shape).astype(np.float32)
    x = ember.tensor(xn, requires_grad=True)
    y = layer(x)
    xt = torch.tensor(xn, requires_grad=True)
    yt = ref(xt)
    assert tuple(y.shape) == tuple(yt.shape) == tuple(layer.compute_output_shape(shape))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), atol=1e-5, rtol=1e-5)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (y * ember.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-5, rtol=1e-5)
    x64 = ember.tensor(rng.standard_normal(shape), requires_grad=True)
    assert ember.autograd.gradcheck(layer, [x64], eps=1e-6, atol=1e-5, rtol=1e-3)


FMTS = ["channels_last", "channels_first"]

# (case, class, kwargs, spatial)
POOL_CASES = [
    ("max2_valid", layers.MaxPooling2D, {}, (6, 7)),
    ("max2_same_odd", layers.MaxPooling2D, dict(padding="same"), (5, 7)),
    ("max2_same_s1", layers.MaxPooling2D, dict(pool_size=3, strides=1, padding="same"), (4, 5)),
    ("max2_same_k3s2_even", layers.MaxPooling2D, dict(pool_size=3, strides=2, padding="same"), (6, 4)),
    ("max2_strides", layers.MaxPooling2D, dict(pool_size=(3, 2), strides=(1, 2)), (5, 6)),
    ("avg2_valid", layers.AveragePooling2D, dict(pool_size=3, strides=2), (7, 6)),
    ("avg2_same_odd", layers.AveragePooling2D, dict(padding="same"), (5, 7)),
    ("avg2_same_k3s1", layers.AveragePooling2D, dict(pool_size=3, strides=1, padding="same"), (4, 5)),
    ("avg2_same_k3s2", layers.AveragePooling2D, dict(pool_size=(3, 2), strides=2, padding="same"), (6, 5)),
    ("max1_valid", layers.MaxPooling1D, dict(pool_size=3, strides=2), (8,)),
    ("max1_same", layers.MaxPooling1D, dict(padding="same"), (7,)),
    ("avg1_valid", layers.AveragePooling1D, {}, (7,)),
    ("avg1_same", layers.AveragePooling1D, dict(pool_size=3, strides=2, padding="same"), (8,)),
]


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("case,cls,kw,spatial", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_keras_pooling_matches_reference(fmt, case, cls, kw, spatial):
    layer = cls(data_format=fmt, **kw)
    kind = "max" if "Max" in cls.__name__ else "avg"
    shape = (2, *spatial, 3) if fmt == "channels_last" else (2, 3, *spatial)
    keras_vs_torch(layer, shape, lambda x: _cl(ref_pool(_cf(x, fmt), kind, layer.pool_size, layer.strides,
                                                        layer.padding), fmt))


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("cls,rank", [(layers.GlobalAveragePooling2D, 2), (layers.GlobalMaxPooling2D, 2),
                                      (layers.GlobalAveragePooling1D, 1), (layers.GlobalMaxPooling1D, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_keras_global_pooling(fmt, cls, rank, keepdims):
    layer = cls(data_format=fmt, keepdims=keepdims)
    spatial = (4, 5)[:rank]
    shape = (2, *spatial, 3) if fmt == "channels_last" else (2, 3, *spatial)
    axes = tuple(range(1, rank + 1)) if fmt == "channels_last" else tuple(range(2, rank + 2))
    if "Max" in cls.__name__:
        keras_vs_torch(layer, shape, lambda x: x.amax(dim=axes, keepdim=keepdims))
    else:
        keras_vs_torch(layer, shape, lambda x: x.mean(dim=axes, keepdim=keepdims))


def test_keras_global_average_pooling1d_mask():
    x = ember.tensor(np.arange(12, dtype=np.float32).reshape(2, 3, 2))
    mask = ember.tensor(np.array([[True, True, False], [True, False, False]]))
    out = layers.GlobalAveragePooling1D()(x, mask=mask)
    np.testing.assert_allclose(out.numpy(), [[1.0, 2.0], [6.0, 7.0]])


# ---------------------------------------------------------------- Keras-style reshaping layers
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("size,interp", [((2, 2), "nearest"), ((2, 3), "nearest"), ((3, 2), "bilinear"),
                                         ((2, 2), "bilinear")])
def test_keras_upsampling2d(fmt, size, interp):
    layer = layers.UpSampling2D(size, data_format=fmt, interpolation=interp)
    shape = (2, 3, 4, 2) if fmt == "channels_last" else (2, 2, 3, 4)
    if interp == "nearest":
        def ref(x):
            return _cl(_cf(x, fmt).repeat_interleave(size[0], 2).repeat_interleave(size[1], 3), fmt)
    else:
        def ref(x):
            return _cl(F.interpolate(_cf(x, fmt), scale_factor=size, mode="bilinear", align_corners=False), fmt)
    keras_vs_torch(layer, shape, ref)


# (case, layer, input shape, torch reference)
RESHAPE_CASES = [
    ("upsampling1d", lambda: layers.UpSampling1D(3), (2, 4, 3), lambda x: x.repeat_interleave(3, 1)),
    ("zeropad1d_int", lambda: layers.ZeroPadding1D(2), (2, 4, 3), lambda x: F.pad(x, (0, 0, 2, 2))),
    ("zeropad1d_pair", lambda: layers.ZeroPadding1D((0, 3)), (1, 4, 3), lambda x: F.pad(x, (0, 0, 0, 3))),
    ("zeropad2d_int", lambda: layers.ZeroPadding2D(1), (2, 3, 4, 2), lambda x: F.pad(x, (0, 0, 1, 1, 1, 1))),
    ("zeropad2d_sym", lambda: layers.ZeroPadding2D((1, 2)), (1, 3, 4, 2), lambda x: F.pad(x, (0, 0, 2, 2, 1, 1))),
    ("zeropad2d_pairs", lambda: layers.ZeroPadding2D(((1, 0), (0, 2))), (1, 3, 4, 2),
     lambda x: F.pad(x, (0, 0, 0, 2, 1, 0))),
    ("zeropad2d_cf", lambda: layers.ZeroPadding2D(((1, 0), (0, 2)), data_format="channels_first"), (1, 2, 3, 4),
     lambda x: F.pad(x, (0, 2, 1, 0))),
    ("crop1d", lambda: layers.Cropping1D((1, 2)), (2, 6, 3), lambda x: x[:, 1:4]),
    ("crop2d", lambda: layers.Cropping2D(((1, 0), (2, 1))), (2, 4, 6, 3), lambda x: x[:, 1:, 2:5]),
    ("crop2d_int", lambda: layers.Cropping2D(1), (1, 4, 5, 2), lambda x: x[:, 1:3, 1:4]),
    ("crop2d_cf", lambda: layers.Cropping2D((1, 2), data_format="channels_first"), (1, 2, 4, 6),
     lambda x: x[:, :, 1:3, 2:4]),
    ("repeat_vector", lambda: layers.RepeatVector(4), (3, 5), lambda x: x[:, None].expand(3, 4, 5)),
    ("permute", lambda: layers.Permute((2, 1)), (2, 3, 4), lambda x: x.permute(0, 2, 1)),
    ("permute3", lambda: layers.Permute((3, 1, 2)), (2, 3, 4, 5), lambda x: x.permute(0, 3, 1, 2)),
]


@pytest.mark.parametrize("case,make,shape,ref", RESHAPE_CASES, ids=[c[0] for c in RESHAPE_CASES])
def test_keras_reshaping_layers(case, make, shape, ref):
    keras_vs_torch(make(), shape, ref)


CONFIG_LAYERS = [
    lambda: layers.MaxPooling2D((3, 2), strides=1, padding="same", data_format="channels_first", name="p"),
    lambda: layers.AveragePooling1D(3, padding="same"),
    lambda: layers.GlobalAveragePooling2D(keepdims=True),
    lambda: layers.GlobalMaxPooling1D(data_format="channels_first"),
    lambda: layers.UpSampling2D((2, 3), interpolation="bilinear"),
    lambda: layers.UpSampling1D(4),
    lambda: layers.ZeroPadding2D(((1, 0), (2, 3))),
    lambda: layers.ZeroPadding1D(2),
    lambda: layers.Cropping2D(1, data_format="channels_first"),
    lambda: layers.Cropping1D((0, 2)),
    lambda: layers.RepeatVector(3),
    lambda: layers.Permute((2, 1)),
]


@pytest.mark.parametrize("make", CONFIG_LAYERS)
def test_keras_config_round_trip(make):
    layer = make()
    cfg = layer.get_config()
    again = type(layer).from_config(json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg
    restored = ember.saving.deserialize_layer(ember.saving.serialize_layer(layer))
    assert type(restored) is type(layer) and restored.get_config() == cfg


def test_keras_output_shapes_with_unknown_dims():
    assert layers.MaxPooling2D(padding="same").compute_output_shape((None, 7, None, 3)) == (None, 4, None, 3)
    assert layers.UpSampling2D(2).compute_output_shape((None, 3, 4, 2)) == (None, 6, 8, 2)
    inp = layers.Input((None, 6))        # unknown steps: shapes come from compute_output_shape, not a probe
    h = layers.Cropping1D((1, 1))(inp)
    h = layers.MaxPooling1D(3, padding="same")(h)
    h = layers.UpSampling1D(2)(layers.ZeroPadding1D(1)(h))
    assert tuple(h.shape) == (None, None, 6)
    out = layers.GlobalMaxPooling1D()(h)
    assert tuple(out.shape) == (None, 6)
    model = ember.Model(inp, out)
    assert tuple(model(ember.ones(2, 9, 6)).shape) == (2, 6)
    with pytest.raises(ValueError, match="MaxPooling2D 'p2': expected a 4-D input"):
        layers.MaxPooling2D(name="p2")(inp)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.MaxPooling2D(padding="causal"), "padding must be one of"),
    (lambda: layers.MaxPooling2D((2, 2, 2)), "pool_size must be"),
    (lambda: layers.AveragePooling1D(0), "pool_size must be"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), "interpolation must be"),
    (lambda: layers.ZeroPadding2D((1, 2, 3)), "padding must be"),
    (lambda: layers.Cropping2D(-1), "non-negative"),
    (lambda: layers.Permute((1, 3)), "permutation"),
    (lambda: layers.GlobalAveragePooling2D(data_format="NCHW"), "data_format"),
])
def test_keras_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("layer,x,match", [
    (layers.MaxPooling2D(name="pool_a"), ember.ones(2, 5, 3), "MaxPooling2D 'pool_a': expected a 4-D"),
    (layers.MaxPooling2D(3, name="pool_b"), ember.ones(1, 2, 5, 3), "pool_b.*smaller than pool_size"),
    (layers.GlobalAveragePooling1D(), ember.ones(2, 3), "expected a 3-D"),
    (layers.Cropping2D(2), ember.ones(1, 4, 6, 1), "removes all of axis 1"),
    (layers.RepeatVector(2), ember.ones(2, 3, 4), "expected a 2-D"),
    (layers.Permute((2, 1)), ember.ones(2, 3), "expected a 3-D"),
    (layers.UpSampling1D(), ember.ones(2, 3), "expected a 3-D"),
])
def test_keras_bad_inputs_name_the_layer(layer, x, match):
    with pytest.raises(ember.autograd.node.OpError, match=match):
        layer(x)


def test_global_average_pooling_reads_the_keras_mask_of_its_input():
    ids = np.array([[3, 5, 0, 0], [2, 0, 0, 0]])
    inp = ember.layers.Input(shape=(4,), dtype="int64")
    emb = ember.layers.Embedding(10, 3, mask_zero=True)
    model = ember.Model(inp, ember.layers.GlobalAveragePooling1D()(emb(inp)))
    table = emb.embeddings.detach().numpy()
    expected = np.stack([table[[3, 5]].mean(0), table[[2]].mean(0)])
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected, rtol=1e-6, atol=1e-6)
