"""The cuDNN paths of the conv and pool ops (``ember.backend.cudnn``), checked on the CPU.

Only CuPy arrays go to cuDNN; stand-ins for CuPy's ``cupyx.cudnn`` (CuPy 13 and older) and for the cuDNN
frontend's ``pygraph`` (CuPy 14) compute with PyTorch, so a convolution's forward and both gradients through
either path are compared with PyTorch, and a declined geometry is shown to take the im2col path.
"""
import importlib.util
import types

import numpy as np
import pytest

import ember
from ember.backend import cudnn, onednn


# ---------------------------------------------------------------- cuDNN dispatch
class _TorchCudnn:
    """``cupyx.cudnn``'s convolution and pooling calls (CuPy's argument order), computed with PyTorch."""

    def __init__(self):
        self.calls = []

    def convolution_forward(self, x, W, b, y, pad, stride, dilation, groups, *, auto_tune, tensor_core):
        import torch
        self.calls.append(("forward", pad, stride, dilation, groups))
        r = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(W), None if b is None else
                                       torch.from_numpy(b), stride, pad, dilation, groups)
        y[...] = r.numpy()

    def convolution_backward_data(self, W, x, b, y, pad, stride, dilation, groups, *, deterministic, auto_tune,
                                  tensor_core):
        import torch
        self.calls.append(("data", pad, stride, dilation, groups))
        y[...] = torch.nn.grad.conv2d_input(y.shape, torch.from_numpy(W), torch.from_numpy(x), stride, pad,
                                            dilation, groups).numpy()

    def convolution_backward_filter(self, x, gy, gW, pad, stride, dilation, groups, *, deterministic, auto_tune,
                                    tensor_core):
        import torch
        self.calls.append(("filter", pad, stride, dilation, groups))
        gW[...] = torch.nn.grad.conv2d_weight(torch.from_numpy(x), gW.shape, torch.from_numpy(gy), stride, pad,
                                              dilation, groups).numpy()

    def pooling_forward(self, x, y, ksize, stride, pad, mode):
        import torch
        self.calls.append(("pool", ksize, stride, pad, mode))
        y[...] = torch.nn.functional.max_pool2d(torch.from_numpy(x), ksize, stride, pad).numpy()
        return y


@pytest.fixture
def torch_cudnn(monkeypatch):
    """cuDNN 'available' with the PyTorch stand-in, ``usable`` for NumPy arrays too, oneDNN off."""
    pytest.importorskip("torch")
    fake = _TorchCudnn()
    monkeypatch.setattr(cudnn, "_libs", lambda: (fake, types.SimpleNamespace(CUDNN_POOLING_MAX=0)))
    monkeypatch.setattr(cudnn, "_frontend", lambda: None)
    monkeypatch.setattr(cudnn, "usable", lambda xp, *arrays: all(a.dtype == np.float32 for a in arrays))
    monkeypatch.setattr(onednn, "enabled", False)
    return fake


def test_cudnn_usable_only_for_cupy_arrays(monkeypatch):
    a = np.ones((2, 3, 4, 4), np.float32)
    monkeypatch.setattr(cudnn, "_libs", lambda: (object(), object()))
    assert not cudnn.usable(np, a, a)                 # NumPy arrays never go to cuDNN
    fake_cupy = types.ModuleType("cupy")
    assert cudnn.usable(fake_cupy, a, a)
    assert not cudnn.usable(fake_cupy, a, a.astype(np.float64))
    assert not cudnn.usable(fake_cupy, a.astype(np.int32))
    monkeypatch.setattr(cudnn, "enabled", False)
    assert not cudnn.usable(fake_cupy, a)
    monkeypatch.setattr(cudnn, "enabled", True)
    monkeypatch.setattr(cudnn, "_libs", lambda: None)
    assert not cudnn.usable(fake_cupy, a)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_cudnn_is_unavailable_without_cupy():
    cudnn._libs_cache.clear()
    try:
        assert not cudnn.available()
        assert not cudnn.usable(types.ModuleType("cupy"), np.ones(3, np.float32))
    finally:
        cudnn._libs_cache.clear()


def test_conv_training_step_on_cudnn_matches_pytorch(torch_cudnn):
    import torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    xe, we, be = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
    ye = ember.nn.functional.conv2d(xe, we, be, stride=2, padding=1, dilation=1, groups=2)
    (ye * ye).sum().backward()
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=2, padding=1, groups=2)
    (yt * yt).sum().backward()
    np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    for e, t in ((xe, xt), (we, wt), (be, bt)):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)
    kinds = [c[0] for c in torch_cudnn.calls]
    assert kinds.count("forward") == 1 and "data" in kinds and "filter" in kinds
    assert all(c[1:] == ((1, 1), (2, 2), (1, 1), 2) for c in torch_cudnn.calls)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_falls_back_to_im2col_when_cudnn_declines(torch_cudnn):
    import torch
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = ember.nn.functional.conv2d(ember.tensor(x), ember.tensor(w), padding="same", dilation=2)
    assert torch_cudnn.calls and torch_cudnn.calls[0][1] == (2, 2)        # symmetric 'same' padding: cuDNN
    torch_cudnn.calls.clear()
    w2 = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)            # even kernel: asymmetric padding
    out = ember.nn.functional.conv2d(ember.tensor(x), ember.tensor(w2), padding="same")
    assert not torch_cudnn.calls                                          # declined: im2col computed it
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w2), padding="same")
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_max_pool_uses_cudnn_without_gradient_and_declines_ceil_mode(torch_cudnn):
    import torch
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 9)).astype(np.float32)
    with ember.no_grad():
        out = ember.nn.functional.max_pool2d(ember.tensor(x), 3, 2, 1)
    assert [c[0] for c in torch_cudnn.calls] == ["pool"]
    np.testing.assert_array_equal(out.numpy(), torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1).numpy())
    torch_cudnn.calls.clear()
    with ember.no_grad():
        out = ember.nn.functional.max_pool2d(ember.tensor(x), 2, 2, ceil_mode=True)
    assert not torch_cudnn.calls
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 2, ceil_mode=True)
    np.testing.assert_array_equal(out.numpy(), want.numpy())
    xe = ember.tensor(x, requires_grad=True)
    ember.nn.functional.max_pool2d(xe, 2).sum().backward()               # recorded: offsets needed, portable
    assert not torch_cudnn.calls and xe.grad.shape == x.shape


def test_numpy_arrays_never_reach_cudnn(monkeypatch):
    monkeypatch.setattr(cudnn, "_libs", lambda: pytest.fail("cuDNN asked for NumPy arrays"))
    x = ember.randn(1, 2, 6, 6, requires_grad=True)
    w = ember.randn(3, 2, 3, 3, requires_grad=True)
    ember.nn.functional.max_pool2d(ember.nn.functional.conv2d(x, w, padding=1), 2).sum().backward()
    assert x.grad is not None and w.grad is not None


# ---------------------------------------------------------------- the cuDNN frontend path (CuPy 14)
class _FeTensor:
    def __init__(self, name, dim=None, stride=None, data_type=None):
        self.name, self.dim, self.stride, self.data_type = name, dim, stride, data_type

    def set_output(self, flag):
        return self

    def set_dim(self, dim):
        self.dim = dim
        return self

    def set_stride(self, stride):
        self.stride = stride
        return self

    def set_data_type(self, data_type):
        self.data_type = data_type
        return self


class _FeGraph:
    """The frontend's ``pygraph`` for one convolution, executed with PyTorch on the registered arrays."""

    def __init__(self, fe, **kw):
        self.fe, self.kw, self.steps = fe, kw, []

    def tensor(self, name, dim, stride, data_type):
        return _FeTensor(name, dim, stride, data_type)

    def _op(self, kind, a, b, pre_padding, post_padding, stride, dilation):
        self.op = (kind, a, b, tuple(pre_padding), tuple(post_padding), tuple(stride), tuple(dilation))
        self.y = _FeTensor("Y")
        return self.y

    def conv_fprop(self, image, weight, **geometry):
        return self._op("fprop", image, weight, **geometry)

    def conv_dgrad(self, loss, filter, **geometry):
        return self._op("dgrad", loss, filter, **geometry)

    def conv_wgrad(self, image, loss, **geometry):
        return self._op("wgrad", image, loss, **geometry)

    def validate(self):
        self.steps.append("validate")

    def build_operation_graph(self):
        self.steps.append("build_operation_graph")

    def create_execution_plans(self, modes):
        self.steps.append(("plans", tuple(modes)))

    def check_support(self):
        if self.op[-1] != (1, 1):
            raise RuntimeError("cudnnGraphNotSupportedError: dilation")   # a declined geometry
        self.steps.append("check_support")

    def build_plans(self):
        self.steps.append("build_plans")
        self.fe.built.append(self)

    def get_workspace_size(self):
        return 64

    def execute(self, pack, workspace, handle):
        import torch
        F = torch.nn.functional
        kind, ta, tb, (top, left), (bottom, right), stride, dilation = self.op
        a, b, out = (torch.from_numpy(self.fe.arrays[pack[t]]) for t in (ta, tb, self.y))
        assert self.fe.arrays[workspace].nbytes >= 64 and handle == "handle"
        assert list(a.shape) == ta.dim and list(out.shape) == self.y.dim
        if kind == "fprop":
            r = F.conv2d(F.pad(a, (left, right, top, bottom)), b, None, stride, 0, dilation, a.shape[1] // b.shape[1])
        elif kind == "dgrad":
            n, c, h, w = out.shape
            r = torch.nn.grad.conv2d_input((n, c, h + top + bottom, w + left + right), b, a, stride, 0, dilation,
                                           c // b.shape[1])[:, :, top:top + h, left:left + w]
        else:
            r = torch.nn.grad.conv2d_weight(F.pad(a, (left, right, top, bottom)), tuple(out.shape), b, stride, 0,
                                            dilation, a.shape[1] // out.shape[1])
        out[...] = r
        self.fe.executed.append(kind)


class _FakeFrontend:
    data_type = types.SimpleNamespace(HALF="half", FLOAT="float", DOUBLE="double")
    heur_mode = types.SimpleNamespace(A="A", FALLBACK="FALLBACK")

    def __init__(self):
        self.built, self.executed, self.arrays = [], [], {}

    def create_handle(self):
        return "handle"

    def set_stream(self, handle, stream):
        self.stream = stream

    def pygraph(self, **kw):
        return _FeGraph(self, **kw)


@pytest.fixture
def frontend(monkeypatch):
    pytest.importorskip("torch")
    fe = _FakeFrontend()

    def ptr(a):
        fe.arrays[id(a)] = a
        return id(a)
    monkeypatch.setattr(cudnn, "_frontend", lambda: fe)
    monkeypatch.setattr(cudnn, "_libs", lambda: None)
    monkeypatch.setattr(cudnn, "_ptr", ptr)
    monkeypatch.setattr(cudnn, "_stream_ptr", lambda: 7)
    monkeypatch.setattr(cudnn, "_plans", {})
    monkeypatch.setattr(cudnn, "_handles", {})
    monkeypatch.setattr(cudnn, "usable", lambda xp, *arrays: all(a.dtype == np.float32 for a in arrays))
    monkeypatch.setattr(onednn, "enabled", False)
    return fe


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_frontend_conv_step_with_asymmetric_padding_matches_pytorch(frontend):
    import torch
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    w = rng.standard_normal((6, 2, 2, 2)).astype(np.float32)      # even kernel, 'same': pads (0, 1, 0, 1)
    b = rng.standard_normal(6).astype(np.float32)
    for _ in range(2):
        xe, we, be = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
        ye = ember.nn.functional.conv2d(xe, we, be, padding="same", groups=2)
        (ye * ye).sum().backward()
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding="same", groups=2)
    (yt * yt).sum().backward()
    np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    for e, t in ((xe, xt), (we, wt), (be, bt)):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert sorted(g.op[0] for g in frontend.built) == ["dgrad", "fprop", "wgrad"]     # built once, run twice
    assert frontend.executed.count("fprop") == 2 and frontend.stream == 7
    fprop = next(g for g in frontend.built if g.op[0] == "fprop")
    assert fprop.op[3:5] == ((0, 0), (1, 1))                      # pre and post padding
    assert fprop.kw["io_data_type"] == "float" and fprop.steps[-1] == "build_plans"
    assert fprop.op[1].dim == [2, 4, 7, 7] and fprop.op[1].stride == [196, 49, 7, 1]


def test_frontend_declined_geometry_falls_back_to_im2col(frontend):
    import torch
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    for _ in range(2):
        out = ember.nn.functional.conv2d(ember.tensor(x), ember.tensor(w), padding=2, dilation=2)
    assert not frontend.built and not frontend.executed and list(cudnn._plans.values()) == [None]   # cached "no"
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=2, dilation=2)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
