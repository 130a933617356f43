"""Convolution layers: ``ember.nn`` modules against their PyTorch twins, Keras-style layers against the same
computation in PyTorch with the kernels transposed, shapes, configs, training, errors, and the LeNet example."""
import pathlib
import runpy

import numpy as np
import pytest
import torch

import ember
from ember import layers
from helpers.modcheck import check_module

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pair(name, *args, **kw):
    """The same module built in Ember and in PyTorch."""
    return lambda: (getattr(ember.nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw))


# (case, modules, input specs, call)
CONV_MODULES = [
    ("c2_basic", _pair("Conv2d", 3, 4, 3), [(2, 3, 5, 7)]),
    ("c2_batch1_nobias", _pair("Conv2d", 2, 3, (3, 2), bias=False), [(1, 2, 5, 6)]),
    ("c2_unbatched", _pair("Conv2d", 2, 3, 3, padding=1), [(2, 5, 4)]),
    ("c2_stride2_odd", _pair("Conv2d", 2, 3, 3, stride=2), [(2, 2, 7, 9)]),
    ("c2_stride_tuple", _pair("Conv2d", 2, 3, (2, 3), stride=(1, 2), padding=(0, 1)), [(1, 2, 5, 7)]),
    ("c2_same", _pair("Conv2d", 2, 3, 3, padding="same"), [(2, 2, 5, 7)]),
    ("c2_same_even", _pair("Conv2d", 2, 3, (2, 4), padding="same"), [(1, 2, 5, 7)]),
    ("c2_same_dilated", _pair("Conv2d", 2, 2, 3, padding="same", dilation=2), [(1, 2, 6, 7)]),
    ("c2_valid", _pair("Conv2d", 2, 3, 3, padding="valid"), [(1, 2, 5, 5)]),
    ("c2_dilation", _pair("Conv2d", 2, 3, (2, 3), dilation=(2, 1)), [(2, 2, 6, 7)]),
    ("c2_all", _pair("Conv2d", 4, 2, 3, stride=2, padding=1, dilation=2, groups=2), [(1, 4, 7, 6)]),
    ("c2_groups2", _pair("Conv2d", 4, 6, 3, groups=2), [(2, 4, 5, 5)]),
    ("c2_depthwise", _pair("Conv2d", 3, 3, 3, groups=3, padding=1), [(2, 3, 5, 6)]),
    ("c2_depthwise_mult2", _pair("Conv2d", 3, 6, 3, groups=3, padding="same"), [(1, 3, 5, 5)]),
    ("c2_pointwise", _pair("Conv2d", 3, 4, 1), [(2, 3, 4, 5)]),
    ("c2_reflect", _pair("Conv2d", 2, 3, 3, padding=1, padding_mode="reflect"), [(2, 2, 5, 6)]),
    ("c2_replicate", _pair("Conv2d", 2, 3, 3, padding=(2, 1), padding_mode="replicate"), [(1, 2, 5, 6)]),
    ("c2_circular", _pair("Conv2d", 2, 3, 3, padding=1, stride=2, padding_mode="circular"), [(1, 2, 5, 6)]),
    ("c2_same_reflect", _pair("Conv2d", 2, 3, (2, 3), padding="same", padding_mode="reflect"), [(1, 2, 5, 6)]),
    ("c1_basic", _pair("Conv1d", 3, 4, 3), [(2, 3, 7)]),
    ("c1_batch1_unbatched", _pair("Conv1d", 2, 3, 2, bias=False), [(2, 7)]),
    ("c1_stride_pad_dil", _pair("Conv1d", 2, 3, 3, stride=2, padding=1, dilation=2), [(2, 2, 9)]),
    ("c1_same", _pair("Conv1d", 2, 3, 4, padding="same"), [(1, 2, 7)]),
    ("c1_depthwise", _pair("Conv1d", 3, 3, 3, groups=3), [(1, 3, 7)]),
    ("c1_reflect", _pair("Conv1d", 2, 3, 3, padding=2, padding_mode="reflect"), [(2, 2, 6)]),
    ("c1_circular_same", _pair("Conv1d", 2, 2, 4, padding="same", padding_mode="circular"), [(1, 2, 6)]),
    ("ct2_basic", _pair("ConvTranspose2d", 3, 2, 3), [(2, 3, 4, 5)]),
    ("ct2_stride2", _pair("ConvTranspose2d", 2, 3, 3, stride=2, padding=1, output_padding=1), [(1, 2, 3, 4)]),
    ("ct2_tuple", _pair("ConvTranspose2d", 2, 2, (2, 3), stride=(2, 1), padding=(0, 1)), [(1, 2, 3, 5)]),
    ("ct2_groups", _pair("ConvTranspose2d", 4, 6, 3, groups=2, stride=2, bias=False), [(1, 4, 3, 3)]),
    ("ct2_dilation", _pair("ConvTranspose2d", 2, 2, 3, dilation=2, padding=1), [(1, 2, 3, 4)]),
    ("ct2_unbatched", _pair("ConvTranspose2d", 2, 3, 2, stride=2), [(2, 3, 3)]),
    ("ct1_basic", _pair("ConvTranspose1d", 3, 2, 4, stride=2), [(2, 3, 5)]),
    ("ct1_all", _pair("ConvTranspose1d", 4, 2, 3, stride=3, padding=1, output_padding=2, groups=2, dilation=2),
     [(1, 4, 4)]),
]


@pytest.mark.parametrize("case,make,specs", CONV_MODULES, ids=[c[0] for c in CONV_MODULES])
def test_conv_module_matches_torch(case, make, specs):
    torch.manual_seed(0)
    em, tm = make()
    check_module(em, tm, specs, gradcheck=True)


def test_conv_transpose_output_size_matches_torch():
    torch.manual_seed(0)
    for name, shape, size in [("ConvTranspose2d", (1, 2, 3, 4), (8, 10)), ("ConvTranspose1d", (1, 2, 4), (10,))]:
        em, tm = _pair(name, 2, 3, 3, stride=3, padding=1)()
        check_module(em, tm, [shape], call=lambda m, x: m(x, output_size=size))
        with pytest.raises(ValueError, match="valid sizes"):
            em(ember.ones(*shape), output_size=tuple(s + 5 for s in size))


@pytest.mark.parametrize("name,args,kw", [
    ("Conv2d", (3, 8, 3), {"stride": 2, "padding": 1, "bias": False}),
    ("Conv2d", (4, 8, (3, 5)), {"padding": "same", "dilation": 2, "groups": 2, "padding_mode": "reflect"}),
    ("Conv1d", (2, 4, 3), {"padding": "valid"}),
    ("ConvTranspose2d", (4, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("ConvTranspose1d", (4, 2, 3), {"groups": 2, "dilation": 2}),
])
def test_conv_module_repr_shapes_and_init_match_torch(name, args, kw):
    em, tm = _pair(name, *args, **kw)()
    assert repr(em) == repr(tm)
    assert {k: tuple(v.shape) for k, v in em.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    # PyTorch's init: weight and bias within U(+-1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5))
    fan_in = em.weight.shape[1] * int(np.prod(em.weight.shape[2:]))
    bound = 1 / np.sqrt(fan_in)
    w = em.weight.detach().numpy()
    assert np.abs(w).max() <= bound + 1e-7 and w.std() > bound / 4
    if em.bias is not None:
        assert np.abs(em.bias.detach().numpy()).max() <= bound + 1e-7


@pytest.mark.parametrize("make,match", [
    (lambda: ember.nn.Conv2d(3, 4, 3, groups=2), "in_channels \\(3\\) must be divisible by groups"),
    (lambda: ember.nn.Conv2d(4, 3, 3, groups=2), "out_channels \\(3\\) must be divisible by groups"),
    (lambda: ember.nn.Conv2d(2, 4, 3, stride=2, padding="same"), "not supported for strided"),
    (lambda: ember.nn.Conv2d(2, 4, 3, padding="full"), "padding must be"),
    (lambda: ember.nn.Conv2d(2, 4, 3, padding_mode="mirror"), "padding_mode must be one of"),
    (lambda: ember.nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect"), "only 'zeros'"),
    (lambda: ember.nn.Conv1d(2, 4, (3, 3)), "kernel_size must be an int or a tuple of 1"),
])
def test_conv_module_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_conv_module_bad_inputs_name_the_module():
    conv = ember.nn.Conv2d(3, 4, 3)
    with pytest.raises(ember.autograd.node.OpError, match=r"Conv2d\(in_channels=3\).*3 channels.*\(1, 4, 5, 5\)"):
        conv(ember.ones(1, 4, 5, 5))
    with pytest.raises(ember.autograd.node.OpError, match=r"Conv2d\(3, 4.*4-D.*\(5, 5\)"):
        conv(ember.ones(5, 5))
    with pytest.raises(ember.autograd.node.OpError, match="ConvTranspose1d"):
        ember.nn.ConvTranspose1d(2, 3, 3)(ember.ones(1, 3, 5))


# ---------------------------------------------------------------- Keras-style layers against PyTorch
def tf_same(n, k, s, d=1):
    """TensorFlow's documented 'same' padding: ceil(n/s) outputs, odd padding after."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _cf(x, fmt):
    return x if fmt == "channels_first" else x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def _cl(x, fmt):
    return x if fmt == "channels_first" else x.permute(0, *range(2, x.ndim), 1)


def _torch_pad(x, k, s, d, padding):
    """Zero-pad a channels-first torch tensor as Keras' padding does."""
    if padding == "valid":
        return x
    spatial = x.shape[2:]
    if padding == "causal":
        return F.pad(x, (d[0] * (k[0] - 1), 0))
    pairs = [tf_same(n, ki, si, di) for n, ki, si, di in zip(spatial, k, s, d)]
    return F.pad(x, [p for pair in reversed(pairs) for p in pair])


def ref_conv(x, p, fmt, rank, strides, padding, dilation, groups=1):
    kernel = p["kernel"]
    w = kernel.permute(rank + 1, rank, *range(rank))
    xc = _torch_pad(_cf(x, fmt), kernel.shape[:rank], strides, dilation, padding)
    conv = F.conv1d if rank == 1 else F.conv2d
    return _cl(conv(xc, w, p.get("bias"), strides, 0, dilation, groups), fmt)


def ref_depthwise(x, kernel, fmt, strides, padding, dilation):
    """Channel by channel, so the (c * dm + m) output ordering is checked independently of the layer."""
    xc = _torch_pad(_cf(x, fmt), kernel.shape[:2], strides, dilation, padding)
    outs = [F.conv2d(xc[:, c:c + 1], kernel[:, :, c, m][None, None], None, strides, 0, dilation)
            for c in range(kernel.shape[2]) for m in range(kernel.shape[3])]
    return torch.cat(outs, 1)


def ref_conv_transpose(x, p, fmt, strides, padding, dilation, out_hw):
    """TensorFlow's definition: the gradient of a Keras conv over an ``out_hw`` input, taken by torch autograd."""
    xc = _cf(x, fmt)
    kernel = p["kernel"]                                      # (*k, filters, in)
    rank = kernel.ndim - 2
    z = torch.zeros((xc.shape[0], kernel.shape[rank]) + tuple(out_hw), dtype=x.dtype, requires_grad=True)
    conv = F.conv1d if rank == 1 else F.conv2d
    fwd = conv(_torch_pad(z, kernel.shape[:rank], strides, dilation, padding),
               kernel.permute(rank + 1, rank, *range(rank)), None, strides, 0, dilation)
    assert fwd.shape[2:] == xc.shape[2:]
    (y,) = torch.autograd.grad(fwd, z, grad_outputs=xc, create_graph=True)
    if "bias" in p:
        y = y + p["bias"].reshape(1, -1, *(1,) * rank)
    return _cl(y, fmt)


def keras_vs_torch(layer, shape, ref, seed=0, atol=1e-4):
    """Forward, input gradient and every weight gradient of ``layer`` equal ``ref(x, params)`` in PyTorch."""
    rng = np.random.default_rng(seed)
    xn = rng.standard_normal(shape).astype(np.float32)
    x = ember.tensor(xn, requires_grad=True)
    y = layer(x)
    params = {n: torch.tensor(v.detach().numpy(), requires_grad=True) for n, v in layer.named_parameters()}
    xt = torch.tensor(xn, requires_grad=True)
    yt = ref(xt, params)
    assert tuple(y.shape) == tuple(yt.shape) == tuple(layer.compute_output_shape(shape))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), atol=atol, rtol=1e-4)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (y * ember.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=atol, rtol=1e-4, err_msg="input gradient")
    for n, v in layer.named_parameters():
        np.testing.assert_allclose(v.grad.numpy(), params[n].grad.numpy(), atol=atol, rtol=1e-4, err_msg=n)


def keras_gradcheck(make, shape):
    """float64 finite-difference gradcheck of a fresh float64 layer in its input and weights."""
    layer = make()
    layer.__dict__["_dtype"] = ember.float64
    x = ember.tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)
    layer(x)
    params = [p for _, p in layer.named_parameters()]
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ws):
        saved = dict(layer._parameters)
        layer._parameters.update(zip(names, ws))
        try:
            return layer(x)
        finally:
            layer._parameters.update(saved)
    leaves = [x] + [ember.tensor(p.detach().numpy(), requires_grad=True) for p in params]
    assert ember.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-5, rtol=1e-3)


FMTS = ["channels_last", "channels_first"]


def _shape(fmt, n, spatial, c):
    return (n, *spatial, c) if fmt == "channels_last" else (n, c, *spatial)


# (case, layer kwargs, batch, spatial, channels)
CONV2D_CASES = [
    ("valid", dict(filters=4, kernel_size=3), 2, (5, 7), 3),
    ("same_s1_even_kernel", dict(filters=3, kernel_size=(2, 4), padding="same"), 1, (5, 6), 2),
    ("same_s2_odd", dict(filters=3, kernel_size=3, strides=2, padding="same"), 2, (7, 9), 2),
    ("same_s2_even", dict(filters=3, kernel_size=3, strides=2, padding="same"), 1, (6, 8), 2),
    ("same_s2_even_k4", dict(filters=2, kernel_size=4, strides=2, padding="same"), 1, (6, 7), 2),
    ("same_s3_tuple", dict(filters=2, kernel_size=(3, 2), strides=(3, 2), padding="same"), 1, (7, 5), 2),
    ("valid_stride", dict(filters=2, kernel_size=2, strides=(2, 3)), 2, (7, 8), 3),
    ("dilated_same", dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"), 1, (6, 7), 2),
    ("groups", dict(filters=4, kernel_size=3, groups=2, use_bias=False), 1, (5, 5), 4),
    ("relu", dict(filters=3, kernel_size=1, activation="relu", bias_initializer="ones"), 2, (3, 4), 2),
]


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("case,kw,n,spatial,c", CONV2D_CASES, ids=[c[0] for c in CONV2D_CASES])
def test_keras_conv2d_matches_torch(fmt, case, kw, n, spatial, c):
    layer = layers.Conv2D(data_format=fmt, **kw)
    k = layer.kernel_size

    def ref(x, p):
        y = ref_conv(x, p, fmt, 2, layer.strides, layer.padding, layer.dilation_rate, layer.groups)
        return torch.relu(y) if kw.get("activation") == "relu" else y
    keras_vs_torch(layer, _shape(fmt, n, spatial, c), ref)
    assert tuple(layer.kernel.shape) == k + (c // layer.groups, kw["filters"])


CONV1D_CASES = [
    ("valid", dict(filters=4, kernel_size=3), 2, (7,), 3),
    ("same_s2_odd", dict(filters=3, kernel_size=3, strides=2, padding="same"), 1, (7,), 2),
    ("same_s2_even", dict(filters=3, kernel_size=4, strides=2, padding="same"), 1, (8,), 2),
    ("causal_dilated", dict(filters=2, kernel_size=3, dilation_rate=2, padding="causal"), 2, (6,), 2),
    ("groups", dict(filters=4, kernel_size=2, groups=2), 1, (5,), 2),
]


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("case,kw,n,spatial,c", CONV1D_CASES, ids=[c[0] for c in CONV1D_CASES])
def test_keras_conv1d_matches_torch(fmt, case, kw, n, spatial, c):
    layer = layers.Conv1D(data_format=fmt, **kw)
    keras_vs_torch(layer, _shape(fmt, n, spatial, c),
                   lambda x, p: ref_conv(x, p, fmt, 1, layer.strides, layer.padding, layer.dilation_rate,
                                         layer.groups))


def test_keras_same_stride2_pads_bottom_right_as_tensorflow():
    # TensorFlow: out = ceil(4/2) = 2, total pad 1 goes after: windows [1, 2, 3] and [3, 4, 0]
    layer = layers.Conv1D(1, 3, strides=2, padding="same", kernel_initializer="ones", use_bias=False)
    out = layer(ember.tensor([[[1.0], [2.0], [3.0], [4.0]]]))
    np.testing.assert_allclose(out.detach().numpy().ravel(), [6.0, 7.0])
    pool = layers.AveragePooling1D(2, strides=2, padding="same")(ember.tensor([[[1.0], [2.0], [3.0]]]))
    np.testing.assert_allclose(pool.numpy().ravel(), [1.5, 3.0])       # the padded cell is not counted


# (case, kwargs, spatial in, expected spatial out (Keras' deconv_output_length))
CONVT_CASES = [
    ("valid_s1", dict(filters=3, kernel_size=3), (4, 5), (6, 7)),
    ("valid_s2", dict(filters=2, kernel_size=3, strides=2), (3, 4), (7, 9)),
    ("valid_s3_k2", dict(filters=2, kernel_size=2, strides=3), (3, 2), (9, 6)),
    ("same_s2", dict(filters=2, kernel_size=3, strides=2, padding="same"), (3, 4), (6, 8)),
    ("same_s2_k4", dict(filters=2, kernel_size=4, strides=2, padding="same"), (3, 3), (6, 6)),
    ("same_s1", dict(filters=2, kernel_size=(2, 3), padding="same"), (4, 5), (4, 5)),
    ("same_output_padding", dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0), (3, 4),
     (5, 7)),
    ("valid_output_padding", dict(filters=2, kernel_size=3, strides=2, output_padding=(1, 0)), (3, 3), (8, 7)),
    ("dilated", dict(filters=2, kernel_size=2, dilation_rate=2, padding="same", use_bias=False), (3, 4), (3, 4)),
]


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("case,kw,spatial,out", CONVT_CASES, ids=[c[0] for c in CONVT_CASES])
def test_keras_conv2d_transpose_matches_tensorflow_definition(fmt, case, kw, spatial, out):
    layer = layers.Conv2DTranspose(data_format=fmt, bias_initializer="random_normal", **kw)
    shape = _shape(fmt, 2, spatial, 3)
    keras_vs_torch(layer, shape, lambda x, p: ref_conv_transpose(x, p, fmt, layer.strides, layer.padding,
                                                                 layer.dilation_rate, out))
    assert tuple(layer.kernel.shape) == layer.kernel_size + (kw["filters"], 3)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("kw,n,out", [
    (dict(filters=2, kernel_size=3, strides=2), 4, 9),
    (dict(filters=2, kernel_size=4, strides=2, padding="same"), 5, 10),
    (dict(filters=3, kernel_size=3, strides=3, padding="same", output_padding=1, dilation_rate=1), 3, 8),
])
def test_keras_conv1d_transpose_matches_tensorflow_definition(fmt, kw, n, out):
    layer = layers.Conv1DTranspose(data_format=fmt, bias_initializer="random_normal", **kw)
    keras_vs_torch(layer, _shape(fmt, 2, (n,), 3), lambda x, p: ref_conv_transpose(
        x, p, fmt, layer.strides, layer.padding, layer.dilation_rate, (out,)))


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("kw,spatial", [
    (dict(kernel_size=3), (5, 6)),
    (dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same"), (5, 6)),
    (dict(kernel_size=(2, 3), depth_multiplier=3, padding="same", dilation_rate=2, use_bias=False), (4, 5)),
])
def test_keras_depthwise_conv2d_matches_per_channel_torch(fmt, kw, spatial):
    layer = layers.DepthwiseConv2D(data_format=fmt, bias_initializer="random_normal", **kw)

    def ref(x, p):
        y = ref_depthwise(x, p["kernel"], fmt, layer.strides, layer.padding, layer.dilation_rate)
        return _cl(y + p["bias"].reshape(1, -1, 1, 1) if "bias" in p else y, fmt)
    keras_vs_torch(layer, _shape(fmt, 2, spatial, 3), ref)
    assert tuple(layer.kernel.shape) == layer.kernel_size + (3, layer.depth_multiplier)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("kw", [dict(filters=4, kernel_size=3),
                                dict(filters=2, kernel_size=3, strides=2, padding="same", depth_multiplier=2)])
def test_keras_separable_conv2d_matches_torch(fmt, kw):
    layer = layers.SeparableConv2D(data_format=fmt, bias_initializer="random_normal", **kw)

    def ref(x, p):
        d = ref_depthwise(x, p["depthwise_kernel"], fmt, layer.strides, layer.padding, layer.dilation_rate)
        return _cl(F.conv2d(d, p["pointwise_kernel"].permute(3, 2, 0, 1), p["bias"]), fmt)
    keras_vs_torch(layer, _shape(fmt, 1, (5, 6), 3), ref)
    assert tuple(layer.pointwise_kernel.shape) == (1, 1, 3 * layer.depth_multiplier, kw["filters"])


def ref_depthwise1d(x, kernel, fmt, strides, padding, dilation):
    xc = _torch_pad(_cf(x, fmt), kernel.shape[:1], strides, dilation, padding)
    outs = [F.conv1d(xc[:, c:c + 1], kernel[:, c, m][None, None], None, strides, 0, dilation)
            for c in range(kernel.shape[1]) for m in range(kernel.shape[2])]
    return torch.cat(outs, 1)


@pytest.mark.parametrize("fmt", FMTS)
def test_keras_depthwise_and_separable_conv1d_match_torch(fmt):
    dw = layers.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=2, data_format=fmt,
                                bias_initializer="random_normal")
    keras_vs_torch(dw, _shape(fmt, 2, (7,), 3), lambda x, p: _cl(ref_depthwise1d(
        x, p["kernel"], fmt, dw.strides, dw.padding, dw.dilation_rate) + p["bias"].reshape(1, -1, 1), fmt))
    sep = layers.SeparableConv1D(4, 3, dilation_rate=2, data_format=fmt, bias_initializer="random_normal")

    def ref(x, p):
        d = ref_depthwise1d(x, p["depthwise_kernel"], fmt, sep.strides, sep.padding, sep.dilation_rate)
        return _cl(F.conv1d(d, p["pointwise_kernel"].permute(2, 1, 0), p["bias"]), fmt)
    keras_vs_torch(sep, _shape(fmt, 2, (8,), 3), ref)
    assert tuple(sep.pointwise_kernel.shape) == (1, 3, 4)


@pytest.mark.parametrize("make,shape", [
    (lambda: layers.Conv2D(2, 3, strides=2, padding="same"), (1, 4, 5, 2)),
    (lambda: layers.DepthwiseConv1D(2, depth_multiplier=2, padding="same"), (1, 4, 2)),
    (lambda: layers.SeparableConv1D(2, 2, strides=2), (1, 5, 2)),
    (lambda: layers.Conv1D(2, 3, padding="causal", data_format="channels_first"), (1, 2, 5)),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, padding="same"), (1, 3, 2, 2)),
    (lambda: layers.Conv1DTranspose(2, 3, strides=2, data_format="channels_first"), (1, 2, 3)),
    (lambda: layers.DepthwiseConv2D(2, depth_multiplier=2, strides=2, padding="same"), (1, 3, 3, 2)),
    (lambda: layers.SeparableConv2D(2, 2, padding="same"), (1, 3, 3, 2)),
])
def test_keras_conv_layers_gradcheck_float64(make, shape):
    keras_gradcheck(make, shape)


CONFIG_LAYERS = [
    lambda: layers.Conv1D(4, 3, strides=2, padding="causal", dilation_rate=1, activation="relu", name="c1"),
    lambda: layers.Conv2D(8, (3, 2), strides=(2, 1), padding="same", data_format="channels_first", groups=2,
                          use_bias=False, kernel_initializer="he_normal", kernel_regularizer="l2"),
    lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation="tanh"),
    lambda: layers.Conv1DTranspose(3, 3, strides=2, dilation_rate=1, kernel_initializer="lecun_normal"),
    lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, depthwise_initializer="ones"),
    lambda: layers.SeparableConv2D(5, 3, depth_multiplier=2, pointwise_initializer="zeros"),
    lambda: layers.DepthwiseConv1D(3, strides=2, padding="same", data_format="channels_first"),
    lambda: layers.SeparableConv1D(4, 3, padding="causal", depthwise_regularizer="l1"),
]


@pytest.mark.parametrize("make", CONFIG_LAYERS)
def test_keras_conv_config_round_trip(make):
    import json
    layer = make()
    cfg = layer.get_config()
    again = type(layer).from_config(json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg
    restored = ember.saving.deserialize_layer(ember.saving.serialize_layer(layer))
    assert type(restored) is type(layer) and restored.get_config() == cfg


def test_keras_conv_input_shape_builds_at_once_and_weights_count():
    layer = layers.Conv2D(6, 5, input_shape=(32, 32, 1))
    assert layer.built and layer.count_params() == 5 * 5 * 6 + 6
    assert layer.compute_output_shape((None, 32, 32, 1)) == (None, 28, 28, 6)
    sep = layers.SeparableConv2D(4, 3, depth_multiplier=2)
    sep(ember.ones(1, 5, 5, 3))
    assert [n for n, _ in sep.named_parameters()] == ["depthwise_kernel", "pointwise_kernel", "bias"]


def test_keras_conv_with_unknown_steps_in_a_functional_model():
    inp = layers.Input((None, 3))
    h = layers.Conv1D(4, 5, activation="relu")(inp)
    assert tuple(h.shape) == (None, None, 4)
    out = layers.Conv1D(2, 3, strides=2, padding="same")(h)
    model = ember.Model(inp, out)
    assert tuple(model(ember.ones(2, 11, 3)).shape) == (2, 4, 2)
    img = layers.Input((None, None, 2))
    assert tuple(layers.Conv2DTranspose(3, 3, strides=2)(img).shape) == (None, None, None, 3)
    with pytest.raises(ValueError, match="Conv2D 'c2d': expected a 4-D input"):
        layers.Conv2D(2, 3, name="c2d")(inp)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv2D(4, 3, padding="full"), "padding must be one of"),
    (lambda: layers.Conv2D(4, 3, padding="causal"), "padding must be one of"),
    (lambda: layers.Conv2D(0, 3), "filters must be a positive integer"),
    (lambda: layers.Conv2D(3, 3, groups=2), "filters \\(3\\) must be divisible by groups"),
    (lambda: layers.Conv2D(4, (3, 3, 3)), "kernel_size must be"),
    (lambda: layers.Conv2D(4, 3, data_format="NHWC"), "data_format must be"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=2), "output_padding"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
])
def test_keras_conv_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_keras_conv_bad_inputs_name_the_layer():
    layer = layers.Conv2D(4, 3, name="conv_a")
    with pytest.raises(ValueError, match="Conv2D 'conv_a': expected a 4-D input"):
        layer(ember.ones(2, 8, 3))
    with pytest.raises(ValueError, match="input channels \\(3\\) must be divisible by groups"):
        layers.Conv2D(4, 3, groups=2)(ember.ones(1, 5, 5, 3))
    layer(ember.ones(1, 5, 5, 3))
    with pytest.raises(ember.autograd.node.OpError, match="conv_a.*3 channels on axis 3.*\\(1, 5, 5, 2\\)"):
        layer(ember.ones(1, 5, 5, 2))


# ---------------------------------------------------------------- in models
def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    return ember.tensor(x), ember.tensor(y)


def test_sequential_cnn_builds_lazily_and_fits():
    ember.manual_seed(0)
    x, y = _images()
    model = ember.Sequential([layers.Conv2D(4, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
                              layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
                              layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    losses = hist.history["loss"]
    assert losses[-1] < losses[0]
    assert tuple(model(x[:3]).shape) == (3, 2)


def test_functional_cnn_shapes_and_fit():
    ember.manual_seed(0)
    x, y = _images()
    inp = layers.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, activation="relu")(inp)
    assert tuple(h.shape) == (None, 6, 6, 4)
    h = layers.MaxPooling2D(padding="same")(h)
    h = layers.SeparableConv2D(6, 2, padding="same")(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(2)(h)
    model = ember.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    again = ember.saving.model_from_config(ember.saving.serialize_layer(model))
    assert tuple(again(x[:2]).shape) == (2, 2)


def test_nn_cnn_module_trains():
    ember.manual_seed(0)
    x, y = _images()
    net = ember.nn.Sequential(ember.nn.Conv2d(1, 4, 3, padding=1), ember.nn.ReLU(), ember.nn.MaxPool2d(2),
                              ember.nn.Flatten(), ember.nn.Linear(64, 2))
    opt = ember.optim.Adam(net.parameters(), lr=1e-2)
    xc = x.permute(0, 3, 1, 2)
    first = None
    for _ in range(10):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(net(xc), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first


# ---------------------------------------------------------------- the LeNet example
@pytest.mark.slow
def test_lenet_digits_example_reaches_98_percent(capsys):
    mod = runpy.run_path(str(ROOT / "examples" / "lenet_digits.py"))
    acc = mod["main"]([])                    # the default Keras-style path, seed 0
    assert "test accuracy" in capsys.readouterr().out
    assert acc >= 0.98


def test_lenet_example_models_match_lenet5():
    mod = runpy.run_path(str(ROOT / "examples" / "lenet_digits.py"))
    keras_model, nn_model = mod["keras_lenet"](), mod["LeNet"]()
    sizes = [tuple(p.shape) for p in keras_model.parameters()]
    assert sizes == [(5, 5, 1, 6), (6,), (5, 5, 6, 16), (16,), (400, 120), (120,), (120, 84), (84,), (84, 10), (10,)]
    assert [tuple(p.shape) for p in nn_model.parameters()] == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400),
                                                               (120,), (84, 120), (84,), (10, 84), (10,)]
    x = ember.ones(2, 8, 8, 1)
    assert tuple(keras_model(x).shape) == tuple(nn_model(x.permute(0, 3, 1, 2)).shape) == (2, 10)
    xs, ys = mod["shift_augment"](ember.arange(64.0).reshape(1, 8, 8, 1), ember.tensor([3]))
    assert tuple(xs.shape) == (5, 8, 8, 1) and ys.tolist() == [3] * 5
    assert xs[1, 0, 0, 0].item() == 1.0 and xs[1, 0, 7, 0].item() == 0.0       # shifted by one pixel, zero filled
