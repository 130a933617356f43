"""Activation functions: forward/gradient parity with torch.nn.functional, gradchecks, kinks and stability."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ember
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

E = ember.ops
# away from every kink used below (0, +-0.5, +-1, +-3, 6) so finite differences are valid
SMOOTH = Arr(np.array([[-7.3, -3.4, -2.2, -1.3, -0.7, -0.2], [0.15, 0.35, 0.8, 1.6, 4.1, 7.5]]))
# exactly on the kinks: only compared with PyTorch (gradients included), no finite differences
KINKS = Arr(np.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0]))

ACTS = [
    ("relu", E.relu, F.relu, {}),
    ("relu6", E.relu6, F.relu6, {}),
    ("leaky_relu", E.leaky_relu, F.leaky_relu, {}),
    ("leaky_relu_slope", lambda x: E.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2), {}),
    ("elu", E.elu, F.elu, {}),
    ("elu_alpha", lambda x: E.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), {}),
    ("selu", E.selu, F.selu, {}),
    ("celu", E.celu, F.celu, {}),
    ("celu_alpha", lambda x: E.celu(x, alpha=2.0), lambda x: F.celu(x, alpha=2.0), {}),
    ("gelu", E.gelu, F.gelu, {}),
    ("gelu_tanh", lambda x: E.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), {}),
    ("silu", E.silu, F.silu, {}),
    ("softplus", E.softplus, F.softplus, {}),
    ("softplus_beta", lambda x: E.softplus(x, beta=2.0, threshold=5.0),
     lambda x: F.softplus(x, beta=2.0, threshold=5.0), {}),
    ("softsign", E.softsign, F.softsign, {}),
    ("hardtanh", E.hardtanh, F.hardtanh, {}),
    ("hardtanh_range", lambda x: E.hardtanh(x, -2.0, 3.0), lambda x: F.hardtanh(x, -2.0, 3.0), {}),
    ("hardsigmoid", E.hardsigmoid, F.hardsigmoid, {}),
    ("hardswish", E.hardswish, F.hardswish, {}),
    ("mish", E.mish, F.mish, {}),
    ("logsigmoid", E.logsigmoid, F.logsigmoid, {}),
    ("tanhshrink", E.tanhshrink, F.tanhshrink, {}),
    ("softshrink", E.softshrink, F.softshrink, {}),
    ("softshrink_lambd", lambda x: E.softshrink(x, 1.0), lambda x: F.softshrink(x, 1.0), {}),
    ("hardshrink", E.hardshrink, F.hardshrink, {}),
    ("threshold", lambda x: E.threshold(x, 0.5, -2.0), lambda x: F.threshold(x, 0.5, -2.0), {}),
    ("sigmoid", E.sigmoid, torch.sigmoid, {}),
    ("tanh", E.tanh, torch.tanh, {}),
]


@pytest.mark.parametrize("name,ef,tf,kw", ACTS, ids=[c[0] for c in ACTS])
def test_activation(name, ef, tf, kw):
    check_op(ef, tf, [SMOOTH], **kw)


@pytest.mark.parametrize("name,ef,tf,kw", ACTS, ids=[c[0] for c in ACTS])
def test_activation_shapes(name, ef, tf, kw):
    check_op(ef, tf, [(2, 1, 3)], seed=3, **kw)   # random normal, 3-d with a size-1 dim
    check_op(ef, tf, [Arr(np.array(0.7))], **kw)  # 0-d


@pytest.mark.parametrize("name,ef,tf,kw", ACTS, ids=[c[0] for c in ACTS])
def test_activation_kinks(name, ef, tf, kw):
    check_op(ef, tf, [KINKS], gradcheck=False, **kw)


@pytest.mark.parametrize("name,ef,tf,kw", ACTS, ids=[c[0] for c in ACTS])
def test_activation_extreme_inputs_are_stable(name, ef, tf, kw):
    x = np.array([-100.0, -30.0, -20.5, 20.5, 30.0, 100.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_op(ef, tf, [Arr(x)], gradcheck=False, **kw)


@pytest.mark.parametrize("name,ef,tf,kw", ACTS, ids=[c[0] for c in ACTS])
def test_activation_second_derivatives(name, ef, tf, kw):
    x = ember.tensor(SMOOTH.value[:, ::2].copy(), requires_grad=True)
    assert ember.autograd.gradgradcheck(ef, (x,))


def test_tensor_methods():
    x = ember.tensor([-1.5, 0.2, 3.0])
    t = torch.tensor([-1.5, 0.2, 3.0])
    for m in ("relu", "sigmoid", "tanh", "hardshrink"):
        np.testing.assert_allclose(getattr(x, m)().numpy(), getattr(t, m)().numpy(), rtol=1e-6)


def test_prelu():
    w1 = Arr(np.array([0.25]))
    check_op(E.prelu, F.prelu, [SMOOTH, w1])
    check_op(E.prelu, F.prelu, [(2, 3, 4), Arr(np.array([0.1, 0.2, 0.3]))])
    check_op(E.prelu, F.prelu, [(2, 3), Arr(np.array([0.1, -0.2, 0.3]))])
    with pytest.raises(ember.OpError, match="prelu: weight has 2 elements"):
        E.prelu(ember.randn(2, 3, 4), ember.randn(2))


def test_integer_inputs():
    ints = Arr(np.array([-2, 0, 3, 7]))
    for ef, tf in ((E.relu, F.relu), (E.relu6, F.relu6), (E.hardtanh, F.hardtanh), (E.softsign, F.softsign),
                   (E.tanhshrink, F.tanhshrink), (E.sigmoid, torch.sigmoid), (E.tanh, torch.tanh)):
        check_op(ef, tf, [ints], grad=False)
    with pytest.raises(ember.OpError, match="gelu: expected a floating point tensor"):
        E.gelu(ember.tensor([1, 2]))
    with pytest.raises(ember.OpError, match="relu: expected a floating point tensor"):
        E.relu(ember.tensor([True]))


def test_errors():
    x = ember.randn(3)
    with pytest.raises(ember.OpError, match="gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        E.gelu(x, approximate="fast")
    with pytest.raises(ember.OpError, match=r"hardtanh: min_val \(2.0\) cannot be greater than max_val"):
        E.hardtanh(x, 2.0, 1.0)
    with pytest.raises(ember.OpError, match="softshrink: lambd must be at least 0"):
        E.softshrink(x, -1.0)
    with pytest.raises(ember.OpError, match="relu: expected a Tensor"):
        E.relu([1.0, 2.0])


def test_relu_backward_paths_agree():
    """The graph-free backward and the create_graph backward give the same gradient."""
    x = ember.tensor([-1.0, 0.0, 2.0, 3.0], requires_grad=True)
    (g1,) = ember.autograd.grad(E.relu(x).sum(), [x])
    (g2,) = ember.autograd.grad(E.relu(x).sum(), [x], create_graph=True)
    assert g1.tolist() == g2.tolist() == [0.0, 0.0, 1.0, 1.0]
    for f in (E.sigmoid, E.tanh):
        (g1,) = ember.autograd.grad(f(x).sum(), [x])
        (g2,) = ember.autograd.grad(f(x).sum(), [x], create_graph=True)
        np.testing.assert_allclose(g1.numpy(), g2.detach().numpy(), rtol=1e-6)


def test_float64_keeps_dtype():
    x = ember.randn(3, dtype=ember.float64)
    for name, ef, _, _ in ACTS:
        assert ef(x).dtype == ember.float64, name
