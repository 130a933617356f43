"""Reductions and the softmax family: forward and gradient parity with PyTorch, ties, zeros, stability, errors."""
import math

import numpy as np
import pytest
import torch

import ember
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

INF = math.inf


def _distinct(*shape, seed=0):
    """Values with no ties (and no zeros), so max/min/norm-inf have a unique winner for finite differences."""
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    return Arr((rng.permutation(n) * 0.37 + 0.5).reshape(shape) * rng.choice([-1.0, 1.0], size=shape))


# (id, ember fn, torch fn, specs, check_op kwargs); the same lambda runs on both libraries when the names agree
CASES = [
    ("sum_all", lambda x: x.sum(), lambda x: x.sum(), [(3, 4)], {}),
    ("sum_dim", lambda x: x.sum(1), lambda x: x.sum(1), [(3, 4)], {}),
    ("sum_neg_keep", lambda x: x.sum(-1, keepdim=True), lambda x: x.sum(-1, keepdim=True), [(2, 3, 4)], {}),
    ("sum_tuple", lambda x: x.sum((0, 2)), lambda x: x.sum((0, 2)), [(2, 3, 4)], {}),
    ("sum_size1", lambda x: x.sum(1), lambda x: x.sum(1), [(3, 1, 2)], {}),
    ("sum_0d", lambda x: x.sum(), lambda x: x.sum(), [()], {}),
    ("sum_fn", lambda x: ember.sum(x, dim=[0, -1], keepdim=True), lambda x: torch.sum(x, dim=[0, -1], keepdim=True),
     [(2, 3, 4)], {}),
    ("mean_all", lambda x: x.mean(), lambda x: x.mean(), [(3, 4)], {}),
    ("mean_neg_keep", lambda x: x.mean(-2, keepdim=True), lambda x: x.mean(-2, keepdim=True), [(2, 3, 4)], {}),
    ("mean_tuple", lambda x: x.mean((0, 1)), lambda x: x.mean((0, 1)), [(2, 3, 4)], {}),
    ("prod_all", lambda x: x.prod(), lambda x: x.prod(), [(2, 3)], {}),
    ("prod_dim", lambda x: x.prod(1), lambda x: x.prod(1), [(3, 4)], {}),
    ("prod_neg_keep", lambda x: x.prod(-1, keepdim=True), lambda x: x.prod(-1, keepdim=True), [(2, 3, 4)], {}),
    ("prod_one_zero", lambda x: x.prod(1), lambda x: x.prod(1),
     [Arr(np.array([[1.5, 0.0, -2.0], [0.5, 2.0, 3.0]]))], {}),
    ("prod_two_zeros", lambda x: x.prod(1), lambda x: x.prod(1),
     [Arr(np.array([[1.5, 0.0, 0.0, 2.0], [0.0, 2.0, 3.0, 1.0]]))], {}),
    ("prod_all_zero", lambda x: x.prod(), lambda x: x.prod(), [Arr(np.array([[1.5, 0.0], [-2.0, 3.0]]))], {}),
    ("max_all", lambda x: x.max(), lambda x: x.max(), [_distinct(3, 4)], {}),
    ("max_dim", lambda x: tuple(x.max(1)), lambda x: tuple(x.max(1)), [_distinct(3, 4)], {}),
    ("max_neg_keep", lambda x: tuple(x.max(-1, keepdim=True)), lambda x: tuple(x.max(-1, keepdim=True)),
     [_distinct(2, 3, 4)], {}),
    ("max_dim0", lambda x: tuple(ember.max(x, 0)), lambda x: tuple(torch.max(x, 0)), [_distinct(4, 3)], {}),
    ("max_binary", lambda a, b: ember.max(a, b), lambda a, b: torch.max(a, b), [_distinct(3, 4), _distinct(4, seed=1)],
     {}),
    ("min_all", lambda x: x.min(), lambda x: x.min(), [_distinct(3, 4)], {}),
    ("min_dim", lambda x: tuple(x.min(0)), lambda x: tuple(x.min(0)), [_distinct(3, 4)], {}),
    ("min_size1", lambda x: tuple(x.min(1, keepdim=True)), lambda x: tuple(x.min(1, keepdim=True)), [_distinct(3, 1)],
     {}),
    ("amax_tuple", lambda x: x.amax((0, 2)), lambda x: x.amax((0, 2)), [_distinct(2, 3, 4)], {}),
    ("amax_all_keep", lambda x: ember.amax(x, keepdim=True), lambda x: torch.amax(x, keepdim=True),
     [_distinct(2, 3)], {}),
    ("amin_neg", lambda x: x.amin(-1), lambda x: x.amin(-1), [_distinct(2, 3, 4)], {}),
    ("var_all", lambda x: x.var(), lambda x: x.var(), [(3, 4)], {}),
    ("var_dim", lambda x: x.var(1), lambda x: x.var(1), [(3, 4)], {}),
    ("var_biased_keep", lambda x: x.var(-1, unbiased=False, keepdim=True),
     lambda x: x.var(-1, unbiased=False, keepdim=True), [(2, 3, 4)], {}),
    ("var_correction", lambda x: x.var((0, 1), correction=2), lambda x: x.var((0, 1), correction=2), [(2, 3, 4)], {}),
    ("var_positional", lambda x: x.var(0, False, True), lambda x: x.var(0, False, True), [(3, 2)], {}),
    ("std_all", lambda x: x.std(), lambda x: x.std(), [(3, 4)], {}),
    ("std_dim_keep", lambda x: x.std(-2, keepdim=True), lambda x: x.std(-2, keepdim=True), [(2, 3, 4)], {}),
    ("std_biased", lambda x: ember.std(x, 1, correction=0), lambda x: torch.std(x, 1, correction=0), [(3, 4)], {}),
    ("norm_default", lambda x: x.norm(), lambda x: x.norm(), [(3, 4)], {}),
    ("norm_fro_dim", lambda x: x.norm("fro", dim=(0, 1)), lambda x: x.norm("fro", dim=(0, 1)), [(3, 4, 2)], {}),
    ("norm_p2_keep", lambda x: x.norm(2, dim=-1, keepdim=True), lambda x: x.norm(2, dim=-1, keepdim=True), [(3, 4)],
     {}),
    ("norm_p1", lambda x: x.norm(1, dim=0), lambda x: x.norm(1, dim=0), [_distinct(3, 4)], {}),
    ("norm_inf", lambda x: x.norm(INF, dim=1), lambda x: x.norm(INF, dim=1), [_distinct(3, 4)], {}),
    ("norm_ninf", lambda x: x.norm(-INF), lambda x: x.norm(-INF), [_distinct(3, 4)], {}),
    ("norm_p3", lambda x: x.norm(3, dim=1), lambda x: x.norm(3, dim=1), [(3, 4)], {}),
    ("norm_p1_5", lambda x: x.norm(1.5), lambda x: x.norm(1.5), [_distinct(3, 4)], {}),
    ("norm_p0_5", lambda x: x.norm(0.5, dim=0), lambda x: x.norm(0.5, dim=0), [_distinct(3, 4)], {}),
    ("norm_p0", lambda x: x.norm(0, dim=1), lambda x: x.norm(0, dim=1), [Arr(np.array([[1.0, 0.0], [2.0, 3.0]]))],
     {}),
    ("norm_zero_row", lambda x: x.norm(dim=1), lambda x: x.norm(dim=1),
     [Arr(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]))], {"gradcheck": False}),
    ("norm_p3_zero_row", lambda x: x.norm(3, dim=1), lambda x: x.norm(3, dim=1),
     [Arr(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 3.0]]))], {"gradcheck": False}),
    ("logsumexp_dim", lambda x: x.logsumexp(1), lambda x: x.logsumexp(1), [(3, 4)], {}),
    ("logsumexp_tuple_keep", lambda x: ember.logsumexp(x, (0, -1), keepdim=True),
     lambda x: torch.logsumexp(x, (0, -1), keepdim=True), [(2, 3, 4)], {}),
    ("logsumexp_large", lambda x: x.logsumexp(-1), lambda x: x.logsumexp(-1),
     [Arr(np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, -999.5]]))], {}),
    ("logsumexp_ninf", lambda x: x.logsumexp(1), lambda x: x.logsumexp(1),
     [Arr(np.array([[-INF, 0.5, 1.0], [-INF, -INF, 2.0]]))], {"gradcheck": False}),
    ("cumsum", lambda x: x.cumsum(1), lambda x: x.cumsum(1), [(3, 4)], {}),
    ("cumsum_neg", lambda x: ember.cumsum(x, -1), lambda x: torch.cumsum(x, -1), [(2, 3, 4)], {}),
    ("cumsum_dim0", lambda x: x.cumsum(0), lambda x: x.cumsum(0), [(4, 1)], {}),
    ("cumsum_0d", lambda x: x.cumsum(0), lambda x: x.cumsum(0), [()], {}),
    ("softmax_last", lambda x: x.softmax(-1), lambda x: x.softmax(-1), [(3, 5)], {}),
    ("softmax_dim0", lambda x: ember.softmax(x, 0), lambda x: torch.softmax(x, 0), [(3, 5)], {}),
    ("softmax_mid", lambda x: x.softmax(1), lambda x: x.softmax(1), [(2, 3, 4)], {}),
    ("softmax_size1", lambda x: x.softmax(1), lambda x: x.softmax(1), [(4, 1)], {}),
    ("softmax_1d", lambda x: x.softmax(0), lambda x: x.softmax(0), [(5,)], {}),
    ("log_softmax_last", lambda x: x.log_softmax(-1), lambda x: x.log_softmax(-1), [(3, 5)], {}),
    ("log_softmax_dim0", lambda x: ember.log_softmax(x, 0), lambda x: torch.log_softmax(x, 0), [(3, 5)], {}),
    ("log_softmax_mid", lambda x: x.log_softmax(-2), lambda x: x.log_softmax(-2), [(2, 3, 4)], {}),
    ("softmax_large", lambda x: x.softmax(1), lambda x: x.softmax(1),
     [Arr(np.array([[1000.0, 999.0, -1000.0], [-1000.0, -999.0, -1001.0]]))], {}),
    ("log_softmax_large", lambda x: x.log_softmax(0), lambda x: x.log_softmax(0),
     [Arr(np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [999.0, 0.0]]))], {}),
]


@pytest.mark.parametrize("name,ef,tf,specs,kw", CASES, ids=[c[0] for c in CASES])
def test_reduce_ops(name, ef, tf, specs, kw):
    check_op(ef, tf, specs, **kw)


def _grad(lib, fn, values):
    if lib == "ember":
        x = ember.tensor(np.array(values, dtype=np.float32), requires_grad=True)
    else:
        x = torch.tensor(np.array(values, dtype=np.float32), requires_grad=True)
    out = fn(x)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    return x.grad.numpy()


TIES = [[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], [[5.0, 5.0, 5.0], [-1.0, -1.0, 4.0]]]
TIE_FNS = [
    ("max_all", lambda x: x.max()),
    ("min_all", lambda x: x.min()),
    ("max_dim", lambda x: x.max(1)),
    ("max_dim0", lambda x: x.max(0)),
    ("min_dim", lambda x: x.min(1)),
    ("amax", lambda x: x.amax(1)),
    ("amin_all", lambda x: x.amin((0, 1))),
    ("norm_inf", lambda x: x.norm(INF, dim=1)),
    ("norm_ninf", lambda x: x.norm(-INF)),
    ("max_dim_keepdim", lambda x: x.max(1, keepdim=True)),
]


@pytest.mark.parametrize("values", TIES)
@pytest.mark.parametrize("name,fn", TIE_FNS, ids=[t[0] for t in TIE_FNS])
def test_tie_gradients_match_torch(name, fn, values):
    np.testing.assert_allclose(_grad("ember", fn, values), _grad("torch", fn, values), atol=1e-6)


@pytest.mark.parametrize("values", TIES)
def test_tie_indices_match_torch(values):
    for f in ("max", "min", "argmax", "argmin"):
        for kw in ({}, {"dim": 0}, {"dim": 1}, {"dim": -1, "keepdim": True}):
            if f in ("max", "min") and not kw:
                continue
            e = getattr(ember.tensor(values), f)(**kw)
            t = getattr(torch.tensor(values), f)(**kw)
            e, t = (e.indices, t.indices) if f in ("max", "min") else (e, t)
            assert e.dtype == ember.int64
            np.testing.assert_array_equal(e.numpy(), t.numpy())


def test_max_dim_returns_named_tuple():
    x = ember.tensor([[1.0, 5.0], [7.0, 2.0]])
    r = x.max(dim=1)
    assert isinstance(r, tuple)
    values, indices = r
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert r.values is values and r.indices is indices
    assert x.min(0, keepdim=True).indices.shape == (1, 2)
    assert ember.max(ember.tensor(3.0), 0).indices.tolist() == 0


@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"keepdim": True}, {"dim": -1}])
def test_argmax_argmin_match_torch(kw):
    a = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    for f in ("argmax", "argmin"):
        e, t = getattr(ember, f)(ember.tensor(a), **kw), getattr(torch, f)(torch.tensor(a), **kw)
        assert e.shape == tuple(t.shape) and e.dtype == ember.int64
        np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64, np.uint8])
def test_integer_sums_promote_to_int64(dtype):
    a = np.array([[1, 0, 1], [1, 1, 0]]).astype(dtype)
    for fn, kw in (("sum", {}), ("sum", {"dim": 1}), ("prod", {}), ("prod", {"dim": 0}), ("cumsum", {"dim": 1})):
        e, t = getattr(ember.tensor(a), fn)(**kw), getattr(torch.tensor(a), fn)(**kw)
        assert str(e.dtype) == str(t.dtype).replace("torch", "ember"), (fn, dtype)
        np.testing.assert_array_equal(e.numpy(), t.numpy())


def test_sum_dtype_argument():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert ember.tensor(a).sum(dtype=ember.float64).dtype == ember.float64
    assert ember.tensor(a.astype(np.int32)).sum(dtype=ember.int32).dtype == ember.int32
    assert ember.tensor(a.astype(np.int32)).mean(dtype=ember.float32).item() == pytest.approx(2.5)


def test_prod_zero_gradients_match_torch_exactly():
    cases = [[2.0, 0.0, 3.0, -1.0], [0.0, 0.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 4.0]]
    for v in cases:
        np.testing.assert_allclose(_grad("ember", lambda x: x.prod(), v), _grad("torch", lambda x: x.prod(), v))


def test_prod_second_derivative_with_one_zero():
    def f(lib, v):
        mod = ember if lib == "ember" else torch
        x = mod.tensor(v, dtype=mod.float64, requires_grad=True)
        (g,) = (ember.autograd.grad if lib == "ember" else torch.autograd.grad)(x.prod(), x, create_graph=True)
        (h,) = (ember.autograd.grad if lib == "ember" else torch.autograd.grad)((g * mod.tensor([1.0, 2.0, 3.0],
                                                                                    dtype=mod.float64)).sum(), x)
        return h.numpy() if lib == "ember" else h.detach().numpy()
    for v in ([2.0, 0.0, 3.0], [1.0, 2.0, 3.0]):
        np.testing.assert_allclose(f("ember", v), f("torch", v))


@pytest.mark.parametrize("dim", [None, 1])
def test_prod_hessian_with_several_zeros_matches_torch(dim):
    """Two zeros: each one's gradient is the other zero times the rest, so the Hessian has a non-zero entry
    for the pair (and none with three zeros)."""
    rows = np.array([[2.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 5.0], [0.0, 1.5, -2.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    v = rows if dim is not None else rows[0]

    def hessian(lib):
        mod = ember if lib == "ember" else torch
        grad = ember.autograd.grad if lib == "ember" else torch.autograd.grad
        x = mod.tensor(v, dtype=mod.float64, requires_grad=True)
        p = x.prod() if dim is None else x.prod(dim).sum()
        (g,) = grad(p, x, create_graph=True)
        flat = g.reshape(-1)
        rows = [grad(flat[i], x, retain_graph=True)[0] for i in range(flat.shape[0])]
        return np.stack([r.numpy() if lib == "ember" else r.detach().numpy() for r in rows])
    h = hessian("ember")
    np.testing.assert_allclose(h, hessian("torch"))
    assert h.reshape(h.shape[0], -1)[1, 3] == 6.0          # d^2/dx1 dx3 of 2 * x1 * 3 * x3


def test_second_derivatives():
    x = ember.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    for fn in (lambda t: t.softmax(1), lambda t: t.log_softmax(0), lambda t: t.logsumexp(1), lambda t: t.var(1),
               lambda t: t.std(0), lambda t: t.norm(dim=1), lambda t: t.norm(3), lambda t: t.prod(1),
               lambda t: t.cumsum(1)):
        assert ember.autograd.gradgradcheck(fn, (x,))


def test_norm_zero_vector_gradient_is_zero():
    for p in (2, "fro", 3, 1.5):
        x = ember.zeros(4, requires_grad=True)
        x.norm(p).backward()
        assert np.all(x.grad.numpy() == 0), p


def test_std_of_constant_has_zero_gradient():
    x = ember.ones(2, 3, requires_grad=True)
    x.std(1).sum().backward()
    assert np.all(x.grad.numpy() == 0)


def test_softmax_extremes_finite_and_correct():
    a = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0]], dtype=np.float32)
    for dim in (0, 1, -1):
        for f in ("softmax", "log_softmax"):
            e = getattr(ember.tensor(a), f)(dim).numpy()
            t = getattr(torch.tensor(a), f)(dim).numpy()
            assert np.all(np.isfinite(e)), (f, dim)
            np.testing.assert_allclose(e, t, atol=1e-5, rtol=1e-5)
    assert np.allclose(ember.tensor(a).softmax(1).sum(1).numpy(), 1.0)


def test_logsumexp_extremes_match_torch():
    a = np.array([[-INF, -INF], [INF, 1.0], [1e30, 1e30], [-1e30, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(ember.tensor(a).logsumexp(1).numpy(), torch.tensor(a).logsumexp(1).numpy())
    assert ember.tensor([1, 2, 3]).logsumexp(0).dtype == ember.float32


def test_all_any_count_nonzero_match_torch():
    a = np.array([[1, 0, 2], [3, 4, 5]])
    for kw in ({}, {"dim": 0}, {"dim": 1, "keepdim": True}, {"dim": -1}):
        for f in ("all", "any"):
            e, t = getattr(ember.tensor(a), f)(**kw), getattr(torch.tensor(a), f)(**kw)
            assert e.dtype == ember.bool and e.shape == tuple(t.shape)
            np.testing.assert_array_equal(e.numpy(), t.numpy())
    for kw in ({}, {"dim": 0}, {"dim": (0, 1)}, {"dim": -1}):
        e, t = ember.count_nonzero(ember.tensor(a), **kw), torch.count_nonzero(torch.tensor(a), **kw)
        assert e.dtype == ember.int64
        np.testing.assert_array_equal(e.numpy(), t.numpy())


def test_var_std_unbiased_forms():
    a = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    e, t = ember.tensor(a), torch.tensor(a)
    for args, kw in (((), {"unbiased": False}), ((False,), {}), ((1,), {"correction": 0}), ((1, True, True), {})):
        np.testing.assert_allclose(e.var(*args, **kw).numpy(), t.var(*args, **kw).numpy(), rtol=1e-5)
        np.testing.assert_allclose(e.std(*args, **kw).numpy(), t.std(*args, **kw).numpy(), rtol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: ember.ones(2, 3).sum(2), r"sum: dimension 2 is out of range"),
    (lambda: ember.ones(2, 3).max(-3), r"max: dimension -3 is out of range"),
    (lambda: ember.ones(0, 3).max(), r"max: cannot reduce over an empty dimension.*\(0, 3\)"),
    (lambda: ember.ones(0, 3).argmax(0), r"argmax: cannot reduce"),
    (lambda: ember.ones(2, 3).amax((0, 0)), r"amax: dimension repeated"),
    (lambda: ember.tensor([1, 2]).var(), r"var: expected a floating point tensor, got ember.int64"),
    (lambda: ember.tensor([1, 2]).mean(), r"mean: expected a floating point tensor"),
    (lambda: ember.ones(2, 3).norm("nuc"), r"norm: p='nuc' is not supported"),
    (lambda: ember.tensor([1, 2]).norm(), r"norm: expected a floating point tensor"),
    (lambda: ember.ones(2, 3).var(1, unbiased=True, correction=0), r"var: pass either unbiased= or correction="),
    (lambda: ember.ones(2, 3).softmax(), r"softmax: pass the dim.*\(2, 3\)"),
    (lambda: ember.softmax(ember.ones(2, 3), 2), r"softmax: dimension 2 is out of range"),
    (lambda: ember.tensor([1, 2]).log_softmax(0), r"log_softmax: expected a floating point tensor"),
    (lambda: ember.ones(2).cumsum(1), r"cumsum: dimension 1 is out of range"),
])
def test_errors(call, match):
    with pytest.raises(ember.OpError, match=match):
        call()
