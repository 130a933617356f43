"""Normalization: ops, nn modules and Keras layers against PyTorch; gradchecks; running statistics; errors."""
import numpy as np
import pytest
import torch

import ember
from helpers.modcheck import check_module, copy_torch_weights
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional
EF = ember.nn.functional


# ---------------------------------------------------------------- ops
def _ln(shape, affine=True, bias=True, eps=1e-5):
    def ef(x, *wb):
        return EF.layer_norm(x, shape, *wb, eps=eps)

    def tf(x, *wb):
        return F.layer_norm(x, shape, *wb, eps=eps)
    return ef, tf


def _bn(c, **kw):
    """batch_norm in training mode with running stats (updated in place) that are then compared too."""
    def ef(x, *wb):
        rm, rv = ember.zeros(c, dtype=x.dtype), ember.ones(c, dtype=x.dtype)
        y = EF.batch_norm(x, rm, rv, *wb, training=True, **kw)
        return y, rm, rv

    def tf(x, *wb):
        rm, rv = torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype)
        y = F.batch_norm(x, rm, rv, *wb, training=True, **kw)
        return y, rm, rv
    return ef, tf


def _bn_eval(x_shape):
    def ef(x, rm, rv, w, b):
        return EF.batch_norm(x, rm, rv, w, b, training=False)

    def tf(x, rm, rv, w, b):
        return F.batch_norm(x, rm, rv, w, b, training=False)
    c = x_shape[1]
    stats = [Arr(np.linspace(-1, 1, c), grad=False), Arr(np.linspace(0.5, 2, c), grad=False)]
    return (ef, tf), [x_shape] + stats + [(c,), (c,)]


def _gn(g, eps=1e-5):
    return (lambda x, *wb: EF.group_norm(x, g, *wb, eps=eps)), (lambda x, *wb: F.group_norm(x, g, *wb, eps=eps))


def _inorm(c=None, **kw):
    def ef(x, *wb):
        if c is None:
            return EF.instance_norm(x, None, None, *wb, **kw)
        rm, rv = ember.zeros(c, dtype=x.dtype), ember.ones(c, dtype=x.dtype)
        return EF.instance_norm(x, rm, rv, *wb, **kw), rm, rv

    def tf(x, *wb):
        if c is None:
            return F.instance_norm(x, None, None, *wb, **kw)
        rm, rv = torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype)
        return F.instance_norm(x, rm, rv, *wb, **kw), rm, rv
    return ef, tf


def _rms(shape, eps=None):
    return (lambda x, *w: EF.rms_norm(x, shape, *w, eps=eps)), (lambda x, *w: F.rms_norm(x, shape, *w, eps=eps))


OPS = [
    ("layer_norm_2d", _ln((5,)), [(3, 5), (5,), (5,)]),
    ("layer_norm_batch1", _ln((7,)), [(1, 7), (7,), (7,)]),
    ("layer_norm_3d", _ln((4,)), [(2, 3, 4), (4,), (4,)]),
    ("layer_norm_two_dims", _ln((3, 4)), [(2, 3, 4), (3, 4), (3, 4)]),
    ("layer_norm_4d_all", _ln((2, 3, 5)), [(1, 2, 3, 5), (2, 3, 5), (2, 3, 5)]),
    ("layer_norm_weight_only", _ln((5,)), [(3, 5), (5,)]),
    ("layer_norm_plain", _ln((5,)), [(2, 3, 5)]),
    ("layer_norm_eps", _ln((6,), eps=1e-2), [(3, 6), (6,), (6,)]),
    ("batch_norm_2d", _bn(3), [(4, 3), (3,), (3,)]),
    ("batch_norm_3d", _bn(3), [(2, 3, 5), (3,), (3,)]),
    ("batch_norm_4d", _bn(3), [(2, 3, 3, 5), (3,), (3,)]),
    ("batch_norm_batch1_spatial", _bn(2), [(1, 2, 3, 3), (2,), (2,)]),
    ("batch_norm_plain", _bn(3, momentum=0.3), [(5, 3, 2)]),
    ("batch_norm_eps", _bn(2, eps=1e-1), [(3, 2, 2, 3), (2,), (2,)]),
    ("batch_norm_5d", _bn(2), [(2, 2, 2, 3, 2), (2,), (2,)]),
    ("batch_norm_eval_2d", *_bn_eval((4, 3))),
    ("batch_norm_eval_4d", *_bn_eval((2, 3, 3, 2))),
    ("group_norm_4d", _gn(2), [(2, 4, 3, 3), (4,), (4,)]),
    ("group_norm_batch1", _gn(3), [(1, 6, 5), (6,), (6,)]),
    ("group_norm_2d", _gn(2), [(3, 4), (4,), (4,)]),
    ("group_norm_one_group", _gn(1), [(2, 3, 2, 3), (3,), (3,)]),
    ("group_norm_per_channel", _gn(3, eps=1e-3), [(2, 3, 5)]),
    ("instance_norm_3d", _inorm(), [(2, 3, 5), (3,), (3,)]),
    ("instance_norm_4d", _inorm(), [(2, 3, 3, 4), (3,), (3,)]),
    ("instance_norm_batch1_plain", _inorm(), [(1, 2, 3, 3)]),
    ("instance_norm_running", _inorm(3, momentum=0.2), [(2, 3, 3, 3), (3,), (3,)]),
    # rows of 64 or more take the batched-matmul path for the sums of products
    ("layer_norm_long_rows", _ln((70,)), [(2, 70), (70,), (70,)]),
    ("batch_norm_long_rows_odd", _bn(2), [(2, 2, 8, 9), (2,), (2,)]),
    ("group_norm_long_rows", _gn(2), [(2, 4, 5, 7), (4,), (4,)]),
    ("instance_norm_long_rows", _inorm(2), [(1, 2, 8, 8), (2,), (2,)]),
    ("rms_norm", _rms((5,)), [(3, 5), (5,)]),
    ("rms_norm_two_dims_eps", _rms((2, 3), eps=1e-3), [(2, 2, 3), (2, 3)]),
    ("rms_norm_plain", _rms((4,)), [(1, 4)]),
]


@pytest.mark.parametrize("name,fns,specs", OPS, ids=[c[0] for c in OPS])
def test_norm_ops(name, fns, specs):
    """Parity of the output, the updated running statistics and every gradient; float64 gradcheck of the output."""
    ef, tf = fns
    check_op(ef, tf, specs, atol=1e-4, gradcheck=False)
    inputs = [ember.tensor(np.random.default_rng(i).standard_normal(s), requires_grad=True) if isinstance(s, tuple)
              else ember.tensor(s.value, requires_grad=s.grad) for i, s in enumerate(specs)]

    def first(*xs):
        out = ef(*xs)
        return out[0] if isinstance(out, tuple) else out
    assert ember.autograd.gradcheck(first, inputs)


def _f64(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return ember.tensor(rng.standard_normal(shape), requires_grad=True)


GRADGRAD = [
    ("layer_norm", lambda x, w, b: EF.layer_norm(x, (4,), w, b), [(2, 3, 4), (4,), (4,)]),
    ("batch_norm", lambda x, w, b: EF.batch_norm(x, None, None, w, b, training=True), [(3, 2, 4), (2,), (2,)]),
    ("group_norm", lambda x, w, b: EF.group_norm(x, 2, w, b), [(2, 4, 3), (4,), (4,)]),
    ("instance_norm", lambda x, w, b: EF.instance_norm(x, weight=w, bias=b), [(2, 2, 4), (2,), (2,)]),
    ("rms_norm", lambda x, w: EF.rms_norm(x, (4,), w), [(2, 4), (4,)]),
    ("batch_norm_eval", lambda x, w, b: EF.batch_norm(x, ember.tensor([0.5, -1.0], dtype=ember.float64),
                                                      ember.tensor([2.0, 0.5], dtype=ember.float64), w, b),
     [(3, 2, 4), (2,), (2,)]),
]


@pytest.mark.parametrize("name,fn,shapes", GRADGRAD, ids=[c[0] for c in GRADGRAD])
def test_norm_gradgradcheck(name, fn, shapes):
    inputs = [_f64(*s, seed=i) for i, s in enumerate(shapes)]
    assert ember.autograd.gradgradcheck(fn, inputs)


DOUBLE = [
    ("layer_norm", (3, 5), 5, lambda F_, x, w: F_.layer_norm(x, (5,), w)),
    ("batch_norm", (4, 3, 5), 3, lambda F_, x, w: F_.batch_norm(x, None, None, w, training=True)),
    ("group_norm", (2, 4, 3), 4, lambda F_, x, w: F_.group_norm(x, 2, w)),
    ("instance_norm", (2, 3, 4), 3, lambda F_, x, w: F_.instance_norm(x, weight=w)),
]


@pytest.mark.parametrize("name,shape,c,fn", DOUBLE, ids=[d[0] for d in DOUBLE])
def test_double_backward_matches_torch(name, shape, c, fn):
    x = np.random.default_rng(0).standard_normal(shape)
    w = np.random.default_rng(1).standard_normal(c)
    ex, ew = ember.tensor(x, requires_grad=True), ember.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (eg,) = ember.autograd.grad((fn(EF, ex, ew) ** 3).sum(), ex, create_graph=True)
    (tg,) = torch.autograd.grad((fn(F, tx, tw) ** 3).sum(), tx, create_graph=True)
    np.testing.assert_allclose(eg.detach().numpy(), tg.detach().numpy(), rtol=1e-6, atol=1e-8)
    (eg * eg).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-8)


def test_batch_norm_running_stats_dtype_and_no_grad():
    x = ember.randn(6, 3, 4)
    rm, rv = ember.zeros(3), ember.ones(3)
    with ember.no_grad():
        y = EF.batch_norm(x, rm, rv, training=True)
    assert not y.requires_grad and y.dtype == ember.float32 and rm.dtype == ember.float32
    xd = x.numpy().astype(np.float64)
    np.testing.assert_allclose(rm.numpy(), 0.1 * xd.mean(axis=(0, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.numpy(), 0.9 + 0.1 * xd.var(axis=(0, 2), ddof=1), rtol=1e-5)


OP_ERRORS = [
    (lambda: EF.layer_norm(ember.randn(2, 3), (4,)), r"layer_norm: given normalized_shape=\[4\].*\[2, 3\]"),
    (lambda: EF.layer_norm(ember.randn(2, 3), (3,), ember.ones(4)), r"layer_norm: expected weight of shape \(3,\)"),
    (lambda: EF.layer_norm(ember.ones(2, 3, dtype=ember.int64), (3,)), "layer_norm: expected a floating-point"),
    (lambda: EF.batch_norm(ember.randn(1, 3), None, None, training=True), "more than 1 value per channel"),
    (lambda: EF.batch_norm(ember.randn(4, 3), ember.zeros(2), ember.ones(2), training=True),
     r"batch_norm: expected running_mean of shape \(3,\), got \(2,\)"),
    (lambda: EF.batch_norm(ember.randn(4, 3), None, None), "running_mean and running_var must be given"),
    (lambda: EF.batch_norm(ember.randn(4), None, None, training=True), r"\(N, C, \*\)"),
    (lambda: EF.group_norm(ember.randn(2, 6, 3), 4), r"group_norm: .*\(6, .*divisible by num_groups=4"),
    (lambda: EF.instance_norm(ember.randn(2, 3)), "instance_norm: expected an input of shape"),
    (lambda: EF.instance_norm(ember.randn(2, 3, 1)), "more than 1 spatial element"),
    (lambda: EF.rms_norm(ember.randn(2, 3), (2,)), "rms_norm: given normalized_shape"),
]


@pytest.mark.parametrize("call,match", OP_ERRORS, ids=[str(i) for i in range(len(OP_ERRORS))])
def test_norm_op_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- nn modules
MODULES = [
    ("bn1d_2d", lambda: (ember.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)), [(5, 3)]),
    ("bn1d_3d", lambda: (ember.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)), [(2, 3, 5)]),
    ("bn2d", lambda: (ember.nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)), [(2, 4, 3, 5)]),
    ("bn2d_batch1", lambda: (ember.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2)), [(1, 2, 3, 3)]),
    ("bn2d_momentum_none", lambda: (ember.nn.BatchNorm2d(3, momentum=None), torch.nn.BatchNorm2d(3, momentum=None)),
     [(2, 3, 2, 3)]),
    ("bn2d_no_affine", lambda: (ember.nn.BatchNorm2d(3, affine=False), torch.nn.BatchNorm2d(3, affine=False)),
     [(2, 3, 2, 3)]),
    ("bn2d_no_track", lambda: (ember.nn.BatchNorm2d(3, track_running_stats=False),
                               torch.nn.BatchNorm2d(3, track_running_stats=False)), [(2, 3, 2, 3)]),
    ("bn2d_no_bias", lambda: (ember.nn.BatchNorm2d(3, bias=False), torch.nn.BatchNorm2d(3, bias=False)),
     [(2, 3, 2, 3)]),
    ("gn_no_bias", lambda: (ember.nn.GroupNorm(2, 4, bias=False), torch.nn.GroupNorm(2, 4, bias=False)),
     [(2, 4, 3)]),
    ("bn3d", lambda: (ember.nn.BatchNorm3d(2, eps=1e-3), torch.nn.BatchNorm3d(2, eps=1e-3)), [(2, 2, 2, 3, 2)]),
    ("in1d", lambda: (ember.nn.InstanceNorm1d(3), torch.nn.InstanceNorm1d(3)), [(2, 3, 5)]),
    ("in1d_unbatched", lambda: (ember.nn.InstanceNorm1d(3, affine=True), torch.nn.InstanceNorm1d(3, affine=True)),
     [(3, 5)]),
    ("in2d_affine_track", lambda: (ember.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                                   torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True)),
     [(2, 3, 3, 4)]),
    ("in3d", lambda: (ember.nn.InstanceNorm3d(2), torch.nn.InstanceNorm3d(2)), [(1, 2, 2, 3, 2)]),
    ("ln", lambda: (ember.nn.LayerNorm(5), torch.nn.LayerNorm(5)), [(2, 3, 5)]),
    ("ln_two_dims", lambda: (ember.nn.LayerNorm((3, 5), eps=1e-3), torch.nn.LayerNorm((3, 5), eps=1e-3)),
     [(2, 3, 5)]),
    ("ln_no_bias", lambda: (ember.nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False)), [(4, 5)]),
    ("ln_no_affine", lambda: (ember.nn.LayerNorm(5, elementwise_affine=False),
                              torch.nn.LayerNorm(5, elementwise_affine=False)), [(1, 5)]),
    ("gn", lambda: (ember.nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)), [(2, 4, 3, 3)]),
    ("gn_no_affine", lambda: (ember.nn.GroupNorm(3, 6, affine=False), torch.nn.GroupNorm(3, 6, affine=False)),
     [(1, 6, 5)]),
    ("rms", lambda: (ember.nn.RMSNorm(5), torch.nn.RMSNorm(5)), [(2, 3, 5)]),
    ("rms_eps", lambda: (ember.nn.RMSNorm((2, 3), eps=1e-4), torch.nn.RMSNorm((2, 3), eps=1e-4)), [(4, 2, 3)]),
]


def _randomize(tmod, seed=0):
    """Non-trivial weights and running statistics, so that copying them across is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tmod.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        for name, b in tmod.named_buffers():
            if name == "running_var":
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif b.dtype.is_floating_point:
                b.copy_(torch.randn(b.shape, generator=g))
    return tmod


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,make,specs", MODULES, ids=[c[0] for c in MODULES])
def test_norm_modules(name, make, specs, train):
    emod, tmod = make()
    check_module(emod, _randomize(tmod), specs, train=train, gradcheck=True)


@pytest.mark.parametrize("kw", [{}, {"momentum": None}, {"momentum": 0.5, "affine": False}, {"eps": 1e-2}],
                         ids=["default", "momentum_none", "momentum_half_no_affine", "eps"])
def test_batchnorm_running_stats_over_steps(kw):
    emod, tmod = ember.nn.BatchNorm2d(3, **kw), torch.nn.BatchNorm2d(3, **kw)
    rng = np.random.default_rng(0)
    for step in range(4):
        x = (rng.standard_normal((4, 3, 3, 2)) * (step + 1) + step).astype(np.float32)
        emod(ember.tensor(x))
        tmod(torch.tensor(x))
    for name, tb in tmod.named_buffers():
        eb = dict(emod.named_buffers())[name]
        assert eb.dtype.name == str(tb.dtype).replace("torch.", ""), name
        np.testing.assert_allclose(eb.numpy(), tb.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    x = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    emod.eval()
    tmod.eval()
    np.testing.assert_allclose(emod(ember.tensor(x)).detach().numpy(), tmod(torch.tensor(x)).detach().numpy(),
                               atol=1e-5)


def test_state_dict_names_match_torch():
    for e, t in [(ember.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)), (ember.nn.LayerNorm((2, 3)),
                 torch.nn.LayerNorm((2, 3))), (ember.nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
                 (ember.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                  torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True)),
                 (ember.nn.BatchNorm2d(3, track_running_stats=False),
                  torch.nn.BatchNorm2d(3, track_running_stats=False)),
                 (ember.nn.GroupNorm(2, 4, bias=False), torch.nn.GroupNorm(2, 4, bias=False)),
                 (ember.nn.RMSNorm(4), torch.nn.RMSNorm(4))]:
        es, ts = e.state_dict(), t.state_dict()
        assert list(es) == list(ts)
        for k in ts:
            np.testing.assert_array_equal(es[k].numpy(), ts[k].numpy())
            assert str(es[k].numpy().dtype) == str(ts[k].numpy().dtype)
        assert repr(e) == repr(t)
        copy_torch_weights(e, t)


def test_module_reset_and_double():
    bn = ember.nn.BatchNorm1d(2)
    bn(ember.randn(4, 2) * 3 + 1)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0, 0])
    assert int(bn.num_batches_tracked.item()) == 0
    bn.double()
    assert bn.running_var.dtype == ember.float64 and bn.num_batches_tracked.dtype == ember.int64
    assert bn(ember.randn(3, 2, dtype=ember.float64)).dtype == ember.float64


MODULE_ERRORS = [
    (lambda: ember.nn.BatchNorm2d(3)(ember.randn(2, 3, 4)),
     r"BatchNorm2d: expected 4D input \(N, C, H, W\), got 3D input of shape \(2, 3, 4\)"),
    (lambda: ember.nn.BatchNorm1d(3)(ember.randn(2, 3, 4, 5)), r"BatchNorm1d: expected 2D or 3D input"),
    (lambda: ember.nn.BatchNorm2d(3)(ember.randn(2, 5, 4, 4)),
     r"BatchNorm2d\(3\): expected input with 3 channels.*got 5"),
    (lambda: ember.nn.BatchNorm1d(3)(ember.randn(1, 3)), "more than 1 value per channel"),
    (lambda: ember.nn.InstanceNorm2d(3, affine=True)(ember.randn(2, 4, 3, 3)), r"InstanceNorm2d\(3\): expected input"),
    (lambda: ember.nn.InstanceNorm1d(3)(ember.randn(2, 3, 4, 4)), "InstanceNorm1d: expected 2D or 3D input"),
    (lambda: ember.nn.LayerNorm(4)(ember.randn(2, 3)), r"layer_norm: given normalized_shape=\[4\]"),
    (lambda: ember.nn.GroupNorm(4, 6), r"GroupNorm: num_channels \(6\) must be divisible by num_groups \(4\)"),
    (lambda: ember.nn.GroupNorm(2, 4)(ember.randn(2, 6, 3)), r"GroupNorm\(2, 4\): expected an \(N, C, \*\) input"),
    (lambda: ember.nn.BatchNorm2d(0), "num_features must be a positive int"),
]


@pytest.mark.parametrize("call,match", MODULE_ERRORS, ids=[str(i) for i in range(len(MODULE_ERRORS))])
def test_norm_module_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_instance_norm_channel_mismatch_warns_without_affine():
    with pytest.warns(UserWarning, match="num_features is not used"):
        y = ember.nn.InstanceNorm1d(3)(ember.randn(2, 4, 5))
    assert y.shape == (2, 4, 5)


# ---------------------------------------------------------------- Keras-style layers
L = ember.layers


def _keras(cls, training=None, **kw):
    """An Ember fn (x, gamma, beta) running a fresh layer with gamma/beta swapped for the given tensors."""
    def ef(x, *gb):
        layer = cls(dtype=x.dtype, **kw)
        layer.build(tuple(x.shape))
        layer.__dict__["built"] = True
        for name, t in zip(("gamma", "beta"), gb):
            layer._parameters[name] = t
        return layer(x) if training is None else layer(x, training=training)
    return ef


def _to_first(x):
    return x.movedim(-1, 1)


KERAS = [
    ("bn_dense", _keras(L.BatchNormalization, training=True),
     lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-3), [(5, 3), (3,), (3,)]),
    ("bn_nhwc", _keras(L.BatchNormalization, training=True, epsilon=1e-2),
     lambda x, g, b: F.batch_norm(_to_first(x), None, None, g, b, training=True, eps=1e-2).movedim(1, -1),
     [(2, 3, 4, 3), (3,), (3,)]),
    ("bn_axis1_batch1", _keras(L.BatchNormalization, training=True, axis=1),
     lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-3), [(1, 2, 3, 3), (2,), (2,)]),
    ("bn_inference", _keras(L.BatchNormalization, training=False),
     lambda x, g, b: F.batch_norm(_to_first(x), torch.zeros(3), torch.ones(3), g, b, eps=1e-3).movedim(1, -1),
     [(4, 2, 3), (3,), (3,)]),
    ("ln_last", _keras(L.LayerNormalization), lambda x, g, b: F.layer_norm(x, (4,), g, b, eps=1e-3),
     [(2, 3, 4), (4,), (4,)]),
    ("ln_batch1", _keras(L.LayerNormalization), lambda x, g, b: F.layer_norm(x, (5,), g, b, eps=1e-3),
     [(1, 5), (5,), (5,)]),
    ("ln_two_axes", _keras(L.LayerNormalization, axis=[1, 2]),
     lambda x, g, b: F.layer_norm(x, (3, 4), g, b, eps=1e-3), [(2, 3, 4), (3, 4), (3, 4)]),
    ("ln_middle_axis", _keras(L.LayerNormalization, axis=1, epsilon=1e-5),
     lambda x, g, b: F.layer_norm(x.movedim(1, -1), (3,), g, b).movedim(-1, 1), [(2, 3, 4), (3,), (3,)]),
    ("ln_rms", _keras(L.LayerNormalization, rms_scaling=True),
     lambda x, g: F.rms_norm(x, (4,), g, eps=1e-3), [(3, 4), (4,)]),
    ("gn_nhwc", _keras(L.GroupNormalization, groups=2),
     lambda x, g, b: F.group_norm(_to_first(x), 2, g, b, eps=1e-3).movedim(1, -1), [(2, 3, 3, 4), (4,), (4,)]),
    ("gn_instance", _keras(L.GroupNormalization, groups=-1, epsilon=1e-5),
     lambda x, g, b: F.instance_norm(_to_first(x), weight=g, bias=b).movedim(1, -1), [(2, 5, 3), (3,), (3,)]),
    ("gn_axis1", _keras(L.GroupNormalization, groups=3, axis=1),
     lambda x, g, b: F.group_norm(x, 3, g, b, eps=1e-3), [(1, 6, 4), (6,), (6,)]),
]


@pytest.mark.parametrize("name,ef,tf,specs", KERAS, ids=[c[0] for c in KERAS])
def test_keras_layers_match_torch(name, ef, tf, specs):
    check_op(ef, tf, specs, atol=1e-4)


def test_batch_normalization_moving_statistics_keras_semantics():
    rng = np.random.default_rng(0)
    bn = L.BatchNormalization(momentum=0.9)
    mm, mv = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rng.standard_normal((8, 2, 3)) * (step + 1) + step
        bn(ember.tensor(x.astype(np.float32)), training=True)
        mm = mm * 0.9 + x.mean(axis=(0, 1)) * 0.1
        mv = mv * 0.9 + x.var(axis=(0, 1)) * 0.1          # Keras 3: the biased batch variance
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.detach().numpy(), mv, rtol=1e-5)
    assert [n for n, _ in bn.named_parameters()] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    x = ember.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    expected = (x.numpy() - mm) / np.sqrt(mv + 1e-3)
    np.testing.assert_allclose(bn(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)     # inference
    bn.trainable = False               # a frozen BatchNormalization runs in inference mode, as Keras
    np.testing.assert_allclose(bn(x, training=True).detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), mm, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: L.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-4, center=False, gamma_initializer="he_normal",
                                 moving_variance_initializer="zeros", gamma_regularizer="l2", name="bn"),
    lambda: L.LayerNormalization(axis=[1, 2], epsilon=1e-5, scale=False),
    lambda: L.LayerNormalization(rms_scaling=True),
    lambda: L.GroupNormalization(groups=4, axis=1, beta_initializer="ones"),
])
def test_keras_norm_config_round_trip(make):
    import json
    layer = make()
    cfg = json.loads(json.dumps(layer.get_config()))
    again = type(layer).from_config(cfg)
    assert again.get_config() == layer.get_config()


@pytest.mark.slow
def test_sequential_with_batch_normalization_fits_and_saves(tmp_path):
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((256, 4)) * [1, 5, 0.1, 2] + [3, -2, 0, 1]).astype(np.float32)
    y = (x @ np.array([[1.0], [0.2], [-3.0], [0.5]], dtype=np.float32) > 0).astype(np.float32)
    def make():
        return ember.Sequential([L.Input((4,)), L.BatchNormalization(name="bn0"), L.Dense(16, activation="relu",
                                 name="d0"), L.BatchNormalization(momentum=0.9, name="bn1"),
                                 L.Dense(1, activation="sigmoid", name="d1")])
    model = make()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert hist.history["accuracy"][-1] > 0.9
    bn = model.layers[0]
    steps = 15 * 256 // 32            # moving_mean starts at 0 and moves by 1 - momentum each step
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), x.mean(0) * (1 - 0.99 ** steps), rtol=0.1, atol=0.05)
    pred = model.predict(x[:64], verbose=0)
    np.testing.assert_allclose(model(ember.tensor(x[:64])).detach().numpy(), pred, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "m.safetensors")
    model.save_weights(path)
    other = make()
    other.load_weights(path)
    np.testing.assert_array_equal(other.layers[0].moving_variance.detach().numpy(),
                                  bn.moving_variance.detach().numpy())
    np.testing.assert_allclose(other.predict(x[:64], verbose=0), pred, rtol=1e-6, atol=1e-7)
    model.save(str(tmp_path / "m.ember"))                  # the whole model: config, weights, optimizer
    np.testing.assert_allclose(ember.models.load_model(str(tmp_path / "m.ember")).predict(x[:64], verbose=0), pred,
                               rtol=1e-6, atol=1e-7)
    train_out = model(ember.tensor(x[:64]), training=True).detach().numpy()
    assert not np.allclose(pred, train_out, atol=1e-3)             # batch vs moving statistics


KERAS_ERRORS = [
    (lambda: _call_built(L.BatchNormalization(name="b"), (2, 3), (2, 4)), "BatchNormalization 'b': built for"),
    (lambda: L.BatchNormalization(axis=3)(ember.randn(2, 3)), "axis=3 is out of range"),
    (lambda: L.GroupNormalization(groups=3)(ember.randn(2, 4)), r"channels \(4\) must be a multiple"),
    (lambda: L.GroupNormalization(groups=8)(ember.randn(2, 4)), r"groups \(8\) cannot be more than"),
    (lambda: _call_built(L.LayerNormalization(name="ln"), (2, 3), (2, 5)), "LayerNormalization 'ln': built for"),
    (lambda: L.LayerNormalization(axis="x"), "expected an int or a list"),
]


def _call_built(layer, build_shape, call_shape):
    layer(ember.randn(*build_shape))
    return layer(ember.randn(*call_shape))


@pytest.mark.parametrize("call,match", KERAS_ERRORS, ids=[str(i) for i in range(len(KERAS_ERRORS))])
def test_keras_norm_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_keras_norm_layers_in_a_functional_model():
    inp = L.Input((6, 4))
    x = L.BatchNormalization()(inp)
    x = L.LayerNormalization(axis=[1, 2])(x)
    x = L.GroupNormalization(groups=2)(x)
    out = L.Dense(1)(L.Flatten()(x))
    model = ember.Model(inp, out)
    assert tuple(x.shape) == (None, 6, 4)
    assert L.GroupNormalization(groups=2).compute_output_shape((None, 6, 4)) == (None, 6, 4)
    xs = np.random.default_rng(0).standard_normal((16, 6, 4)).astype(np.float32)
    ys = xs.sum(axis=(1, 2))[:, None]
    model.compile(optimizer="sgd", loss="mse")
    model.fit(xs, ys, epochs=1, batch_size=8, verbose=0)
    assert model.predict(xs, verbose=0).shape == (16, 1)
    (bn,) = [la for la in model.layers if isinstance(la, L.BatchNormalization)]
    assert not np.allclose(bn.moving_mean.detach().numpy(), 0)       # fit trained: the statistics moved


def test_dtype_mismatch_is_explained():
    with pytest.raises(ValueError, match="layer_norm: weight has dtype float32 but the input has dtype float64"):
        ember.nn.LayerNorm(3)(ember.randn(2, 3, dtype=ember.float64))
    with pytest.raises(ValueError, match="batch_norm: weight has dtype float32"):
        ember.nn.BatchNorm1d(3)(ember.randn(2, 3, dtype=ember.float64))
    y = L.BatchNormalization()(ember.randn(2, 3, dtype=ember.float64))     # Keras layers cast the input
    assert y.dtype == ember.float32


# ---------------------------------------------------------------- masked BatchNormalization (Keras 3)
def _keras_weighted_moments(x, m):
    """NumPy copy of Keras 3's ``BatchNormalization._moments`` with a mask (channels last)."""
    w = m.astype(x.dtype)[..., None]
    axes = tuple(range(x.ndim - 1))
    wx = w * x
    count = w.sum(axis=axes) + 1e-7
    mean = wx.sum(axis=axes) / count
    var = (w * (wx - mean) ** 2).sum(axis=axes) / count
    return mean, var


def _seq_mask(rng, b, t):
    lengths = rng.integers(1, t + 1, size=b)
    return np.arange(t)[None, :] < lengths[:, None]


@pytest.mark.parametrize("shape,kw", [((4, 6, 3), {}), ((1, 5, 2), {"center": False}), ((3, 2, 4, 5), {"scale": False}),
                                      ((7, 3), {"momentum": 0.5, "epsilon": 1e-5})])
def test_masked_batch_normalization_matches_keras_weighted_moments(shape, kw):
    rng = np.random.default_rng(1)
    bn = L.BatchNormalization(momentum=kw.pop("momentum", 0.9), epsilon=kw.pop("epsilon", 1e-3), **kw,
                              beta_initializer="random_normal", gamma_initializer="random_uniform")
    bn(ember.zeros(*shape))                              # builds; inference leaves the statistics
    gamma = bn.gamma.detach().numpy() if bn.gamma is not None else 1.0
    beta = bn.beta.detach().numpy() if bn.beta is not None else 0.0
    mm, mv = np.zeros(shape[-1]), np.ones(shape[-1])
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        m = _seq_mask(rng, shape[0], shape[1]) if len(shape) == 3 else rng.random(shape[:-1]) < 0.6
        m.reshape(-1)[0] = True
        y = bn(ember.tensor(x), training=True, mask=ember.tensor(m))
        mean, var = _keras_weighted_moments(x.astype(np.float64), m)
        np.testing.assert_allclose(y.detach().numpy(), (x - mean) / np.sqrt(var + bn.epsilon) * gamma + beta,
                                   rtol=1e-4, atol=1e-4)
        assert y._keras_mask.tolist() == m.tolist()                     # passed on
        mm = mm * bn.momentum + mean * (1 - bn.momentum)
        mv = mv * bn.momentum + var * (1 - bn.momentum)
        np.testing.assert_allclose(bn.moving_mean.detach().numpy(), mm, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.detach().numpy(), mv, rtol=1e-5, atol=1e-5)
    y = bn(ember.tensor(x), mask=ember.tensor(m))          # inference: the moving statistics, mask passed on
    np.testing.assert_allclose(y.detach().numpy(), (x - mm) / np.sqrt(mv + bn.epsilon) * gamma + beta,
                               rtol=1e-4, atol=1e-4)
    assert y._keras_mask.tolist() == m.tolist()


def test_masked_batch_normalization_all_true_mask_equals_unmasked():
    rng = np.random.default_rng(2)
    x = ember.tensor(rng.standard_normal((4, 5, 3)).astype(np.float32))
    a, b = L.BatchNormalization(), L.BatchNormalization()
    ya = a(x, training=True, mask=ember.ones(4, 5, dtype=ember.bool))
    yb = b(x, training=True)
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.moving_variance.detach().numpy(), b.moving_variance.detach().numpy(), rtol=1e-5)


def test_masked_positions_do_not_influence_the_statistics():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    m = _seq_mask(rng, 4, 6)
    m[0, -1] = False
    x2 = x.copy()
    x2[~m] = rng.standard_normal((int((~m).sum()), 3)) * 100 + 50        # garbage under the mask
    a, b = L.BatchNormalization(), L.BatchNormalization()
    ya = a(ember.tensor(x), training=True, mask=ember.tensor(m)).detach().numpy()
    yb = b(ember.tensor(x2), training=True, mask=ember.tensor(m)).detach().numpy()
    np.testing.assert_allclose(ya[m], yb[m], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.moving_mean.detach().numpy(), b.moving_mean.detach().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.moving_variance.detach().numpy(), b.moving_variance.detach().numpy(), rtol=1e-5)
    # gradients: the loss over unmasked outputs gives zero gradient to the masked inputs
    xt = ember.tensor(x, requires_grad=True)
    y = L.BatchNormalization()(xt, training=True, mask=ember.tensor(m))
    (y * ember.tensor(m[..., None].astype(np.float32))).square().sum().backward()
    g = xt.grad.numpy()
    assert np.all(g[~m] == 0) and np.abs(g[m]).max() > 0


def test_masked_batch_normalization_reads_the_keras_mask_of_its_input():
    emb = L.Embedding(10, 3, mask_zero=True)
    ids = ember.tensor(np.array([[1, 2, 0, 0], [3, 0, 0, 0]]))
    e = emb(ids)
    bn = L.BatchNormalization()
    y = bn(e, training=True)
    m = ids.numpy() != 0
    mean, var = _keras_weighted_moments(e.detach().numpy().astype(np.float64), m)
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), 0.01 * mean, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(y.detach().numpy(), (e.detach().numpy() - mean) / np.sqrt(var + 1e-3), rtol=1e-4,
                               atol=1e-4)
    assert y._keras_mask.tolist() == m.tolist()


@pytest.mark.parametrize("shape,axis", [((3, 4, 2), -1), ((2, 3, 4), 1), ((5, 3), -1)])
def test_masked_batch_normalization_gradcheck(shape, axis):
    rng = np.random.default_rng(4)
    bn = L.BatchNormalization(axis=axis, dtype="float64", beta_initializer="random_normal",
                              gamma_initializer="random_uniform")
    bn(ember.zeros(*shape, dtype=ember.float64))
    mshape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    m = rng.random(mshape) < 0.6
    m.reshape(-1)[:2] = True
    mask = ember.tensor(m)
    x = ember.tensor(rng.standard_normal(shape), requires_grad=True)
    assert ember.autograd.gradcheck(lambda x, g, b: bn(x, training=True, mask=mask), (x, bn.gamma, bn.beta))


def test_masked_batch_normalization_errors():
    bn = L.BatchNormalization(name="bnm")
    with pytest.raises(ValueError, match=r"BatchNormalization 'bnm': the mask must have the input's shape without "
                                         r"axis -1, i.e. \(2, 5\) for inputs of shape \(2, 5, 3\); got mask.shape="
                                         r"\(2, 5, 3\)"):
        bn(ember.randn(2, 5, 3), training=True, mask=ember.ones(2, 5, 3, dtype=ember.bool))


def test_batch_normalization_synchronized_config():
    import json
    bn = L.BatchNormalization(synchronized=True, name="sbn")
    cfg = json.loads(json.dumps(bn.get_config()))
    assert cfg["synchronized"] is True
    again = L.BatchNormalization.from_config(cfg)
    assert again.synchronized is True and again.get_config() == bn.get_config()
    assert L.BatchNormalization().get_config()["synchronized"] is False
    assert cfg["beta_constraint"] is None and cfg["gamma_constraint"] is None       # Keras' keys, None only
    x = ember.randn(4, 3)                              # one device: the same results as unsynchronized
    np.testing.assert_allclose(bn(x, training=True).detach().numpy(),
                               L.BatchNormalization()(x, training=True).detach().numpy())


@pytest.mark.slow
def test_embedding_masked_batch_normalization_fits_in_a_functional_model():
    ember.manual_seed(0)
    rng = np.random.default_rng(5)
    ids = rng.integers(1, 20, size=(64, 7))
    ids[~_seq_mask(rng, 64, 7)] = 0
    ys = (ids[:, 0] % 2).astype(np.float32)[:, None]
    inp = L.Input((7,), dtype="int64")
    x = L.Embedding(20, 4, mask_zero=True)(inp)
    x = L.BatchNormalization(momentum=0.5)(x)
    x = L.GlobalAveragePooling1D()(x)
    out = L.Dense(1, activation="sigmoid")(x)
    model = ember.Model(inp, out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    (bn,) = [la for la in model.layers if isinstance(la, L.BatchNormalization)]
    emb = [la for la in model.layers if isinstance(la, L.Embedding)][0]
    batch = ids[:16]
    e = emb(ember.tensor(batch)).detach().numpy().astype(np.float64)
    mean, var = _keras_weighted_moments(e, batch != 0)
    hist = model.fit(ids[:16], ys[:16], epochs=1, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), 0.5 * mean, rtol=1e-4, atol=1e-6)   # masked stats
    np.testing.assert_allclose(bn.moving_variance.detach().numpy(), 0.5 + 0.5 * var, rtol=1e-4)
    hist = model.fit(ids, ys, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    assert model.predict(ids, verbose=0).shape == (64, 1)


@pytest.mark.parametrize("cls", [L.BatchNormalization, L.LayerNormalization, L.GroupNormalization])
def test_norm_constraints_only_none(cls):
    layer = cls(beta_constraint=None, gamma_constraint=None)
    assert layer.get_config()["gamma_constraint"] is None
    with pytest.raises(NotImplementedError, match=f"{cls.__name__}: gamma_constraint is not supported in Ember yet"):
        cls(gamma_constraint="non_neg")
