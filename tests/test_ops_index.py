import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ember
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)


def I(*values):  # noqa: E743  (an int64 index input, the same array for both frameworks)
    return Arr(np.array(values[0] if len(values) == 1 else values, dtype=np.int64))


def B(values):
    return Arr(np.array(values, dtype=bool))


def _setitem(index):
    def f(x, v):
        y = x.clone()
        y[index] = v
        return y
    return f


def _setitem_t(index):
    """Same as :func:`_setitem`, with the index given as tensors of the framework under test."""
    def run(x, v, idx):
        y = x.clone()
        y[idx] = v
        return y
    return (lambda x, v: run(x, v, tuple(ember.tensor(i) if isinstance(i, np.ndarray) else i for i in index)),
            lambda x, v: run(x, v, tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)))


_SET_T = _setitem_t((slice(None), np.array([2, 0])))

CASES = [
    # getitem: basic
    ("int", lambda a: a[1], lambda a: a[1], [(3, 4)]),
    ("neg_int", lambda a: a[-1, -2], lambda a: a[-1, -2], [(3, 4)]),
    ("slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 4)]),
    ("neg_slice", lambda a: a[-2:, :-1], lambda a: a[-2:, :-1], [(3, 4)]),
    ("none_ellipsis", lambda a: a[None, ..., 1], lambda a: a[None, ..., 1], [(2, 3, 4)]),
    ("ellipsis_slice", lambda a: a[..., 1:3], lambda a: a[..., 1:3], [(2, 3, 4)]),
    ("empty_slice", lambda a: a[2:1], lambda a: a[2:1], [(3, 4)]),
    ("0d_ellipsis", lambda a: a[...], lambda a: a[...], [()]),
    ("0d_none", lambda a: a[None], lambda a: a[None], [()]),
    # getitem: advanced
    ("list", lambda a: a[[0, 2]], lambda a: a[[0, 2]], [(3, 4)]),
    ("tensor_idx", lambda a, i: a[i], lambda a, i: a[i], [(5, 2), I([4, 0, -1])]),
    ("repeated_idx", lambda a, i: a[i], lambda a, i: a[i], [(4, 3), I([1, 1, 3, 1])]),
    ("2d_idx", lambda a, i: a[i], lambda a, i: a[i], [(4, 3), I([[0, 1], [1, 3]])]),
    ("two_arrays", lambda a, i, j: a[i, j], lambda a, i, j: a[i, j], [(4, 3), I([0, 0, 3]), I([2, 2, -1])]),
    ("mixed_slice_array", lambda a, i: a[:, i], lambda a, i: a[:, i], [(2, 4, 3), I([3, 3, 0])]),
    ("mixed_separated", lambda a, i, j: a[i, :, j], lambda a, i, j: a[i, :, j], [(2, 4, 3), I([1, 0]), I([2, 2])]),
    ("mixed_int_array", lambda a, i: a[1, i], lambda a, i: a[1, i], [(2, 4, 3), I([0, 3, 0])]),
    ("0d_tensor_idx", lambda a, i: a[i], lambda a, i: a[i], [(3, 4), I(2)]),
    ("bool_mask", lambda a, m: a[m], lambda a, m: a[m], [(2, 3), B([[True, False, True], [False, False, True]])]),
    ("bool_mask_rows", lambda a, m: a[m], lambda a, m: a[m], [(3, 2), B([True, False, True])]),
    ("bool_mask_dim1", lambda a, m: a[:, m], lambda a, m: a[:, m], [(2, 3), B([False, True, True])]),
    ("bool_mask_empty", lambda a, m: a[m], lambda a, m: a[m], [(3,), B([False, False, False])]),
    # setitem (on a clone, so the function is pure for gradcheck)
    ("set_int", _setitem(1), _setitem(1), [(3, 4), (4,)]),
    ("set_bcast_row", _setitem(1), _setitem(1), [(3, 4), (1,)]),
    ("set_bcast_col", _setitem((slice(None), slice(1, 3))), _setitem((slice(None), slice(1, 3))), [(3, 4), (3, 1)]),
    ("set_lead_ones", _setitem(0), _setitem(0), [(3, 4), (1, 1, 4)]),
    ("set_0d_value", _setitem((slice(None), -1)), _setitem((slice(None), -1)), [(3, 4), ()]),
    ("set_scalar", lambda x: _setitem(0)(x, 2.5), lambda x: _setitem(0)(x, 2.5), [(3, 4)]),
    ("set_list", _setitem([0, 2]), _setitem([0, 2]), [(3, 4), (2, 4)]),
    ("set_neg_list", _setitem(([-1, 0], [1, -2])), _setitem(([-1, 0], [1, -2])), [(3, 4), (2,)]),
    ("set_mask", _setitem(np.array([[True, False], [False, True]])),
     lambda x, v: _setitem(torch.tensor([[True, False], [False, True]]))(x, v), [(2, 2), (2,)]),
    ("set_tensor_idx", _SET_T[0], _SET_T[1], [(3, 4), (3, 2)]),
    ("set_ellipsis", _setitem((Ellipsis, 0)), _setitem((Ellipsis, 0)), [(2, 3, 4), (3,)]),
    ("set_value_only_grad", lambda v: _setitem(1)(ember.zeros(3, 2, dtype=v.dtype), v),
     lambda v: _setitem(1)(torch.zeros(3, 2, dtype=v.dtype), v), [(2,)]),
    ("set_x_only_grad", lambda x: _setitem(slice(0, 2))(x, ember.ones(4, dtype=x.dtype)),
     lambda x: _setitem(slice(0, 2))(x, torch.ones(4, dtype=x.dtype)), [(3, 4)]),
    # index_put
    ("index_put", lambda x, i, v: ember.index_put(x, (i,), v), lambda x, i, v: torch.index_put(x, (i,), v),
     [(4, 2), I([3, 0]), (2, 2)]),
    ("index_put_acc", lambda x, i, v: ember.index_put(x, (i,), v, accumulate=True),
     lambda x, i, v: torch.index_put(x, (i,), v, accumulate=True), [(4, 2), I([1, 1, 0]), (3, 2)]),
    ("index_put_2idx_bcast", lambda x, i, j, v: x.index_put((i, j), v),
     lambda x, i, j, v: x.index_put((i, j), v), [(4, 3), I([0, 2]), I([1, -1]), (1,)]),
    # gather / take_along_dim / take / index_select / select / narrow
    ("gather0", lambda a, i: ember.gather(a, 0, i), lambda a, i: torch.gather(a, 0, i),
     [(3, 4), I([[0, 1, 2, 0], [2, 2, 2, 2]])]),
    ("gather1_repeat", lambda a, i: a.gather(1, i), lambda a, i: a.gather(1, i), [(3, 4), I([[0, 0], [3, 3], [1, 1]])]),
    ("gather_neg_dim_small", lambda a, i: a.gather(-1, i), lambda a, i: a.gather(-1, i),
     [(2, 3, 4), I([[[3, 0, 0, 1, 3]]])]),
    ("gather_0d", lambda a, i: a.gather(0, i), lambda a, i: a.gather(0, i), [(), I(0)]),
    ("take_along_dim", lambda a, i: ember.take_along_dim(a, i, 1), lambda a, i: torch.take_along_dim(a, i, 1),
     [(3, 4), I([[0, 3]])]),
    ("take_along_flat", lambda a, i: ember.take_along_dim(a, i), lambda a, i: torch.take_along_dim(a, i),
     [(3, 4), I([11, 0, 5, 5])]),
    ("take", lambda a, i: a.take(i), lambda a, i: a.take(i), [(3, 4), I([[0, -1], [5, 5]])]),
    ("index_select", lambda a, i: ember.index_select(a, 0, i), lambda a, i: torch.index_select(a, 0, i),
     [(4, 3), I([3, 1, 3])]),
    ("index_select_neg_dim", lambda a, i: a.index_select(-1, i), lambda a, i: a.index_select(-1, i),
     [(2, 4, 3), I([2, 2, 0, 1])]),
    ("index_select_0d_idx", lambda a, i: a.index_select(1, i), lambda a, i: a.index_select(1, i), [(2, 3), I(2)]),
    ("select", lambda a: a.select(1, -1), lambda a: a.select(1, -1), [(2, 3, 4)]),
    ("narrow", lambda a: ember.narrow(a, -1, 1, 2), lambda a: torch.narrow(a, -1, 1, 2), [(2, 3, 4)]),
    # scatter family
    ("scatter", lambda a, i, s: ember.scatter(a, 0, i, s), lambda a, i, s: torch.scatter(a, 0, i, s),
     [(3, 4), I([[0, 1, 2, 0], [2, 0, 1, 1]]), (2, 4)]),
    ("scatter_neg_dim", lambda a, i, s: a.scatter(-1, i, s), lambda a, i, s: a.scatter(-1, i, s),
     [(3, 4), I([[3, 0], [1, 2], [0, 1]]), (3, 2)]),
    ("scatter_value", lambda a, i: a.scatter(1, i, 1.5), lambda a, i: a.scatter(1, i, 1.5),
     [(3, 4), I([[3], [0], [2]])]),
    ("scatter_add", lambda a, i, s: ember.scatter_add(a, 0, i, s), lambda a, i, s: torch.scatter_add(a, 0, i, s),
     [(3, 4), I([[0, 0, 0, 1], [0, 2, 0, 1]]), (2, 4)]),
    ("scatter_add_dim1", lambda a, i, s: a.scatter_add(1, i, s), lambda a, i, s: a.scatter_add(1, i, s),
     [(2, 3), I([[0, 0, 0, 2], [1, 1, 2, 2]]), (2, 4)]),
    ("scatter_reduce_add", lambda a, i, s: a.scatter(0, i, s, reduce="add"),
     lambda a, i, s: a.scatter_add(0, i, s), [(3,), I([0, 0, 2]), (3,)]),
    ("index_add", lambda a, i, s: ember.index_add(a, 0, i, s), lambda a, i, s: torch.index_add(a, 0, i, s),
     [(4, 3), I([0, 2, 0]), (3, 3)]),
    ("index_add_alpha_neg_dim", lambda a, i, s: a.index_add(-1, i, s, alpha=2.0),
     lambda a, i, s: a.index_add(-1, i, s, alpha=2.0), [(2, 4), I([3, 3]), (2, 2)]),
    ("index_copy", lambda a, i, s: a.index_copy(1, i, s), lambda a, i, s: a.index_copy(1, i, s),
     [(2, 4), I([3, 0]), (2, 2)]),
    ("index_fill", lambda a, i: a.index_fill(0, i, -1.0), lambda a, i: a.index_fill(0, i, -1.0), [(3, 2), I([2, 0])]),
    # masks
    ("masked_fill", lambda a, m: a.masked_fill(m, 0.5), lambda a, m: a.masked_fill(m, 0.5),
     [(2, 3), B([[True, False, True], [False, False, True]])]),
    ("masked_fill_bcast", lambda a, m: ember.masked_fill(a, m, -1.0), lambda a, m: torch.masked_fill(a, m, -1.0),
     [(2, 3), B([True, False, True])]),
    ("masked_fill_tensor_value", lambda a, m, v: a.masked_fill(m, v), lambda a, m, v: a.masked_fill(m, v),
     [(2, 3), B([[True], [False]]), ()]),
    ("masked_select", lambda a, m: a.masked_select(m), lambda a, m: a.masked_select(m),
     [(2, 3), B([[True, False, True], [False, False, True]])]),
    ("masked_select_bcast", lambda a, m: ember.masked_select(a, m), lambda a, m: torch.masked_select(a, m),
     [(3,), B([[True, False, True], [False, True, True]])]),
]


@pytest.mark.parametrize("name,ef,tf,specs", CASES, ids=[c[0] for c in CASES])
def test_index_ops(name, ef, tf, specs):
    check_op(ef, tf, specs)


def test_repeated_index_gradient_accumulates():
    x = ember.zeros(4, requires_grad=True)
    x[ember.tensor([1, 1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 3, 0, 1])
    y = ember.zeros(2, 3, requires_grad=True)
    y.gather(1, ember.tensor([[0, 0, 0], [2, 2, 1]])).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [[3, 0, 0], [0, 1, 2]])


def test_index_double_backward():
    x = ember.randn(4, 3, dtype=ember.float64, requires_grad=True)
    i = ember.tensor([0, 2, 2])
    assert ember.autograd.gradgradcheck(lambda t: t[i, 1:] ** 2, (x,))
    assert ember.autograd.gradgradcheck(lambda t: _setitem(0)(t, t[1] * t[2]), (x,))


def test_setitem_modifies_in_place_and_views_see_it():
    x = ember.zeros(3, 4)
    v = x[0]
    x[0, 1:3] = 7.0
    x[ember.tensor([2])] = ember.ones(1, 4)
    assert v.data[1] == 7.0 and x._version == 2
    np.testing.assert_array_equal(x.data, [[0, 7, 7, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    x[x > 5] = -1.0
    assert (x.data == -1).sum() == 2


def test_setitem_rebases_graph():
    w = ember.randn(3, requires_grad=True)
    x = w * 2
    x[1] = w[0] * 10
    assert x.grad_fn is not None and x._version == 1
    x.sum().backward()
    np.testing.assert_allclose(w.grad.data, [12.0, 0.0, 2.0])
    buf = ember.zeros(2, 3)
    buf[0] = w
    assert buf.requires_grad
    (buf * 3).sum().backward()
    np.testing.assert_allclose(w.grad.data, [15.0, 3.0, 5.0])


def test_setitem_casts_value_to_tensor_dtype():
    x = ember.zeros(3, dtype=ember.int64)
    x[0] = 2.7
    x[1:] = ember.tensor([1.9, 3.1])
    assert x.dtype == ember.int64 and x.tolist() == [2, 1, 3]
    y = ember.zeros(2, dtype=ember.float32)
    v = ember.tensor([1.0, 2.0], dtype=ember.float64, requires_grad=True)
    y[:] = v
    (y * 2).sum().backward()
    assert y.dtype == ember.float32 and v.grad.dtype == ember.float64


def test_setitem_leaf_requires_grad_refused():
    x = ember.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem: a leaf tensor that requires grad"):
        x[0] = 1.0
    with ember.no_grad():
        x[0] = 1.0
    assert x.requires_grad and x.is_leaf and x.data[0] == 1.0


def test_setitem_on_saved_tensor_detected():
    w = ember.randn(3, requires_grad=True)
    x = ember.ones(3)
    y = (w * x).sum()
    x[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_inplace_methods():
    base = np.arange(6.0).reshape(2, 3)
    m = np.array([[True, False, False], [False, False, True]])
    cases = [
        ("masked_fill_", (m, 9.0)),
        ("index_add_", (1, np.array([0, 0]), np.ones((2, 2)))),
        ("scatter_", (1, np.array([[2], [0]]), np.full((2, 1), 5.0))),
        ("scatter_add_", (0, np.array([[1, 1, 0]]), np.ones((1, 3)))),
        ("index_fill_", (0, np.array([1]), -2.0)),
        ("index_copy_", (1, np.array([2]), np.zeros((2, 1)))),
        ("index_put_", ((np.array([0, 1]), np.array([2, 2])), np.array([7.0, 8.0]))),
    ]
    for name, args in cases:
        e_args = [tuple(ember.tensor(i) for i in a) if isinstance(a, tuple) else
                  ember.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
        t_args = [tuple(torch.tensor(i) for i in a) if isinstance(a, tuple) else
                  torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
        ex, tx = ember.tensor(base.copy()), torch.tensor(base.copy())
        r = getattr(ex, name)(*e_args)
        getattr(tx, name)(*t_args)
        assert r is ex and ex._version == 1, name
        np.testing.assert_array_equal(ex.data, tx.numpy(), err_msg=name)


def test_inplace_method_with_grad():
    w = ember.randn(2, 3, requires_grad=True)
    x = w * 1.0
    x.masked_fill_(ember.tensor([[True, False, False], [False, True, False]]), 0.0)
    x.index_add_(1, ember.tensor([2, 2]), w[:, :2])
    x.sum().backward()
    np.testing.assert_allclose(w.grad.data, [[0, 1, 1], [1, 0, 1]] + np.array([[1, 1, 0], [1, 1, 0]]))


def test_masked_fill_keeps_dtype():
    x = ember.tensor([1, 2, 3])
    y = x.masked_fill(ember.tensor([True, False, True]), 0.7)
    assert y.dtype == ember.int64 and y.tolist() == [0, 2, 0]


def test_nonzero():
    a = np.array([[0, 1.5, 0], [2, 0, -1]])
    e, t = ember.tensor(a), torch.tensor(a)
    assert e.nonzero().dtype == ember.int64
    np.testing.assert_array_equal(e.nonzero().data, t.nonzero().numpy())
    for ei, ti in zip(ember.nonzero(e, as_tuple=True), torch.nonzero(t, as_tuple=True)):
        np.testing.assert_array_equal(ei.data, ti.numpy())
    assert ember.zeros(2, 3).nonzero().shape == (0, 2)
    assert tuple(ember.where(e > 0)[1].tolist()) == (1, 0)


def test_one_hot():
    idx = np.array([[0, 2], [1, 1]])
    for nc in (-1, 4):
        e, t = ember.one_hot(ember.tensor(idx), nc), F.one_hot(torch.tensor(idx), nc)
        assert e.dtype == ember.int64 and not e.requires_grad
        np.testing.assert_array_equal(e.data, t.numpy())
    assert ember.one_hot(ember.tensor(np.zeros(0, dtype=np.int64)), 3).shape == (0, 3)


def test_index_out_of_range_is_an_index_error():
    x = ember.zeros(2, 3)
    with pytest.raises(IndexError, match=r"shape \(2, 3\).*index 5 is out of bounds for axis 0 with size 2"):
        x[5]
    with pytest.raises(ember.OpError, match=r"shape \(2, 3\).*index 7 is out of bounds"):
        x[:, ember.tensor([0, 7])]
    with pytest.raises(IndexError, match=r"setitem: indexing a tensor of shape \(2, 3\)"):
        x[0, 3] = 1.0
    w = ember.zeros(3, requires_grad=True)
    with pytest.raises(IndexError, match=r"setitem: indexing a tensor of shape \(2, 3\)"):
        x[4] = w


ERRORS = [
    (lambda: ember.zeros(2, 3)[0, 0, 0], "too many indices"),
    (lambda: ember.zeros(2, 3)[ember.tensor([True, False, True])], r"shape \(2, 3\).*boolean index"),
    (lambda: ember.zeros(2, 3)[ember.tensor([0.5])], "integer"),
    (lambda: _setitem(0)(ember.zeros(2, 3), ember.ones(2)), r"shape \(2, 3\)"),
    (lambda: _setitem(0)(ember.zeros(2, 3), ember.ones(2, 3, requires_grad=True)),
     r"value tensor of shape \[2, 3\] cannot be broadcast to indexing result of shape \[3\]"),
    (lambda: ember.zeros(2, 3).expand(4, 2, 3).__setitem__(0, 1.0), "clone"),
    (lambda: ember.zeros(2, 3).gather(1, ember.tensor([[0, 5]])), "gather: index 5 is out of bounds for dimension 1 "
     "with size 3"),
    (lambda: ember.zeros(2, 3).gather(1, ember.tensor([[-1]])), "index -1 is out of bounds"),
    (lambda: ember.zeros(2, 3).gather(1, ember.tensor([0, 1])), "same number of dimensions"),
    (lambda: ember.zeros(2, 3).gather(0, ember.tensor([[0, 0, 0, 0]])), "size does not match at dimension 1"),
    (lambda: ember.zeros(2, 3).gather(0, ember.tensor([[0.0]])), "gather: index must be an integer tensor"),
    (lambda: ember.zeros(2, 3).gather(2, ember.tensor([[0]])), "gather: dimension 2 is out of range"),
    (lambda: ember.zeros(2, 3).scatter(0, ember.tensor([[0, 1]]), ember.ones(1, 1)), "no larger than src"),
    (lambda: ember.zeros(2, 3).scatter(0, ember.tensor([[2]]), 1.0), "scatter: index 2 is out of bounds"),
    (lambda: ember.zeros(2, 3).scatter(0, ember.tensor([[1]]), ember.ones(1, 1), reduce="multiply"), "not supported"),
    (lambda: ember.zeros(2, 3).index_add(0, ember.tensor([0]), ember.ones(2, 3)),
     r"index_add: source of shape \(2, 3\) must have shape \(1, 3\)"),
    (lambda: ember.zeros(2, 3).index_add(1, ember.tensor([[0]]), ember.ones(2, 1)), "at most 1-D"),
    (lambda: ember.zeros(2, 3).index_select(0, ember.tensor([2])), "index_select: index 2 is out of bounds"),
    (lambda: ember.zeros(2, 3).select(1, 3), "select: index 3 is out of range for dim 1 of size 3"),
    (lambda: ember.zeros(2, 3).narrow(1, 2, 2), "narrow: start 2 and length 2 exceed dim 1 of size 3"),
    (lambda: ember.zeros(2, 3).take(ember.tensor([6])), "take: index 6 is out of bounds"),
    (lambda: ember.zeros(2, 3).masked_fill(ember.tensor([1, 0, 1]), 0.0), "expected a boolean mask"),
    (lambda: ember.zeros(2, 3).masked_fill(ember.tensor([True, False]), 0.0), r"mask of shape \(2,\) does not"),
    (lambda: ember.zeros(2, 3).masked_fill(ember.tensor([True]), ember.ones(2)), "0-dimensional value"),
    (lambda: ember.zeros(3).masked_fill_(ember.ones(2, 3).bool(), 0.0), "not broadcastable to the tensor"),
    (lambda: ember.zeros(2, 3).masked_select(ember.tensor([True, False])), "does not broadcast"),
    (lambda: ember.one_hot(ember.tensor([0, 3]), 3), "smaller than num_classes=3"),
    (lambda: ember.one_hot(ember.tensor([-1, 0])), "non-negative"),
    (lambda: ember.one_hot(ember.tensor([0.0])), "integer"),
    (lambda: ember.one_hot(ember.tensor(np.zeros(0, dtype=np.int64))), "empty"),
    (lambda: ember.index_put(ember.zeros(3), ember.tensor([0]), 1.0), "tuple of tensors"),
]


@pytest.mark.parametrize("fn,match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_index_errors(fn, match):
    with pytest.raises(ember.OpError, match=match):
        fn()


def test_setitem_through_views_under_autograd():
    w = ember.randn(3, 4, requires_grad=True)
    v = ember.randn(2, requires_grad=True)
    tw, tv = torch.tensor(w.data, requires_grad=True), torch.tensor(v.data, requires_grad=True)
    outs = []
    for x_, v_, lib in ((w, v, ember), (tw, tv, torch)):
        y = x_ * 2
        y[1][2] = v_[0] * 3
        col = y[:, 0]
        col[lib.tensor([True, False, True])] = v_[1]
        (y * lib.arange(12.0).reshape(3, 4)).sum().backward()
        outs.append(y.detach().numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=1e-6)


def test_view_of_leaf_requiring_grad_refused():
    w = ember.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w[1:][0] = ember.ones((), requires_grad=True)


def test_ops_use_backend_for_numpy_only_calls():
    """``xp.add.at`` and friends have no CuPy twin: ops must go through ember.backend (STYLE item 2)."""
    import pathlib
    import re
    ops = pathlib.Path(ember.__file__).parent / "ops"
    banned = re.compile(r"\.add\.at\(|\.reduceat\(|stride_tricks|xp\.broadcast_shapes\(|\bnp\.|import numpy")
    hits = [f"{p.name}:{i}" for p in sorted(ops.glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert hits == []


def test_scatter_add_at_uses_cupyx_for_cupy(monkeypatch):
    import sys
    import types

    from ember.backend import scatter_add_at
    calls = []
    fake_cupy = types.SimpleNamespace(__name__="cupy")
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(scatter_add=lambda *a: calls.append(a)))
    out, idx, vals = np.zeros(3), np.array([0, 0]), np.ones(2)
    scatter_add_at(fake_cupy, out, idx, vals)
    assert len(calls) == 1 and calls[0][0] is out and not out.any()
    scatter_add_at(np, out, idx, vals)    # NumPy: repeated indices accumulate
    np.testing.assert_array_equal(out, [2.0, 0.0, 0.0])
