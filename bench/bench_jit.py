"""Graph mode (``ember.jit``) against eager mode and PyTorch: training-step throughput, side by side in one process.

Run:  python bench/bench_jit.py [--threads 2] [--runs 5] [--steps 10] [--alternate 100] [--models mlp,lenet,transformer]
      [--torch-compile]

Each model is built in both libraries from the same initial weights (PyTorch's ``state_dict`` copied in):

* mlp: 784-256-128-10 with ReLU, batch 128, Adam (the ``bench_core`` MLP);
* lenet: LeNet-5 on 1x28x28, batch 64, SGD momentum 0.9 (the ``bench_cnn`` LeNet);
* transformer: 2-layer ``TransformerEncoder`` (seq 64, d_model 128, 8 heads, feed-forward 512, dropout 0.1,
  batch 16) with a mean-pool head, Adam (the ``bench_transformer`` encoder).

A step is zero_grad, forward, cross-entropy, backward and the optimizer's step; the jitted step is the same
function through ``ember.jit``, so one graph holds all of it. Ratios are medians of back-to-back pairs of
``--steps`` steps (``steps.compare_steps``): jit ÷ eager, jit ÷ PyTorch eager, and with ``--torch-compile``
``torch.compile``'d PyTorch ÷ PyTorch eager. jit ÷ eager is also measured over ``--alternate`` single steps of
each run alternately (``steps.alternate_steps``: the ratio of the median step times), which a noisy shared
VM disturbs less. Also prints the peak of NumPy's allocations during one LeNet-5
step (``tracemalloc``) in eager and graph mode. Writes bench/results/jit.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from steps import alternate_steps, compare_steps, set_threads  # noqa: E402


def _mlp(nn, F):
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def _encoder(nn, F):
    """The bench_transformer encoder with its mean-pool head, for either library."""
    extra = {"enable_nested_tensor": False} if nn.__name__.startswith("torch") else {}

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(128, 8, 512, dropout=0.1, batch_first=True),
                                             2, **extra)
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            return self.head(self.enc(x).mean(1))
    return Encoder()


def build(name, ember, torch):
    """(ember_step, torch_step, ember model) for one model: zero-argument training steps returning the loss."""
    import numpy as np
    from bench_cnn import lenet
    rng = np.random.default_rng(0)
    make, shape, batch, opt = {"mlp": (_mlp, (784,), 128, "adam"), "lenet": (lenet, (1, 28, 28), 64, "sgd"),
                               "transformer": (_encoder, (64, 128), 16, "adam")}[name]
    torch.manual_seed(0)
    tm = make(torch.nn, torch.nn.functional)
    em = make(ember.nn, ember.nn.functional)
    em.load_state_dict({k: ember.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    if opt == "sgd":
        topt, eopt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9), \
            ember.optim.SGD(em.parameters(), lr=0.01, momentum=0.9)
    else:
        topt, eopt = torch.optim.Adam(tm.parameters(), lr=1e-3), ember.optim.Adam(em.parameters(), lr=1e-3)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    xt, yt, xe, ye = torch.from_numpy(x), torch.from_numpy(y), ember.from_numpy(x), ember.from_numpy(y)

    def ember_step():
        eopt.zero_grad()
        loss = ember.nn.functional.cross_entropy(em(xe), ye)
        loss.backward()
        eopt.step()
        return loss

    def torch_step(model=tm):
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        topt.step()
        return loss
    return ember_step, torch_step, tm


def peak_bytes(step) -> int:
    """The peak of traced (NumPy) allocations during one call of ``step``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--models", default="mlp,lenet,transformer")
    ap.add_argument("--alternate", type=int, default=100, help="single jit and eager steps timed alternately")
    ap.add_argument("--torch-compile", action="store_true", help="also time torch.compile'd PyTorch")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    import torch

    import ember
    from bench_core import write_results
    torch.set_num_threads(args.threads)
    results = {}
    print(f"Graph mode, 2 libraries, {args.threads} threads, median of {args.runs} back-to-back pairs of "
          f"{args.steps} steps (ratios > 1: the first is faster)")
    for name in args.models.split(","):
        ember_step, torch_step, tm = build(name, ember, torch)
        jit_step = ember.jit(ember_step)
        jit_step()                                        # trace and compile before timing
        alt = alternate_steps(jit_step, ember_step, steps=args.alternate)
        r = {"jit_vs_eager_alternating": alt,
             "jit_vs_eager": compare_steps(jit_step, ember_step, steps=args.steps, runs=args.runs),
             "jit_vs_torch": compare_steps(jit_step, torch_step, steps=args.steps, runs=args.runs),
             "eager_vs_torch": compare_steps(ember_step, torch_step, steps=args.steps, runs=args.runs)}
        line = (f"{name:<12s} jit {r['jit_vs_eager']['ember_steps_per_s']:8.1f} steps/s  eager "
                f"{r['jit_vs_eager']['torch_steps_per_s']:8.1f}  torch {r['jit_vs_torch']['torch_steps_per_s']:8.1f}"
                f"   jit/eager = {r['jit_vs_eager']['ratio']:.2f}x (alternating steps: {alt['ratio']:.2f}x, "
                f"{alt['first_s'] * 1e3:.2f} vs {alt['second_s'] * 1e3:.2f} ms)"
                f"   jit/torch = {r['jit_vs_torch']['ratio']:.2f}x"
                f"   eager/torch = {r['eager_vs_torch']['ratio']:.2f}x")
        if args.torch_compile:
            try:
                compiled = torch.compile(tm)
                step = (lambda m: (lambda: torch_step(m)))(compiled)
                step()
                r["torch_compile_vs_torch"] = compare_steps(step, torch_step, steps=args.steps, runs=args.runs)
                r["jit_vs_torch_compile"] = compare_steps(jit_step, step, steps=args.steps, runs=args.runs)
                line += (f"   torch.compile/torch = {r['torch_compile_vs_torch']['ratio']:.2f}x   jit/torch.compile = "
                         f"{r['jit_vs_torch_compile']['ratio']:.2f}x")
            except Exception as e:       # no working compiler backend on this machine
                r["torch_compile_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                line += f"   torch.compile: n/a ({r['torch_compile_error'][:60]})"
        if name == "lenet":
            r["peak_bytes"] = {"eager": peak_bytes(ember_step), "jit": peak_bytes(jit_step),
                               "jit_plan": jit_step.graphs[0].peak_bytes()}
            line += (f"\n{'':12s} peak NumPy memory of one step: eager {r['peak_bytes']['eager'] / 2**20:.2f} MiB, "
                     f"jit {r['peak_bytes']['jit'] / 2**20:.2f} MiB (the graph's liveness plan: "
                     f"{r['peak_bytes']['jit_plan'] / 2**20:.2f} MiB of node values)")
        print(line, flush=True)
        results[name] = r
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    write_results(results, os.path.join(out_dir, "jit.json"))
    return results


if __name__ == "__main__":
    main()
