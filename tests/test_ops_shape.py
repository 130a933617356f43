import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ember
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

CASES = [
    # reshape / view
    ("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), [(2, 3, 4)]),
    ("reshape_tuple_neg1", lambda a: ember.reshape(a, (-1, 4)), lambda a: torch.reshape(a, (-1, 4)), [(2, 3, 4)]),
    ("reshape_0d", lambda a: a.reshape(1, 1), lambda a: a.reshape(1, 1), [()]),
    ("reshape_to_0d", lambda a: a.reshape(()), lambda a: a.reshape(()), [(1, 1)]),
    ("view_neg1", lambda a: a.view(-1), lambda a: a.view(-1), [(3, 4)]),
    ("view_as", lambda a, b: a.view_as(b), lambda a, b: a.view_as(b), [(3, 4), Arr(np.zeros((2, 6)), grad=False)]),
    # expand / broadcast_to
    ("expand", lambda a: a.expand(2, 3, 4), lambda a: a.expand(2, 3, 4), [(3, 1)]),
    ("expand_neg1", lambda a: a.expand(5, -1, 4), lambda a: a.expand(5, -1, 4), [(3, 1)]),
    ("expand_0d", lambda a: a.expand(2, 3), lambda a: a.expand(2, 3), [()]),
    ("expand_as", lambda a, b: a.expand_as(b), lambda a, b: a.expand_as(b),
     [(1, 4), Arr(np.zeros((3, 4)), grad=False)]),
    ("broadcast_to", lambda a: ember.broadcast_to(a, (2, 3, 4)), lambda a: torch.broadcast_to(a, (2, 3, 4)), [(4,)]),
    # permute / transpose / T
    ("permute", lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    ("permute_neg", lambda a: ember.permute(a, (-1, 0, -2)), lambda a: torch.permute(a, (-1, 0, -2)), [(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, -1), lambda a: a.transpose(0, -1), [(2, 3, 4)]),
    ("transpose_same", lambda a: a.transpose(1, 1), lambda a: a.transpose(1, 1), [(2, 3)]),
    ("transpose_1d", lambda a: a.transpose(0, -1), lambda a: a.transpose(0, -1), [(3,)]),
    ("swapaxes", lambda a: a.swapaxes(0, 2), lambda a: a.swapaxes(0, 2), [(2, 3, 4)]),
    ("T_2d", lambda a: a.T, lambda a: a.T, [(2, 3)]),
    ("mT", lambda a: a.mT, lambda a: a.mT, [(2, 3, 4)]),
    ("t", lambda a: a.t(), lambda a: a.t(), [(2, 3)]),
    ("t_1d", lambda a: a.t(), lambda a: a.t(), [(3,)]),
    ("movedim", lambda a: a.movedim(0, -1), lambda a: a.movedim(0, -1), [(2, 3, 4)]),
    ("movedim_multi", lambda a: ember.movedim(a, (0, 1), (2, 0)), lambda a: torch.movedim(a, (0, 1), (2, 0)),
     [(2, 3, 4)]),
    # squeeze / unsqueeze
    ("squeeze_all", lambda a: a.squeeze(), lambda a: a.squeeze(), [(1, 3, 1, 2)]),
    ("squeeze_dim", lambda a: a.squeeze(-2), lambda a: a.squeeze(-2), [(1, 3, 1, 2)]),
    ("squeeze_non1", lambda a: a.squeeze(1), lambda a: a.squeeze(1), [(1, 3, 1, 2)]),
    ("squeeze_tuple", lambda a: a.squeeze((0, 2)), lambda a: a.squeeze((0, 2)), [(1, 3, 1, 2)]),
    ("squeeze_0d", lambda a: a.squeeze(), lambda a: a.squeeze(), [()]),
    ("unsqueeze", lambda a: a.unsqueeze(1), lambda a: a.unsqueeze(1), [(2, 3)]),
    ("unsqueeze_neg", lambda a: a.unsqueeze(-1), lambda a: a.unsqueeze(-1), [(2, 3)]),
    ("unsqueeze_0d", lambda a: a.unsqueeze(0), lambda a: a.unsqueeze(0), [()]),
    # flatten / unflatten
    ("flatten", lambda a: a.flatten(), lambda a: a.flatten(), [(2, 3, 4)]),
    ("flatten_range", lambda a: ember.flatten(a, 1, -1), lambda a: torch.flatten(a, 1, -1), [(2, 3, 4, 2)]),
    ("flatten_mid", lambda a: a.flatten(-3, -2), lambda a: a.flatten(-3, -2), [(2, 3, 4, 2)]),
    ("flatten_0d", lambda a: a.flatten(), lambda a: a.flatten(), [()]),
    ("unflatten", lambda a: a.unflatten(1, (3, -1)), lambda a: a.unflatten(1, (3, -1)), [(2, 12)]),
    ("unflatten_neg", lambda a: ember.unflatten(a, -1, (2, 2, 3)), lambda a: torch.unflatten(a, -1, (2, 2, 3)),
     [(2, 12)]),
    # repeat / tile
    ("repeat", lambda a: a.repeat(2, 3), lambda a: a.repeat(2, 3), [(2, 3)]),
    ("repeat_more_dims", lambda a: a.repeat(2, 1, 3), lambda a: a.repeat(2, 1, 3), [(2, 3)]),
    ("repeat_tuple", lambda a: a.repeat((1, 2)), lambda a: a.repeat((1, 2)), [(3,)]),
    ("repeat_0d", lambda a: a.repeat(3), lambda a: a.repeat(3), [()]),
    ("repeat_zero", lambda a: a.repeat(0, 2), lambda a: a.repeat(0, 2), [(2, 3)]),
    ("tile", lambda a: ember.tile(a, (2,)), lambda a: torch.tile(a, (2,)), [(2, 3)]),
    ("tile_more", lambda a: a.tile((2, 1, 2)), lambda a: a.tile((2, 1, 2)), [(2, 3)]),
    # flip / roll / clone / contiguous
    ("flip", lambda a: a.flip(0), lambda a: a.flip(0), [(3, 4)]),
    ("flip_multi", lambda a: ember.flip(a, (0, -1)), lambda a: torch.flip(a, (0, -1)), [(2, 3, 4)]),
    ("fliplr", lambda a: a.fliplr(), lambda a: a.fliplr(), [(2, 3)]),
    ("flipud", lambda a: a.flipud(), lambda a: a.flipud(), [(2, 3)]),
    ("roll", lambda a: a.roll(1, 0), lambda a: a.roll(1, 0), [(3, 4)]),
    ("roll_multi", lambda a: ember.roll(a, (1, -2), (0, -1)), lambda a: torch.roll(a, (1, -2), (0, -1)), [(3, 4)]),
    ("roll_flat", lambda a: a.roll(5), lambda a: a.roll(5), [(3, 4)]),
    ("clone", lambda a: a.clone() * 2, lambda a: a.clone() * 2, [(3, 4)]),
    ("contiguous_T", lambda a: a.T.contiguous(), lambda a: a.T.contiguous(), [(3, 4)]),
    # cat / stack
    ("cat", lambda a, b: ember.cat([a, b]), lambda a, b: torch.cat([a, b]), [(2, 3), (4, 3)]),
    ("cat_neg_dim", lambda a, b, c: ember.cat((a, b, c), dim=-1), lambda a, b, c: torch.cat((a, b, c), dim=-1),
     [(2, 3), (2, 1), (2, 2)]),
    ("cat_one_grad", lambda a, b: ember.concat([a, b], 1), lambda a, b: torch.concat([a, b], 1),
     [(2, 3), Arr(np.ones((2, 2)), grad=False)]),
    ("cat_single", lambda a: ember.cat([a]), lambda a: torch.cat([a]), [(2, 3)]),
    ("cat_same_tensor", lambda a: ember.cat([a, a], 0), lambda a: torch.cat([a, a], 0), [(2, 3)]),
    ("stack", lambda a, b: ember.stack([a, b]), lambda a, b: torch.stack([a, b]), [(2, 3), (2, 3)]),
    ("stack_neg", lambda a, b: ember.stack([a, b], -1), lambda a, b: torch.stack([a, b], -1), [(2, 3), (2, 3)]),
    ("stack_0d", lambda a, b: ember.stack([a, b]), lambda a, b: torch.stack([a, b]), [(), ()]),
    ("hstack", lambda a, b: ember.hstack([a, b]), lambda a, b: torch.hstack([a, b]), [(2, 3), (2, 1)]),
    ("hstack_1d", lambda a, b: ember.hstack([a, b]), lambda a, b: torch.hstack([a, b]), [(2,), (3,)]),
    ("vstack", lambda a, b: ember.vstack([a, b]), lambda a, b: torch.vstack([a, b]), [(3,), (2, 3)]),
    # split / chunk / unbind
    ("split_int", lambda a: a.split(2), lambda a: a.split(2), [(5, 3)]),
    ("split_dim", lambda a: a.split(2, dim=1), lambda a: a.split(2, dim=1), [(2, 4)]),
    ("split_sections", lambda a: ember.split(a, [1, 3, 0], -1), lambda a: torch.split(a, [1, 3, 0], -1), [(2, 4)]),
    ("split_big", lambda a: a.split(10), lambda a: a.split(10), [(3,)]),
    ("chunk", lambda a: a.chunk(3), lambda a: a.chunk(3), [(5, 2)]),
    ("chunk_uneven", lambda a: ember.chunk(a, 4, dim=1), lambda a: torch.chunk(a, 4, dim=1), [(2, 6)]),
    ("chunk_more_than_size", lambda a: a.chunk(5), lambda a: a.chunk(5), [(3,)]),
    ("unbind", lambda a: a.unbind(), lambda a: a.unbind(), [(3, 2)]),
    ("unbind_neg", lambda a: ember.unbind(a, -1), lambda a: torch.unbind(a, -1), [(3, 2)]),
    # pad
    ("pad_last", lambda a: ember.pad(a, (1, 2)), lambda a: F.pad(a, (1, 2)), [(2, 3)]),
    ("pad_two_dims", lambda a: ember.pad(a, (1, 0, 2, 1), value=0.5), lambda a: F.pad(a, (1, 0, 2, 1), value=0.5),
     [(2, 3, 4)]),
    ("pad_negative", lambda a: ember.pad(a, (-1, 2, 0, -1)), lambda a: F.pad(a, (-1, 2, 0, -1)), [(3, 4)]),
    ("pad_all_dims", lambda a: ember.pad(a, (1, 1, 1, 1)), lambda a: F.pad(a, (1, 1, 1, 1)), [(2, 3)]),
    ("pad_reflect", lambda a: ember.pad(a, (2, 1), mode="reflect"), lambda a: F.pad(a, (2, 1), mode="reflect"),
     [(2, 3, 4)]),
    ("pad_reflect_2d", lambda a: ember.pad(a, (1, 2, 2, 1), mode="reflect"),
     lambda a: F.pad(a, (1, 2, 2, 1), mode="reflect"), [(1, 2, 3, 4)]),
    ("pad_replicate", lambda a: ember.pad(a, (3, 1, 0, 2), mode="replicate"),
     lambda a: F.pad(a, (3, 1, 0, 2), mode="replicate"), [(1, 2, 3, 4)]),
    ("pad_replicate_wider_than_input", lambda a: ember.pad(a, (5, 4), mode="replicate"),
     lambda a: F.pad(a, (5, 4), mode="replicate"), [(1, 2, 3)]),
    ("pad_circular", lambda a: ember.pad(a, (2, 1), mode="circular"), lambda a: F.pad(a, (2, 1), mode="circular"),
     [(2, 3, 4)]),
]


@pytest.mark.parametrize("name,ef,tf,specs", CASES, ids=[c[0] for c in CASES])
def test_shape_ops(name, ef, tf, specs):
    check_op(ef, tf, specs)


def test_cat_promotes_dtypes():
    a = ember.tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
    b = ember.tensor(np.ones((1, 3), dtype=np.float16))
    c = ember.cat([a, b])
    t = torch.cat([torch.tensor(a.data), torch.tensor(b.data)])
    assert c.dtype == ember.float16 and str(t.dtype) == "torch.float16"
    np.testing.assert_array_equal(c.data, t.numpy())
    assert ember.cat([ember.tensor([1, 2]), ember.tensor([True])]).dtype == ember.int64


def test_cat_skips_legacy_empty():
    x = ember.randn(2, 3)
    assert ember.cat([x, ember.zeros(0)]).shape == (2, 3)


def test_cat_float_cast_gradient():
    a = ember.randn(2, 3, dtype=ember.float32, requires_grad=True)
    b = ember.randn(1, 3, dtype=ember.float64, requires_grad=True)
    out = ember.cat([a, b])
    assert out.dtype == ember.float64
    out.sum().backward()
    assert a.grad.dtype == ember.float32 and b.grad.dtype == ember.float64


def test_split_shapes_match_torch():
    for n, size in [(5, 2), (6, 3), (0, 2), (3, 3)]:
        e = [tuple(p.shape) for p in ember.zeros(n, 2).split(size)]
        t = [tuple(p.shape) for p in torch.zeros(n, 2).split(size)]
        assert e == t
    for n, c in [(5, 3), (6, 4), (0, 3), (1, 2)]:
        assert [tuple(p.shape) for p in ember.zeros(n).chunk(c)] == [tuple(p.shape) for p in torch.zeros(n).chunk(c)]


def test_split_piece_gradients_independent():
    x = ember.randn(6, requires_grad=True)
    a, b, c = x.split(2)
    (b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 0, 3, 3, 0, 0])


def test_T_reverses_all_dims_and_0d():
    assert ember.zeros(2, 3, 4).T.shape == (4, 3, 2)
    assert ember.zeros(3).T.shape == (3,)
    assert ember.tensor(1.0).T.shape == ()


def test_clone_is_a_copy_and_contiguous_returns_self():
    x = ember.randn(3, 4)
    y = x.clone()
    y.data[0, 0] = 100.0
    assert x.data[0, 0] != 100.0
    assert x.contiguous() is x
    assert x.is_contiguous() and not x.T.is_contiguous() and x.T.contiguous().is_contiguous()


def test_reshape_shares_data_and_roundtrip_grad():
    x = ember.randn(2, 3, requires_grad=True)
    y = x.view(3, 2).view(6).reshape(2, 3)
    assert y is not x
    (y * ember.arange(6.0).reshape(2, 3)).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.arange(6.0).reshape(2, 3))


def test_pad_double_backward():
    x = ember.randn(3, 4, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda t: ember.pad(t, (1, -1, 2, 0)) ** 2, (x,))
    assert ember.autograd.gradgradcheck(lambda t: ember.pad(t, (1, 2), mode="reflect") ** 2, (x,))


ERRORS = [
    (lambda: ember.zeros(2, 3).reshape(4, 2), r"reshape: shape \[4, 2\] is invalid for a tensor of 6 elements"),
    (lambda: ember.zeros(2, 3).reshape(-1, -1), "reshape: shape"),
    (lambda: ember.zeros(2, 3).view(4, -1), "invalid for a tensor of 6"),
    (lambda: ember.zeros(0, 3).reshape(-1, 0), "reshape"),
    (lambda: ember.zeros(2, 3).expand(3), "fewer dims"),
    (lambda: ember.zeros(2, 3).expand(4, 3), r"size of dim 0 \(2\) must match"),
    (lambda: ember.zeros(2, 3).permute(0), r"permute: got 1 dims \[0\] for a tensor with 2 dims"),
    (lambda: ember.zeros(2, 3).permute(0, 0), "repeat a dimension"),
    (lambda: ember.zeros(2, 3).transpose(0, 2), r"transpose: dimension 2 is out of range .* \[-2, 1\]"),
    (lambda: ember.zeros(2, 3).unsqueeze(4), "unsqueeze: dimension 4 is out of range"),
    (lambda: ember.zeros(2, 3).squeeze(2), "squeeze: dimension 2 is out of range"),
    (lambda: ember.zeros(2, 3, 4).flatten(2, 1), r"flatten: start_dim \(2\) cannot come after end_dim"),
    (lambda: ember.zeros(2, 12).unflatten(1, (5, -1)), r"unflatten: sizes \[5, -1\]"),
    (lambda: ember.zeros(2, 3).repeat(2), r"repeat: number of repeat dims \[2\] can not be smaller"),
    (lambda: ember.zeros(2, 3).repeat(-1, 1), "non-negative"),
    (lambda: ember.zeros(2, 3).flip((0, -2)), "flip: dims .* repeat"),
    (lambda: ember.zeros(2, 3).roll((1, 2), 0), "same length"),
    (lambda: ember.zeros(2, 3, 4).t(), r"t\(\) expects a tensor with <= 2 dimensions.*\(2, 3, 4\)"),
    (lambda: ember.zeros(3).mT, "at least 2 dims"),
    (lambda: ember.cat([ember.zeros(2, 3), ember.zeros(2, 4)]),
     r"cat: sizes of tensors must match except in dimension 0: expected size 3 but got size 4 .*\(2, 3\) and \(2, 4\)"),
    (lambda: ember.cat([ember.zeros(2, 3), ember.zeros(3)]), "same number of dims"),
    (lambda: ember.cat([ember.tensor(1.0)]), "zero-dimensional tensor"),
    (lambda: ember.cat([]), "non-empty"),
    (lambda: ember.cat(ember.zeros(3)), "list or tuple"),
    (lambda: ember.cat([ember.zeros(2), 3]), "element 1 .* not a Tensor"),
    (lambda: ember.cat([ember.zeros(2, 3)], dim=2), "cat: dimension 2 is out of range"),
    (lambda: ember.stack([ember.zeros(2, 3), ember.zeros(2, 4)]),
     r"stack expects each tensor to be equal size, but got \[2, 3\] at entry 0 and \[2, 4\] at entry 1"),
    (lambda: ember.zeros(5).split([2, 2]), r"split sizes \[2, 2\] must be non-negative and sum exactly to 5"),
    (lambda: ember.zeros(5).split(0), "split_size must be positive"),
    (lambda: ember.tensor(1.0).split(1), "0-d"),
    (lambda: ember.zeros(5).chunk(0), "greater than 0"),
    (lambda: ember.tensor(1.0).unbind(), "0-d"),
    (lambda: ember.pad(ember.zeros(2, 3), (1,)), "even length"),
    (lambda: ember.pad(ember.zeros(3), (1, 1, 1, 1)), "at most 2 \\* ndim"),
    (lambda: ember.pad(ember.zeros(2, 3), (1, 1), mode="wrap"), "mode must be one of"),
    (lambda: ember.pad(ember.zeros(2, 3), (-2, -2)), "negative size"),
    (lambda: ember.pad(ember.zeros(2, 3), (3, 0), mode="reflect"), "reflect padding .* at most 2"),
    (lambda: ember.pad(ember.zeros(2, 3), (-1, 0), mode="replicate"), "only supported in 'constant' mode"),
]


@pytest.mark.parametrize("fn,match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_shape_errors(fn, match):
    with pytest.raises(ember.OpError, match=match):
        fn()


@pytest.mark.parametrize("src,dst,shape", [
    ("float32", "int32", (2, 3)), ("float32", "int16", (2, 3)), ("float64", "float32", (3,)),
    ("int8", "int16", (2, 4)), ("uint8", "bool", (5,)), ("int16", "float32", (2, 2)), ("float32", "float32", (3,)),
])
def test_view_dtype_reinterprets_bits_like_torch(src, dst, shape):
    a = (np.arange(int(np.prod(shape))) + 1).astype(src).reshape(shape)
    if dst == "bool":
        a = a % 2
    x = ember.tensor(a, requires_grad=a.dtype.kind == "f")
    y = x.view(getattr(ember, dst))
    ty = torch.tensor(a).view(getattr(torch, dst))
    assert y.dtype == getattr(ember, dst) and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    assert np.shares_memory(y.data, x.data)


def test_view_dtype_keyword_and_errors():
    np.testing.assert_array_equal(ember.tensor([1.0, 2.0]).view(dtype=ember.int32).numpy(), [1065353216, 1073741824])
    for fn, match in [(lambda: ember.ones(3, dtype=ember.int8).view(ember.int16), "divisible by 2.*got 3"),
                      (lambda: ember.ones(()).view(ember.int16), "0-dim"),
                      (lambda: ember.ones(4, 4)[:, ::2].view(ember.int16), "must be contiguous")]:
        with pytest.raises(ember.OpError, match=match):
            fn()


def test_shape_args_accepts_ints_sequences_and_size():
    from ember.ops.shape import _shape_args
    for args in [(2, 3), ((2, 3),), ([2, 3],), (ember.Size([2, 3]),), (np.int64(2), ember.tensor(3))]:
        assert _shape_args(args, "zeros") == (2, 3)
    assert _shape_args((-1, 4), "reshape", lowest=-1) == (-1, 4)
    assert _shape_args((-1, 0), "permute", lowest=None) == (-1, 0)


@pytest.mark.parametrize("fn,exc,match", [
    (lambda: ember.ones(6).reshape(2.5, 2), TypeError, r"reshape: sizes must be integers, got 2\.5"),
    (lambda: ember.ones(6).reshape((3, True)), TypeError, "reshape: sizes must be integers, got True"),
    (lambda: ember.ones(2).repeat(2, "3"), TypeError, "repeat: sizes must be integers"),
    (lambda: ember.ones(4).reshape(-2, 2), ember.OpError, r"reshape: invalid size -2 at index 0 .*>= -1"),
    (lambda: ember.ones(4).repeat(-1), ember.OpError, "repeat: invalid size -1 .*non-negative"),
])
def test_shape_args_errors(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_split_is_one_node_whose_unused_pieces_get_zero_gradient():
    x = ember.randn(3, 7, dtype=ember.float64, requires_grad=True)
    pieces = x.split([2, 0, 5], dim=1)
    assert len({id(p.grad_fn) for p in pieces}) == 1
    (pieces[2] ** 2).sum().backward()
    expected = np.zeros((3, 7))
    expected[:, 2:] = 2 * x.detach().numpy()[:, 2:]
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_split_second_order_and_unbind_match_torch():
    xs = np.random.default_rng(0).standard_normal((4, 3))
    res = []
    for m in (ember, torch):
        x = m.tensor(xs, requires_grad=True)
        a, b = x.chunk(2, dim=0)
        rows = x.unbind(1)
        y = (a.exp() * b).sum() + (rows[0] * rows[2]).sum()
        (g,) = m.autograd.grad(y, x, create_graph=True)
        (g2,) = m.autograd.grad((g ** 2).sum(), x)
        res.append((g.detach().numpy(), g2.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12)


def test_inplace_write_into_a_split_piece_is_seen_by_saved_tensors():
    x = ember.ones(4, requires_grad=True)
    h = x * 1
    y = (h * h).sum()
    a, _ = h.split(2)
    with ember.no_grad():
        a.mul_(3)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()
