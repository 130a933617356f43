"""Autograd engine: accumulation, retain_graph, hooks, higher order, custom Functions, errors."""
import gc
import weakref

import numpy as np
import pytest
import torch

import ember
from ember.autograd import Function


def test_accumulates_into_leaves_across_backward_calls():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_shared_leaf_grads_do_not_alias():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = ember.tensor([1.0, 2.0], requires_grad=True)
    (x + y).sum().backward()
    x.grad.mul_(10)
    np.testing.assert_allclose(y.grad.numpy(), [1, 1])


def test_backward_needs_gradient_for_non_scalar():
    x = ember.ones(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar outputs.*\(2, 3\)"):
        y.backward()
    y.backward(ember.ones(2, 3))
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 2.0))


def test_backward_gradient_shape_mismatch_is_explained():
    x = ember.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\).*\(2, 3\)"):
        (x * 2).backward(ember.ones(3))


def test_backward_on_tensor_without_grad_explains():
    x = ember.ones(3)
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()


def test_backward_through_freed_graph_explains_and_retain_graph_allows():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_graph_is_freed_after_backward():
    x = ember.randn(1000, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert not hasattr(node, "out_data")


def test_no_reference_cycles_keep_big_intermediates_alive():
    x = ember.randn(100, requires_grad=True)
    y = x.exp()
    ref = weakref.ref(y)
    loss = y.sum()
    del y
    gc.disable()
    try:
        del loss
        assert ref() is None
    finally:
        gc.enable()


def test_long_chain_backprop_without_recursion_error():
    x = ember.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    y.sum().backward()
    assert x.grad.item() == 1.0
    del y   # and freeing the chain must not overflow the C stack


def test_diamond_graph_sums_paths():
    x = ember.tensor(2.0, requires_grad=True)
    a = x * 3
    b = x * x
    (a * b).backward()        # d/dx 3x^3 = 9x^2
    assert x.grad.item() == pytest.approx(36.0)


def test_no_grad_and_enable_grad_and_decorators():
    x = ember.ones(2, requires_grad=True)
    with ember.no_grad():
        assert not (x * 2).requires_grad
        with ember.enable_grad():
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad

    @ember.no_grad()
    def f(t):
        return t * 2

    @ember.no_grad
    def g(t):
        return t * 2
    assert not f(x).requires_grad and not g(x).requires_grad
    assert ember.is_grad_enabled()
    ember.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    ember.set_grad_enabled(True)
    with ember.set_grad_enabled(False):
        assert not ember.is_grad_enabled()
    assert ember.is_grad_enabled()

    @ember.set_grad_enabled(False)
    def h(t):
        return t * 2
    assert ember.is_grad_enabled() and not h(x).requires_grad


def test_leaf_hook_can_replace_gradient_and_be_removed():
    x = ember.ones(3, requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 2)
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6, 6, 6])
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3, 3])
    assert len(seen) == 1


def test_non_leaf_hook_and_retain_grad():
    x = ember.ones(3, requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g + 1)
    (y * y).sum().backward()
    # dL/dy = 2y = 4, hook makes it 5 for the rest of the graph; retained grad is the hooked one as in PyTorch
    np.testing.assert_allclose(x.grad.numpy(), [10, 10, 10])
    np.testing.assert_allclose(y.grad.numpy(), [5, 5, 5])
    assert y.retains_grad


def test_autograd_grad_does_not_touch_dot_grad_and_matches_torch_higher_order():
    xs = np.array([0.3, -1.2, 2.0])
    x = ember.tensor(xs, requires_grad=True)
    y = (x.exp() * x * x).sum()
    (g1,) = ember.autograd.grad(y, x, create_graph=True)
    (g2,) = ember.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = ember.autograd.grad(g2.sum(), x)
    assert x.grad is None
    tx = torch.tensor(xs, requires_grad=True)
    ty = (tx.exp() * tx * tx).sum()
    (t1,) = torch.autograd.grad(ty, tx, create_graph=True)
    (t2,) = torch.autograd.grad(t1.sum(), tx, create_graph=True)
    (t3,) = torch.autograd.grad(t2.sum(), tx)
    for e, t in ((g1, t1), (g2, t2), (g3, t3)):
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-12)


def test_autograd_grad_non_leaf_input_and_unused():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    z = ember.tensor([1.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    gh, gz = ember.autograd.grad(y, [h, z], allow_unused=True)
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])
    assert gz is None
    with pytest.raises(RuntimeError, match="not used"):
        ember.autograd.grad((x * 2).sum(), [z])


def test_backward_inputs_argument_limits_accumulation():
    x = ember.tensor([1.0], requires_grad=True)
    w = ember.tensor([2.0], requires_grad=True)
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None and w.grad.item() == 1.0


def test_create_graph_backward_gives_differentiable_grad():
    x = ember.tensor(3.0, requires_grad=True)
    (x ** 3).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.backward()
    assert x.grad.item() == pytest.approx(18.0)


class _Cube(Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return x ** 3 * k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2 * ctx.k, None


class _SplitSign(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0) if hasattr(x, "clamp") else x * (x > 0), x * 2

    @staticmethod
    def backward(ctx, g_pos, g_double):
        (x,) = ctx.saved_tensors
        return g_pos * (x > 0) + g_double * 2


def test_custom_function_with_extra_args_and_gradcheck():
    x = ember.randn(4, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradcheck(lambda t: _Cube.apply(t, 2.0), (x,))
    y = _Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "<_CubeBackward>"


def test_custom_function_multiple_outputs_one_unused():
    x = ember.tensor([-1.0, 2.0], requires_grad=True)
    pos, dbl = _SplitSign.apply(x)
    pos.sum().backward()                       # dbl unused: its grad is materialised as zeros
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 1.0])


def test_custom_function_backward_runs_once_through_freed_graph():
    x = ember.tensor([1.0], requires_grad=True)
    y = _Cube.apply(x, 1.0)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()


def test_gradcheck_detects_wrong_gradient():
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3
    x = ember.randn(3, dtype=ember.float64, requires_grad=True)
    with pytest.raises(ember.autograd.GradcheckError, match="Jacobian mismatch"):
        ember.autograd.gradcheck(Wrong.apply, (x,))
    assert ember.autograd.gradcheck(Wrong.apply, (x,), raise_exception=False) is False


def test_gradgradcheck():
    x = ember.randn(3, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda t: (t * t * t).sum(), (x,))


def test_inplace_on_leaf_requiring_grad_is_refused_but_allowed_under_no_grad():
    w = ember.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1)
    with ember.no_grad():
        w.add_(1)
    np.testing.assert_allclose(w.detach().numpy(), [2, 2, 2])


def test_modifying_saved_tensor_is_detected():
    x = ember.ones(3, requires_grad=True)
    h = x * 1.0
    y = h * h
    h.data[...] = 5
    h._bump()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="floating point"):
        ember.tensor([1, 2], requires_grad=True)


def test_detach_cuts_graph_and_shares_data():
    x = ember.ones(2, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert d.data is y.data


def test_hook_returned_tensor_is_never_adopted_as_grad():
    x = ember.ones(3, requires_grad=True)
    held = ember.ones(3)
    x.register_hook(lambda g: held)
    (x * 2).sum().backward()
    (x * 2).sum().backward()
    np.testing.assert_allclose(held.numpy(), [1, 1, 1])
    np.testing.assert_allclose(x.grad.numpy(), [2, 2, 2])


def test_backward_inputs_does_not_alias_the_given_gradient():
    x = ember.ones(3, requires_grad=True)
    G = ember.ones(3)
    z = x.reshape(1, 3).reshape(3)
    z.backward(G, inputs=[x], retain_graph=True)
    z.backward(G)
    np.testing.assert_allclose(G.numpy(), [1, 1, 1])
    np.testing.assert_allclose(x.grad.numpy(), [2, 2, 2])


def test_custom_function_wrong_gradients_are_explained():
    class TooMany(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g.reshape(1)

    x = ember.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="returned 2 gradients, but forward took 1"):
        TooMany.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match=r"shape \(1,\) for argument 0, which has shape \(3,\)"):
        BadShape.apply(x).backward()


def test_custom_function_without_tensor_outputs_and_materialize_grads():
    class Count(Function):
        @staticmethod
        def forward(ctx, x):
            return int(x.data.size)

        @staticmethod
        def backward(ctx, g):  # pragma: no cover - never called
            return None

    assert Count.apply(ember.ones(4, requires_grad=True)) == 4
    seen = []

    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 1, x * 2

        @staticmethod
        def backward(ctx, ga, gb):
            seen.append(gb)
            return ga

    x = ember.ones(2, requires_grad=True)
    a, _ = Two.apply(x)
    a.sum().backward()
    assert seen == [None] and x.grad.tolist() == [1.0, 1.0]
