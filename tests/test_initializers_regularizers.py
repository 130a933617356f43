"""ember.initializers (Keras 3 formulas, fans, seeding, statistics) and ember.regularizers (penalties, gradients)."""
import json
import math

import numpy as np
import pytest
import torch

import ember
from ember import initializers as I
from ember import regularizers as R

SHAPE = (200, 300)   # fan_in 200, fan_out 300


def stats(t):
    a = t.numpy().astype(np.float64)
    return a.mean(), a.std(), np.abs(a).max()


@pytest.mark.parametrize("init,std,bound", [
    (I.GlorotUniform(), math.sqrt(2 / 500), math.sqrt(6 / 500)),
    (I.GlorotNormal(), math.sqrt(2 / 500), 2 * math.sqrt(2 / 500) / 0.87962566103423978),
    (I.HeUniform(), math.sqrt(2 / 200), math.sqrt(6 / 200)),
    (I.HeNormal(), math.sqrt(2 / 200), 2 * math.sqrt(2 / 200) / 0.87962566103423978),
    (I.LecunUniform(), math.sqrt(1 / 200), math.sqrt(3 / 200)),
    (I.LecunNormal(), math.sqrt(1 / 200), 2 * math.sqrt(1 / 200) / 0.87962566103423978),
    (I.VarianceScaling(3.0, "fan_out", "untruncated_normal"), math.sqrt(3 / 300), None),
    (I.RandomNormal(1.0, 0.5), 0.5, None),
    (I.RandomUniform(-0.2, 0.2), 0.2 / math.sqrt(3), 0.2),
    (I.TruncatedNormal(0.0, 0.1), 0.1 * 0.87962566103423978, 0.2),
], ids=lambda v: type(v).__name__ if isinstance(v, I.Initializer) else "")
def test_distributions(init, std, bound):
    ember.manual_seed(0)
    w = init(SHAPE)
    assert tuple(w.shape) == SHAPE and w.dtype == ember.float32 and not w.requires_grad
    mean, s, mx = stats(w)
    expected_mean = getattr(init, "mean", 0.0)
    assert abs(mean - expected_mean) < 4 * std / math.sqrt(w.numel())
    assert s == pytest.approx(std, rel=0.02)
    if bound is not None:
        assert abs(mx - expected_mean) <= bound * (1 + 1e-6) and abs(mx - expected_mean) > 0.95 * bound


def test_compute_fans_channels_last():
    assert I.compute_fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)
    assert I.compute_fans((5, 7)) == (5, 7)
    assert I.compute_fans((4,)) == (4, 4) and I.compute_fans(()) == (1, 1)
    ember.manual_seed(1)
    w = I.HeNormal()((3, 3, 64, 128))   # a conv kernel: variance 2 / (3*3*64)
    assert stats(w)[1] == pytest.approx(math.sqrt(2 / 576), rel=0.02)


def test_seeding():
    ember.manual_seed(5)
    a = I.GlorotUniform()((4, 4))
    ember.manual_seed(5)
    b = I.GlorotUniform()((4, 4))
    assert np.array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(I.GlorotUniform()((4, 4)).numpy(), I.GlorotUniform()((4, 4)).numpy())
    seeded = I.HeNormal(seed=42)
    ember.manual_seed(0)
    c = seeded((4, 4))
    ember.manual_seed(99)
    assert np.array_equal(c.numpy(), seeded((4, 4)).numpy())   # independent of the global RNG, same every call
    assert np.array_equal(c.numpy(), I.HeNormal(seed=42)((4, 4)).numpy())
    assert not np.array_equal(c.numpy(), I.HeNormal(seed=43)((4, 4)).numpy())


def test_constants_identity_orthogonal():
    assert I.Zeros()((2, 3)).numpy().tolist() == [[0.0] * 3] * 2
    assert I.Ones()((2,), dtype="float64").dtype == ember.float64
    assert I.Constant(2.5)((3,)).numpy().tolist() == [2.5] * 3
    np.testing.assert_array_equal(I.Identity(gain=2.0)((2, 3)).numpy(), 2 * np.eye(2, 3))
    for shape in [(6, 4), (4, 6), (3, 3, 2, 5)]:
        q = I.Orthogonal(gain=1.5, seed=3)(shape).numpy().reshape(-1, shape[-1]).astype(np.float64)
        small = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
        np.testing.assert_allclose(small, 2.25 * np.eye(len(small)), atol=1e-5)
    with pytest.raises(ValueError, match="at least two-dimensional.*rank 1"):
        I.Orthogonal()((3,))
    with pytest.raises(ValueError, match="only be used for 2D matrices"):
        I.Identity()((2, 2, 2))


def test_initializer_errors_and_serialization():
    with pytest.raises(ValueError, match="`scale` must be positive"):
        I.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match="Invalid `mode`"):
        I.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="Invalid `distribution`"):
        I.VarianceScaling(distribution="cauchy")
    assert I.VarianceScaling(distribution="normal").distribution == "truncated_normal"
    with pytest.raises(ValueError, match="floating point dtype"):
        I.Ones()((2,), dtype="int64")
    with pytest.raises(ValueError, match="Known initializers: .*glorot_uniform"):
        I.get("glorot")
    for name, cls in [("glorot_uniform", I.GlorotUniform), ("he_normal", I.HeNormal), ("zeros", I.Zeros),
                      ("ones", I.Ones), ("orthogonal", I.Orthogonal), ("truncated_normal", I.TruncatedNormal),
                      ("random_uniform", I.RandomUniform), ("normal", I.RandomNormal), ("lecun_normal", I.LecunNormal),
                      ("identity", I.Identity), ("variance_scaling", I.VarianceScaling),
                      ("GlorotNormal", I.GlorotNormal)]:
        assert type(I.get(name)) is cls
    init = I.VarianceScaling(2.0, "fan_avg", "uniform", seed=7)
    config = json.loads(json.dumps(I.serialize(init)))
    assert config["class_name"] == "VarianceScaling" and config["config"]["seed"] == 7
    again = I.get(config)
    assert np.array_equal(again((3, 3)).numpy(), init((3, 3)).numpy())
    assert I.get(None) is None and I.get(init) is init and type(I.get(I.HeUniform)) is I.HeUniform
    assert I.serialize(I.GlorotUniform())["config"] == {"seed": None}


def test_regularizers_values_and_gradients():
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = ember.tensor(w, requires_grad=True)
    assert R.L1(0.1)(x).item() == pytest.approx(0.1 * np.abs(w).sum())
    assert R.L2(0.1)(x).item() == pytest.approx(0.1 * (w ** 2).sum())   # Keras: no factor 1/2
    assert R.L1L2(0.1, 0.2)(x).item() == pytest.approx(0.1 * np.abs(w).sum() + 0.2 * (w ** 2).sum())
    assert R.L1L2()(x).item() == 0.0 and R.L1().l1 == 0.01 and R.L2().l2 == 0.01
    R.L1L2(0.1, 0.2)(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), 0.1 * np.sign(w) + 0.4 * w)


def test_orthogonal_regularizer():
    w = np.random.RandomState(0).randn(4, 3)
    wt = torch.tensor(w, requires_grad=True)
    n = wt / wt.norm(dim=1, keepdim=True)
    p = n @ n.T
    ref = 0.1 * 0.5 * (p * (1 - torch.eye(4, dtype=p.dtype))).abs().sum() / 6
    ref.backward()
    x = ember.tensor(w, requires_grad=True)
    out = R.OrthogonalRegularizer(0.1)(x)
    out.backward()
    assert out.item() == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), wt.grad.numpy(), rtol=1e-8, atol=1e-12)
    cols = R.OrthogonalRegularizer(0.1, mode="columns")(ember.tensor(w.T))
    assert cols.item() == pytest.approx(ref.item(), rel=1e-10)
    assert R.OrthogonalRegularizer()(ember.tensor(np.eye(3))).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"must have rank 2.*\(2, 2, 2\)"):
        R.OrthogonalRegularizer()(ember.zeros(2, 2, 2))


def test_regularizer_errors_and_serialization():
    with pytest.raises(ValueError, match="expected a non-negative float. Received: l2=-1"):
        R.L2(-1)
    with pytest.raises(ValueError, match="expected a weight tensor"):
        R.L1()([1.0, 2.0])
    assert type(R.get("l1")) is R.L1 and type(R.get("l2")) is R.L2
    both = R.get("l1_l2")
    assert type(both) is R.L1L2 and (both.l1, both.l2) == (0.01, 0.01)
    reg = R.L1L2(l1=0.3, l2=0.4)
    config = json.loads(json.dumps(R.serialize(reg)))
    assert config == {"module": "ember.regularizers", "class_name": "L1L2", "config": {"l1": 0.3, "l2": 0.4},
                      "registered_name": None}
    assert R.get(config).get_config() == reg.get_config()
    assert R.get(None) is None and R.get(reg) is reg
    with pytest.raises(ValueError, match="Known regularizers: .*l1_l2"):
        R.get("l3")
