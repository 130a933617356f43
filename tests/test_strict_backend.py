"""The strict array module (:mod:`ember.backend.strict`): NumPy restricted to CuPy's API, and the switch that
runs the CPU suite on it (``EMBER_STRICT_BACKEND=1 python -m pytest tests``)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import ember
from ember import backend
from ember.backend import strict

xp = strict.module


def test_numpy_only_names_are_refused_with_a_hint():
    for name in ("errstate", "seterr", "broadcast_shapes", "nditer", "frompyfunc"):
        with pytest.raises(AttributeError, match=f"xp.{name} is NumPy-only"):
            getattr(xp, name)
    with pytest.raises(AttributeError, match="scatter_add_at"):
        xp.add.at
    with pytest.raises(AttributeError, match="NumPy-only"):
        xp.maximum.reduce
    a = xp.arange(6.0).reshape(2, 3)
    with pytest.raises(TypeError, match="where="):
        xp.sum(a, where=a > 1)
    with pytest.raises(TypeError, match="initial="):
        xp.max(a, initial=0.0)
    with pytest.raises(AttributeError):
        xp.linalg.eig


def test_results_are_strict_arrays_that_own_their_memory_and_match_numpy():
    a = np.random.default_rng(0).standard_normal((3, 4))
    s = xp.asarray(a)
    assert type(s) is strict.StrictArray and s.base is None
    for got, want in ((xp.exp(s), np.exp(a)), (s * 2 + 1, a * 2 + 1), (xp.sum(s, axis=0), a.sum(0)),
                      (xp.matmul(s, s.T), a @ a.T), (xp.where(s > 0, s, 0.0), np.where(a > 0, a, 0.0))):
        assert type(got) is strict.StrictArray and got.base is None
        np.testing.assert_array_equal(strict.to_numpy(got), want)
    total = xp.sum(s)                          # CuPy returns a 0-d array where NumPy returns a scalar
    assert type(total) is strict.StrictArray and total.shape == () and float(total) == pytest.approx(a.sum())
    v = s[1:]
    assert v.base is s and type(strict.to_numpy(s)) is np.ndarray


def test_backend_helpers_work_on_strict_arrays():
    out = xp.zeros(4)
    backend.scatter_add_at(xp, out, xp.asarray([0, 1, 1, 3]), xp.asarray([1.0, 2.0, 3.0, 4.0]))
    ref = np.zeros(4)
    np.add.at(ref, [0, 1, 1, 3], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(strict.to_numpy(out), ref)
    with backend.errstate(xp, divide="ignore"):
        assert np.isinf(strict.to_numpy(xp.asarray([1.0]) / 0.0)).all()
    assert backend.onednn.usable(xp, xp.zeros(2, dtype="float32")) is False
    assert type(backend.scratch(xp, (2, 3), "float32")) is strict.StrictArray


def test_ops_run_through_the_strict_module(monkeypatch):
    monkeypatch.setitem(backend._MODULE_OF_TYPE, strict.StrictArray, xp)
    a = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    x = ember.Tensor(xp.asarray(a), requires_grad=True)
    assert x.xp is xp and x.device == "cpu"
    idx = ember.tensor([0, 2, 2])
    y = (x.relu() * 2).softmax(-1)[idx].sum()
    y.backward()
    t = torch.tensor(a, requires_grad=True)
    ty = ((t.relu() * 2).softmax(-1)[torch.tensor([0, 2, 2])]).sum()
    ty.backward()
    np.testing.assert_allclose(y.item(), ty.item(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert type(x.detach().numpy()) is np.ndarray


def test_switch_makes_the_cpu_module_strict():
    code = ("import numpy, ember\n"
            "from ember.backend import strict, onednn\n"
            "x = ember.randn(3, 4)\n"
            "assert ember.device('cpu').xp is strict.module and x.xp is strict.module\n"
            "assert type(x.data) is strict.StrictArray and type(x.numpy()) is numpy.ndarray\n"
            "m = ember.nn.Linear(4, 2)\n"
            "opt = ember.optim.Adam(m.parameters())\n"
            "m(x).sum().backward(); opt.step()\n"
            "print('ok')\n")
    env = dict(os.environ, EMBER_STRICT_BACKEND="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
