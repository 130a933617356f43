"""Ember on a CUDA GPU (CuPy) against PyTorch on the same GPU: training throughput and matmul TFLOP/s.

Run:  python bench/bench_gpu.py [--runs 5] [--steps 20] [--models mlp,resnet18,transformer] [--no-matmul]

* mlp: the ``bench_jit`` MLP (784-256-128-10, batch 128, Adam): eager, ``ember.jit`` and
  ``ember.jit(cuda_graph=True)``;
* resnet18: ResNet-18 for CIFAR (3x3 stem, no max pool), batch 128 of 3x32x32, SGD momentum 0.9: float32 and
  bfloat16 autocast (``ember.autocast('cuda', dtype=ember.bfloat16)`` / ``torch.autocast``), eager and jit;
* transformer: 2-layer ``TransformerEncoder`` (seq 256, d_model 512, 8 heads, feed-forward 2048, dropout 0.1,
  batch 32) with a mean-pool head, Adam, eager and jit;
* matmul: 8192x8192 products in float32 and bfloat16 (float16 where Ember's CuPy arrays have no bfloat16),
  TFLOP/s of each library and the fraction of the device's dense peak (table below, by device name).

Both libraries start from the same weights (PyTorch's ``state_dict`` copied into Ember's model). Each timing
is ``--steps`` steps followed by a device synchronisation; runs alternate between the libraries and the
reported ratio (Ember ÷ PyTorch throughput, > 1: Ember faster) is the median of the pairwise ratios.
Writes bench/results/gpu.json. Without a CUDA GPU (or CuPy, or PyTorch's CUDA build) it says so and exits 2.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# dense (no sparsity) peak TFLOP/s by device name fragment, most specific first: NVIDIA's data sheets
PEAK_TFLOPS = [("H200", {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4}),
               ("H100 PCIe", {"float32": 51.2, "tf32": 378.0, "bfloat16": 756.0, "float16": 756.0}),
               ("H100", {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4}),
               ("A100", {"float32": 19.5, "tf32": 156.0, "bfloat16": 312.0, "float16": 312.0})]


def peak_for(name: str) -> dict | None:
    """The peak table row for a device name such as 'NVIDIA H100 80GB HBM3', or None if unknown."""
    for fragment, row in PEAK_TFLOPS:
        if fragment.lower() in name.lower():
            return row
    return None


def cuda_problem() -> str | None:
    """Why this machine cannot run the benchmark (no GPU, no CuPy, no ember.cuda, no CUDA PyTorch), or None."""
    if os.environ.get("EMBER_BENCH_FORCE_NO_CUDA"):
        return "EMBER_BENCH_FORCE_NO_CUDA is set"
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device"
    except Exception as e:           # not installed, or no driver / device
        return f"CuPy cannot reach a CUDA device ({type(e).__name__}: {e})"
    import ember
    if not (hasattr(ember, "cuda") and ember.cuda.is_available()):
        return "ember.cuda.is_available() is False (or this Ember has no CUDA backend)"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "PyTorch has no CUDA device (a CPU-only build?)"
    return None


def device_name() -> str:
    import cupy
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


# ---------------------------------------------------------------- models, written once for either library
def mlp(nn):
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def resnet18(nn):
    """ResNet-18 for 32x32 inputs: a 3x3 stem, four stages of two basic blocks, global average pool, linear."""

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.short is None else self.short(x)))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
            blocks, cin = [], 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            return self.fc(self.blocks(self.stem(x)).mean((2, 3)))
    return ResNet18()


def encoder(nn):
    extra = {"enable_nested_tensor": False} if nn.__name__.startswith("torch") else {}

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.1, batch_first=True),
                                             2, **extra)
            self.head = nn.Linear(512, 10)

        def forward(self, x):
            return self.head(self.enc(x).mean(1))
    return Encoder()


MODELS = {"mlp": (mlp, (784,), 128, "adam"), "resnet18": (resnet18, (3, 32, 32), 128, "sgd"),
          "transformer": (encoder, (256, 512), 32, "adam")}


def build(name, ember, torch, autocast=None):
    """``(ember_step, torch_step)``: zero-argument training steps on the GPU, from the same initial weights.
    ``autocast``: None, or 'bf16' (both libraries' autocast around forward and loss)."""
    import contextlib

    import numpy as np
    make, shape, batch, opt = MODELS[name]
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    tm = make(torch.nn).cuda()
    em = make(ember.nn)
    em.load_state_dict({k: ember.tensor(v.detach().cpu().numpy().copy()) for k, v in tm.state_dict().items()})
    em = em.to("cuda")
    if opt == "sgd":
        topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        eopt = ember.optim.SGD(em.parameters(), lr=0.01, momentum=0.9)
    else:
        topt, eopt = torch.optim.Adam(tm.parameters(), lr=1e-3), ember.optim.Adam(em.parameters(), lr=1e-3)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    xt, yt = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    xe, ye = ember.tensor(x, device="cuda"), ember.tensor(y, device="cuda")
    ember_cast = (lambda: ember.autocast("cuda", dtype=ember.bfloat16)) if autocast else contextlib.nullcontext
    torch_cast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext

    def ember_step():
        eopt.zero_grad()
        with ember_cast():
            loss = ember.nn.functional.cross_entropy(em(xe), ye)
        loss.backward()
        eopt.step()
        return loss

    def torch_step():
        topt.zero_grad()
        with torch_cast():
            loss = torch.nn.functional.cross_entropy(tm(xt), yt)
        loss.backward()
        topt.step()
        return loss
    return ember_step, torch_step


# ---------------------------------------------------------------- timing
def timed(step, sync, steps: int) -> float:
    """Steps per second over ``steps`` calls, the device drained before and after."""
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - t0)


def compare(ember_step, torch_step, esync, tsync, steps: int, runs: int, warmup: int = 3) -> dict:
    """Medians of alternating runs and the median pairwise ratio Ember ÷ PyTorch."""
    for _ in range(warmup):
        ember_step()
        torch_step()
    e_runs, t_runs = [], []
    for _ in range(runs):
        e_runs.append(timed(ember_step, esync, steps))
        t_runs.append(timed(torch_step, tsync, steps))
    return {"ember_steps_per_s": statistics.median(e_runs), "torch_steps_per_s": statistics.median(t_runs),
            "ratio": statistics.median(a / b for a, b in zip(e_runs, t_runs)), "runs": runs, "steps": steps}


def matmul_tflops(ember, torch, dtype_name: str, n: int, esync, tsync, runs: int) -> dict:
    """TFLOP/s of an n x n x n product in both libraries (2 n^3 flops), medians of ``runs`` timings of 10."""
    import numpy as np
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    ta = torch.from_numpy(a).cuda().to(getattr(torch, dtype_name))
    ea = ember.tensor(a, device="cuda").to(getattr(ember, dtype_name))
    flops = 2.0 * n ** 3
    r = compare(lambda: ea @ ea, lambda: ta @ ta, esync, tsync, steps=10, runs=runs)
    return {"ember_tflops": r["ember_steps_per_s"] * flops / 1e12,
            "torch_tflops": r["torch_steps_per_s"] * flops / 1e12, "ratio": r["ratio"], "n": n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--models", default="mlp,resnet18,transformer")
    ap.add_argument("--matmul-n", type=int, default=8192)
    ap.add_argument("--no-matmul", action="store_true")
    args = ap.parse_args(argv)
    problem = cuda_problem()
    if problem is not None:
        print(f"bench_gpu.py needs a CUDA GPU with CuPy, Ember's CUDA backend and PyTorch's CUDA build: {problem}",
              file=sys.stderr)
        return 2
    import torch

    import ember
    from bench_core import write_results
    name = device_name()
    esync, tsync = ember.cuda.synchronize, torch.cuda.synchronize
    results: dict = {"device": name, "runs": args.runs, "steps": args.steps, "models": {}}
    print(f"{name}: Ember (CuPy) vs PyTorch {torch.__version__}, median of {args.runs} alternating runs of "
          f"{args.steps} steps (ratios > 1: Ember faster)")
    for model in args.models.split(","):
        variants = [(None, "float32")] + ([("bf16", "bf16 autocast")] if model == "resnet18" else [])
        for cast, label in variants:
            if cast and not hasattr(ember, "autocast"):
                print(f"{model:<12s} {label}: skipped (ember.autocast is not available)")
                continue
            ember_step, torch_step = build(model, ember, torch, cast)
            jit_step = ember.jit(ember_step)
            jit_step()
            row = {"eager": compare(ember_step, torch_step, esync, tsync, args.steps, args.runs),
                   "jit": compare(jit_step, torch_step, esync, tsync, args.steps, args.runs)}
            if model == "mlp":
                graph_step = ember.jit(ember_step, cuda_graph=True)
                graph_step()
                row["jit_cuda_graph"] = compare(graph_step, torch_step, esync, tsync, args.steps, args.runs)
            results["models"][f"{model} {label}"] = row
            torch_rate = row["eager"]["torch_steps_per_s"]
            print(f"{model:<12s} {label:<14s} torch {torch_rate:9.1f} steps/s   "
                  + "   ".join(f"{k} {v['ember_steps_per_s']:9.1f} ({v['ratio']:.2f}x)" for k, v in row.items()))
    if not args.no_matmul:
        peak = peak_for(name)
        results["peak_tflops"] = peak
        results["matmul"] = {}
        for dtype_name in ("float32", "bfloat16", "float16"):
            try:
                r = matmul_tflops(ember, torch, dtype_name, args.matmul_n, esync, tsync, args.runs)
            except Exception as e:   # e.g. no bfloat16 on Ember's CuPy arrays
                print(f"matmul {dtype_name}: skipped ({type(e).__name__}: {e})")
                continue
            if peak:
                r["ember_fraction_of_peak"] = r["ember_tflops"] / peak[dtype_name]
                r["torch_fraction_of_peak"] = r["torch_tflops"] / peak[dtype_name]
            results["matmul"][dtype_name] = r
            share = f"  ({r['ember_fraction_of_peak']:.0%} of {peak[dtype_name]:.0f} peak)" if peak else ""
            print(f"matmul {dtype_name:<9s} n={args.matmul_n}: ember {r['ember_tflops']:7.1f} TFLOP/s{share}   "
                  f"torch {r['torch_tflops']:7.1f}   ember/torch = {r['ratio']:.2f}x")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "gpu.json")
    write_results(results, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
