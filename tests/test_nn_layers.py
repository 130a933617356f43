import math

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn


def _copy_weights(em, tm):
    em.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


def compare_module(em, tm, x, atol=1e-5, rtol=1e-4, copy=True):
    """Forward and gradients (input and every parameter) of an Ember module and a torch module."""
    if copy:
        _copy_weights(em, tm)
    ex = ember.tensor(x, requires_grad=x.dtype.kind == "f")
    tx = torch.tensor(x, requires_grad=x.dtype.kind == "f")
    eo, to = em(ex), tm(tx)
    assert tuple(eo.shape) == tuple(to.shape)
    assert eo.dtype.name == str(to.dtype).replace("torch.", "")
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=atol, rtol=rtol)
    w = np.random.default_rng(1).standard_normal(tuple(to.shape)).astype(x.dtype)
    (eo * ember.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    if x.dtype.kind == "f":
        np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=atol, rtol=rtol)
    tp = dict(tm.named_parameters())
    for name, p in em.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), atol=atol, rtol=rtol,
                                   err_msg=name)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_matches_torch(bias, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    compare_module(nn.Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), x)


def test_linear_float64_and_repr():
    fc = nn.Linear(4, 3, dtype=ember.float64)
    assert fc.weight.dtype == ember.float64 and fc.bias.dtype == ember.float64
    assert repr(fc) == repr(torch.nn.Linear(4, 3))
    assert repr(nn.Linear(2, 1, bias=False)) == repr(torch.nn.Linear(2, 1, bias=False))
    assert fc.bias is not None and nn.Linear(2, 1, bias=False).bias is None
    assert ember.autograd.gradcheck(lambda x: fc(x), [ember.randn(2, 4, dtype=ember.float64, requires_grad=True)])


def test_linear_default_init_distribution():
    fc = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = fc.weight.detach().numpy(), fc.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.mean()) < 0.01 * bound * 10
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert abs(b.std() - bound / math.sqrt(3)) < 0.15 * bound
    ember.manual_seed(3)
    a = nn.Linear(5, 4).weight.detach().numpy().copy()
    ember.manual_seed(3)
    np.testing.assert_array_equal(a, nn.Linear(5, 4).weight.detach().numpy())


def test_linear_errors():
    with pytest.raises(ember.OpError, match="linear: input of shape \\(2, 5\\)"):
        nn.Linear(4, 3)(ember.randn(2, 5))
    with pytest.raises(ember.OpError, match="dtype"):
        nn.Linear(4, 3)(ember.randn(2, 4, dtype=ember.float64))


def test_identity_flatten_unflatten():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    compare_module(nn.Identity(54, foo=1), torch.nn.Identity(54, foo=1), x)
    for args in [(), (0,), (1, 2), (2, -1), (-3, -2)]:
        compare_module(nn.Flatten(*args), torch.nn.Flatten(*args), x)
        assert repr(nn.Flatten(*args)) == repr(torch.nn.Flatten(*args))
    compare_module(nn.Unflatten(1, (3, 1)), torch.nn.Unflatten(1, (3, 1)), x)
    compare_module(nn.Unflatten(-1, (-1, 5)), torch.nn.Unflatten(-1, (-1, 5)), x)
    assert repr(nn.Unflatten(1, (3, 1))) == repr(torch.nn.Unflatten(1, (3, 1)))
    with pytest.raises(ValueError, match="Unflatten: unflattened_size \\(2, 2\\) does not match dim 1 of size 3"):
        nn.Unflatten(1, (2, 2))(ember.tensor(x))
    with pytest.raises(IndexError, match="flatten: dimension 7 is out of range"):
        nn.Flatten(7)(ember.tensor(x))


def test_dropout_train_eval_and_scaling():
    d = nn.Dropout(0.3)
    assert repr(d) == repr(torch.nn.Dropout(0.3))
    x = ember.ones(200, 500, requires_grad=True)
    y = d(x)
    a = y.detach().numpy()
    kept = a != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(a[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a, rtol=1e-6)   # the gradient is the same mask
    d.eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert float(nn.Dropout(1.0)(x).abs().sum()) == 0.0
    ember.manual_seed(5)
    m1 = nn.functional.dropout(ember.ones(10), 0.5).numpy().copy()
    ember.manual_seed(5)
    np.testing.assert_array_equal(m1, nn.functional.dropout(ember.ones(10), 0.5).numpy())
    assert nn.functional.dropout(x, 0.5, training=False) is x
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


ACTS = [
    ("ReLU", {}), ("ReLU6", {}), ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}),
    ("ELU", {"alpha": 0.7}), ("CELU", {"alpha": 1.3}), ("SELU", {}), ("GELU", {}), ("GELU", {"approximate": "tanh"}),
    ("SiLU", {}), ("Mish", {}), ("Sigmoid", {}), ("Tanh", {}), ("Softplus", {"beta": 2.0, "threshold": 5.0}),
    ("Softsign", {}), ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("Hardsigmoid", {}), ("Hardswish", {}),
    ("LogSigmoid", {}), ("Tanhshrink", {}), ("Softshrink", {"lambd": 0.3}), ("Hardshrink", {"lambd": 0.3}),
    ("Threshold", {"threshold": 0.1, "value": 2.0}), ("Softmax", {"dim": 1}), ("LogSoftmax", {"dim": -1}),
    ("Softmin", {"dim": 0}), ("Softmax", {}), ("LogSoftmax", {}),
]


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize("name,kw", ACTS, ids=[f"{n}{kw}" for n, kw in ACTS])
def test_activation_modules(name, kw):
    em, tm = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
    assert repr(em) == repr(tm)
    rng = np.random.default_rng(0)
    # values away from every kink (0, +-0.3, +-0.5, 0.1, 2, 3, 6) so the comparison is about the smooth parts
    x = (rng.choice([-1, 1], size=(3, 4, 5)) * rng.uniform(0.6, 1.9, size=(3, 4, 5)) * 1.5).astype(np.float32)
    x = np.where(np.abs(np.abs(x) - 2.0) < 0.1, x + 0.3, x).astype(np.float32)
    compare_module(em, tm, x, copy=False)


def test_inplace_flag_is_accepted_and_printed():
    for name in ("ReLU", "ReLU6", "SiLU", "Hardswish", "Mish", "SELU"):
        em, tm = getattr(nn, name)(inplace=True), getattr(torch.nn, name)(inplace=True)
        assert repr(em) == repr(tm)
    assert repr(nn.LeakyReLU(0.1, True)) == repr(torch.nn.LeakyReLU(0.1, True))
    x = ember.tensor([-1.0, 2.0])
    np.testing.assert_array_equal(nn.ReLU(inplace=True)(x).numpy(), [0.0, 2.0])


def test_prelu_matches_torch():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    for n in (1, 3):
        em, tm = nn.PReLU(n, init=0.1), torch.nn.PReLU(n, init=0.1)
        assert repr(em) == repr(tm)
        compare_module(em, tm, x)


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


def test_functional_forwards_ops():
    import ember.nn.functional as F
    assert F.relu is ember.ops.activation.relu
    import importlib
    assert F.softmax is importlib.import_module("ember.ops.softmax").softmax
    assert "gelu" in dir(F)
    with pytest.raises(AttributeError, match="no attribute"):
        F.not_a_function  # noqa: B018
