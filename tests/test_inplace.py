"""In-place ops: recorded in the graph when needed, version counters shared by views, PyTorch's dtype rules."""
import numpy as np
import pytest
import torch

import ember


def _both(fn):
    return fn(ember), fn(torch)


@pytest.mark.parametrize("case", [
    lambda m, x: (x * 2).mul_(3),
    lambda m, x: (x * 2).add_(x, alpha=2),
    lambda m, x: (x * 2).sub_(1.5),
    lambda m, x: (x * 2).div_(x + 1),
    lambda m, x: (x * 2).clamp_(0.5, 2.5),
    lambda m, x: (x * 1).pow_(3),
], ids=["mul_", "add_alpha", "sub_", "div_", "clamp_", "pow_"])
def test_inplace_on_non_leaf_is_differentiated_like_torch(case):
    xs = np.array([0.3, 1.2, -0.7])
    outs = []
    for m in (ember, torch):
        x = m.tensor(xs, requires_grad=True)
        y = case(m, x)
        (y * y).sum().backward()
        outs.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-12)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-12)


def test_inplace_through_a_slice_reaches_the_base_gradient():
    e, t = [], []
    for m, out in ((ember, e), (torch, t)):
        x = m.ones(4, requires_grad=True)
        y = x * 1
        y[1:3].mul_(3)
        y.sum().backward()
        out.append(x.grad.numpy())
    np.testing.assert_allclose(e[0], t[0])


def test_fill_and_copy_on_graph_tensors_cut_the_gradient_of_the_old_value():
    x = ember.ones(3, requires_grad=True)
    s = ember.full((3,), 2.0, requires_grad=True)
    y = x * 2
    y.copy_(s)
    (y * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 0])
    np.testing.assert_allclose(s.grad.numpy(), [3, 3, 3])
    z = x * 1
    z.zero_()
    assert z.requires_grad and z.sum().item() == 0


@pytest.mark.parametrize("modify", [
    lambda a: a.reshape(3, 1).mul_(5),
    lambda a: a[0:2].mul_(5),
    lambda a: a.detach().mul_(0),
    lambda a: a.t().add_(1) if a.ndim == 2 else a.unsqueeze(0).add_(1),
], ids=["reshape_view", "slice_view", "detach", "unsqueeze_view"])
def test_modifying_a_saved_tensor_through_a_view_is_detected(modify):
    x = ember.ones(3, requires_grad=True)
    a = x * 1
    c = a * a
    modify(a)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        c.sum().backward()


@pytest.mark.parametrize("fn,match", [
    (lambda: ember.tensor([1]).add_(1.5), "can't be cast to the desired output type ember.int64"),
    (lambda: ember.tensor([1]).mul_(1.5), "can't be cast"),
    (lambda: ember.tensor([True]).add_(2), "can't be cast"),
    (lambda: ember.tensor([1, 2]).clamp_(0.5, 2.5), "can't be cast"),
    (lambda: ember.tensor([1, 2]).div_(2), "can't be cast"),
    (lambda: ember.ones(3).add_(ember.ones(4)), r"\(3,\).*\(4,\)"),
    (lambda: ember.ones(3).add_(ember.ones(2, 3)), r"result has shape \(2, 3\).*shape \(3,\)"),
    (lambda: ember.ones(3).copy_(ember.ones(4)), r"copy_: .*\(4,\).*\(3,\)"),
])
def test_inplace_errors_like_torch(fn, match):
    with pytest.raises(ember.OpError, match=match):
        fn()


def test_inplace_operators_keep_the_object_and_its_dtype():
    p = ember.nn.Parameter(ember.ones(3))
    ident = id(p)
    with ember.no_grad():
        p -= 0.5 * ember.ones(3)
        p *= 2
        p /= 4
        p += 1
    assert id(p) == ident and isinstance(p, ember.nn.Parameter)
    np.testing.assert_allclose(p.detach().numpy(), [1.25, 1.25, 1.25])
    i = ember.arange(3)
    i += 2
    assert i.dtype == ember.int64 and i.tolist() == [2, 3, 4]


def test_inplace_on_leaf_requiring_grad_refused_but_fine_under_no_grad():
    w = ember.ones(2, requires_grad=True)
    for op in (lambda: w.mul_(2), lambda: w.add_(1), lambda: w.zero_(), lambda: w.fill_(3)):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            op()
    with ember.no_grad():
        w.mul_(3)
    assert w.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("fn", [
    lambda m: m.ones(2, dtype=m.float16) * m.tensor(2.0, dtype=m.float64),
    lambda m: m.ones(2, dtype=m.int32) + m.tensor(2),
    lambda m: m.ones(2, dtype=m.int32) + m.tensor(2.5, dtype=m.float64),
    lambda m: m.tensor(2) + m.tensor(2.5, dtype=m.float64),
    lambda m: m.ones(2) + np.float64(2),
    lambda m: np.float64(2) * m.ones(2),
    lambda m: m.arange(3) * np.float32(1.5),
], ids=["0d_f64_no_widen", "0d_i64_no_widen", "0d_higher_category", "both_0d", "np_f64_scalar",
        "np_scalar_left", "np_f32_on_int"])
def test_zero_dim_tensors_and_numpy_scalars_promote_like_torch(fn):
    e, t = _both(fn)
    assert e.dtype.name == str(t.dtype).replace("torch.", "")
    np.testing.assert_allclose(e.numpy().astype(float), t.numpy().astype(float))


@pytest.mark.parametrize("write", [
    lambda m, y: y.reshape(3, 2).mul_(m.tensor([[1., 2.], [3., 4.], [5., 6.]])),
    lambda m, y: y.t()[0].mul_(5),
    lambda m, y: y.permute(1, 0).add_(m.ones(3, 2)),
    lambda m, y: y.transpose(0, 1)[1:].mul_(2),
    lambda m, y: y.unsqueeze(0)[0, 1].sub_(4),
], ids=["reshape", "t_then_index", "permute", "transpose_slice", "unsqueeze_index"])
def test_recorded_write_through_view_chains_updates_the_base_like_torch(write):
    res = []
    for m in (ember, torch):
        x = m.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
        y = x * 1
        write(m, y)
        (y * y).sum().backward()
        res.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0])
    np.testing.assert_allclose(res[0][1], res[1][1])


def test_modifying_a_saved_output_without_recording_is_detected():
    x = ember.ones(3, requires_grad=True)
    y = x.exp()
    with ember.no_grad():
        y.mul_(2)            # writes into the very array ExpBackward kept
    with pytest.raises(RuntimeError, match="output, saved for the gradient, was modified"):
        y.sum().backward()
