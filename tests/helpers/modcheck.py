"""One helper checks a layer against its PyTorch twin (weights copied across, as a user loading torch weights).

``check_module(ember_mod, torch_mod, specs)`` copies the PyTorch module's ``state_dict`` into the
Ember module (so state-dict names and layouts must match PyTorch's), runs both on the same float32
inputs, and compares every output, the gradient of every floating input and of every parameter
(by name) for a random upstream gradient, and every buffer afterwards (running statistics). With
``gradcheck=True`` it then runs Ember's float64 finite-difference gradcheck over the inputs and
the parameters of a double-precision copy.

``call`` maps ``(module, *inputs)`` to the output(s) when the call is not just ``module(*inputs)``
(keyword arguments, masks); nested tuples of outputs (``out, (h, c)``) are flattened.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

import ember

from . import opcheck
from .opcheck import Arr, _np, make_inputs


def _flatten(out) -> list:
    if isinstance(out, (tuple, list)):
        return [leaf for item in out for leaf in _flatten(item)]
    return [] if out is None else [out]


def _default_call(module, *inputs):
    return module(*inputs)


def _convert(kind, item, dtype, requires_grad):
    if not isinstance(item, Arr):
        return item
    a = item.value
    floating = a.dtype.kind == "f"
    rg = requires_grad and item.grad and floating
    if floating:
        a = a.astype(dtype)
    if kind == "ember":
        return ember.tensor(a, requires_grad=rg, device=opcheck.DEVICE)
    return torch.tensor(a, requires_grad=rg, device=opcheck.DEVICE)


def copy_torch_weights(ember_mod, torch_mod, strict: bool = True):
    """Load ``torch_mod``'s state (parameters and buffers, as NumPy arrays) into ``ember_mod``."""
    state = {k: v.detach().cpu().numpy() for k, v in torch_mod.state_dict().items()}
    return ember_mod.load_state_dict(state, strict=strict)


def check_module(ember_mod, torch_mod, specs, *, call=None, torch_call=None, atol=1e-4, rtol=1e-4, seed=0,
                 train=True, grad=True, gradcheck=False, gc_atol=1e-5, gc_rtol=1e-3, gc_eps=1e-6,
                 low=None, high=None, positive=False):
    """Forward, input/parameter gradients and buffers equal PyTorch's with copied weights; optional gradcheck."""
    call = call or _default_call
    torch_call = torch_call or call
    copy_torch_weights(ember_mod, torch_mod)
    ember_mod.to(opcheck.DEVICE)           # the cuda case: parity with PyTorch CUDA (conftest's each_device)
    torch_mod.to(opcheck.DEVICE)
    ember_mod.train(train)
    torch_mod.train(train)
    items = make_inputs(specs, seed, low, high, positive)
    e_in = [_convert("ember", it, np.float32, grad) for it in items]
    t_in = [_convert("torch", it, np.float32, grad) for it in items]
    e_out = _flatten(call(ember_mod, *e_in))
    t_out = _flatten(torch_call(torch_mod, *t_in))
    assert len(e_out) == len(t_out), f"{len(e_out)} outputs vs torch's {len(t_out)}"
    for i, (eo, to) in enumerate(zip(e_out, t_out)):
        ev, tv = _np(eo), _np(to)
        assert ev.shape == tv.shape, f"output {i}: shape {ev.shape} vs torch {tv.shape}"
        np.testing.assert_allclose(ev, tv, atol=atol, rtol=rtol, err_msg=f"forward output {i}")
    if grad:
        rng = np.random.default_rng(seed + 1)
        e_loss, t_loss = 0, 0
        for eo, to in zip(e_out, t_out):
            if not to.requires_grad:
                continue
            w = rng.standard_normal(tuple(to.shape)).astype(np.float32)
            e_loss = e_loss + (eo * ember.tensor(w, device=opcheck.DEVICE)).sum()
            t_loss = t_loss + (to * torch.tensor(w, device=opcheck.DEVICE)).sum()
        if isinstance(t_loss, torch.Tensor):
            e_loss.backward()
            t_loss.backward()
            for k, (et, tt) in enumerate(zip(e_in, t_in)):
                if isinstance(tt, torch.Tensor) and tt.requires_grad and tt.grad is not None:
                    np.testing.assert_allclose(_np(et.grad), _np(tt.grad), atol=atol, rtol=rtol,
                                               err_msg=f"gradient of input {k}")
            e_params = dict(ember_mod.named_parameters())
            for name, tp in torch_mod.named_parameters():
                ep = e_params[name]
                if tp.grad is None:
                    assert ep.grad is None or not np.any(_np(ep.grad)), f"{name}: grad where torch has none"
                    continue
                assert ep.grad is not None, f"parameter {name}: no gradient (torch has one)"
                np.testing.assert_allclose(_np(ep.grad), _np(tp.grad), atol=atol, rtol=rtol,
                                           err_msg=f"gradient of parameter {name}")
    e_bufs = dict(ember_mod.named_buffers())
    for name, tb in torch_mod.named_buffers():
        if name in e_bufs and tb.dtype.is_floating_point:
            np.testing.assert_allclose(_np(e_bufs[name]), _np(tb), atol=atol, rtol=rtol,
                                       err_msg=f"buffer {name} after the call")
    ember_mod.to("cpu")                    # graph mode and the float64 gradcheck run on the host
    if grad:
        check_module_jit(ember_mod, items, call=call, train=train, seed=seed)
    if gradcheck:
        module_gradcheck(ember_mod, items, call=call, train=train, atol=gc_atol, rtol=gc_rtol, eps=gc_eps)


def check_module_jit(ember_mod, items, *, call=None, train=True, seed=0, tol=1e-5):
    """Graph mode: a jitted forward + backward of the module (backward nodes, parameter gradients as graph
    effects) replays what eager computes: outputs, input and parameter gradients and buffers. Each side runs
    twice from the same weights and the same random seed; the second calls are compared."""
    call = call or _default_call
    results = []
    for use_jit in (False, True):
        mod = copy.deepcopy(ember_mod).train(train)

        def f(*xs):
            for p in mod.parameters():
                p.grad = None
            out = _flatten(call(mod, *xs))
            floats = [o for o in out if o.requires_grad]
            if floats:
                loss = sum((o * ember.tensor(np.random.default_rng(seed + i).standard_normal(tuple(o.shape))
                                             .astype(np.float32))).sum() for i, o in enumerate(floats))
                loss.backward()
            return [o.detach() for o in out] + [x.grad for x in xs if isinstance(x, ember.Tensor) and x.requires_grad]
        run = ember.jit(f) if use_jit else f
        for _ in range(2):
            ember.manual_seed(seed)
            xs = [_convert("ember", it, np.float32, True) for it in items]
            got = run(*xs)
        results.append(([None if g is None else g.numpy().copy() for g in got],
                        {k: (None if p.grad is None else p.grad.numpy().copy()) for k, p in mod.named_parameters()},
                        {k: b.numpy().copy() for k, b in mod.named_buffers() if b is not None}))
    (out_e, grads_e, bufs_e), (out_j, grads_j, bufs_j) = results
    for i, (e, j) in enumerate(zip(out_e, out_j)):
        assert (e is None) == (j is None), f"jit: output/input-gradient {i} presence differs from eager"
        if e is not None:
            np.testing.assert_allclose(j, e, rtol=tol, atol=tol, err_msg=f"jit output or input gradient {i}")
    for k in grads_e:
        assert (grads_e[k] is None) == (grads_j[k] is None), f"jit: parameter {k} gradient presence differs"
        if grads_e[k] is not None:
            np.testing.assert_allclose(grads_j[k], grads_e[k], rtol=tol, atol=tol, err_msg=f"jit gradient of {k}")
    for k in bufs_e:
        np.testing.assert_allclose(bufs_j[k], bufs_e[k], rtol=tol, atol=tol, err_msg=f"jit buffer {k}")


def module_gradcheck(ember_mod, items, *, call=None, train=True, atol=1e-5, rtol=1e-3, eps=1e-6):
    """float64 finite-difference gradcheck of a module's outputs w.r.t. its floating inputs and parameters."""
    call = call or _default_call
    mod = copy.deepcopy(ember_mod).double().train(train)
    inputs = [_convert("ember", it, np.float64, True) for it in items]
    params = [p for p in mod.parameters() if p.requires_grad]
    n_in = len(inputs)
    leaves = list(inputs) + [ember.tensor(p.data, requires_grad=True) for p in params]

    def g(*xs):
        return _call_with_params(mod, params, xs[n_in:], call, xs[:n_in])

    assert ember.autograd.gradcheck(g, leaves, eps=eps, atol=atol, rtol=rtol)


def _call_with_params(mod, params, values, call, inputs):
    """Run ``call`` with each parameter swapped for the differentiable leaf ``gradcheck`` passes in."""
    saved = {}
    owners = {}
    for name, p in mod.named_parameters():
        owners[id(p)] = name
    for p, v in zip(params, values):
        name = owners[id(p)]
        owner_name, _, attr = name.rpartition(".")
        owner = mod.get_submodule(owner_name) if owner_name else mod
        saved[(id(owner), attr)] = (owner, attr, owner._parameters[attr])
        owner._parameters[attr] = v
    try:
        return tuple(_flatten(call(mod, *inputs)))
    finally:
        for owner, attr, p in saved.values():
            owner._parameters[attr] = p
