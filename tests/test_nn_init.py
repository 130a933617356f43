import math

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
from ember.nn import init


def _p(*shape, dtype=None):
    return nn.Parameter(ember.empty(*shape, dtype=dtype))   # a leaf that requires grad: init must still work


def _a(t):
    return t.detach().numpy()


def test_calculate_gain_matches_torch():
    for name in ["linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", 0.2))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3, 3), (6, 2, 5)])
def test_fan_in_fan_out_matches_torch(shape):
    assert init._calculate_fan_in_and_fan_out(ember.empty(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))


def test_fan_needs_2d():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(ember.empty(5))


def test_uniform_normal_constant():
    w = _p(200, 300)
    assert init.uniform_(w, -2.0, 3.0) is w
    a = _a(w)
    assert a.min() >= -2 and a.max() <= 3 and abs(a.mean() - 0.5) < 0.03 and abs(a.std() - 5 / math.sqrt(12)) < 0.02
    a = _a(init.normal_(w, 1.0, 2.0))
    assert abs(a.mean() - 1.0) < 0.03 and abs(a.std() - 2.0) < 0.03
    assert w.grad_fn is None and w.requires_grad and w.dtype == ember.float32
    assert (_a(init.constant_(w, 0.25)) == 0.25).all()
    assert (_a(init.ones_(w)) == 1).all() and (_a(init.zeros_(w)) == 0).all()


def test_eye_and_dirac_match_torch():
    np.testing.assert_array_equal(_a(init.eye_(_p(3, 5))), torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    for shape, groups in [((4, 2, 3), 1), ((6, 3, 3, 3), 2), ((2, 4, 3, 3, 3), 1)]:
        expected = torch.nn.init.dirac_(torch.empty(*shape), groups).numpy()
        np.testing.assert_array_equal(_a(init.dirac_(_p(*shape), groups)), expected)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(_p(2, 2, 2))


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_xavier(shape):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(ember.empty(*shape))
    bound = 1.5 * math.sqrt(6 / (fan_in + fan_out))
    a = _a(init.xavier_uniform_(_p(*shape), gain=1.5))
    assert np.abs(a).max() <= bound and abs(a.std() - bound / math.sqrt(3)) < 0.02 * bound
    a = _a(init.xavier_normal_(_p(*shape)))
    std = math.sqrt(2 / (fan_in + fan_out))
    assert abs(a.mean()) < 0.02 * std * 5 and abs(a.std() - std) < 0.02 * std


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.1), ("leaky_relu", math.sqrt(5)),
                                            ("tanh", 0)])
def test_kaiming(mode, nonlinearity, a):
    shape = (256, 128, 3)
    fan = 128 * 3 if mode == "fan_in" else 256 * 3
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    u = _a(init.kaiming_uniform_(_p(*shape), a=a, mode=mode, nonlinearity=nonlinearity))
    assert np.abs(u).max() <= std * math.sqrt(3) and abs(u.std() - std) < 0.02 * std
    n = _a(init.kaiming_normal_(_p(*shape), a=a, mode=mode, nonlinearity=nonlinearity))
    assert abs(n.std() - std) < 0.02 * std and abs(n.mean()) < 0.1 * std
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        init.kaiming_uniform_(_p(3, 3), mode="fan_avg")


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (8, 2, 3, 3), (5, 5)])
def test_orthogonal(shape):
    w = init.orthogonal_(_p(*shape, dtype=ember.float64), gain=2.0)
    m = _a(w).reshape(shape[0], -1) / 2.0
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-10)
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(m.shape[0]), atol=1e-10)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(_p(4))


def test_trunc_normal():
    a = _a(init.trunc_normal_(_p(300, 300), mean=0.5, std=1.0, a=-0.5, b=1.5))
    assert a.min() >= -0.5 and a.max() <= 1.5
    # mean of N(0.5, 1) truncated symmetrically around 0.5 stays 0.5; std shrinks below 1
    assert abs(a.mean() - 0.5) < 0.01 and abs(a.std() - 0.5396) < 0.01
    b = _a(init.trunc_normal_(_p(200, 200), std=0.02))
    assert abs(b.std() - 0.02) < 0.001 and np.abs(b).max() <= 2
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(_p(2, 2), a=1.0, b=0.0)


def test_sparse():
    a = _a(init.sparse_(_p(10, 40), sparsity=0.3, std=0.1))
    assert ((a == 0).sum(axis=0) >= 3).all()


def test_seeded_repeatability():
    ember.manual_seed(7)
    a = _a(init.kaiming_normal_(_p(4, 5))).copy()
    b = _a(init.orthogonal_(_p(4, 5))).copy()
    ember.manual_seed(7)
    np.testing.assert_array_equal(a, _a(init.kaiming_normal_(_p(4, 5))))
    np.testing.assert_array_equal(b, _a(init.orthogonal_(_p(4, 5))))


def test_init_bumps_version_so_saved_tensors_notice():
    w = _p(3, 3)
    init.zeros_(w)
    v = w._version
    init.normal_(w)
    assert w._version > v
