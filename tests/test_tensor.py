"""Tensor creation, dtypes and promotion, conversions and printing, compared with PyTorch."""
import numpy as np
import pytest
import torch

import ember

CREATION = [
    (lambda m: m.tensor([[1, 2], [3, 4]]), "int64"),
    (lambda m: m.tensor([1.5, 2.0]), "float32"),
    (lambda m: m.tensor(True), "bool"),
    (lambda m: m.zeros(2, 3), "float32"),
    (lambda m: m.ones((2, 3), dtype=m.float64), "float64"),
    (lambda m: m.full((2, 2), 7), "int64"),
    (lambda m: m.full((2, 2), 7.5), "float32"),
    (lambda m: m.full((2,), True), "bool"),
    (lambda m: m.arange(5), "int64"),
    (lambda m: m.arange(0, 1, 0.25), "float32"),
    (lambda m: m.arange(1, 10, 3), "int64"),
    (lambda m: m.linspace(0, 1, 5), "float32"),
    (lambda m: m.eye(3), "float32"),
    (lambda m: m.eye(2, 3, dtype=m.int32), "int32"),
    (lambda m: m.zeros_like(m.ones(2, 2, dtype=m.float16)), "float16"),
    (lambda m: m.ones_like(m.arange(3)), "int64"),
    (lambda m: m.full_like(m.arange(3), 2), "int64"),
]


@pytest.mark.parametrize("make,dtype", CREATION)
def test_creation_matches_torch(make, dtype):
    e, t = make(ember), make(torch)
    assert e.dtype.name == dtype == str(t.dtype).replace("torch.", "")
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    assert tuple(e.shape) == tuple(t.shape)


def test_random_creation_shapes_dtypes_and_seed():
    ember.manual_seed(3)
    a = ember.rand(2, 3)
    b = ember.randn(4, dtype=ember.float64)
    c = ember.randint(0, 10, (5,))
    ember.manual_seed(3)
    np.testing.assert_array_equal(a.numpy(), ember.rand(2, 3).numpy())
    assert a.dtype == ember.float32 and b.dtype == ember.float64 and c.dtype == ember.int64
    assert ((a.numpy() >= 0) & (a.numpy() < 1)).all() and ((c.numpy() >= 0) & (c.numpy() < 10)).all()
    assert ember.randn_like(a).shape == a.shape and ember.rand_like(a).dtype == ember.float32
    assert sorted(ember.randperm(6).tolist()) == list(range(6))


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.arange(4.0)
    t = ember.from_numpy(a)
    a[0] = 9
    assert t.dtype == ember.float64 and t[0].item() == 9
    assert ember.tensor(a).dtype == ember.float64
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ember.from_numpy([1, 2])


PROMOTION = [
    ("int*float", lambda m: m.arange(3) * 2.5),
    ("int/int", lambda m: m.arange(3) / 2),
    ("int/int tensor", lambda m: m.arange(1, 4) / m.arange(1, 4)),
    ("f32+f64", lambda m: m.ones(2) + m.ones(2, dtype=m.float64)),
    ("i64+f32", lambda m: m.arange(2) + m.ones(2)),
    ("i32+i64", lambda m: m.ones(2, dtype=m.int32) + m.arange(2)),
    ("bool+int", lambda m: m.tensor([True, False]) + 1),
    ("bool+bool tensor sum", lambda m: m.tensor([True, False]).sum()),
    ("f16*py float", lambda m: m.ones(2, dtype=m.float16) * 3.0),
    ("f32 compare", lambda m: m.ones(2) > 0),
    ("int sum", lambda m: m.ones(2, dtype=m.int32).sum()),
    ("i32*py int", lambda m: m.ones(2, dtype=m.int32) * 3),
]


@pytest.mark.parametrize("name,fn", PROMOTION, ids=[p[0] for p in PROMOTION])
def test_type_promotion_matches_torch(name, fn):
    e, t = fn(ember), fn(torch)
    assert e.dtype.name == str(t.dtype).replace("torch.", ""), name
    np.testing.assert_allclose(e.numpy().astype(float), t.numpy().astype(float), rtol=1e-6)


def test_default_dtype_can_change():
    ember.set_default_dtype(ember.float64)
    try:
        assert ember.tensor([1.0]).dtype == ember.float64
        assert (ember.arange(3) / 2).dtype == ember.float64
    finally:
        ember.set_default_dtype(ember.float32)
    with pytest.raises(TypeError, match="floating"):
        ember.set_default_dtype(ember.int32)


def test_metadata_and_conversions():
    t = ember.arange(6).reshape(2, 3)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2 and t.size() == (2, 3) and t.size(1) == 3
    assert t.numel() == 6 and len(t) == 2 and str(t.device) == "cpu" and t.device == ember.device("cpu")
    assert t.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert t[1, 2].item() == 5 and isinstance(t[1, 2].item(), int)
    assert t.to(ember.float64).dtype == ember.float64 and t.float().dtype == ember.float32
    assert t.double().dtype == ember.float64 and t.long().dtype == ember.int64 and t.bool().dtype == ember.bool
    assert repr(t.shape) == "ember.Size([2, 3])"
    assert float(ember.tensor(2.5)) == 2.5 and int(ember.tensor(3)) == 3
    with pytest.raises(ValueError, match="6 elements"):
        t.item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t)
    with pytest.raises(RuntimeError, match="'cuda:0' is not available"):
        t.to("cuda:0")


def test_numpy_refuses_tensors_that_require_grad():
    x = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.detach().numpy().shape == (2,)


def test_detach_and_requires_grad_flags():
    x = ember.ones(2)
    assert not x.requires_grad and x.is_leaf
    x.requires_grad_()
    y = x * 2
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    assert not y.detach().requires_grad


REPRS = [
    lambda m: m.tensor([1.0, 2.0]),
    lambda m: m.tensor([0.1, 2.0]),
    lambda m: m.tensor([[1, 2], [3, 4]]),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float64),
    lambda m: m.tensor([True, False]),
    lambda m: m.tensor(3.5),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True),
]


@pytest.mark.parametrize("make", REPRS)
def test_repr_like_torch(make):
    assert repr(make(ember)) == repr(make(torch)).replace("torch.", "ember.")


def test_repr_shows_grad_fn():
    r = repr(ember.tensor([1.0], requires_grad=True) * 2)
    assert r.startswith("tensor([2.], grad_fn=<") and "Backward" in r


def test_numpy_array_interop():
    t = ember.ones(3)
    a = np.ones(3, dtype=np.float32)
    assert isinstance(a + t, ember.Tensor)
    np.testing.assert_array_equal(np.asarray(t), a)


NAN, INF = float("nan"), float("inf")
NONFINITE = [NAN, INF, -INF, [1.5, NAN, INF, -INF], [1.0, NAN], [NAN, NAN], [1e10, INF], [[0.001, NAN], [2.0, 3.0]]]


@pytest.mark.parametrize("value", NONFINITE)
def test_repr_nan_inf_like_torch(value):
    assert repr(ember.tensor(value)) == repr(torch.tensor(value)).replace("torch.", "ember.")


def test_repr_float16_no_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = repr(ember.tensor([1.5, 2.0, 3e4], dtype=ember.float16))
    assert r == repr(torch.tensor([1.5, 2.0, 3e4], dtype=torch.float16)).replace("torch.", "ember.")
