"""Devices: ``ember.device``, ``Tensor.to``/``.cuda``/``.cpu``, ``Module.to``, ``device=`` on creation, ``ember.cuda``,
optimizer state and save/load across devices.

Tests take a ``dev`` parameter: ``'cpu'``, and ``'cuda'`` when CuPy sees a GPU (skipped otherwise). Without a
GPU the CUDA plumbing (moves, device checks, state following the parameters, loading onto a device) is still
exercised against ``fake_cuda``: a stand-in for CuPy computing with NumPy on an ndarray subclass that
remembers its device index, registered in place of CuPy for the test.
"""
import contextlib
import types

import numpy as np
import pytest
import torch

import ember
import ember.cuda
from ember import backend, nn
from ember.autograd.node import OpError
from ember.backend import cuda as backend_cuda

HAS_CUDA = ember.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU / CuPy"))]


# ---------------------------------------------------------------- a CuPy stand-in (NumPy arrays tagged with a GPU)
class _FakeDeviceId:
    def __init__(self, i):
        self.id = i


class FakeCupyArray(np.ndarray):
    def __array_finalize__(self, obj):
        self._dev = getattr(obj, "_dev", _Fake.current)

    @property
    def device(self):
        return _FakeDeviceId(self._dev)

    def get(self):
        return np.array(self.view(np.ndarray), copy=True)


class _Fake(types.ModuleType):
    current = 0

    def __getattr__(self, name):
        f = getattr(np, name)
        if not callable(f) or isinstance(f, type):
            return f

        def call(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if type(a) is np.ndarray:
                    raise TypeError(f"fake cupy.{name}: a NumPy array passed where a device array is expected")
            r = f(*args, **kwargs)
            return _tag(r)
        return call


def _tag(r):
    if isinstance(r, np.generic):
        r = np.asarray(r)
    if type(r) is np.ndarray:
        r = r.view(FakeCupyArray)
        r._dev = _Fake.current
    elif isinstance(r, (tuple, list)):
        r = type(r)(_tag(x) for x in r)
    return r


def _make_fake(n_devices=2):
    fake = _Fake("fakecupy")
    fake.ndarray = FakeCupyArray

    @contextlib.contextmanager
    def device_ctx(i=None):
        old = _Fake.current
        _Fake.current = old if i is None else i
        try:
            yield
        finally:
            _Fake.current = old

    class Device:
        def __init__(self, i=None):
            self.i = i

        def __enter__(self):
            self._ctx = device_ctx(self.i)
            self._ctx.__enter__()

        def __exit__(self, *a):
            self._ctx.__exit__(*a)

        def synchronize(self):
            pass

    class Pool:
        used = 0

        def malloc(self, size):
            Pool.used += size
            return size

        def used_bytes(self):
            return Pool.used

        def free_all_blocks(self):
            fake.freed = True

    pool = Pool()
    runtime = types.SimpleNamespace(getDeviceCount=lambda: n_devices, getDevice=lambda: _Fake.current,
                                    setDevice=lambda i: setattr(_Fake, "current", i))
    fake.cuda = types.SimpleNamespace(runtime=runtime, Device=Device, set_allocator=lambda f: None)
    fake.get_default_memory_pool = lambda: pool
    fake.get_default_pinned_memory_pool = lambda: pool

    def default_rng(seed=None):
        g = np.random.default_rng(seed)
        return types.SimpleNamespace(
            random=lambda *a, **k: _tag(g.random(*a, **k)),
            standard_normal=lambda *a, **k: _tag(g.standard_normal(*a, **k)),
            integers=lambda *a, **k: _tag(g.integers(*a, **k)), seed=seed)
    fake.random = types.SimpleNamespace(default_rng=default_rng)
    fake.array = lambda a, dtype=None, copy=True: _tag(np.array(a.view(np.ndarray) if isinstance(a, np.ndarray) else a,
                                                                 dtype=dtype, copy=True))
    fake.asarray = lambda a, dtype=None: (a if type(a) is FakeCupyArray and a._dev == _Fake.current and dtype is None
                                          else fake.array(a, dtype))
    return fake


@pytest.fixture
def fake_cuda(monkeypatch):
    """Register the CuPy stand-in as the CUDA backend (2 GPUs) for one test."""
    fake = _make_fake()
    monkeypatch.setattr(backend_cuda, "_state", {"cupy": fake, "count": 2, "tracking": True})
    monkeypatch.setattr(backend_cuda, "_local", types.SimpleNamespace())
    monkeypatch.setattr(backend.device, "_cache", {})
    monkeypatch.setitem(backend._MODULE_OF_TYPE, FakeCupyArray, fake)
    import ember.autograd.node as node              # CuPy's ndarray is registered at import; so is the stand-in
    monkeypatch.setattr(node, "ndarray_types", node.ndarray_types + (FakeCupyArray,))
    monkeypatch.setattr(_Fake, "current", 0)
    yield fake


# ---------------------------------------------------------------- without a GPU
def test_device_parsing_and_equality():
    assert ember.device("cpu") == "cpu" and str(ember.device("cpu")) == "cpu"
    assert ember.device(ember.device("cpu")) is ember.device("cpu")
    with pytest.raises(RuntimeError, match="unknown device"):
        ember.device("tpu")
    with pytest.raises(TypeError):
        ember.device(1.5)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error without CUDA")
def test_cuda_absent_is_a_clear_error():
    with pytest.raises(RuntimeError, match="cuda"):
        ember.device("cuda")
    with pytest.raises(RuntimeError, match=r"pip install|no CUDA GPU"):
        ember.ones(2).cuda()
    with pytest.raises(RuntimeError, match=r"pip install|no CUDA GPU"):
        ember.zeros(2, device="cuda:0")
    with pytest.raises(RuntimeError):
        nn.Linear(2, 2).cuda()
    assert ember.cuda.is_available() is False and ember.cuda.device_count() == 0
    assert ember.cuda.memory_allocated() == 0 and ember.cuda.max_memory_allocated() == 0
    ember.cuda.synchronize()
    ember.cuda.empty_cache()
    ember.cuda.reset_peak_memory_stats()
    ember.cuda.manual_seed(3)
    ember.cuda.manual_seed_all(3)
    with pytest.raises(RuntimeError, match="cuda"):
        ember.cuda.set_device(0)


def test_cuda_error_without_cupy_names_the_extra(monkeypatch):
    monkeypatch.setattr(backend_cuda, "_state", {"cupy": None})
    monkeypatch.setattr(backend.device, "_cache", {})
    with pytest.raises(RuntimeError, match=r"pip install 'ember-dl\[gpu\]'"):
        ember.device("cuda:0")


# ---------------------------------------------------------------- real devices
@pytest.mark.parametrize("dev", DEVICES)
def test_creation_functions_take_device(dev):
    fns = [lambda: ember.zeros(2, 3, device=dev), lambda: ember.ones(2, device=dev),
           lambda: ember.full((2,), 1.5, device=dev), lambda: ember.arange(4, device=dev),
           lambda: ember.linspace(0, 1, 5, device=dev), lambda: ember.eye(3, device=dev),
           lambda: ember.rand(3, device=dev), lambda: ember.randn(3, device=dev),
           lambda: ember.randint(0, 5, (3,), device=dev), lambda: ember.randperm(5, device=dev),
           lambda: ember.normal(0.0, 1.0, (3,), device=dev), lambda: ember.tensor([1.0, 2.0], device=dev),
           lambda: ember.empty(2, device=dev)]
    for f in fns:
        assert f().device == dev
    x = ember.ones(2, 3, device=dev)
    for like in (ember.zeros_like, ember.ones_like, ember.rand_like, ember.randn_like, ember.empty_like):
        assert like(x).device == dev
    assert ember.full_like(x, 2.0).device == dev and ember.randint_like(x, 0, 3).device == dev


@pytest.mark.parametrize("dev", DEVICES)
def test_round_trip_and_gradient_through_to(dev):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    x = ember.tensor(a, requires_grad=True)
    y = x.to(dev)
    assert y.device == dev and (y is x) == (dev == "cpu")
    (y * y).sum().backward()
    ref = torch.tensor(a, requires_grad=True)
    (ref * ref).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(y.cpu().detach().numpy(), a)


@pytest.mark.parametrize("dev", DEVICES)
def test_module_training_on_device_matches_torch(dev, tmp_path):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    em = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    em.to(dev)
    assert all(p.device == dev for p in em.parameters())
    opt, topt = ember.optim.Adam(em.parameters(), lr=0.01), torch.optim.Adam(tm.parameters(), lr=0.01)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        (em(ember.tensor(x, device=dev)) ** 2).mean().backward()
        (tm(torch.tensor(x)) ** 2).mean().backward()
        opt.step()
        topt.step()
    for (k, v), tv in zip(em.state_dict().items(), tm.state_dict().values()):
        np.testing.assert_allclose(v.cpu().numpy(), tv.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    path = str(tmp_path / "w.safetensors")
    ember.save(em.state_dict(), path)
    loaded = ember.load(path)
    assert all(t.device == "cpu" for t in loaded.values())
    assert all(t.device == dev for t in ember.load(path, map_location=dev).values())
    fresh = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to(dev)
    fresh.load_state_dict(loaded)
    assert all(p.device == dev for p in fresh.parameters())
    np.testing.assert_array_equal(fresh(ember.tensor(x, device=dev)).cpu().detach().numpy(),
                                  em(ember.tensor(x, device=dev)).cpu().detach().numpy())


def test_manual_seed_repeats_every_device():
    ember.manual_seed(5)
    a = ember.randn(4).numpy().copy()
    ember.manual_seed(5)
    np.testing.assert_array_equal(ember.randn(4).numpy(), a)
    np.testing.assert_array_equal(a, np.random.default_rng(5).standard_normal(4).astype(np.float32))


# ---------------------------------------------------------------- CUDA plumbing against the CuPy stand-in
def test_fake_cuda_devices_moves_and_mismatch_error(fake_cuda):
    assert ember.cuda.is_available() and ember.cuda.device_count() == 2
    d0, d1 = ember.device("cuda"), ember.device("cuda:1")
    assert (d0.index, d1.index) == (0, 1) and d0 == "cuda:0" and d0 != d1 and d0 != "cpu"
    with pytest.raises(RuntimeError, match="out of range"):
        ember.device("cuda:2")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = ember.tensor(a).cuda()
    assert x.device == "cuda:0" and x.is_cuda and type(x.data) is FakeCupyArray
    assert x.cuda(1).device == "cuda:1" and x.to(1).device == "cuda:1"
    y = (x * 2 + 1).sum(0)
    assert y.device == "cuda:0"
    np.testing.assert_array_equal(y.cpu().numpy(), (a * 2 + 1).sum(0))
    with pytest.raises(TypeError, match="cpu"):
        x.numpy()
    with pytest.raises(OpError, match=r"add: expected all tensors on the same device, got cuda:0 and cpu"):
        x + ember.tensor(a)
    with pytest.raises(OpError, match="matmul.*cpu and cuda:0"):
        ember.tensor(a) @ x.t()
    assert ember.zeros_like(x).device == "cuda:0" and ember.rand(3, device="cuda:1").device == "cuda:1"


def test_fake_cuda_module_to_moves_grads_and_optimizer_state(fake_cuda, tmp_path):
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = ember.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x = ember.randn(5, 3)
    m(x).sum().backward()
    opt.step()                                     # momentum buffers made on the CPU
    m.cuda()
    assert all(p.device == "cuda:0" and p.grad.device == "cuda:0" for p in m.parameters())
    assert all(b.device == "cuda:0" for b in m.buffers())
    opt.zero_grad()
    m(x.cuda()).sum().backward()
    opt.step()
    assert all(type(s["momentum_buffer"]) is FakeCupyArray for s in opt.state.values())
    path = str(tmp_path / "m.safetensors")
    ember.save(m.state_dict(), path)               # device-neutral: host arrays in the file
    cpu_model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    cpu_model.load_state_dict(ember.load(path))
    for (k, v), w in zip(m.state_dict().items(), cpu_model.state_dict().values()):
        assert w.device == "cpu"
        np.testing.assert_array_equal(v.cpu().numpy(), w.numpy(), err_msg=k)
    m.load_state_dict(cpu_model.state_dict())      # CPU weights into a CUDA model stay on CUDA
    assert all(p.device == "cuda:0" for p in m.parameters())
    m.cpu()
    assert all(p.device == "cpu" for p in m.parameters())


def test_fake_cuda_generators_and_memory(fake_cuda):
    ember.manual_seed(7)
    a = ember.rand(3, device="cuda").cpu().numpy()
    ember.manual_seed(7)
    np.testing.assert_array_equal(ember.rand(3, device="cuda").cpu().numpy(), a)
    np.testing.assert_array_equal(a, np.random.default_rng(7).random(3).astype(np.float32))
    assert backend.rng("cuda:1").seed == 8          # device i is seeded with seed + i
    ember.cuda.manual_seed_all(11)
    assert backend.rng("cuda:0").seed == 11
    assert ember.cuda.memory_allocated() >= 0 and ember.cuda.max_memory_allocated() >= ember.cuda.memory_allocated()
    ember.cuda.empty_cache()
    assert fake_cuda.freed
    with ember.cuda.device(1):
        assert ember.cuda.current_device() == 1 and ember.device("cuda") == "cuda:1"
        assert ember.zeros(2, device="cuda").device == "cuda:1"
    assert ember.cuda.current_device() == 0
    ember.cuda.set_device(1)
    assert ember.cuda.current_device() == 1 and ember.device("cuda") == "cuda:1"
