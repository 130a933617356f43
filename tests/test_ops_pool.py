"""Pooling and resizing: forward and gradient parity with PyTorch, ties, second derivatives, errors."""
import numpy as np
import pytest
import torch

import ember
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional


def distinct(*shape, seed=0):
    """Values spaced 0.05 apart in random order: max-pool windows have no ties, even under gradcheck's eps."""
    n = int(np.prod(shape))
    return Arr(np.random.default_rng(seed).permutation(n).reshape(shape) * 0.05 - n * 0.025)


def _pair(name, fe, ft, kw):
    return (name, lambda x, kw=kw: fe(x, **kw), lambda x, kw=kw: ft(x, **kw))


MAX2D = [
    ("k2", (2, 3, 6, 6), dict(kernel_size=2)),
    ("k3s2p1", (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("k3s2_ceil", (1, 2, 8, 7), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("k3s2p1_ceil", (2, 1, 6, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("rect", (2, 2, 7, 5), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    ("dilation", (1, 2, 9, 8), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ("dilation_rect_ceil", (2, 1, 9, 10), dict(kernel_size=(2, 3), stride=(2, 3), dilation=(3, 2), ceil_mode=True)),
    ("stride1", (1, 1, 5, 5), dict(kernel_size=2, stride=1)),
    ("unbatched", (3, 5, 5), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ("whole", (2, 2, 4, 3), dict(kernel_size=(4, 3))),
]
MAX1D = [
    ("k2", (2, 3, 8), dict(kernel_size=2)),
    ("k3s2p1_ceil", (1, 2, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("dilation", (2, 2, 11), dict(kernel_size=3, dilation=2, padding=1)),
    ("unbatched", (3, 7), dict(kernel_size=3, stride=2)),
]
AVG2D = [
    ("k2", (2, 3, 6, 6), dict(kernel_size=2)),
    ("k3s2p1", (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("k3s2p1_nopad", (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("ceil", (1, 2, 8, 7), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("ceil_pad", (2, 1, 6, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("ceil_pad_nopad", (2, 1, 6, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                          count_include_pad=False)),
    ("rect", (2, 2, 7, 5), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    ("divisor", (1, 3, 5, 5), dict(kernel_size=2, stride=1, divisor_override=3)),
    ("unbatched", (3, 5, 5), dict(kernel_size=2, padding=1)),
]
AVG1D = [
    ("k2", (2, 3, 8), dict(kernel_size=2)),
    ("k3s2p1_ceil", (1, 2, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("nopad", (2, 2, 9), dict(kernel_size=4, stride=3, padding=2, count_include_pad=False)),
    ("unbatched", (3, 7), dict(kernel_size=3, stride=2)),
]
ADAPTIVE = [
    ("divisible", (2, 3, 6, 8), (3, 4)),
    ("non_divisible", (2, 2, 7, 5), (3, 4)),
    ("upsample", (1, 2, 3, 2), (5, 4)),
    ("global", (2, 3, 5, 5), 1),
    ("none", (2, 1, 5, 7), (None, 3)),
    ("unbatched", (3, 9, 7), 4),
]
INTERP = [
    ("nearest_size", (2, 2, 5, 4), dict(size=(7, 9))),
    ("nearest_down", (1, 2, 9, 8), dict(size=(4, 3))),
    ("nearest_scale2", (2, 1, 3, 4), dict(scale_factor=2)),
    ("nearest_scale_frac", (1, 2, 5, 6), dict(scale_factor=(1.5, 0.7))),
    ("bilinear", (2, 2, 5, 4), dict(size=(7, 9), mode="bilinear", align_corners=False)),
    ("bilinear_default", (1, 2, 4, 4), dict(scale_factor=2, mode="bilinear")),
    ("bilinear_corners", (2, 1, 5, 4), dict(size=(8, 3), mode="bilinear", align_corners=True)),
    ("bilinear_corners_scale", (1, 2, 4, 5), dict(scale_factor=1.7, mode="bilinear", align_corners=True)),
    ("bilinear_down", (1, 1, 9, 7), dict(size=(4, 3), mode="bilinear")),
    ("bilinear_to_1", (1, 2, 4, 5), dict(size=(1, 1), mode="bilinear", align_corners=True)),
    ("bilinear_same_size_axis", (1, 2, 5, 4), dict(scale_factor=(1.1, 2.0), mode="bilinear")),
    ("nearest_double_frac_scale", (2, 1, 2, 3), dict(scale_factor=(2.3, 1.4))),
    ("nearest_recompute", (1, 2, 5, 7), dict(scale_factor=(1.3, 0.6), recompute_scale_factor=True)),
    # 3-D (N, C, L)
    ("1d_nearest_size_up", (2, 3, 5), dict(size=11)),
    ("1d_nearest_size_down", (1, 2, 9), dict(size=(4,))),
    ("1d_nearest_scale_up", (2, 2, 5), dict(scale_factor=2.5)),
    ("1d_nearest_scale_down", (1, 3, 9), dict(scale_factor=(0.6,))),
    ("1d_nearest_recompute", (2, 2, 7), dict(scale_factor=1.7, recompute_scale_factor=True)),
    ("1d_exact_size_up", (2, 3, 5), dict(size=11, mode="nearest-exact")),
    ("1d_exact_size_down", (1, 2, 9), dict(size=4, mode="nearest-exact")),
    ("1d_exact_scale_up", (1, 2, 5), dict(scale_factor=1.7, mode="nearest-exact")),
    ("1d_exact_scale_down_recompute", (2, 2, 9), dict(scale_factor=0.5, mode="nearest-exact",
                                                      recompute_scale_factor=True)),
    ("1d_linear_size_up", (2, 3, 5), dict(size=11, mode="linear", align_corners=False)),
    ("1d_linear_size_down", (1, 2, 9), dict(size=4, mode="linear")),
    ("1d_linear_corners_up", (2, 2, 5), dict(size=8, mode="linear", align_corners=True)),
    ("1d_linear_corners_down", (1, 2, 9), dict(size=(4,), mode="linear", align_corners=True)),
    ("1d_linear_scale_up", (2, 2, 5), dict(scale_factor=2, mode="linear")),
    ("1d_linear_scale_down", (1, 3, 9), dict(scale_factor=0.7, mode="linear", align_corners=False)),
    ("1d_linear_corners_scale", (1, 2, 5), dict(scale_factor=(1.5,), mode="linear", align_corners=True)),
    ("1d_linear_recompute", (2, 2, 7), dict(scale_factor=1.3, mode="linear", recompute_scale_factor=True)),
    ("1d_linear_same_size_scale", (1, 2, 5), dict(scale_factor=1.1, mode="linear")),
    ("1d_linear_to_1", (1, 2, 5), dict(size=1, mode="linear", align_corners=True)),
    ("1d_area_down", (2, 3, 9), dict(size=4, mode="area")),
    ("1d_area_up", (1, 2, 3), dict(size=7, mode="area")),
    ("1d_area_scale", (1, 2, 9), dict(scale_factor=0.5, mode="area")),
    # 4-D nearest-exact, bicubic, area
    ("exact_size_up", (2, 2, 5, 4), dict(size=(7, 9), mode="nearest-exact")),
    ("exact_size_down", (1, 2, 9, 8), dict(size=(4, 3), mode="nearest-exact")),
    ("exact_scale", (1, 2, 5, 6), dict(scale_factor=(1.5, 0.7), mode="nearest-exact")),
    ("exact_recompute", (1, 1, 5, 7), dict(scale_factor=2.3, mode="nearest-exact", recompute_scale_factor=True)),
    ("bicubic_size_up", (2, 2, 5, 4), dict(size=(7, 9), mode="bicubic", align_corners=False)),
    ("bicubic_size_down", (1, 2, 9, 7), dict(size=(4, 3), mode="bicubic")),
    ("bicubic_corners_up", (1, 2, 5, 4), dict(size=(8, 7), mode="bicubic", align_corners=True)),
    ("bicubic_corners_down", (2, 1, 9, 7), dict(size=(4, 5), mode="bicubic", align_corners=True)),
    ("bicubic_scale_up", (1, 2, 3, 4), dict(scale_factor=2, mode="bicubic")),
    ("bicubic_scale_mixed", (1, 2, 5, 6), dict(scale_factor=(1.5, 0.7), mode="bicubic", align_corners=False)),
    ("bicubic_corners_scale", (1, 2, 4, 5), dict(scale_factor=1.7, mode="bicubic", align_corners=True)),
    ("bicubic_recompute", (1, 2, 5, 7), dict(scale_factor=(1.3, 0.6), mode="bicubic",
                                             recompute_scale_factor=True)),
    ("bicubic_to_1", (1, 2, 4, 5), dict(size=(1, 1), mode="bicubic")),
    ("bicubic_tiny_input", (1, 1, 1, 2), dict(size=(3, 5), mode="bicubic")),
    ("area_down", (2, 3, 7, 5), dict(size=(3, 2), mode="area")),
    ("area_up", (1, 2, 3, 2), dict(size=(5, 4), mode="area")),
    ("area_scale", (1, 2, 8, 6), dict(scale_factor=0.5, mode="area")),
]

CASES = (
    [(f"max_pool2d_{n}", *_pair(n, ember.max_pool2d, F.max_pool2d, kw)[1:], [distinct(*s)]) for n, s, kw in MAX2D]
    + [(f"max_pool1d_{n}", *_pair(n, ember.max_pool1d, F.max_pool1d, kw)[1:], [distinct(*s)]) for n, s, kw in MAX1D]
    + [(f"avg_pool2d_{n}", *_pair(n, ember.avg_pool2d, F.avg_pool2d, kw)[1:], [s]) for n, s, kw in AVG2D]
    + [(f"avg_pool1d_{n}", *_pair(n, ember.avg_pool1d, F.avg_pool1d, kw)[1:], [s]) for n, s, kw in AVG1D]
    + [(f"adaptive_avg_pool2d_{n}", lambda x, o=o: ember.adaptive_avg_pool2d(x, o),
        lambda x, o=o: F.adaptive_avg_pool2d(x, o), [s]) for n, s, o in ADAPTIVE]
    + [(f"adaptive_max_pool2d_{n}", lambda x, o=o: ember.adaptive_max_pool2d(x, o),
        lambda x, o=o: F.adaptive_max_pool2d(x, o), [distinct(*s)]) for n, s, o in ADAPTIVE]
    + [("adaptive_avg_pool1d", lambda x: ember.adaptive_avg_pool1d(x, 4), lambda x: F.adaptive_avg_pool1d(x, 4),
        [(2, 3, 7)]),
       ("adaptive_max_pool1d", lambda x: ember.adaptive_max_pool1d(x, 3), lambda x: F.adaptive_max_pool1d(x, 3),
        [distinct(2, 3, 8)])]
    + [(f"interpolate_{n}", *_pair(n, ember.interpolate, F.interpolate, kw)[1:], [s]) for n, s, kw in INTERP]
)


@pytest.mark.parametrize("name,ef,tf,specs", CASES, ids=[c[0] for c in CASES])
def test_pool_ops(name, ef, tf, specs):
    check_op(ef, tf, specs)


@pytest.mark.parametrize("fe,ft,kw", [
    (ember.max_pool2d, F.max_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (ember.max_pool2d, F.max_pool2d, dict(kernel_size=2, dilation=2)),
    (ember.max_pool1d, F.max_pool1d, dict(kernel_size=3, stride=2, padding=1)),
    (ember.adaptive_max_pool2d, F.adaptive_max_pool2d, dict(output_size=(3, 2))),
])
def test_return_indices_match_torch(fe, ft, kw):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6) if fe is not ember.max_pool1d else (2, 3, 9))
    x = x.astype(np.float32)
    ev, ei = fe(ember.tensor(x), return_indices=True, **kw)
    tv, ti = ft(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(ev.numpy(), tv.numpy())
    assert ei.dtype == ember.int64
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())


@pytest.mark.parametrize("fe,ft,kw", [
    (ember.max_pool2d, F.max_pool2d, dict(kernel_size=2)),
    (ember.max_pool2d, F.max_pool2d, dict(kernel_size=3, stride=1, padding=1)),
    (ember.adaptive_max_pool2d, F.adaptive_max_pool2d, dict(output_size=(2, 3))),
])
def test_max_pool_ties_pick_first_maximum(fe, ft, kw):
    x = np.round(np.random.default_rng(1).standard_normal((1, 2, 5, 6))).astype(np.float32)   # many ties
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    w = np.random.default_rng(2).standard_normal(tuple(ft(xt, **kw).shape)).astype(np.float32)
    (fe(xe, **kw) * ember.tensor(w)).sum().backward()
    (ft(xt, **kw) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), atol=1e-6)


def test_nan_propagates_like_torch():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    e, t = ember.max_pool2d(ember.tensor(x), 2), F.max_pool2d(torch.tensor(x), 2)
    np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.parametrize("fn", [
    lambda x: ember.max_pool2d(x, 3, stride=2, padding=1),
    lambda x: ember.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda x: ember.adaptive_max_pool2d(x, (2, 3)),
    lambda x: ember.adaptive_avg_pool2d(x, (2, 3)),
    lambda x: ember.interpolate(x, size=(4, 7), mode="bilinear"),
    lambda x: ember.interpolate(x, scale_factor=2),
    lambda x: ember.interpolate(x, size=(4, 7), mode="bicubic"),
    lambda x: ember.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True),
    lambda x: ember.interpolate(x, size=(7, 3), mode="nearest-exact"),
    lambda x: ember.interpolate(x, size=(3, 4), mode="area"),
    lambda x: ember.interpolate(x[0], size=8, mode="linear"),
    lambda x: ember.interpolate(x[0], scale_factor=0.6, mode="linear", align_corners=True),
    lambda x: ember.interpolate(x[0], size=7, mode="nearest-exact"),
])
def test_second_derivative(fn):
    x = ember.tensor(distinct(1, 2, 5, 5).value, requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda t: fn(t) ** 2, (x,))


def test_pool_without_grad_and_exports():
    with ember.no_grad():
        y = ember.max_pool2d(ember.ones(1, 1, 4, 4, requires_grad=True), 2)
    assert not y.requires_grad and y.shape == (1, 1, 2, 2)
    assert ember.ops.avg_pool2d is ember.avg_pool2d


@pytest.mark.parametrize("call,match", [
    (lambda: ember.max_pool2d(ember.ones(1, 1, 2, 2), 3), r"max_pool2d: .*smaller than the kernel"),
    (lambda: ember.avg_pool2d(ember.ones(1, 1, 2, 2), 3, padding=0), r"avg_pool2d: .*\(1, 1, 2, 2\)"),
    (lambda: ember.max_pool2d(ember.ones(1, 1, 8, 8), 2, padding=2), r"max_pool2d: padding should be at most half"),
    (lambda: ember.avg_pool2d(ember.ones(1, 1, 8, 8), 3, padding=2), r"avg_pool2d: padding should be at most half"),
    (lambda: ember.max_pool1d(ember.ones(1, 1, 4), 2, padding=2), r"max_pool1d: padding should be at most half"),
    (lambda: ember.max_pool2d(ember.ones(4, 4), 2), r"max_pool2d: expected a 3-D or 4-D input"),
    (lambda: ember.max_pool1d(ember.ones(1, 1, 4, 4), 2), r"max_pool1d: expected a 2-D or 3-D input"),
    (lambda: ember.max_pool2d(ember.ones(1, 1, 4, 4), 0), r"kernel_size, stride and dilation must be positive"),
    (lambda: ember.max_pool2d(ember.ones(1, 1, 4, 4), (2, 2, 2)), r"kernel_size must be an int or a tuple of 2"),
    (lambda: ember.avg_pool2d(ember.ones(1, 1, 4, 4), 2, divisor_override=0), r"divisor_override"),
    (lambda: ember.adaptive_avg_pool2d(ember.ones(1, 1, 4, 4), 0), r"adaptive_avg_pool2d: output_size"),
    (lambda: ember.interpolate(ember.ones(1, 1, 4, 4)), r"exactly one of size and scale_factor"),
    (lambda: ember.interpolate(ember.ones(1, 1, 4, 4), size=2, align_corners=True), r"align_corners"),
    (lambda: ember.interpolate(ember.ones(1, 1, 4, 4), size=2, mode="trilinear"), r"mode 'trilinear'"),
    (lambda: ember.interpolate(ember.ones(4, 4), size=2), r"interpolate: expected a 3-D .* or 4-D"),
    (lambda: ember.interpolate(ember.ones(1, 1, 2, 2, 2), size=2), r"interpolate: expected a 3-D .* or 4-D"),
])
def test_errors(call, match):
    with pytest.raises(ember.OpError, match=match):
        call()


# (arguments, Ember's message): each combination PyTorch rejects too
INTERP_ERRORS = [
    (((1, 1, 4, 4),), dict(size=2, mode="linear"), r"mode 'linear' expects a 3-D \(N, C, L\) input, got 4-D"),
    (((1, 1, 4),), dict(size=2, mode="bilinear"), r"mode 'bilinear' expects a 4-D \(N, C, H, W\) input, got 3-D"),
    (((1, 1, 4),), dict(size=2, mode="bicubic"), r"mode 'bicubic' expects a 4-D"),
    (((1, 4),), dict(size=2), r"expected a 3-D"),
    (((1, 1, 4),), dict(size=2, mode="nearest-exact", align_corners=False), r"align_corners .* 'nearest-exact'"),
    (((1, 1, 4, 4),), dict(size=2, mode="area", align_corners=True), r"align_corners .* 'area'"),
    (((1, 1, 4),), dict(size=2, recompute_scale_factor=True), r"recompute_scale_factor is not meaningful"),
    (((1, 1, 4, 4),), dict(size=(2, 2, 2)), r"size must be an int or a tuple of 2"),
    (((1, 1, 4),), dict(scale_factor=(2.0, 2.0)), r"scale_factor must be a float or a tuple of 1"),
    (((1, 1, 4),), dict(size=2, scale_factor=2.0), r"only one of size and scale_factor"),
    (((1, 1, 4),), dict(scale_factor=0.1, mode="linear"), r"output size \(0,\) must be positive"),
]


@pytest.mark.parametrize("args,kw,match", INTERP_ERRORS)
def test_interpolate_errors_where_torch_rejects(args, kw, match):
    with pytest.raises(ember.OpError, match=r"interpolate: " + match):
        ember.interpolate(ember.ones(*args[0]), **kw)
    with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
        F.interpolate(torch.ones(*args[0]), **kw)


def test_interpolate_integer_input():
    xi = np.arange(12).reshape(1, 2, 6)
    got = ember.interpolate(ember.tensor(xi), size=9, mode="nearest-exact")
    assert got.dtype == ember.int64
    ref = F.interpolate(torch.tensor(xi, dtype=torch.float64), size=9, mode="nearest-exact").numpy()
    np.testing.assert_array_equal(got.numpy(), ref)
    with pytest.raises(ember.OpError, match="interpolate: mode 'linear' needs a floating-point input"):
        ember.interpolate(ember.tensor(xi), size=9, mode="linear")
    with pytest.raises((RuntimeError, NotImplementedError)):
        F.interpolate(torch.tensor(xi), size=9, mode="linear")


def test_interpolate_antialias_not_supported():
    with pytest.raises(ember.OpError, match="antialias"):
        ember.interpolate(ember.ones(1, 1, 4, 4), size=2, mode="bilinear", antialias=True)


@pytest.mark.parametrize("mode,shape,kw", [
    ("nearest", (2, 3, 7), dict(scale_factor=2.3)),
    ("nearest-exact", (2, 3, 5, 6), dict(size=(9, 4))),
    ("linear", (2, 3, 7), dict(size=5, align_corners=True)),
    ("bicubic", (2, 3, 5, 6), dict(scale_factor=(1.7, 0.6))),
    ("area", (2, 3, 9, 6), dict(size=(4, 5))),
])
def test_interpolate_float64_and_no_grad_match_torch(mode, shape, kw):
    x = np.random.default_rng(4).standard_normal(shape)
    with ember.no_grad():
        got = ember.interpolate(ember.tensor(x), mode=mode, **kw)
    assert got.dtype == ember.float64
    np.testing.assert_allclose(got.numpy(), F.interpolate(torch.tensor(x), mode=mode, **kw).numpy(), atol=1e-12)


def test_torch_rejects_the_same_geometry():
    with pytest.raises(RuntimeError):
        F.max_pool2d(torch.ones(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(RuntimeError):
        F.max_pool2d(torch.ones(1, 1, 2, 2), 3)


def _grads_of(fe, ft, x, w, **kw):
    out = []
    for lib, f in ((ember, fe), (torch, ft)):
        xt = lib.tensor(x, requires_grad=True)
        y = f(xt, **kw)
        (y * lib.tensor(w)).sum().backward()
        out.append((y.detach().numpy(), xt.grad.numpy()))
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # the test's loss sums -inf and inf
@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, padding=1),
                                dict(kernel_size=3, stride=1, padding=1, dilation=2),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_max_pool_minus_inf_windows_pick_first_cell_inside(kw):
    """A window with nothing above -inf sends its gradient to its first in-bounds cell, as PyTorch."""
    x = np.full((1, 2, 6, 7), -np.inf, dtype=np.float32)
    x[0, 1, 3:, 4:] = np.arange(9, dtype=np.float32).reshape(3, 3)
    w = np.random.default_rng(0).standard_normal(tuple(F.max_pool2d(torch.tensor(x), **kw).shape)).astype(np.float32)
    (ev, eg), (tv, tg) = _grads_of(ember.max_pool2d, F.max_pool2d, x, w, **kw)
    np.testing.assert_array_equal(ev, tv)
    np.testing.assert_allclose(eg, tg, atol=1e-6)
    np.testing.assert_array_equal(ember.max_pool2d(ember.tensor(x), return_indices=True, **kw)[1].numpy(),
                                  F.max_pool2d(torch.tensor(x), return_indices=True, **kw)[1].numpy())


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)])
def test_max_pool_gradient_keeps_inf_and_nan_in_place(kw):
    """Gradients of inf/nan go only to each window's maximum (no 0 * inf = nan leaking to other cells)."""
    x = np.random.default_rng(1).permutation(36).reshape(1, 1, 6, 6).astype(np.float32)
    shape = tuple(F.max_pool2d(torch.tensor(x), **kw).shape)
    w = np.ones(shape, dtype=np.float32)
    w.flat[0], w.flat[1] = np.inf, np.nan
    (_, eg), (_, tg) = _grads_of(ember.max_pool2d, F.max_pool2d, x, w, **kw)
    np.testing.assert_array_equal(eg, tg)


def test_max_pool_nan_gradient_goes_where_torch_sends_it():
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    w = np.random.default_rng(2).standard_normal((1, 2, 2, 2)).astype(np.float32)
    (ev, eg), (tv, tg) = _grads_of(ember.max_pool2d, F.max_pool2d, x, w, kernel_size=2)
    np.testing.assert_array_equal(ev, tv)
    np.testing.assert_allclose(eg, tg)


def test_max_pool_indices_without_grad_and_float64():
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6))
    with ember.no_grad():
        ev, ei = ember.max_pool2d(ember.tensor(x), 3, stride=2, padding=1, return_indices=True)
    tv, ti = F.max_pool2d(torch.tensor(x), 3, stride=2, padding=1, return_indices=True)
    assert ev.dtype == ember.float64
    np.testing.assert_array_equal(ev.numpy(), tv.numpy())
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True),
                                dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_max_pool_without_gradients_matches_the_recording_path_and_torch(kw):
    """Under no_grad only the maxima are computed; NaN, -inf and integer inputs still match PyTorch."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    x[1, 2, :3, :3] = -np.inf
    with ember.no_grad():
        fast = ember.max_pool2d(ember.tensor(x), **kw).numpy()
    recorded = ember.max_pool2d(ember.tensor(x, requires_grad=True), **kw).detach().numpy()
    ref = F.max_pool2d(torch.tensor(x), **kw).numpy()
    np.testing.assert_array_equal(fast, recorded)
    np.testing.assert_array_equal(fast, ref)
    xi = rng.integers(-5, 5, (1, 2, 6, 6))
    with ember.no_grad():
        got = ember.max_pool2d(ember.tensor(xi), **kw).numpy()
    np.testing.assert_array_equal(got, F.max_pool2d(torch.tensor(xi, dtype=torch.float64), **kw).numpy())


def test_interpolate_1d_nearest_same_size_keeps_the_scale():
    """PyTorch's 1-D nearest forward maps by 1/scale even when the length is unchanged, but its backward treats
    that as the identity; Ember matches the forward and gives the true adjoint (checked by gradcheck)."""
    x = np.random.default_rng(5).standard_normal((1, 2, 3))
    y = ember.interpolate(ember.tensor(x), scale_factor=1.23)
    np.testing.assert_allclose(y.numpy(), F.interpolate(torch.tensor(x), scale_factor=1.23).numpy())
    xt = ember.tensor(x, requires_grad=True)
    assert ember.autograd.gradcheck(lambda t: ember.interpolate(t, scale_factor=1.23), (xt,))
