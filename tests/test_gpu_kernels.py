"""The CUDA paths of graph mode and of the conv/pool ops, checked on the CPU.

* Fused CuPy ``ElementwiseKernel`` s: the generated parameter lists and C body for a few groups, and the C body
  compiled with the host C++ compiler (CUDA's device math overloads stood in by ``<cmath>``) and run through
  a stand-in ``cupy`` module, so that fused graphs, a whole jitted Adam step included, are compared with NumPy.
* CUDA Graph replay: the capture logic driven by a stand-in stream (its graph re-runs what was captured).
* the GPU benchmark's peak table and its exit without CUDA.

The cuDNN dispatch of the conv and pool ops is in ``test_gpu_cudnn.py``.
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
import warnings

import numpy as np
import pytest

import ember
from helpers.training import cross_entropy_step
from ember.graph import cuda_graph, fusion, passes, trace
from ember.graph import function as jit_function

GXX = shutil.which("g++")

# ---------------------------------------------------------------- a host-compiled stand-in for ElementwiseKernel
_HEADER = """#include <cmath>
#include <cstring>
using std::exp; using std::log; using std::sqrt; using std::tanh;
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
"""
_C = {"float32": "float", "float64": "double", "bool": "bool"}


def _params(text):
    out = []
    for p in filter(None, (s.strip() for s in text.split(","))):
        words = p.split()
        out.append(("raw" in words[:-2], words[-2], words[-1]))
    return out


class HostKernel:
    """``cupy.ElementwiseKernel``'s call contract on NumPy arrays: the C body compiled for the host."""

    def __init__(self, in_params, out_params, operation, name):
        self.ins, self.outs, self.operation, self.name = _params(in_params), _params(out_params), operation, name
        lines = [_HEADER, f'extern "C" void {name}(long n, void** p) {{', "  for (long i = 0; i < n; ++i) {"]
        for k, (raw, dtype, pname) in enumerate(self.ins + self.outs):
            c = _C[dtype]
            if raw:
                lines.append(f"    const {c}* {pname} = (const {c}*)p[{k}];")
            elif k < len(self.ins):
                lines.append(f"    const {c} {pname} = (({c}*)p[{k}])[i];")
            else:
                lines.append(f"    {c}& {pname} = (({c}*)p[{k}])[i];")
        lines += ["    " + line for line in operation.splitlines()] + ["  }", "}"]
        self.cpp = "\n".join(lines)
        d = tempfile.mkdtemp(prefix="ember_host_kernel_")
        src, lib = os.path.join(d, "k.cpp"), os.path.join(d, "k.so")
        with open(src, "w") as f:
            f.write(self.cpp)
        subprocess.run([GXX, "-O1", "-shared", "-fPIC", "-o", lib, src], check=True, capture_output=True)
        self.fn = getattr(ctypes.CDLL(lib), name)

    def __call__(self, *arrays):
        assert len(arrays) == len(self.ins) + len(self.outs), (len(arrays), self.ins, self.outs)
        shape = next(a.shape for (raw, _, _), a in zip(self.ins + self.outs, arrays) if not raw)
        ptrs = []
        for (raw, dtype, pname), a in zip(self.ins + self.outs, arrays):
            assert a.dtype == np.dtype(dtype), (pname, a.dtype, dtype)
            assert (a.shape == (1,)) if raw else (a.shape == shape), (pname, a.shape, shape)
            assert a.flags.c_contiguous
            ptrs.append(a.ctypes.data)
        self.fn(ctypes.c_long(int(np.prod(shape))), (ctypes.c_void_p * len(ptrs))(*ptrs))


def _fake_cupy():
    m = types.ModuleType("cupy")
    m.ElementwiseKernel = HostKernel
    return m


@pytest.fixture(autouse=True)
def _fresh_cuda_kernels():
    """Each test builds its own stand-in kernels: drop the CUDA entries of the kernel cache around it."""
    def drop():
        for key in [k for k in fusion._KERNELS if k.startswith("cuda-")]:
            del fusion._KERNELS[key]
    drop()
    yield
    drop()


needs_gxx = pytest.mark.skipif(GXX is None, reason="the host C++ compiler stands in for NVRTC")


def _fused(g):
    return [n for n in g.nodes if n.op is fusion.FusedElementwise]


def _adam_graph():
    ember.manual_seed(0)
    lin = ember.nn.Linear(5, 3)
    opt = ember.optim.Adam(lin.parameters(), lr=1e-2)
    x = ember.randn(4, 5)

    def step():
        opt.zero_grad()
        loss = lin(x).relu().pow(2).mean()
        loss.backward()
        opt.step()
        return loss
    f = ember.jit(step, optimize=False)
    f()
    return passes.optimize(jit_function._copy(f.graphs[0]))


# ---------------------------------------------------------------- generated CUDA source
def test_relu_backward_becomes_one_cuda_kernel_with_expected_source():
    fake = types.ModuleType("cupy")
    specs = []
    fake.ElementwiseKernel = lambda *a: specs.append(a) or object()
    x = ember.randn(6, 4)
    g = fusion.fuse_elementwise(trace(lambda x, gr: ember.where(x > 0, gr, 0.0), x, ember.randn(6, 4)), fake)
    (node,) = _fused(g)
    assert node.attrs["key"].startswith("cuda-") and node.attrs["ops"] == "gt+where"
    ((ins, outs, op, name),) = specs
    assert ins == "float32 x0, float32 x1, raw float32 x2" and outs == "float32 out0"   # x2: the 0-d zero
    assert op.splitlines() == ["const float x2v = x2[0];", "const float c0 = (float)(0.0);",
                               "const bool t0 = (x0 > c0);", "const float t1 = (t0 ? x1 : x2v);", "out0 = t1;"]
    assert name == "ember_fused_" + node.attrs["key"][5:]


def test_adam_update_kernels_read_scalars_raw_and_write_in_place():
    specs = []
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = lambda *a: specs.append(a) or object()
    g = fusion.fuse_elementwise(_adam_graph(), fake)
    into = [n for n in _fused(g) if n.attrs.get("into")]
    assert len(into) == 2                                 # the weight's and the bias's update
    texts = {s[2]: s for s in specs}
    assert len(texts) == len(specs)                       # one kernel per distinct source (equal chains share)
    update = [s for s in specs if "sqrt(" in s[2]]
    assert update
    for ins, outs, op, _ in update:
        raws = [p for p in ins.split(", ") if p.startswith("raw ")]
        assert raws and all(p.startswith("raw float32 x") for p in raws)       # lr, bias corrections: 0-d
        for p in raws:
            assert f"= {p.split()[-1]}[0];" in op                               # read once, on the device
        written = [p.split()[-1] for p in outs.split(", ") if p.split()[-1].startswith("x")]
        assert len(written) == 3                          # parameter, first and second moments, in place
        assert all(f"\n{w} = t" in "\n" + op for w in written)
        assert not set(written) & {p.split()[-1] for p in ins.split(", ")}     # in/out params are outputs only


def test_constants_and_nan_rules_in_cuda_source():
    spec_of = []
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = lambda *a: spec_of.append(a) or object()
    x = ember.randn(3, 3, dtype=ember.float64)
    fusion.fuse_elementwise(trace(lambda x: ember.maximum(x * float("inf"), x - 1e-8), x), fake)
    ((ins, outs, op, _),) = spec_of
    assert ins == "float64 x0" and outs == "float64 out0"
    assert "__longlong_as_double(0x7ff0000000000000LL)" in op and "(double)(1e-08)" in op
    assert "!= " in op                                    # maximum propagates NaN as NumPy's


@needs_gxx
def test_special_constants_compile_and_match_numpy():
    fake = _fake_cupy()
    for dtype in (ember.float32, ember.float64):
        x = ember.randn(8, 3, dtype=dtype)
        x.data[0, 0] = 0.0

        def f(x):
            return ember.minimum(x * float("inf"), x - float("inf")) + x * 1e-8
        want = trace(f, x).run(x.numpy())[0]
        g = fusion.fuse_elementwise(trace(f, x), fake)
        assert _fused(g)
        np.testing.assert_array_equal(g.run(x.numpy())[0], want)     # inf, -inf and the 0 * inf NaN


def test_other_dtypes_are_not_fused_for_cuda():
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = lambda *a: pytest.fail("no kernel for float16")
    x = ember.randn(4, 4).half()
    g = fusion.fuse_elementwise(trace(lambda x: x * 2 + 1, x), fake)
    assert not _fused(g)


# ---------------------------------------------------------------- the C body, compiled and run on the host
@needs_gxx
def test_fused_cuda_bodies_compute_numpys_values():
    fake = _fake_cupy()
    x = ember.randn(64, 17)
    x.data[0, :3] = [np.nan, np.inf, -np.inf]
    s = ember.tensor(np.float32(0.75))

    def f(x, s):
        m = x > 0.25
        a = ember.where(m, x * 2.0, x - 1.0)
        b = ember.maximum(a, x * s) - ember.minimum(x, 0.5)
        return (a.abs() + 1).log(), b / (x * x + 1).sqrt(), m
    want = trace(f, x, s).run(x.numpy(), s.numpy())
    g = fusion.fuse_elementwise(trace(f, x, s), fake)
    assert _fused(g)
    got = g.run(x.numpy(), s.numpy())
    np.testing.assert_allclose(got[0], want[0], rtol=2e-6)
    np.testing.assert_array_equal(got[1], want[1])        # + - * / sqrt, max/min with NaN: exactly NumPy's
    np.testing.assert_array_equal(got[2], want[2])


@needs_gxx
def test_jitted_adam_step_with_cuda_kernels_matches_eager(monkeypatch):
    """A whole training step fused for CuPy (the kernels compiled for the host) keeps eager mode's numbers."""
    monkeypatch.setattr(jit_function, "_cupy", _fake_cupy)
    monkeypatch.setattr(jit_function, "_backend_of", lambda graph, leaves: "cupy")
    runs = []
    for use_jit in (False, True):
        ember.manual_seed(0)
        model = ember.nn.Sequential(ember.nn.Linear(6, 8), ember.nn.ReLU(), ember.nn.Linear(8, 3))
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)
        x, y = ember.randn(5, 6), ember.tensor(np.array([0, 2, 1, 1, 0]))

        step = cross_entropy_step(model, opt, x, y)
        run = ember.jit(step) if use_jit else step
        losses = [float(run().item()) for _ in range(4)]
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
        if use_jit:
            assert any(n.attrs["key"].startswith("cuda-") for n in _fused(run.graphs[0]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- CUDA Graph replay
class _FakeExec:
    """A captured graph: its launch re-runs the captured body and writes the outputs where capture left them."""

    def __init__(self, step):
        self.step, self.launches = step, 0

    def launch(self, stream=None):
        self.launches += 1
        for buf, out in zip(self.step._outputs, self.step._body()):
            if buf is not out:
                buf[...] = out


class _FakeStream:
    def __init__(self, cuda, non_blocking=False):
        self.cuda, self.capturing = cuda, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self, mode=None):
        self.capturing = True
        self.saved = [a.copy() for a in self.cuda.state()]   # capture runs nothing: restored at the end

    def is_capturing(self):
        return self.capturing

    def end_capture(self):
        self.capturing = False
        for a, s in zip(self.cuda.state(), self.saved):
            a[...] = s
        if self.cuda.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        return _FakeExec(self.cuda.step)


class _FakeCuda:
    def __init__(self, state, fail=False):
        self.state, self.fail, self.step, self.streams = state, fail, None, []

    def Stream(self, non_blocking=False):
        s = _FakeStream(self, non_blocking)
        self.streams.append(s)
        return s

    def get_current_stream(self):
        return None


def _training(seed=0, dropout=0.0):
    ember.manual_seed(seed)
    layers = [ember.nn.Linear(6, 8), ember.nn.ReLU()] + ([ember.nn.Dropout(dropout)] if dropout else [])
    model = ember.nn.Sequential(*layers, ember.nn.Linear(8, 3))
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)
    sched = ember.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = ember.randn(5, 6), ember.tensor(np.array([0, 2, 1, 1, 0]))

    def step(x):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, sched, x, step


def _state_arrays(model, opt):
    arrays = [p.data for p in model.parameters()]
    arrays += [v for st in opt.state.values() for v in st.values() if isinstance(v, np.ndarray)]
    arrays += [v.data for st in opt.state.values() for v in st.values() if isinstance(v, ember.Tensor)]
    return arrays


def test_cuda_graph_captures_once_and_replays_with_eager_numbers():
    ref_model, _, ref_sched, x, ref_step = _training()
    ref = []
    for i in range(6):
        ref.append(float(ref_step(x + i).item()))
        ref_sched.step()
    model, opt, sched, x, step = _training()
    f = ember.jit(step, cuda_graph=True)
    fake = _FakeCuda(lambda: _state_arrays(model, opt))
    losses = []
    for i in range(6):
        losses.append(float(f(x + i).item()))
        if i == 0:                                    # traced; then attach the stand-in capture to the entry
            (entry,) = f.cache.values()
            assert entry.replay is None               # NumPy arrays: the flag is ignored
            entry.replay = fake.step = cuda_graph.CudaGraphStep(entry.graph, np, cuda=fake)
        sched.step()                                  # a schedule between steps: prologue refreshes the lr
    step_obj = entry.replay
    assert step_obj.captures == 1 and step_obj.replays == 4 and len(fake.streams) == 1
    np.testing.assert_allclose(losses, ref, rtol=1e-5)
    for a, b in zip(model.parameters(), ref_model.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_cuda_graph_recaptures_when_a_parameter_array_is_replaced():
    model, opt, _, x, step = _training()
    f = ember.jit(step)
    f(x)
    (entry,) = f.cache.values()
    fake = _FakeCuda(lambda: _state_arrays(model, opt))
    entry.replay = fake.step = cuda_graph.CudaGraphStep(entry.graph, np, cuda=fake)
    f(x), f(x)
    first = list(model.parameters())[0]
    first.data = first.data.copy()
    f(x), f(x)
    assert entry.replay.captures == 2 and entry.replay.replays == 2


def test_cuda_graph_falls_back_with_a_warning_when_capture_fails():
    model, opt, _, x, step = _training()
    f = ember.jit(step)
    f(x)
    (entry,) = f.cache.values()
    fake = _FakeCuda(lambda: _state_arrays(model, opt), fail=True)
    entry.replay = fake.step = cuda_graph.CudaGraphStep(entry.graph, np, cuda=fake)
    with pytest.warns(cuda_graph.CudaGraphWarning, match="capturing failed"):
        f(x)                                          # runs the step, then tries to capture it
    assert entry.replay.disabled and not fake.streams[0].capturing
    before = [p.detach().numpy().copy() for p in model.parameters()]
    f(x)                                              # still trains, kernel by kernel
    assert any(not np.array_equal(p.detach().numpy(), b) for p, b in zip(model.parameters(), before))


def test_cuda_graph_refuses_random_ops():
    model, opt, _, x, step = _training(dropout=0.5)
    f = ember.jit(step)
    f(x)
    (entry,) = f.cache.values()
    with pytest.warns(cuda_graph.CudaGraphWarning, match="random"):
        replay = cuda_graph.CudaGraphStep(entry.graph, np, cuda=_FakeCuda(lambda: []))
    assert replay.disabled


def test_cuda_graph_flag_is_accepted_and_silent_on_numpy():
    model, opt, _, x, step = _training()
    f = ember.jit(step, cuda_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            f(x)
    assert all(e.replay is None for e in f.cache.values())
    g = ember.jit(cuda_graph=True)(lambda a: a * 2)
    np.testing.assert_array_equal(g(ember.ones(2)).numpy(), [2, 2])


# ---------------------------------------------------------------- the GPU benchmark without a GPU
def test_bench_gpu_exits_clearly_without_cuda():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, EMBER_BENCH_FORCE_NO_CUDA="1")
    r = subprocess.run([sys.executable, os.path.join(root, "bench", "bench_gpu.py")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert "needs a CUDA GPU" in r.stderr and "Traceback" not in r.stderr


def test_bench_gpu_peak_table_and_reason_without_cupy():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    assert bench_gpu.peak_for("NVIDIA H100 PCIe")["float32"] == 51.2
    h100, a100 = bench_gpu.peak_for("NVIDIA H100 80GB HBM3"), bench_gpu.peak_for("NVIDIA A100-SXM4-80GB")
    assert h100["bfloat16"] > a100["bfloat16"] and h100 is not bench_gpu.peak_for("NVIDIA H100 PCIe")
    assert bench_gpu.peak_for("NVIDIA H200")["tf32"] > 0 and bench_gpu.peak_for("Tesla T4") is None
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert "CuPy" in bench_gpu.cuda_problem()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_prepared_gpu_check_script_parses_and_names_existing_tests():
    """bench/gpu_checks.sh is what a session lent a GPU runs in one call: it must parse, fit its call's limit,
    and name test files and a benchmark that exist (a rename here must not leave it running nothing)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "bench", "gpu_checks.sh")
    assert subprocess.run(["bash", "-n", script], capture_output=True).returncode == 0
    text = open(script).read()
    named = set(re.findall(r"tests/test_[a-z_]+\.py", text)) | set(re.findall(r"bench/[a-z_]+\.py", text))
    assert {"tests/test_ops_linalg.py", "tests/test_devices.py", "bench/bench_gpu.py"} <= named
    assert [p for p in named if not os.path.exists(os.path.join(root, p))] == []
    limits = [int(n) for n in re.findall(r"^stage \w+ (\d+) ", text, re.M)]
    assert len(limits) == 4 and sum(limits) < 590             # inside one device call's 600 s
    assert "EMBER_TEST_DEVICE=cuda" in text
