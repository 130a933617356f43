"""Ember vs PyTorch on the CPU, side by side in one process: MLP training throughput and tiny-op overhead.

Run:  python bench/bench_core.py [--runs 5] [--threads 2]
Prints a table and writes bench/results/core.json. Ratios are Ember ÷ PyTorch:
for throughput higher is better (≥ 1.0 means Ember is faster), for time lower is better.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time


def _set_threads(n: int):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def write_results(results: dict, path: str) -> None:
    """Write a benchmark's results as JSON, atomically."""
    from ember.utils.atomic import atomic_write
    with atomic_write(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(results, f, indent=2)


def _fused_adam() -> bool:
    from ember.optim import _fused
    return _fused.available


def _settle(seconds: float = 0.2):
    """Let the other library's worker threads stop spinning (OpenMP/OpenBLAS busy-wait after work) and collect."""
    gc.collect()
    time.sleep(seconds)


def mlp_throughput(mod, nn, optim, X, Y, init, batch=128):
    """Samples/s of one epoch of Adam training of a 784-256-128-10 MLP, data already in memory."""
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    model.load_state_dict({k: mod.tensor(v) for k, v in init.items()})
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xs = mod.from_numpy(X)
    ys = mod.from_numpy(Y)
    n = X.shape[0]
    t0 = time.perf_counter()
    for i in range(0, n - batch + 1, batch):
        xb, yb = xs[i:i + batch], ys[i:i + batch]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    float(loss.item())
    return (n // batch) * batch / (time.perf_counter() - t0)


def tiny_op_time(mod, op, size=16, iters=3000):
    """Microseconds for one tiny elementwise op forward plus backward."""
    x = mod.ones(size, requires_grad=True)
    w = mod.full((size,), 0.5, requires_grad=True)
    g = mod.ones(size)
    fn = {"mul": lambda: x * w, "add": lambda: x + w, "relu": lambda: x.relu(), "exp": lambda: x.exp()}[op]
    for _ in range(200):
        fn().backward(g)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn().backward(g)
    return (time.perf_counter() - t0) / iters * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=60_000)
    ap.add_argument("--no-numba", action="store_true", help="use Ember's portable NumPy optimizer path")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "core.json"))
    args = ap.parse_args(argv)
    _set_threads(args.threads)
    import numpy as np
    import torch

    import ember
    torch.set_num_threads(args.threads)
    if args.no_numba:
        from ember.optim import _fused
        _fused.available = False
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, 784)).astype(np.float32)
    Y = rng.integers(0, 10, args.samples).astype(np.int64)
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    init = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}

    results = {"threads": args.threads, "runs": args.runs}
    e_runs, t_runs = [], []
    mlp_throughput(ember, ember.nn, ember.optim, X[:2560], Y[:2560], init)    # warm-up: JIT, allocator, caches
    mlp_throughput(torch, torch.nn, torch.optim, X[:2560], Y[:2560], init)
    for _ in range(args.runs):          # interleaved so both see the same machine state
        _settle()
        e_runs.append(mlp_throughput(ember, ember.nn, ember.optim, X, Y, init))
        _settle()
        t_runs.append(mlp_throughput(torch, torch.nn, torch.optim, X, Y, init))
    e, t = statistics.median(e_runs), statistics.median(t_runs)
    # the machine's speed drifts between runs; a ratio of back-to-back runs cancels most of that drift
    ratio = statistics.median(a / b for a, b in zip(e_runs, t_runs))
    results["mlp"] = {"ember_samples_per_s": e, "torch_samples_per_s": t, "ratio": ratio,
                      "ember_runs": e_runs, "torch_runs": t_runs, "fused_adam": _fused_adam()}
    print(f"MLP 784-256-128-10, batch 128, Adam, {args.samples} samples, {args.threads} threads, "
          f"median of {args.runs} back-to-back pairs")
    print(f"  ember {e:10.0f} samples/s   torch {t:10.0f} samples/s   ember/torch = {ratio:.2f}x (higher is better)")
    results["tiny_ops"] = {}
    print("Tiny op (16 elements) forward+backward, microseconds (lower is better)")
    for op in ("mul", "add", "relu", "exp"):
        pairs = [(tiny_op_time(ember, op), tiny_op_time(torch, op)) for _ in range(args.runs)]
        e_t, t_t = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        r = statistics.median(a / b for a, b in pairs)
        results["tiny_ops"][op] = {"ember_us": e_t, "torch_us": t_t, "ratio": r}
        print(f"  {op:5s} ember {e_t:6.1f} us   torch {t_t:6.1f} us   ember/torch = {r:.2f}x")
    write_results(results, args.out)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
