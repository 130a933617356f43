"""``Model.fit`` against the hand-written Ember loop of ``bench_core.py``: what does the Keras-style API cost?

Run:  python bench/bench_fit.py [--runs 7] [--threads 2]
Both train the 784-256-128-10 MLP (batch 128, Adam lr 1e-3, cross-entropy on logits) for one epoch over the
same synthetic samples in the same order (``shuffle=False``, ``verbose=0``) from the same initial weights.
Prints the median of back-to-back pairs of ``fit_time / loop_time - 1`` (target <= 10 %) and writes
bench/results/fit.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import _set_threads, _settle, mlp_throughput, write_results  # noqa: E402


def _fit_model(ember, init):
    """The benchmark MLP as an ``ember.Sequential`` of ``nn`` modules, compiled with Adam, from ``init``."""
    nn = ember.nn
    model = ember.Sequential([nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)])
    for p, v in zip(model.parameters(), init.values()):      # same order as the nn.Sequential's state_dict
        p.data[...] = v
    model.compile(optimizer=ember.optim.Adam(model.parameters(), lr=1e-3),
                  loss=ember.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def fit_time(ember, X, Y, init, batch=128):
    """Seconds for one ``fit`` epoch over ``X`` (whole batches only, as the loop in ``mlp_throughput``)."""
    model = _fit_model(ember, init)
    t0 = time.perf_counter()
    model.fit(X, Y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - t0


def same_weights(ember, X, Y, init, batch=128) -> float:
    """Largest absolute weight difference between ``fit`` and the hand-written loop after the same batches."""
    nn = ember.nn
    loop = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    loop.load_state_dict({k: ember.tensor(v) for k, v in init.items()})
    opt, loss_fn = ember.optim.Adam(loop.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    for i in range(0, len(X), batch):
        opt.zero_grad()
        loss_fn(loop(ember.from_numpy(X[i:i + batch])), ember.from_numpy(Y[i:i + batch])).backward()
        opt.step()
    model = _fit_model(ember, init)
    model.fit(X, Y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    pairs = zip(model.parameters(), loop.parameters())
    return max(float(abs(a.detach().numpy() - b.detach().numpy()).max()) for a, b in pairs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=60_000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "fit.json"))
    args = ap.parse_args(argv)
    _set_threads(args.threads)
    import numpy as np

    import ember
    batch = 128
    n = args.samples // batch * batch                     # the loop drops a last partial batch; fit gets the same
    rng = np.random.default_rng(0)                        # the data of bench_core.py
    X = rng.standard_normal((args.samples, 784)).astype(np.float32)[:n]
    Y = rng.integers(0, 10, args.samples).astype(np.int64)[:n]
    ember.manual_seed(0)
    ref = ember.nn.Sequential(ember.nn.Linear(784, 256), ember.nn.ReLU(), ember.nn.Linear(256, 128),
                              ember.nn.ReLU(), ember.nn.Linear(128, 10))
    init = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}

    diff = same_weights(ember, X[:2560], Y[:2560], init)
    mlp_throughput(ember, ember.nn, ember.optim, X[:2560], Y[:2560], init)    # warm-up
    fit_time(ember, X[:2560], Y[:2560], init)
    loop_runs, fit_runs = [], []
    for _ in range(args.runs):                            # back-to-back pairs see nearly the same machine
        _settle()
        loop_runs.append(n / mlp_throughput(ember, ember.nn, ember.optim, X, Y, init))
        _settle()
        fit_runs.append(fit_time(ember, X, Y, init))
    overheads = [f / lp - 1 for f, lp in zip(fit_runs, loop_runs)]
    overhead = statistics.median(overheads)
    results = {"threads": args.threads, "runs": args.runs, "samples": n, "max_weight_diff_20_batches": diff,
               "loop_s": loop_runs, "fit_s": fit_runs, "overheads": overheads, "overhead": overhead}
    print(f"MLP 784-256-128-10, batch {batch}, Adam, {n} samples, {args.threads} threads, "
          f"median of {args.runs} back-to-back pairs")
    print(f"  loop {statistics.median(loop_runs):.3f} s   fit {statistics.median(fit_runs):.3f} s   "
          f"overhead = {overhead:+.1%} (pairs {min(overheads):+.1%} .. {max(overheads):+.1%}; target <= 10%)")
    print(f"  same weights after 20 batches: max |fit - loop| = {diff:.2e}")
    write_results(results, args.out)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
