"""The optional oneDNN kernels (ember.backend.onednn): convolutions and matrix products against the portable
NumPy paths, the cases oneDNN declines, and the switches that turn it off."""
import os
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.backend import matmul as backend_matmul
from ember.backend import onednn
from ember.ops import conv as conv_ops

pytestmark = pytest.mark.skipif(not onednn.available(), reason="oneDNN (onednn-cpu-gomp) is not installed")

# x shape, w shape, stride, pad (top, bottom, left, right), dilation, groups
GEOMETRIES = {
    "3x3_same": ((2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "stride2_odd": ((1, 4, 9, 8), (6, 4, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "even_kernel_asymmetric": ((2, 3, 6, 6), (5, 3, 4, 4), (1, 1), (1, 2, 1, 2), (1, 1), 1),
    "dilation2": ((2, 2, 10, 11), (3, 2, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    "groups2_stride21": ((2, 4, 8, 8), (6, 2, 3, 3), (2, 1), (0, 0, 1, 1), (1, 1), 2),
    "depthwise": ((3, 8, 7, 7), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),
    "pointwise_stride2": ((2, 16, 32, 32), (32, 16, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # last row never read
    "unit_height": ((2, 3, 1, 15), (4, 3, 1, 5), (1, 2), (0, 0, 2, 2), (1, 1), 1),
    "lenet_batch1": ((1, 1, 28, 28), (6, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
}


def _out_hw(x_shape, w_shape, stride, pad, dilation):
    return tuple(conv_ops._out_size(x_shape[2 + i], pad[2 * i], pad[2 * i + 1], w_shape[2 + i], stride[i], dilation[i])
                 for i in range(2))


def _portable(fn, *args):
    """``fn`` on the im2col + BLAS path."""
    onednn.enabled = False
    try:
        return fn(*args)
    finally:
        onednn.enabled = True


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_conv_kernels_match_im2col(name):
    x_shape, w_shape, stride, pad, dilation, groups = GEOMETRIES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    out_hw = _out_hw(x_shape, w_shape, stride, pad, dilation)
    g = rng.standard_normal((x_shape[0], w_shape[0], *out_hw), dtype=np.float32)

    y = onednn.conv_forward(x, w, b, stride, pad, dilation, groups, out_hw)
    cols = _portable(conv_ops._im2col, np, x, w_shape[2:], stride, pad, dilation, out_hw)
    y_ref = conv_ops._conv_out(np, cols, w, groups, x_shape[0], out_hw) + b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)

    dx = onednn.conv_backward_data(g, w, x_shape, stride, pad, dilation, groups)
    dx_ref = _portable(conv_ops._conv_transpose2d, np, g, w, x_shape, stride, pad, dilation, groups)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)

    dw = onednn.conv_backward_weights(x, g, w_shape[2:], stride, pad, dilation, groups)
    dw_ref = _portable(conv_ops._conv2d_weight_grad, np, x, g, w_shape[2:], stride, pad, dilation, groups)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-3)
    for out, shape in ((y, y_ref.shape), (dx, x_shape), (dw, w_shape)):
        assert out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous


def test_declined_geometry_falls_back():
    # a transposed convolution's output_padding leaves an input row past the last window of the adjoint
    # convolution, which oneDNN refuses: the kernel says None and the op takes the im2col path
    rng = np.random.default_rng(1)
    g = rng.standard_normal((1, 2, 5, 7), dtype=np.float32)
    w = rng.standard_normal((2, 2, 2, 3), dtype=np.float32)
    assert onednn.conv_backward_data(g, w, (1, 2, 8, 12), (1, 1), (0, 0, 0, 0), (2, 2), 1) is None
    out = ember.conv_transpose2d(ember.tensor(g), ember.tensor(w), dilation=2, output_padding=1)
    ref = _portable(ember.conv_transpose2d, ember.tensor(g), ember.tensor(w), None, 1, 0, 1, 1, 2)
    assert out.shape == (1, 2, 8, 12)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_usable_only_for_float32_numpy():
    a32, a64 = np.ones((2, 2), np.float32), np.ones((2, 2))
    assert onednn.usable(np, a32, a32)
    assert not onednn.usable(np, a32, a64)
    onednn.enabled = False
    try:
        assert not onednn.usable(np, a32, a32)
    finally:
        onednn.enabled = True


def test_version_is_v3():
    assert onednn.version()[0] == 3


def test_environment_switch_turns_it_off():
    code = "from ember.backend import onednn; print(onednn.enabled)"
    env = dict(os.environ, EMBER_ONEDNN="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- matrix products
def _views(rng):
    """(a, b) pairs: plain, transposed views, batched with broadcasting, vectors."""
    m = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    return {
        "plain": (m(64, 400), m(400, 120)),
        "b_transposed": (m(64, 400), m(120, 400).T),
        "a_transposed": (m(400, 64).T, m(400, 120)),
        "batched": (m(8, 64, 96), m(8, 96, 80)),
        "batch_broadcast": (m(3, 1, 40, 96), m(5, 96, 90)),
        "matrix_batch": (m(6, 64, 128), m(128, 100)),
        "matrix_vector": (m(300, 1000), m(1000)),
        "vector_matrix": (m(1000), m(1000, 300)),
    }


@pytest.mark.parametrize("case", list(_views(np.random.default_rng(0))))
def test_matmul_matches_numpy(case):
    a, b = _views(np.random.default_rng(0))[case]
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    out = backend_matmul(np, a, b)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)
    if a.ndim > 1 and b.ndim > 1:
        direct = onednn.matmul(a, b)
        assert direct is not None
        np.testing.assert_array_equal(direct, out)


def test_matmul_into_out():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((64, 400), dtype=np.float32), rng.standard_normal((400, 120), dtype=np.float32)
    out = np.empty((64, 120), np.float32)
    assert backend_matmul(np, a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-3)
    strided = np.empty((64, 240), np.float32)[:, ::2]      # not C-contiguous: NumPy writes it
    assert backend_matmul(np, a, b, out=strided) is strided
    np.testing.assert_allclose(strided, a @ b, rtol=1e-4, atol=1e-3)


def test_matmul_layouts_it_cannot_read_fall_back():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, 400), dtype=np.float32)
    b = rng.standard_normal((400, 240), dtype=np.float32)
    for bad in (b[:, ::2], b[::-1], np.broadcast_to(b[:1], b.shape)):   # no unit stride, negative, zero
        assert onednn.matmul(a, bad) is None
        np.testing.assert_allclose(backend_matmul(np, a, bad), a @ bad, rtol=1e-4, atol=1e-3)


def test_small_and_float64_products_stay_on_numpy():
    rng = np.random.default_rng(4)
    a64, b64 = rng.standard_normal((64, 400)), rng.standard_normal((400, 120))
    np.testing.assert_array_equal(backend_matmul(np, a64, b64), np.matmul(a64, b64))
    a, b = a64[:8, :8].astype(np.float32), b64[:8, :8].astype(np.float32)
    np.testing.assert_array_equal(backend_matmul(np, a, b), np.matmul(a, b))


def test_training_step_agrees_with_portable_kernels():
    """A conv + linear network's gradients are the same (to float32 rounding) on either set of kernels."""
    def grads():
        ember.manual_seed(0)
        model = ember.nn.Sequential(ember.nn.Conv2d(1, 8, 5, padding=2), ember.nn.ReLU(), ember.nn.MaxPool2d(2),
                                    ember.nn.Conv2d(8, 16, 3, stride=2), ember.nn.ReLU(), ember.nn.Flatten(),
                                    ember.nn.Linear(16 * 6 * 6, 300), ember.nn.ReLU(), ember.nn.Linear(300, 10))
        x = ember.tensor(np.random.default_rng(5).standard_normal((64, 1, 28, 28), dtype=np.float32))
        loss = ember.nn.functional.cross_entropy(model(x), ember.tensor(np.arange(64) % 10))
        loss.backward()
        return [p.grad.numpy() for p in model.parameters()]
    for fast, portable in zip(grads(), _portable(grads)):
        np.testing.assert_allclose(fast, portable, rtol=1e-3, atol=1e-5)


# x shape, kernel, stride, padding, dilation, ceil_mode
POOLS = {
    "lenet_2x2": ((4, 6, 24, 24), 2, 2, 0, 1, False),
    "overlap_3x3_s2_pad1": ((2, 3, 9, 10), 3, 2, 1, 1, False),
    "ceil_mode": ((2, 3, 7, 7), 2, 2, 0, 1, True),
    "ceil_pad_overlap": ((1, 2, 8, 9), 3, 2, 1, 1, True),
    "dilation2": ((2, 2, 11, 11), 3, 1, 1, 2, False),
    "rect_kernel": ((2, 3, 8, 12), (2, 3), (2, 1), (1, 1), 1, False),
}


@pytest.mark.parametrize("name", sorted(POOLS))
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_kernel_matches_portable(name, ties):
    """oneDNN's max pool gives the portable path's maxima, first-maximum offsets and input gradient, also where
    windows hold equal values (ReLU zeros) and across padding, ceil_mode and dilation (return_indices turns
    the offsets into PyTorch's flat indices, so comparing them compares the offsets)."""
    shape, k, s, p, d, ceil = POOLS[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    if ties:
        x = np.maximum(x, 0).round(1)
    g = rng.standard_normal

    def run():
        t = ember.tensor(x, requires_grad=True)
        y, idx = ember.nn.functional.max_pool2d(t, k, s, p, d, ceil_mode=ceil, return_indices=True)
        y.backward(ember.tensor(g_arr))
        return y.detach().numpy(), idx.numpy(), t.grad.numpy()

    out_shape = ember.nn.functional.max_pool2d(ember.tensor(x), k, s, p, d, ceil_mode=ceil).shape
    g_arr = g(out_shape).astype(np.float32)
    fast = run()
    slow = _portable(run)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_allclose(fast[2], slow[2], rtol=1e-6, atol=1e-6)   # overlapping windows: another sum order


def test_max_pool_kernel_runs_and_declines_nonfinite_inputs(monkeypatch):
    """The oneDNN kernel serves finite float32 inputs; NaN and -inf take the portable path, which propagates
    NaN and keeps -inf windows as PyTorch does."""
    calls = []
    real = onednn.max_pool_forward
    monkeypatch.setattr(onednn, "max_pool_forward", lambda *a: calls.append(1) or real(*a))
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32)
    ember.nn.functional.max_pool2d(ember.tensor(x), 2)
    assert calls == [1]
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.nan, -np.inf
    y = ember.nn.functional.max_pool2d(ember.tensor(x), 2).numpy()
    assert calls == [1] and np.isnan(y[0, 0, 0, 0])
