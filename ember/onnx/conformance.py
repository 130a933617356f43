"""Run ONNX's node conformance cases through :mod:`ember.onnx.backend` and count pass / fail / unsupported.

``python -m ember.onnx.conformance`` builds every case of ``onnx.backend.test.case.node`` in memory
(with its reference outputs), runs each through Ember, compares at rtol 1e-3 / atol 1e-5 (shape and
dtype must match too) and prints a table per op with the totals. A case is *unsupported* when the
importer refuses one of its op types before running, and otherwise *pass* or *fail*. The headline
figures count the *plain* cases, whose inputs and outputs are all NumPy arrays. The others, whose values
are TensorProtos (Cast's float8 cases), NumPy scalars (window sizes), sequences (lists) or empty
optionals (None), are converted, run and counted apart as *converted*; a case holding anything else
(a map) is *not plain tensor*.

    python -m ember.onnx.conformance                 # the table and totals
    python -m ember.onnx.conformance --onnxruntime   # the same cases through onnxruntime, side by side
    python -m ember.onnx.conformance --write-expected  # refresh conformance_expected.json
    python -m ember.onnx.conformance --write-supported # refresh SUPPORTED_OPS.md (the documented op list)
    python -m ember.onnx.conformance --check         # exit 1 if a case listed as pass no longer passes
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections import Counter, defaultdict

import numpy as np

RTOL, ATOL = 1e-3, 1e-5
EXPECTED_PATH = os.path.join(os.path.dirname(__file__), "conformance_expected.json")
PASS, FAIL, UNSUPPORTED, NOT_PLAIN = "pass", "fail", "unsupported", "not plain tensor"
CONVERTED = "converted "   # prefix of the status of a case whose values had to be converted to arrays

__all__ = ["collect", "run_suite", "summarize", "regressions", "main"]


def collect() -> list:
    """ONNX's node test cases (built in memory, warnings from their generators silenced)."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return list(collect_testcases())


def case_ops(cases) -> dict:
    """``{case name: the op type it tests}``; an ``_expanded`` case belongs to the op it expands."""
    base = {c.name: c.model.graph.node[0].op_type for c in cases if "_expanded" not in c.name}
    return {c.name: base.get(c.name.split("_expanded")[0], c.model.graph.node[0].op_type) for c in cases}


def is_plain(case) -> bool:
    """True when every input and reference output of the case is a NumPy array."""
    ins, outs = case.data_sets[0]
    return all(isinstance(a, np.ndarray) for a in list(ins) + list(outs))


def _convertible(v) -> bool:
    from onnx import TensorProto
    if isinstance(v, list):
        return all(_convertible(e) for e in v)
    return v is None or isinstance(v, (np.ndarray, np.generic, TensorProto))


def is_converted(case) -> bool:
    """True when the case is not plain but every value converts: TensorProtos, NumPy scalars, lists, None."""
    ins, outs = case.data_sets[0]
    return not is_plain(case) and all(_convertible(a) for a in list(ins) + list(outs))


def _arrays(values) -> list:
    from onnx import TensorProto, numpy_helper

    def one(v):
        if v is None or isinstance(v, list):
            return v if v is None else [one(e) for e in v]
        return numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v)
    return [one(v) for v in values]


def compare(refs, outs) -> str | None:
    """None when ``outs`` match ``refs`` (count, shape, dtype, values within tolerance), else why not.
    A sequence (list) is compared element by element; an empty optional (None) must be None."""
    if len(outs) != len(refs):
        return f"{len(outs)} outputs, expected {len(refs)}"
    for i, (r, o) in enumerate(zip(refs, outs)):
        if r is None or o is None:
            if r is not o:
                return f"output {i}: {'an empty optional' if o is None else 'a value'}, expected the other"
            continue
        if isinstance(r, list) or isinstance(o, list):
            if not (isinstance(r, list) and isinstance(o, list)):
                return f"output {i}: a {type(o).__name__}, expected a {type(r).__name__}"
            why = compare(r, o)
            if why is not None:
                return f"output {i} (a sequence): {why}"
            continue
        o = np.asarray(o)
        if o.shape != r.shape:
            return f"output {i}: shape {o.shape}, expected {r.shape}"
        if o.dtype != r.dtype:
            return f"output {i}: dtype {o.dtype}, expected {r.dtype}"
        if r.dtype == object:
            if not np.array_equal(o, r):
                return f"output {i}: strings differ"
            continue
        if r.dtype.kind in "biu":
            ok = np.array_equal(o, r)
        else:
            a, b = o.astype(np.float64), r.astype(np.float64)
            ok = np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
        if not ok:
            with np.errstate(all="ignore"):
                err = np.nanmax(np.abs(o.astype(np.float64) - r.astype(np.float64))) if r.size else 0.0
            return f"output {i}: values differ (max abs error {err:.3g})"
    return None


def _run_ember(case, ins, refs):
    from .importer import UnsupportedOpError, load
    from .backend import EmberRep
    try:
        rep = EmberRep(load(case.model))
    except UnsupportedOpError as e:
        return UNSUPPORTED, str(e).splitlines()[-1].strip()
    return _finish(ins, refs, rep.run)


def _run_onnxruntime(case, ins, refs):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 4   # errors are reported per case; keep onnxruntime's own log quiet
    try:
        sess = ort.InferenceSession(case.model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:   # noqa: BLE001  onnxruntime raises its own types for unimplemented ops
        return UNSUPPORTED, str(e).splitlines()[0][:200]
    names = [i.name for i in sess.get_inputs()]
    return _finish(ins, refs, lambda xs: sess.run(None, dict(zip(names, xs))))


def _finish(ins, refs, fn):
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outs = fn(list(ins))
    except Exception as e:   # noqa: BLE001  one failing case must not stop the run
        return FAIL, f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    why = compare(refs, outs)
    return (PASS, "") if why is None else (FAIL, why)


def run_suite(runner: str = "ember", ops=None, cases=None) -> dict:
    """``{case name: (op, status, message, seconds)}`` for every node case (optionally only ``ops``)."""
    cases = collect() if cases is None else cases
    op_of = case_ops(cases)
    fn = _run_onnxruntime if runner == "onnxruntime" else _run_ember
    results = {}
    for case in cases:
        op = op_of[case.name]
        if ops and op not in ops:
            continue
        t0 = time.perf_counter()
        ins, refs = case.data_sets[0]
        if is_plain(case):
            status, msg = fn(case, ins, refs)
        elif is_converted(case):
            status, msg = fn(case, _arrays(ins), _arrays(refs))
            status = CONVERTED + status
        else:
            status, msg = NOT_PLAIN, ""
        results[case.name] = (op, status, msg, time.perf_counter() - t0)
    return results


def summarize(results: dict) -> dict:
    """Totals: ``plain`` cases, ``passed``, ``supported`` plain cases (importer accepted every op) and rates."""
    counts = Counter(r[1] for r in results.values())
    plain = counts[PASS] + counts[FAIL] + counts[UNSUPPORTED]
    supported = counts[PASS] + counts[FAIL]
    converted = sum(v for k, v in counts.items() if k.startswith(CONVERTED))
    return {"cases": len(results), "plain": plain, "passed": counts[PASS], "failed": counts[FAIL],
            "converted": converted, "converted_passed": counts[CONVERTED + PASS],
            "unsupported": counts[UNSUPPORTED], "not_plain": counts[NOT_PLAIN], "supported": supported,
            "pass_rate_plain": counts[PASS] / plain if plain else 0.0,
            "pass_rate_supported": counts[PASS] / supported if supported else 0.0}


def regressions(results: dict, expected: dict) -> list:
    """Names of cases the expected file lists as passing that do not pass now."""
    return sorted(n for n, s in expected.items()
                  if s in (PASS, CONVERTED + PASS) and results.get(n, (None, None))[1] != s)


def load_expected(path: str = EXPECTED_PATH) -> dict:
    """``{case name: status}`` from the expected file. Under another onnx version than the one that wrote it,
    only the cases that version still generates are kept (its suite adds, renames and drops cases)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    cases = data["cases"]
    if data.get("onnx_version") != _onnx_version():
        present = {c.name for c in collect()}
        cases = {n: s for n, s in cases.items() if n in present}
    return cases


def write_expected(results: dict, path: str = EXPECTED_PATH) -> None:
    data = {"about": "Expected status of each ONNX node conformance case under ember.onnx "
                     "(regenerate with: python -m ember.onnx.conformance --write-expected)",
            "onnx_version": _onnx_version(), "rtol": RTOL, "atol": ATOL,
            "cases": {n: r[1] for n, r in sorted(results.items())}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=0, sort_keys=False)
        f.write("\n")


SUPPORTED_PATH = os.path.join(os.path.dirname(__file__), "SUPPORTED_OPS.md")


def _first_versions() -> dict:
    """``{op type: the op-set that introduced it}`` from the installed onnx's schemas (default domain)."""
    from onnx import defs
    first: dict = {}
    for s in defs.get_all_schemas_with_history():
        if s.domain in ("", "ai.onnx"):
            first[s.name] = min(first.get(s.name, s.since_version), s.since_version)
    return first


def supported_ops_markdown(results: dict | None = None) -> str:
    """SUPPORTED_OPS.md: every registered op with its op-set range, converter module and conformance count."""
    from onnx import defs

    from .registry import lookup, supported_ops
    first, latest = _first_versions(), defs.onnx_opset_version()
    per_op: dict = defaultdict(Counter)
    for op, status, _, _ in (results or {}).values():
        per_op[op][status] += 1
    ops = supported_ops()
    lines = ["# ONNX ops supported by `ember.onnx.load`", "",
             "Generated by `python -m ember.onnx.conformance --write-supported` from `ember.onnx.registry` "
             f"(onnx {_onnx_version()}, latest op-set {latest}). An op-set range `a+` means a and every later one;",
             "*conformance* counts the ONNX node test cases of that op (`_expanded` variants included) that pass,",
             "out of its plain-tensor cases, and apart those whose values had to be converted (TensorProtos,",
             "NumPy scalars, sequences, optionals). Ops not listed here are refused at load time, with the node",
             "names. Other domains' ops are listed as `<domain>.<op>`.", "",
             "```python",
             "import ember",
             "model = ember.onnx.load(\"model.onnx\")      # an ember.nn.Module; float initializers are Parameters",
             "y = model(x)                                  # graph inputs in order, or by name",
             "opt = ember.optim.Adam(model.parameters())    # fine-tune it like any module",
             "```", "",
             "`ember.onnx.backend` is an `onnx.backend.base.Backend` for ONNX's test tooling; "
             "`python -m ember.onnx.conformance` runs ONNX's node test cases through it "
             "(`--onnxruntime` for the side-by-side figure, `--failures` for the reasons).", ""]
    if results:
        sm = summarize(results)
        lines += [f"Conformance: {sm['passed']} of {sm['plain']} plain-tensor cases pass "
                  f"({100 * sm['pass_rate_plain']:.1f}%), {sm['passed']} of {sm['supported']} whose ops are all "
                  f"supported ({100 * sm['pass_rate_supported']:.1f}%), and {sm['converted_passed']} of "
                  f"{sm['converted']} converted cases (rtol {RTOL:g}, atol {ATOL:g}).", ""]
    lines += [f"{len(ops)} op types.", "", "| op | op-sets | converter | conformance |", "|---|---|---|---|"]
    for op, (lo, hi) in ops.items():
        lo = max(lo, first.get(op, lo))
        rng = f"{lo}+" if hi is None else f"{lo}-{hi}"
        fn = lookup(op, hi if hi is not None else latest + 10)
        mod = fn.__module__.rsplit(".", 1)[-1] if fn is not None else "?"
        c = per_op.get(op.rsplit(".", 1)[-1], Counter())   # cases name the bare op type, also for other domains
        plain = c[PASS] + c[FAIL] + c[UNSUPPORTED]
        conv = sum(v for k, v in c.items() if k.startswith(CONVERTED))
        conf = " ".join(([f"{c[PASS]}/{plain}"] if plain else [])
                        + ([f"(converted: {c[CONVERTED + PASS]}/{conv})"] if conv else [])) or "-"
        lines.append(f"| {op} | {rng} | {mod} | {conf} |")
    return "\n".join(lines) + "\n"


def _onnx_version() -> str:
    import onnx
    return onnx.__version__


def _table(results: dict, other: dict | None, show_failures: bool) -> str:
    per_op: dict = defaultdict(Counter)
    for op, status, _, _ in results.values():
        per_op[op][status] += 1
    per_other: dict = defaultdict(Counter)
    for op, status, _, _ in (other or {}).values():
        per_other[op][status] += 1
    head = (f"{'op':<28}{'cases':>6}{'pass':>6}{'fail':>6}{'unsup':>6}{'!plain':>7}{'converted':>10}"
            + (f"{'ort':>6}" if other else ""))
    lines = [head, "-" * len(head)]
    for op in sorted(per_op):
        c = per_op[op]
        conv = sum(v for k, v in c.items() if k.startswith(CONVERTED))
        line = (f"{op:<28}{sum(c.values()):>6}{c[PASS]:>6}{c[FAIL]:>6}{c[UNSUPPORTED]:>6}{c[NOT_PLAIN]:>7}"
                + f"{f'{c[CONVERTED + PASS]}/{conv}' if conv else '':>10}"
                + (f"{per_other[op][PASS]:>6}" if other else ""))
        lines.append(line)
    if show_failures:
        lines.append("\nfailures:")
        lines += [f"  {n} [{r[0]}]{' (converted)' if r[1] != FAIL else ''}: {r[2]}"
                  for n, r in sorted(results.items()) if r[1] in (FAIL, CONVERTED + FAIL)]
    return "\n".join(lines)


def _totals(name: str, s: dict) -> str:
    return (f"{name}: {s['passed']} of {s['plain']} plain-tensor cases pass ({100 * s['pass_rate_plain']:.1f}%); "
            f"{s['passed']} of {s['supported']} cases whose ops are supported ({100 * s['pass_rate_supported']:.1f}%); "
            f"{s['failed']} fail, {s['unsupported']} unsupported, {s['not_plain']} not plain tensor "
            f"({s['cases']} cases in all); besides, {s['converted_passed']} of {s['converted']} converted cases pass "
            "(values stored as TensorProtos, NumPy scalars, sequences or optionals)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ember.onnx.conformance", description=__doc__.splitlines()[0])
    p.add_argument("--onnxruntime", action="store_true", help="also run the cases through onnxruntime")
    p.add_argument("--write-expected", action="store_true", help=f"rewrite {os.path.basename(EXPECTED_PATH)}")
    p.add_argument("--write-supported", action="store_true", help=f"rewrite {os.path.basename(SUPPORTED_PATH)}")
    p.add_argument("--check", action="store_true", help="exit 1 when a case expected to pass does not")
    p.add_argument("--op", action="append", help="only cases of this op type (repeatable)")
    p.add_argument("--failures", action="store_true", help="list every failing case with the reason")
    args = p.parse_args(argv)
    from .importer import _register_all
    from .registry import supported_ops
    _register_all()
    t0 = time.perf_counter()
    cases = collect()
    results = run_suite("ember", args.op, cases)
    elapsed = time.perf_counter() - t0
    other = run_suite("onnxruntime", args.op, cases) if args.onnxruntime else None
    print(_table(results, other, args.failures))
    print()
    print(f"supported ONNX op types: {len(supported_ops())}")
    print(_totals("ember", summarize(results)) + f" in {elapsed:.1f} s")
    if other is not None:
        print(_totals("onnxruntime", summarize(other)))
    slow = sorted(results.items(), key=lambda kv: -kv[1][3])[:3]
    print("slowest cases: " + ", ".join(f"{n} {r[3]:.2f}s" for n, r in slow))
    if args.write_expected:
        write_expected(results)
        print(f"wrote {EXPECTED_PATH}")
    if args.write_supported:
        with open(SUPPORTED_PATH, "w", encoding="utf-8") as f:
            f.write(supported_ops_markdown(results))
        print(f"wrote {SUPPORTED_PATH}")
    if args.check:
        expected = load_expected()
        if args.op:
            expected = {n: s for n, s in expected.items() if n in results}
        bad = regressions(results, expected)
        if bad:
            print(f"{len(bad)} case(s) expected to pass no longer pass: " + ", ".join(bad))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
