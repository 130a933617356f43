"""Side-by-side training-step timing shared by the layer benchmarks (Ember vs PyTorch in one process).

``compare_steps(ember_step, torch_step, steps=..., runs=...)`` times ``steps`` calls of each
zero-argument training-step function, interleaving Ember and PyTorch runs so both see the same
machine state, and reports medians and the median of the pairwise ratios (Ember ÷ PyTorch
throughput; ≥ 1.0 means Ember is faster).

>>> r = compare_steps(lambda: sum(range(100)), lambda: sum(range(100)), steps=5, runs=3, warmup=1, settle_s=0)
>>> sorted(r)[:3], r["runs"]
(['ember_runs', 'ember_steps_per_s', 'ratio'], 3)
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time


def set_threads(n: int) -> None:
    """Pin BLAS/OpenMP thread pools to ``n`` threads (call before importing NumPy and torch)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def settle(seconds: float = 0.2) -> None:
    """Let the other library's worker threads stop spinning, and collect garbage, before a timed run."""
    gc.collect()
    time.sleep(seconds)


def steps_per_second(step, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def compare_steps(ember_step, torch_step, steps: int = 20, runs: int = 5, warmup: int = 3,
                  settle_s: float = 0.2) -> dict:
    """Median steps/s of each and the median pairwise ratio Ember ÷ PyTorch over ``runs`` back-to-back pairs."""
    for _ in range(warmup):
        ember_step()
        torch_step()
    e_runs, t_runs = [], []
    for _ in range(runs):
        settle(settle_s)
        e_runs.append(steps_per_second(ember_step, steps))
        settle(settle_s)
        t_runs.append(steps_per_second(torch_step, steps))
    return {"ember_steps_per_s": statistics.median(e_runs), "torch_steps_per_s": statistics.median(t_runs),
            "ratio": statistics.median(a / b for a, b in zip(e_runs, t_runs)), "runs": runs, "steps": steps,
            "ember_runs": e_runs, "torch_runs": t_runs}


def alternate_steps(first, second, steps: int = 100, warmup: int = 3) -> dict:
    """Median single-step times of two step functions of one library run alternately (first, second, first,
    ...), and the ratio second ÷ first of the medians (> 1: ``first`` is faster). Pairing each step with its
    neighbour cancels the slow drifts of a shared VM better than runs of several steps; use it where both
    run on the same thread pools (two modes of Ember), not Ember against PyTorch (see ``settle``)."""
    for _ in range(warmup):
        first()
        second()
    times = ([], [])
    clock = time.perf_counter
    for _ in range(steps):
        for fn, out in zip((first, second), times):
            t0 = clock()
            fn()
            out.append(clock() - t0)
    a, b = statistics.median(times[0]), statistics.median(times[1])
    return {"first_s": a, "second_s": b, "ratio": b / a, "steps": steps}


def report(name: str, r: dict) -> str:
    """One line: steps/s of both and the ratio."""
    return (f"{name:<34s} ember {r['ember_steps_per_s']:8.2f} steps/s   torch {r['torch_steps_per_s']:8.2f} steps/s"
            f"   ember/torch = {r['ratio']:.2f}x")


def profile(step, steps: int = 20, top: int = 20) -> None:
    """Print a cProfile of ``steps`` calls of ``step``, heaviest functions first (where the time goes)."""
    import cProfile
    import pstats
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


def config_main(description: str, configs: dict, build, result_name: str, argv=None, setup=None,
                extra_args=()) -> dict:
    """The command line of a benchmark over named configs: time each pair of steps ``build(config)`` returns.

    Options ``--threads --runs --steps --configs --profile`` plus ``extra_args`` (``(flag, kwargs)`` pairs for
    argparse); ``setup(args)`` runs after the threads are pinned. Prints one line per config and writes
    ``bench/results/<result_name>.json``.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--configs", default=",".join(configs))
    ap.add_argument("--profile", action="store_true", help="print a cProfile of Ember's steps")
    for flag, kwargs in extra_args:
        ap.add_argument(flag, **kwargs)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    from bench_core import write_results
    if setup is not None:
        setup(args)
    results = {}
    for name in args.configs.split(","):
        ember_step, torch_step = build(configs[name])
        r = compare_steps(ember_step, torch_step, steps=args.steps, runs=args.runs)
        r["threads"] = args.threads
        results[name] = r
        print(report(name, r), flush=True)
        if args.profile:
            profile(ember_step)
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    write_results(results, os.path.join(out_dir, f"{result_name}.json"))
    return results
