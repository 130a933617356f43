"""ONNX's node conformance suite through ember.onnx.backend: no case listed as passing in
ember/onnx/conformance_expected.json may regress, >= 120 op types are supported, and >= 90% of the cases
whose ops are supported pass. Regenerate the expected file with
``python -m ember.onnx.conformance --write-expected`` after a deliberate change."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from ember.onnx import conformance as C  # noqa: E402
from ember.onnx.importer import _register_all  # noqa: E402
from ember.onnx.registry import supported_ops  # noqa: E402


@pytest.fixture(scope="module")
def results():
    _register_all()
    return C.run_suite("ember")


def test_no_case_expected_to_pass_regresses(results):
    expected = C.load_expected()
    assert sum(s == C.PASS for s in expected.values()) >= 1000, "the expected file lists too few passing cases"
    bad = C.regressions(results, expected)
    details = "\n".join(f"  {n} [{results[n][0]}]: {results[n][1]} {results[n][2]}" if n in results
                        else f"  {n}: missing" for n in bad)
    assert not bad, f"{len(bad)} conformance case(s) listed as pass no longer pass:\n{details}"


def test_supported_op_count_and_pass_rate(results):
    _register_all()
    assert len(supported_ops()) >= 120
    s = C.summarize(results)
    assert s["plain"] == sum(r[1] in (C.PASS, C.FAIL, C.UNSUPPORTED) for r in results.values())
    assert s["plain"] == sum(C.is_plain(c) for c in C.collect())
    assert s["pass_rate_supported"] >= 0.90, C._totals("ember", s)


def test_every_supported_op_is_documented():
    _register_all()
    with open(C.SUPPORTED_PATH, encoding="utf-8") as f:
        documented = {line.split("|")[1].strip() for line in f
                      if line.startswith("| ") and not line.startswith("| op ")}
    missing = sorted(set(supported_ops()) - documented)
    assert not missing, (f"ops registered but not in SUPPORTED_OPS.md: {missing}; "
                         "regenerate it with python -m ember.onnx.conformance --write-supported")


def test_compare_checks_shape_dtype_and_values():
    ref = [np.array([1.0, 2.0], np.float32)]
    assert C.compare(ref, [np.array([1.0, 2.0005], np.float32)]) is None
    assert "values differ" in C.compare(ref, [np.array([1.0, 2.1], np.float32)])
    assert "dtype" in C.compare(ref, [np.array([1.0, 2.0], np.float64)])
    assert "shape" in C.compare(ref, [np.array([[1.0, 2.0]], np.float32)])
    assert "outputs" in C.compare(ref, [])
    assert C.compare([np.array([np.nan], np.float32)], [np.array([np.nan], np.float32)]) is None
    assert "values differ" in C.compare([np.array([3], np.int64)], [np.array([4], np.int64)])


def test_one_failing_case_does_not_stop_the_run(results):
    """A converter that raises is recorded as a failure of that case, and the next cases still run."""
    cases = [c for c in C.collect() if C.case_ops([c])[c.name] in ("Abs", "Neg")][:3]
    broken = cases[0]
    original = broken.data_sets[0][0][0]
    broken.data_sets[0][0][0] = original.astype(np.int8)   # a wrong input dtype: the case runs and fails
    try:
        out = C.run_suite("ember", cases=cases)
    finally:
        broken.data_sets[0][0][0] = original
    assert len(out) == len(cases)
    assert out[broken.name][1] == C.FAIL
    assert all(out[c.name][1] == C.PASS for c in cases[1:])


def test_cli_prints_table_and_checks(capsys):
    assert C.main(["--op", "Abs", "--op", "Gather", "--check"]) == 0
    text = capsys.readouterr().out
    assert "Abs" in text and "Gather" in text and "plain-tensor cases pass" in text


# ops whose float outputs are piecewise constant (zero gradient), and ops that refuse, with a clear error,
# to run on inputs that need a gradient because Ember has no differentiable version of them
_CONSTANT_OUTPUT = {"Binarizer", "Hardmax"}
_REFUSE_GRAD = {"Adagrad", "Adam", "Momentum", "ScatterElements", "ScatterND"}


def test_gradients_reach_the_inputs_of_every_differentiable_case():
    """Every plain case with floating inputs runs with inputs that require grad; its floating outputs stay in the
    autograd graph and backward() reaches an input (or the op is listed above as constant or refusing)."""
    import ember
    from ember.onnx.importer import OnnxRuntimeError, load

    floats = (np.float16, np.float32, np.float64)
    problems, checked = [], 0
    for case in C.collect():
        ins, refs = case.data_sets[0]
        if "_expanded" in case.name or not C.is_plain(case) or not any(a.dtype in floats for a in ins) \
                or not any(r.dtype in floats for r in refs) or any(a.size == 0 for a in ins):
            continue
        op = C.case_ops([case])[case.name]
        try:
            m = load(case.model)
        except Exception:  # noqa: BLE001  unsupported cases are counted by the suite itself
            continue
        ts = [ember.tensor(a, requires_grad=True) if a.dtype in floats else a for a in ins]
        try:
            with np.errstate(all="ignore"):
                out = m(*ts)
        except OnnxRuntimeError as e:
            if not (op in _REFUSE_GRAD and "no differentiable version" in str(e)):
                problems.append(f"{case.name}: {e}")
            continue
        outs = [o for o in (out if isinstance(out, tuple) else (out,)) if o.data.dtype in floats]
        if op in _CONSTANT_OUTPUT:
            continue
        if not any(o.requires_grad for o in outs):
            problems.append(f"{case.name} [{op}]: floating outputs are cut from the autograd graph")
            continue
        with np.errstate(all="ignore"):
            sum(o.float().sum() for o in outs if o.requires_grad).backward()
        checked += 1
        if all(t.grad is None for t in ts if isinstance(t, ember.Tensor)):
            problems.append(f"{case.name} [{op}]: backward() reached no input")
    assert not problems, "\n".join(problems)
    assert checked >= 400, f"only {checked} cases were checked"
