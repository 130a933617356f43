"""Convolutions: forward and gradient parity with PyTorch, float64 gradchecks, second derivatives, errors."""
import numpy as np
import pytest
import torch

import ember
from ember.backend import onednn
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)


@pytest.fixture(autouse=True, params=["onednn", "im2col"])
def kernels(request):
    """Every test here runs on both float32 kernel sets: oneDNN's (when installed) and the portable im2col one."""
    if request.param == "onednn" and not onednn.available():
        pytest.skip("oneDNN (onednn-cpu-gomp) is not installed")
    before, onednn.enabled = onednn.enabled, request.param == "onednn"
    yield request.param
    onednn.enabled = before

F = torch.nn.functional


def _c2(**kw):
    return (lambda *a: ember.conv2d(*a, **kw)), (lambda *a: F.conv2d(*a, **kw))


def _c1(**kw):
    return (lambda *a: ember.conv1d(*a, **kw)), (lambda *a: F.conv1d(*a, **kw))


def _ct(**kw):
    return (lambda *a: ember.conv_transpose2d(*a, **kw)), (lambda *a: F.conv_transpose2d(*a, **kw))


def _ct1(**kw):
    return (lambda *a: ember.conv_transpose1d(*a, **kw)), (lambda *a: F.conv_transpose1d(*a, **kw))


# (name, (ember_fn, torch_fn), input specs)
CONV2D = [
    ("basic", _c2(), [(2, 3, 5, 7), (4, 3, 3, 3), (4,)]),
    ("nobias", _c2(), [(2, 3, 5, 7), (4, 3, 3, 3)]),
    ("batch1", _c2(), [(1, 2, 5, 7), (3, 2, 3, 2), (3,)]),
    ("unbatched", _c2(padding=1), [(2, 5, 4), (3, 2, 3, 3), (3,)]),
    ("stride2", _c2(stride=2), [(2, 2, 5, 7), (3, 2, 3, 3), (3,)]),
    ("stride_tuple", _c2(stride=(1, 2), padding=(0, 1)), [(1, 2, 5, 7), (3, 2, 2, 3)]),
    ("pad1", _c2(padding=1), [(2, 2, 5, 7), (3, 2, 3, 3), (3,)]),
    ("pad_stride2", _c2(padding=1, stride=2), [(1, 2, 5, 7), (2, 2, 3, 3), (2,)]),
    ("same", _c2(padding="same"), [(2, 2, 5, 7), (3, 2, 3, 3), (3,)]),
    ("same_even_kernel", _c2(padding="same"), [(1, 2, 5, 7), (3, 2, 2, 4)]),
    ("same_dilated", _c2(padding="same", dilation=2), [(1, 2, 5, 7), (2, 2, 3, 2), (2,)]),
    ("valid", _c2(padding="valid"), [(1, 2, 5, 7), (2, 2, 3, 3)]),
    ("dilation2", _c2(dilation=2), [(2, 2, 5, 7), (3, 2, 2, 3), (3,)]),
    ("dilation_stride_pad", _c2(dilation=2, stride=2, padding=1), [(1, 2, 5, 7), (2, 2, 3, 3), (2,)]),
    ("groups2", _c2(groups=2), [(2, 4, 5, 7), (6, 2, 3, 3), (6,)]),
    ("groups2_all", _c2(groups=2, stride=2, padding=1, dilation=2), [(1, 4, 5, 7), (2, 2, 3, 2), (2,)]),
    ("depthwise", _c2(groups=3, padding=1), [(2, 3, 5, 7), (3, 1, 3, 3), (3,)]),
    ("depthwise_mult2", _c2(groups=3, padding="same"), [(1, 3, 5, 7), (6, 1, 3, 3)]),
    ("pointwise", _c2(), [(2, 3, 5, 7), (4, 3, 1, 1), (4,)]),
    ("kernel_full", _c2(), [(1, 2, 3, 3), (2, 2, 3, 3)]),
    ("weight_only", _c2(), [Arr(np.ones((1, 2, 5, 5)), grad=False), (2, 2, 3, 3)]),
    ("input_only", _c2(padding=1), [(1, 2, 5, 5), Arr(np.ones((2, 2, 3, 3)), grad=False)]),
]

CONV1D = [
    ("basic", _c1(), [(2, 3, 7), (4, 3, 3), (4,)]),
    ("batch1_nobias", _c1(), [(1, 2, 7), (3, 2, 2)]),
    ("unbatched", _c1(padding=1), [(2, 7), (3, 2, 3)]),
    ("stride_pad_dil", _c1(stride=2, padding=1, dilation=2), [(2, 2, 9), (3, 2, 3), (3,)]),
    ("same", _c1(padding="same"), [(2, 2, 7), (3, 2, 4), (3,)]),
    ("valid_groups", _c1(padding="valid", groups=2), [(2, 4, 7), (4, 2, 3)]),
    ("depthwise", _c1(groups=3, padding=1), [(1, 3, 7), (3, 1, 3), (3,)]),
]

CONVT = [
    ("basic", _ct(), [(2, 3, 5, 7), (3, 4, 3, 3), (4,)]),
    ("nobias_batch1", _ct(), [(1, 2, 5, 7), (2, 3, 3, 2)]),
    ("unbatched", _ct(stride=2), [(2, 3, 4), (2, 3, 3, 3), (3,)]),
    ("stride2", _ct(stride=2), [(2, 2, 5, 7), (2, 3, 3, 3), (3,)]),
    ("stride2_pad1_outpad1", _ct(stride=2, padding=1, output_padding=1), [(1, 2, 5, 7), (2, 3, 3, 3), (3,)]),
    ("stride_tuple", _ct(stride=(2, 1), padding=(1, 0), output_padding=(1, 0)), [(1, 2, 5, 7), (2, 2, 3, 2)]),
    ("dilation2", _ct(dilation=2, padding=1), [(2, 2, 5, 7), (2, 3, 3, 3), (3,)]),
    ("dilation_outpad", _ct(dilation=2, stride=1, output_padding=1), [(1, 2, 5, 7), (2, 2, 2, 3)]),
    ("groups2", _ct(groups=2, stride=2, padding=1), [(2, 4, 5, 7), (4, 3, 3, 3), (6,)]),
    ("depthwise", _ct(groups=3, stride=2), [(1, 3, 5, 7), (3, 1, 3, 3), (3,)]),
    ("kernel4_stride2", _ct(stride=2, padding=1), [(1, 2, 3, 3), (2, 2, 4, 4), (2,)]),
]

CONVT1D = [
    ("basic", _ct1(), [(2, 3, 7), (3, 4, 3), (4,)]),
    ("unbatched_stride2", _ct1(stride=2), [(2, 5), (2, 3, 3), (3,)]),
    ("pad_outpad_dil", _ct1(stride=2, padding=1, output_padding=1, dilation=2), [(1, 2, 6), (2, 3, 3)]),
    ("groups2", _ct1(groups=2, stride=3), [(2, 4, 5), (4, 2, 2), (4,)]),
]

CASES = ([(f"conv2d_{n}", *fns, s) for n, fns, s in CONV2D] + [(f"conv1d_{n}", *fns, s) for n, fns, s in CONV1D]
         + [(f"conv_transpose2d_{n}", *fns, s) for n, fns, s in CONVT]
         + [(f"conv_transpose1d_{n}", *fns, s) for n, fns, s in CONVT1D])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,ef,tf,specs", CASES, ids=[c[0] for c in CASES])
def test_conv_ops(name, ef, tf, specs):
    check_op(ef, tf, specs, atol=1e-4)


@pytest.mark.parametrize("fn,shapes", [
    (lambda x, w, b: ember.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2), groups=2),
     [(1, 2, 4, 5), (2, 1, 2, 2), (2,)]),
    (lambda x, w, b: ember.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
     [(1, 2, 3, 3), (2, 1, 2, 2), (2,)]),
    (lambda x, w, b: ember.conv1d(x, w, b, padding="same"), [(1, 2, 5), (2, 2, 3), (2,)]),
], ids=["conv2d", "conv_transpose2d", "conv1d"])
def test_conv_gradgradcheck(fn, shapes):
    rng = np.random.default_rng(0)
    inputs = [ember.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    assert ember.autograd.gradgradcheck(fn, inputs)


def test_conv_double_backward_matches_torch():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 4, 5, 7)), rng.standard_normal((4, 2, 3, 3))
    results = []
    for lib, conv in ((ember, ember.conv2d), (torch, F.conv2d)):
        xt, wt = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
        y = conv(xt, wt, stride=2, padding=1, groups=2)
        gx, gw = lib.autograd.grad((y * y).sum(), (xt, wt), create_graph=True)
        results.append([g.detach().numpy() for g in lib.autograd.grad((gx * gx).sum() + (gw ** 3).sum(), (xt, wt))])
    for e, t in zip(*results):
        np.testing.assert_allclose(e, t, rtol=1e-8, atol=1e-8)


def test_conv2d_no_grad_and_dtype():
    x, w = ember.randn(1, 2, 5, 5, dtype=ember.float64), ember.randn(3, 2, 3, 3, dtype=ember.float64)
    with ember.no_grad():
        y = ember.conv2d(x, w, padding="same")
    assert y.shape == (1, 3, 5, 5) and y.dtype == ember.float64 and not y.requires_grad


@pytest.mark.parametrize("call,match", [
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 2, 3, 3)),
     r"conv2d: input \(1, 3, 5, 5\) and weight \(4, 2, 3, 3\).*2 channels, got 3"),
    (lambda: ember.conv2d(ember.ones(1, 4, 5, 5), ember.ones(3, 2, 3, 3), groups=2),
     r"conv2d: groups=2 must divide the output channels.*\(1, 4, 5, 5\).*\(3, 2, 3, 3\)"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 1, 3, 3), groups=2),
     r"conv2d: groups=2 must divide the input channels \(3\)"),
    (lambda: ember.conv2d(ember.ones(1, 3, 2, 2), ember.ones(4, 3, 3, 3)), r"conv2d: .*output would be empty"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3)), r"conv2d: expected a 4-D weight"),
    (lambda: ember.conv2d(ember.ones(5, 5), ember.ones(4, 3, 3, 3)), r"conv2d: expected a 4-D \(batched\)"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3, 3), ember.ones(3)),
     r"conv2d: expected a bias of shape \(4,\)"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3, 3), stride=2, padding="same"),
     r"conv2d: padding='same' is not supported for strided"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3, 3), padding="full"),
     r"conv2d: padding must be an int, a tuple, 'same' or 'valid'"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3, 3, dtype=ember.float64)),
     r"conv2d: input dtype"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3, 3), stride=(1, 2, 3)),
     r"conv2d: stride must be an int or a tuple of 2 ints"),
    (lambda: ember.conv2d(ember.ones(1, 3, 5, 5), ember.ones(4, 3, 3, 3), stride=0),
     r"conv2d: stride and dilation must be positive"),
    (lambda: ember.conv1d(ember.ones(1, 3, 5), ember.ones(4, 2, 3)),
     r"conv1d: input \(1, 3, 5\) and weight \(4, 2, 3\)"),
    (lambda: ember.conv_transpose1d(ember.ones(1, 3, 5), ember.ones(2, 4, 3)),
     r"conv_transpose1d: input \(1, 3, 5\) and weight \(2, 4, 3\).*weight.shape\[0\]=2"),
    (lambda: ember.conv_transpose2d(ember.ones(1, 3, 5, 5), ember.ones(2, 4, 3, 3)),
     r"conv_transpose2d: input \(1, 3, 5, 5\) and weight \(2, 4, 3, 3\).*weight.shape\[0\]=2"),
    (lambda: ember.conv_transpose2d(ember.ones(1, 3, 5, 5), ember.ones(3, 4, 3, 3), groups=2),
     r"conv_transpose2d: groups=2 must divide the input channels \(3\)"),
    (lambda: ember.conv_transpose2d(ember.ones(1, 3, 5, 5), ember.ones(3, 4, 3, 3), stride=2, output_padding=2),
     r"conv_transpose2d: output_padding=\(2, 2\) must be smaller"),
])
def test_conv_errors(call, match):
    with pytest.raises(ember.OpError, match=match):
        call()


@pytest.mark.parametrize("kw,shapes", [
    (dict(padding=1), [(2, 3, 6, 5), (4, 3, 3, 3)]),
    (dict(stride=2, padding=(1, 0), dilation=(1, 2)), [(2, 4, 7, 8), (6, 4, 3, 2)]),
    (dict(groups=2, stride=2), [(1, 4, 6, 6), (4, 2, 3, 3)]),
    (dict(stride=2), [(2, 3, 5, 5), (4, 3, 1, 1)]),
    (dict(groups=3, padding="same"), [(2, 3, 5, 4), (3, 1, 3, 3)]),
])
def test_fused_backward_matches_recorded_ops(kw, shapes):
    """The plain backward (fused, reusing the forward's patch matrix) equals the op-by-op one of create_graph."""
    rng = np.random.default_rng(4)
    x, w, b = (ember.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes + [(shapes[1][0],)])
    for fn in (lambda: ember.conv2d(x, w, b, **kw),
               lambda: ember.conv_transpose2d(ember.conv2d(x, w, **kw), w, stride=kw.get("stride", 1),
                                              groups=kw.get("groups", 1))):
        fast = ember.autograd.grad((fn() ** 2).sum(), (x, w))
        slow = ember.autograd.grad((fn() ** 2).sum(), (x, w), create_graph=True)
        for a, c in zip(fast, slow):
            np.testing.assert_allclose(a.numpy(), c.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_kept_patch_matrices_are_not_shared():
    """Two live convolutions of the same shape keep separate patch matrices (the scratch pool must not reuse one)."""
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 6, 6), (2, 3, 6, 6), (4, 3, 3, 3))]
    grads = []
    for lib, conv in ((ember, ember.conv2d), (torch, F.conv2d)):
        x1, x2, w = (lib.tensor(a, requires_grad=True) for a in arrays)
        y = conv(x1, w, padding=1) * conv(x2, w, padding=1) + conv(x1 + x2, w, padding=1)
        y.sum().backward()
        grads.append([t.grad.numpy() for t in (x1, x2, w)])
    for e, t in zip(*grads):
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-4)


def test_frozen_weight_keeps_no_patch_matrix():
    x = ember.randn(1, 2, 5, 5, requires_grad=True)
    y = ember.conv2d(x, ember.randn(3, 2, 3, 3), padding=1)
    assert y.grad_fn.cols is None
    y.sum().backward()
    assert x.grad.shape == (1, 2, 5, 5)


def test_scratch_buffers_are_recycled_only_when_free():
    from ember.backend import scratch
    a = scratch(np, (3, 5), np.float32)
    assert a.shape == (3, 5) and a.dtype == np.float32
    held = scratch(np, (3, 5), np.float32)
    assert held is not a
    first = id(a)
    del a
    assert id(scratch(np, (3, 5), np.float32)) == first       # nothing holds it any more: handed out again
    view = held[1:]
    del held
    one, two = scratch(np, (3, 5), np.float32), scratch(np, (3, 5), np.float32)
    assert not np.shares_memory(one, view) and not np.shares_memory(two, view)     # a view still holds it


def test_scratch_pool_holds_at_most_its_byte_budget(monkeypatch):
    import ember.backend as backend
    monkeypatch.setattr(backend, "_SCRATCH_BYTES", 0)
    backend.scratch(np, (3, 7, 11), np.float64)                # 1848 bytes: over the budget, so not kept
    assert backend._scratch.buffers[((3, 7, 11), np.dtype(np.float64).str)] == []
