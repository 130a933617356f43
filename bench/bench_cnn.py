"""Convolutional networks, Ember vs PyTorch on the CPU: LeNet-5 and ResNet-8 training steps, plus per-op timings.

Run:  python bench/bench_cnn.py [--threads 2] [--runs 5] [--steps 10] [--clock wall|cpu] [--no-ops] [--no-models]
Each model is built in both libraries from the same initial weights (PyTorch's ``state_dict`` copied into
Ember), then trained with SGD (momentum 0.9) on cross-entropy over a fixed random batch:

* LeNet-5 on 1x28x28, batch 64: conv 6@5x5 pad 2, relu, maxpool 2, conv 16@5x5, relu, maxpool 2, 120, 84, 10;
* ResNet-8 on 3x32x32, batch 32: conv3x3 16, bn, relu, three BasicBlocks (16; 32 stride 2; 64 stride 2; a
  1x1 conv + bn shortcut where the shape changes), global average pool, linear 10.

Prints steps/s of both and the median of back-to-back pairwise ratios Ember / PyTorch (>= 1.0 means Ember is
faster), then the same for the single ops (conv2d forward, forward + backward, max_pool2d forward + backward)
at the shapes these networks use. Writes bench/results/cnn.json. One model definition serves both libraries
(``torch.nn`` or ``ember.nn`` is passed in).

On a machine shared with other work, wall-clock ratios at 2 threads swing widely (a thread pool waiting for a
busy core); ``--threads 1 --clock cpu`` times each run by the process's CPU time instead, which is far steadier
and still compares the kernels like for like.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import write_results  # noqa: E402
from steps import compare_steps, profile, report, set_threads  # noqa: E402


# ---------------------------------------------------------------- the networks, written once for both libraries
def lenet(nn, F):
    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.pool = nn.MaxPool2d(2)
            self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.reshape(x.shape[0], -1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
    return LeNet5()


def resnet8(nn, F):
    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.layer1, self.layer2, self.layer3 = BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            x = self.pool(x)
            return self.fc(x.reshape(x.shape[0], -1))
    return ResNet8()


# ---------------------------------------------------------------- training steps
def model_steps(ember, torch, build, x, y, lr=0.01):
    """Zero-argument training steps (forward, cross-entropy, backward, SGD momentum step) of both libraries."""
    tm = build(torch.nn, torch.nn.functional)
    em = build(ember.nn, ember.nn.functional)
    em.load_state_dict({k: ember.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    topt = torch.optim.SGD(tm.parameters(), lr=lr, momentum=0.9)
    eopt = ember.optim.SGD(em.parameters(), lr=lr, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    xe, ye = ember.from_numpy(x), ember.from_numpy(y)
    losses = {"ember": [], "torch": []}

    def ember_step():
        eopt.zero_grad()
        loss = ember.nn.functional.cross_entropy(em(xe), ye)
        loss.backward()
        eopt.step()
        losses["ember"].append(float(loss.item()))

    def torch_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(xt), yt)
        loss.backward()
        topt.step()
        losses["torch"].append(float(loss.item()))
    return ember_step, torch_step, losses


# ---------------------------------------------------------------- single ops
OPS = [  # (name, input shape, weight shape, conv kwargs)
    ("lenet conv1 1->6 5x5 p2", (64, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
    ("lenet conv2 6->16 5x5", (64, 6, 14, 14), (16, 6, 5, 5), {}),
    ("resnet stem 3->16 3x3", (32, 3, 32, 32), (16, 3, 3, 3), dict(padding=1)),
    ("resnet 16->16 3x3", (32, 16, 32, 32), (16, 16, 3, 3), dict(padding=1)),
    ("resnet 16->32 3x3 s2", (32, 16, 32, 32), (32, 16, 3, 3), dict(padding=1, stride=2)),
    ("resnet 32->32 3x3", (32, 32, 16, 16), (32, 32, 3, 3), dict(padding=1)),
    ("resnet 16->32 1x1 s2", (32, 16, 32, 32), (32, 16, 1, 1), dict(stride=2)),
    ("resnet 64->64 3x3", (32, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)),
]
POOLS = [("lenet maxpool2 6x28x28", (64, 6, 28, 28), dict(kernel_size=2)),
         ("lenet maxpool2 16x10x10", (64, 16, 10, 10), dict(kernel_size=2)),
         ("resnet-style maxpool3 s2 p1 16x32x32", (32, 16, 32, 32), dict(kernel_size=3, stride=2, padding=1))]


def op_steps(ember, torch, fn_e, fn_t, arrays, backward):
    """Steps running one op (and its backward with a ones gradient when ``backward``) in both libraries."""
    te = [ember.tensor(a, requires_grad=backward) for a in arrays]
    tt = [torch.tensor(a, requires_grad=backward) for a in arrays]

    def run(lib, fn, ts):
        def step():
            if not backward:
                with lib.no_grad():
                    fn(*ts)
                return
            y = fn(*ts)
            y.backward(lib.ones_like(y))
        return step
    return run(ember, fn_e, te), run(torch, fn_t, tt)


def compare_cpu(ember_step, torch_step, steps: int, runs: int, warmup: int = 3) -> dict:
    """``steps.compare_steps`` timed by process CPU time (meaningful with one thread): back-to-back pairs."""
    for _ in range(warmup):
        ember_step()
        torch_step()
    e_runs, t_runs = [], []
    for _ in range(runs):
        for step, out in ((ember_step, e_runs), (torch_step, t_runs)):
            gc.collect()
            t0 = time.process_time()
            for _ in range(steps):
                step()
            out.append(steps / max(time.process_time() - t0, 1e-9))
    return {"ember_steps_per_s": statistics.median(e_runs), "torch_steps_per_s": statistics.median(t_runs),
            "ratio": statistics.median(a / b for a, b in zip(e_runs, t_runs)), "runs": runs, "steps": steps,
            "ember_runs": e_runs, "torch_runs": t_runs, "clock": "cpu"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: steps.compare_steps; cpu: process CPU time (use with --threads 1)")
    ap.add_argument("--no-ops", action="store_true", help="skip the single-op timings")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of Ember's model steps")
    ap.add_argument("--no-models", action="store_true", help="skip the training-step timings")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "cnn.json"))
    args = ap.parse_args(argv)
    set_threads(args.threads)
    import numpy as np
    import torch

    import ember
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    results = {"threads": args.threads, "runs": args.runs, "steps": args.steps, "clock": args.clock, "models": {},
               "ops": {}}
    if args.clock == "cpu":
        def compare(es, ts, steps, runs, settle_s=None):
            return compare_cpu(es, ts, steps, runs)
    else:
        compare = compare_steps
    print(f"CNN training steps, {args.threads} threads, {args.clock} clock, median of {args.runs} back-to-back pairs "
          f"of {args.steps} steps")
    if not args.no_models:
        for name, build, shape in (("LeNet-5 1x28x28 b64 SGD", lenet, (64, 1, 28, 28)),
                                   ("ResNet-8 3x32x32 b32 SGD", resnet8, (32, 3, 32, 32))):
            x = rng.standard_normal(shape).astype(np.float32)
            y = rng.integers(0, 10, shape[0]).astype(np.int64)
            es, ts, losses = model_steps(ember, torch, build, x, y)
            es(), ts()
            first = (losses["ember"][0], losses["torch"][0])
            r = compare(es, ts, steps=args.steps, runs=args.runs)
            r["first_loss_ember_torch"] = first
            r["ratio_min_max"] = (min(a / b for a, b in zip(r["ember_runs"], r["torch_runs"])),
                                  max(a / b for a, b in zip(r["ember_runs"], r["torch_runs"])))
            results["models"][name] = r
            print(report(name, r) + f"   (pairs {r['ratio_min_max'][0]:.2f}..{r['ratio_min_max'][1]:.2f}; "
                  f"first loss {first[0]:.5f} vs {first[1]:.5f})")
            if args.profile:
                profile(es, steps=10, top=15)
    if not args.no_ops:
        print("single ops (ratio = Ember / PyTorch throughput)")
        steps = max(args.steps * 2, 10)
        for name, xs, ws, kw in OPS:
            arrays = [rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)]
            for mode, bwd in (("fwd", False), ("fwd+bwd", True)):
                es, ts = op_steps(ember, torch, lambda x, w, kw=kw: ember.conv2d(x, w, **kw),
                                  lambda x, w, kw=kw: torch.nn.functional.conv2d(x, w, **kw), arrays, bwd)
                r = compare(es, ts, steps=steps, runs=args.runs, settle_s=0.05)
                results["ops"][f"conv2d {name} {mode}"] = r
                print(report(f"conv2d {name} {mode}", r))
        for name, xs, kw in POOLS:
            arrays = [rng.standard_normal(xs).astype(np.float32)]
            for mode, bwd in (("fwd", False), ("fwd+bwd", True)):
                es, ts = op_steps(ember, torch, lambda x, kw=kw: ember.max_pool2d(x, **kw),
                                  lambda x, kw=kw: torch.nn.functional.max_pool2d(x, **kw), arrays, bwd)
                r = compare(es, ts, steps=steps, runs=args.runs, settle_s=0.05)
                results["ops"][f"{name} {mode}"] = r
                print(report(f"{name} {mode}", r))
    write_results(results, args.out)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
