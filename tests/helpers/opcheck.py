"""One helper checks an op the way every op is checked (tinygrad's test_ops, Chainer's check_backward).

``check_op(ember_fn, torch_fn, specs)`` runs the op in Ember and in PyTorch on the same
random inputs and compares, in float32, the forward value and the gradient of every
floating input for a random upstream gradient; then it runs Ember's float64
finite-difference ``gradcheck``. A new op is one line in a table of cases. Every case also runs through graph mode
(:func:`check_jit`): the op's cached graph must replay eager's outputs and gradients.

An input spec is a shape tuple (random normal floats), an ``Arr`` (an explicit NumPy
array; floats get gradients unless ``grad=False``) or a Python scalar.

``DEVICE`` is where Ember's and PyTorch's inputs live: the test modules that use conftest's ``each_device``
fixture run every check on the CPU and on ``cuda`` (parity with PyTorch CUDA; skipped without a GPU), and
``EMBER_TEST_DEVICE=cuda`` runs the cuda cases alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

import ember

DEVICE = os.environ.get("EMBER_TEST_DEVICE", "cpu")     # where the inputs live (set per test by each_device)


@dataclass
class Arr:
    """An explicit input array; ``grad=False`` keeps a floating input out of the gradient check."""

    value: np.ndarray
    grad: bool = True


def make_inputs(specs, seed=0, low=None, high=None, positive=False):
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        if isinstance(s, tuple):
            if low is not None:
                a = rng.uniform(low, high, size=s)
            else:
                a = rng.standard_normal(s)
                if positive:
                    a = np.abs(a) + 0.5
            out.append(Arr(a))
        elif isinstance(s, np.ndarray):
            out.append(Arr(s))
        else:
            out.append(s)
    return out


def _to(kind, item, dtype, requires_grad):
    if not isinstance(item, Arr):
        return item
    a = item.value
    rg = requires_grad and item.grad and a.dtype.kind == "f"
    if a.dtype.kind == "f":
        a = a.astype(dtype)
    if kind == "ember":
        return ember.tensor(a, requires_grad=rg, device=DEVICE)
    return torch.tensor(a, requires_grad=rg, device=DEVICE)


def _flat_outputs(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def _np(t):
    """Host NumPy values of an Ember or PyTorch tensor, wherever it lives."""
    return t.detach().cpu().numpy()


def check_op(ember_fn, torch_fn, specs, *, atol=1e-5, rtol=1e-4, seed=0, low=None, high=None, positive=False,
             grad=True, gradcheck=True, gc_atol=1e-5, gc_rtol=1e-3, gc_eps=1e-6):
    """Forward and gradient parity with PyTorch in float32, then a float64 finite-difference gradcheck."""
    items = make_inputs(specs, seed, low, high, positive)
    e_in = [_to("ember", it, np.float32, grad) for it in items]
    t_in = [_to("torch", it, np.float32, grad) for it in items]
    e_out = _flat_outputs(ember_fn(*e_in))
    t_out = _flat_outputs(torch_fn(*t_in))
    assert len(e_out) == len(t_out), f"{len(e_out)} outputs vs torch's {len(t_out)}"
    for i, (eo, to) in enumerate(zip(e_out, t_out)):
        ev, tv = _np(eo), _np(to)
        assert ev.shape == tv.shape, f"output {i}: shape {ev.shape} vs torch {tv.shape}"
        assert ev.dtype == tv.dtype, f"output {i}: dtype {ev.dtype} vs torch {tv.dtype}"
        np.testing.assert_allclose(ev, tv, atol=atol, rtol=rtol, err_msg=f"forward output {i}")
    if not grad:
        check_jit(ember_fn, items, grad)
        return
    rng = np.random.default_rng(seed + 1)
    diff_e = [(k, t) for k, t in enumerate(e_in) if isinstance(t, ember.Tensor) and t.requires_grad]
    diff_t = [t_in[k] for k, _ in diff_e]
    outs = [(eo, to) for eo, to in zip(e_out, t_out) if to.requires_grad]
    if not diff_e or not outs:
        return
    e_loss, t_loss = 0, 0
    for eo, to in outs:
        w = rng.standard_normal(tuple(to.shape)).astype(np.float32)
        e_loss = e_loss + (eo * ember.tensor(w, device=DEVICE)).sum()
        t_loss = t_loss + (to * torch.tensor(w, device=DEVICE)).sum()
    e_loss.backward()
    t_loss.backward()
    for (k, et), tt in zip(diff_e, diff_t):
        assert (et.grad is None) == (tt.grad is None), f"input {k}: grad presence differs from torch"
        if tt.grad is not None:
            assert et.grad.shape == tuple(tt.grad.shape), f"input {k}: grad shape {et.grad.shape} vs {tt.grad.shape}"
            np.testing.assert_allclose(_np(et.grad), _np(tt.grad), atol=atol, rtol=rtol,
                                       err_msg=f"gradient of input {k}")
    check_jit(ember_fn, items, grad)
    if gradcheck:
        g_in = [_to("ember", it, np.float64, grad) for it in items]

        def f(*xs):
            return ember_fn(*xs)
        assert ember.autograd.gradcheck(f, g_in, eps=gc_eps, atol=gc_atol, rtol=gc_rtol)


def _weighted(out, which, weights, dtype):
    """``sum_k (out[k] * weights[k]).sum()``: a scalar whose gradient is the random upstream gradient."""
    return sum(((out[k] * ember.tensor(wk, device=DEVICE)).sum() for k, wk in zip(which, weights)),
               ember.tensor(0.0, dtype=dtype, device=DEVICE))


def check_jit(ember_fn, items, grad=True):
    """Graph mode equals eager mode: ``ember.jit(ember_fn)``, replayed from its cached graph (the second call
    of each signature), gives eager's outputs without grad and eager's input gradients with grad: float64 to
    1e-12, float32 to 1e-5."""
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        def inputs():
            return [_to("ember", it, dtype, grad) for it in items]
        eager_in = inputs()
        eager = _flat_outputs(ember_fn(*eager_in))
        jf = ember.jit(ember_fn)
        with ember.no_grad():
            jf(*inputs())
            replay = _flat_outputs(jf(*inputs()))
        assert jf.traces == 1, f"jit traced {jf.traces} times for one signature"
        assert len(replay) == len(eager)
        for i, (r, e) in enumerate(zip(replay, eager)):
            assert r.shape == e.shape and r.dtype == e.dtype, f"jit output {i}: {r.shape} {r.dtype} vs eager"
            np.testing.assert_allclose(_np(r), _np(e), rtol=tol, atol=tol, err_msg=f"jit output {i}")
        diff = [k for k, t in enumerate(eager_in) if isinstance(t, ember.Tensor) and t.requires_grad]
        outs = [k for k, e in enumerate(eager) if e.requires_grad]
        if not grad or not diff or not outs:
            continue
        w = [np.random.default_rng(k).standard_normal(tuple(eager[k].shape)).astype(dtype) for k in outs]
        _weighted(eager, outs, w, dtype).backward()
        jf(*inputs())                                  # traces the grad-mode signature
        jit_in = inputs()
        out = _flat_outputs(jf(*jit_in))
        assert jf.traces == 2, f"jit traced {jf.traces} times for two signatures"
        _weighted(out, outs, w, dtype).backward()
        for k in diff:
            e, j = eager_in[k].grad, jit_in[k].grad
            assert (e is None) == (j is None), f"jit: input {k} grad presence differs from eager"
            if e is not None:
                np.testing.assert_allclose(_np(j), _np(e), rtol=tol, atol=tol, err_msg=f"jit gradient {k}")

        def grads(*xs):                                # the backward inside the graph: one node per backward call
            out = _flat_outputs(ember_fn(*xs))
            _weighted(out, outs, w, dtype).backward()
            return [xs[k].grad for k in diff]
        jg = ember.jit(grads)
        jg(*inputs())
        replayed = jg(*inputs())
        assert jg.traces == 1
        for k, r in zip(diff, replayed):
            e = eager_in[k].grad
            assert (e is None) == (r is None), f"jit backward graph: input {k} grad presence differs from eager"
            if e is not None:
                np.testing.assert_allclose(_np(r), _np(e), rtol=tol, atol=tol,
                                           err_msg=f"jit backward graph: gradient {k}")
