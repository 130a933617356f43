"""Matrix products and einsum: forward and gradient parity with PyTorch, second derivatives, shape errors."""
import numpy as np
import pytest
import torch

import ember
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional


def _mm(a, b):
    return a @ b


MATMUL_SHAPES = [
    ("2d", (3, 4), (4, 5)),
    ("3d", (2, 3, 4), (2, 4, 5)),
    ("4d", (2, 3, 4, 5), (2, 3, 5, 2)),
    ("bcast_batch", (2, 1, 3, 4), (5, 4, 2)),
    ("bcast_2d_3d", (3, 4), (2, 4, 5)),
    ("bcast_3d_2d", (2, 3, 4), (4, 5)),
    ("bcast_size1", (1, 3, 4), (2, 4, 5)),
    ("1d_1d", (4,), (4,)),
    ("1d_2d", (4,), (4, 3)),
    ("2d_1d", (3, 4), (4,)),
    ("1d_3d", (4,), (2, 4, 3)),
    ("3d_1d", (2, 3, 4), (4,)),
    ("1d_4d", (3,), (2, 2, 3, 2)),
    ("4d_1d", (2, 1, 2, 3), (3,)),
    ("size1_inner", (3, 1), (1, 4)),
    ("1x1", (1, 1), (1, 1)),
]

CASES = [(f"matmul_{n}", _mm, _mm, [a, b], {}) for n, a, b in MATMUL_SHAPES] + [
    ("matmul_fn", ember.matmul, torch.matmul, [(2, 3), (3, 2)], {}),
    ("mm", ember.mm, torch.mm, [(3, 4), (4, 2)], {}),
    ("mm_method", lambda a, b: a.mm(b), lambda a, b: a.mm(b), [(3, 4), (4, 2)], {}),
    ("bmm", ember.bmm, torch.bmm, [(2, 3, 4), (2, 4, 5)], {}),
    ("bmm_method", lambda a, b: a.bmm(b), lambda a, b: a.bmm(b), [(3, 1, 4), (3, 4, 2)], {}),
    ("matmul_a_only", _mm, _mm, [(3, 4), Arr(np.ones((4, 2)), grad=False)], {}),
    ("matmul_b_only", _mm, _mm, [Arr(np.ones((2, 3)), grad=False), (3, 4)], {}),
    ("linear_1d", ember.linear, F.linear, [(3,), (4, 3), (4,)], {}),
    ("linear_1d_nobias", ember.linear, F.linear, [(3,), (4, 3)], {}),
    ("linear_2d", ember.linear, F.linear, [(5, 3), (4, 3), (4,)], {}),
    ("linear_2d_nobias", ember.linear, F.linear, [(5, 3), (4, 3)], {}),
    ("linear_3d", ember.linear, F.linear, [(2, 5, 3), (4, 3), (4,)], {}),
    ("linear_4d_nobias", ember.linear, F.linear, [(2, 2, 1, 3), (4, 3)], {}),
    ("linear_out1", ember.linear, F.linear, [(5, 3), (1, 3), (1,)], {}),
    ("linear_x_only", ember.linear, F.linear, [(5, 3), Arr(np.ones((2, 3)), grad=False)], {}),
    ("outer", ember.outer, torch.outer, [(3,), (4,)], {}),
    ("ger_method", lambda a, b: a.ger(b), lambda a, b: a.ger(b), [(2,), (1,)], {}),
    ("dot", ember.dot, torch.dot, [(5,), (5,)], {}),
    ("dot_method", lambda a, b: a.dot(b), lambda a, b: a.dot(b), [(1,), (1,)], {}),
]

EINSUM = [
    ("matmul", "ij,jk->ik", [(3, 4), (4, 2)]),
    ("implicit", "ij,jk", [(3, 4), (4, 2)]),
    ("implicit_order", "ba,ac", [(3, 4), (4, 2)]),
    ("batch", "bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("transpose", "ij->ji", [(3, 4)]),
    ("sum_all", "ij->", [(3, 4)]),
    ("row_sum", "ij->i", [(3, 4)]),
    ("diag", "ii->i", [(3, 3)]),
    ("trace", "ii", [(4, 4)]),
    ("trace_explicit", "ii->", [(4, 4)]),
    ("batch_diag", "bii->bi", [(2, 3, 3)]),
    ("outer", "i,j->ij", [(3,), (4,)]),
    ("dot", "i,i->", [(5,), (5,)]),
    ("hadamard", "ij,ij->ij", [(3, 4), (3, 4)]),
    ("bilinear", "bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("three_chain", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ellipsis_batch", "...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("ellipsis_bcast", "...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ellipsis_size1", "...i,...i->...", [(2, 1, 3), (4, 3)]),
    ("ellipsis_implicit", "...ij,jk", [(2, 3, 4), (4, 5)]),
    ("ellipsis_middle", "i...j,j->i...", [(2, 3, 4, 5), (5,)]),
    ("ellipsis_summed", "...i->i", [(2, 3, 4)]),
    ("attention", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("spaces", "ij, jk -> ik", [(2, 3), (3, 2)]),
    ("repeat_with_other", "ii,i->i", [(3, 3), (3,)]),
    ("uppercase", "Ab,bC->AC", [(2, 3), (3, 4)]),
]
CASES += [(f"einsum_{n}", lambda *xs, eq=eq: ember.einsum(eq, *xs), lambda *xs, eq=eq: torch.einsum(eq, *xs), specs,
           {}) for n, eq, specs in EINSUM]


@pytest.mark.parametrize("name,ef,tf,specs,kw", CASES, ids=[c[0] for c in CASES])
def test_linalg_ops(name, ef, tf, specs, kw):
    check_op(ef, tf, specs, **kw)


def test_einsum_list_operands_and_second_derivative():
    rng = np.random.default_rng(0)
    a = ember.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    b = ember.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    np.testing.assert_allclose(ember.einsum("ij,jk->ik", [a, b]).detach().numpy(), (a @ b).detach().numpy())
    assert ember.autograd.gradgradcheck(lambda x, y: ember.einsum("ij,jk->ik", x, y), (a, b))
    assert ember.autograd.gradgradcheck(lambda x: ember.einsum("ii->i", x) * ember.einsum("ij->", x), (a,))


def test_einsum_result_does_not_alias_input():
    x = ember.ones(3, 3)
    y = ember.einsum("ij->ji", x)
    y.data[0, 0] = 5.0
    assert x.numpy()[0, 0] == 1.0


def test_einsum_promotes_dtypes():
    out = ember.einsum("i,i->", ember.tensor([1, 2]), ember.tensor([0.5, 0.5]))
    assert out.dtype == ember.float32 and out.item() == pytest.approx(1.5)


def test_matmul_second_derivative():
    rng = np.random.default_rng(1)
    a = ember.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    b = ember.tensor(rng.standard_normal((4,)), requires_grad=True)
    w = ember.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda x, y: x @ y, (a, b))
    assert ember.autograd.gradgradcheck(lambda x, y: ember.linear(x, y), (a, w))


def test_integer_matmul_matches_torch():
    a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
    e, t = ember.tensor(a) @ ember.tensor(b), torch.tensor(a) @ torch.tensor(b)
    assert e.dtype == ember.int64
    np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.parametrize("call,match", [
    (lambda: ember.ones(32, 784) @ ember.ones(128, 10), r"\(32, 784\).*\(128, 10\)"),
    (lambda: ember.matmul(ember.ones(2, 3, 4), ember.ones(5)),
     r"matmul: cannot multiply shapes \(2, 3, 4\) and \(5,\)"),
    (lambda: ember.ones(3) @ ember.ones(4), r"\(3,\) and \(4,\)"),
    (lambda: ember.matmul(ember.ones(()), ember.ones(3)), r"matmul: both arguments need at least 1 dimension"),
    (lambda: ember.ones(2, 3, 4) @ ember.ones(3, 4, 5), r"matmul: .*\(2, 3, 4\).*\(3, 4, 5\)"),
    (lambda: ember.linear(ember.ones(32, 784), ember.ones(128, 10)), r"linear: .*\(32, 784\).*\(128, 10\)"),
    (lambda: ember.linear(ember.ones(4, 3), ember.ones(2, 3, dtype=ember.float64)), r"linear: input dtype"),
    (lambda: ember.mm(ember.ones(2, 3, 4), ember.ones(4, 2)), r"mm: expected 2-D tensors"),
    (lambda: ember.mm(ember.ones(2, 3), ember.ones(4, 2)), r"\(2, 3\).*\(4, 2\)"),
    (lambda: ember.bmm(ember.ones(2, 3, 4), ember.ones(3, 4, 2)), r"bmm: expected 3-D tensors with the same batch"),
    (lambda: ember.outer(ember.ones(2, 2), ember.ones(2)), r"outer: expected two 1-D tensors"),
    (lambda: ember.dot(ember.ones(2), ember.ones(3)), r"dot: .*\(2,\) and \(3,\)"),
    (lambda: ember.dot(ember.ones(2), ember.ones(2, dtype=ember.float64)), r"dot: expected both vectors to have"),
    (lambda: ember.einsum("ij,jk->ik", ember.ones(2, 3)), r"einsum: the equation has 2 operand"),
    (lambda: ember.einsum("ij->ik", ember.ones(2, 3)), r"einsum: output subscripts 'ik'"),
    (lambda: ember.einsum("ijk->i", ember.ones(2, 3)), r"einsum: subscripts 'ijk' do not match .* 2 dims"),
    (lambda: ember.einsum("ij,jk->ik", ember.ones(2, 3), ember.ones(4, 2)), r"einsum: .*\(2, 3\).*\(4, 2\)"),
    (lambda: ember.einsum("i1->i", ember.ones(2, 3)), r"einsum: subscripts must be letters"),
    (lambda: ember.einsum("ij->"), r"einsum: no operands"),
])
def test_errors(call, match):
    with pytest.raises(ember.OpError, match=match):
        call()


@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3), (3,)])
def test_linear_second_order_uses_the_graph_path(x_shape):
    """Double backward runs Linear's Tensor-op gradient (the array fast path serves first order only)."""
    rng = np.random.default_rng(0)
    xs, ws, bs = rng.standard_normal(x_shape), rng.standard_normal((4, 3)), rng.standard_normal(4)
    x, w, b = (ember.tensor(a, requires_grad=True) for a in (xs, ws, bs))
    assert ember.autograd.gradgradcheck(lambda x, w, b: ember.ops.linear(x, w, b).tanh(), (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xs, ws, bs))
    e_g = ember.autograd.grad((ember.ops.linear(x, w, b) ** 3).sum(), [x, w], create_graph=True)
    t_g = torch.autograd.grad((torch.nn.functional.linear(tx, tw, tb) ** 3).sum(), [tx, tw], create_graph=True)
    e2 = ember.autograd.grad(e_g[0].sum() + e_g[1].sum(), [x, w, b])
    t2 = torch.autograd.grad(t_g[0].sum() + t_g[1].sum(), [tx, tw, tb])
    for e, t in zip(e2, t2):
        np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-10)
