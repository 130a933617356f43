"""Optimizers follow PyTorch's trajectories step for step, and save/restore their state."""
import numpy as np
import pytest
import torch

import ember
from ember import optim
from ember.optim import _fused

SHAPES = [(6, 4), (4,), (1,)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True, maximize=True)),
    ("SGD", dict()),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, maximize=True, eps=1e-6)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.1, eps=1e-6, maximize=True)),
]


def _init(dtype, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in SHAPES]


def _grad(w, t, i):
    """A gradient that depends on the current weights (a quadratic pull) plus fixed noise per step."""
    noise = np.random.default_rng(1000 * t + i).standard_normal(w.shape).astype(w.dtype)
    return (w * w.dtype.type(0.5) - w.dtype.type(0.2) + noise * w.dtype.type(0.3)).astype(w.dtype)


def _pair(name, kwargs, dtype, groups=None):
    init = _init(dtype)
    ew = [ember.tensor(a, requires_grad=True) for a in init]
    tw = [torch.tensor(a, requires_grad=True) for a in init]
    if groups is None:
        return ew, tw, getattr(optim, name)(ew, **kwargs), getattr(torch.optim, name)(tw, **kwargs)
    eg = [dict(g, params=[ew[i] for i in g["params"]]) for g in groups]
    tg = [dict(g, params=[tw[i] for i in g["params"]]) for g in groups]
    return ew, tw, getattr(optim, name)(eg, **kwargs), getattr(torch.optim, name)(tg, **kwargs)


def _set_grads(ew, tw, t):
    for i, (e, p) in enumerate(zip(ew, tw)):
        e.grad = ember.tensor(_grad(e.data, t, i))
        p.grad = torch.from_numpy(_grad(p.detach().numpy(), t, i))


def _run(ew, tw, eopt, topt, steps, tol, start=0):
    for t in range(start, start + steps):
        _set_grads(ew, tw, t)
        eopt.step()
        topt.step()
        for e, p in zip(ew, tw):
            np.testing.assert_allclose(e.data, p.detach().numpy(), **tol, err_msg=f"step {t}")


TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{'-'.join(k) or 'default'}" for n, k in CASES])
def test_trajectory_matches_torch(name, kwargs, dtype):
    ew, tw, eopt, topt = _pair(name, kwargs, dtype)
    _run(ew, tw, eopt, topt, 50, TOL[dtype])


@pytest.mark.parametrize("fused", [False, True])
def test_adam_fused_and_portable_paths_agree_with_torch(fused, monkeypatch):
    if fused and not _fused.available:
        pytest.skip("numba is not installed")
    if not fused:
        monkeypatch.setattr(_fused, "available", False)
    ew, tw, eopt, topt = _pair("AdamW", dict(lr=0.01, amsgrad=True, maximize=True), np.float32)
    _run(ew, tw, eopt, topt, 20, TOL[np.float32])


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_param_groups_with_own_options(name):
    groups = [{"params": [0, 1], "lr": 0.03}, {"params": [2], "lr": 0.003, "weight_decay": 0.1}]
    extra = dict(momentum=0.9) if name in ("SGD", "RMSprop") else {}
    ew, tw, eopt, topt = _pair(name, dict(lr=0.01, **extra), np.float64, groups)
    assert eopt.param_groups[1]["lr"] == 0.003 and eopt.param_groups[0]["weight_decay"] == 0
    _run(ew, tw, eopt, topt, 30, TOL[np.float64])


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(amsgrad=True)),
                                         ("AdamW", dict()), ("RMSprop", dict(centered=True, momentum=0.5)),
                                         ("Adagrad", dict(lr=0.1))])
def test_state_dict_round_trip_resumes_identically(name, kwargs):
    ew, tw, eopt, topt = _pair(name, kwargs, np.float32)
    _run(ew, tw, eopt, topt, 10, TOL[np.float32])
    sd = eopt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2] and sd["param_groups"][0]["params"] == [0, 1, 2]
    assert not any(k.startswith("_") for s in sd["state"].values() for k in s)
    for s in sd["state"].values():
        for v in s.values():
            assert isinstance(v, (int, float, ember.Tensor))
    # a fresh optimizer on copies of the weights, loaded from the state dict, continues the same trajectory
    ew2 = [ember.tensor(e.data.copy(), requires_grad=True) for e in ew]
    eopt2 = getattr(optim, name)(ew2, lr=123.0)
    eopt2.load_state_dict(sd)
    assert eopt2.param_groups[0]["lr"] == eopt.param_groups[0]["lr"]
    _run(ew, tw, eopt, topt, 10, TOL[np.float32], start=10)
    for t in range(10, 20):
        for i, e in enumerate(ew2):
            e.grad = ember.tensor(_grad(e.data, t, i))
        eopt2.step()
    for a, b in zip(ew, ew2):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_snapshot_and_load_accepts_numpy():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    w.grad = ember.tensor([1.0, 1.0])
    opt.step()
    sd = opt.state_dict()
    saved = sd["state"][0]["exp_avg"].data.copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"].data, saved)
    sd["state"][0] = {k: (v.data if isinstance(v, ember.Tensor) else v) for k, v in sd["state"][0].items()}
    opt.load_state_dict(sd)
    assert opt.state[w]["step"] == 1
    np.testing.assert_array_equal(opt.state[w]["exp_avg"], saved)


def test_skips_params_without_grad_and_zero_grad():
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    b = ember.tensor([3.0], requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = ember.tensor([1.0, 1.0])
    opt.step()
    np.testing.assert_allclose(a.data, [0.5, 1.5])
    np.testing.assert_allclose(b.data, [3.0])
    assert b not in opt.state or "momentum_buffer" not in opt.state[b]
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.data, [0.0, 0.0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_with_closure_and_backward():
    w = ember.tensor([2.0, -3.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    for _ in range(3):
        loss = opt.step(closure)
    assert isinstance(loss, ember.Tensor)
    np.testing.assert_allclose(w.data, [0.25, -0.375])


def test_add_param_group_and_errors():
    a = ember.tensor([1.0], requires_grad=True)
    b = ember.tensor([1.0], requires_grad=True)
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="invalid lr"):
        optim.Adam([a], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([a], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([a * 2], lr=0.1)
    with pytest.raises(ValueError, match="2 parameter groups"):
        optim.Adam([b]).load_state_dict(opt.state_dict())
    assert "Parameter Group 1" in repr(opt)


def test_defaults_match_torch():
    import inspect
    for name in ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]:
        ours = inspect.signature(getattr(optim, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name)).parameters
        for arg in ours:
            if arg in theirs and arg != "params":
                assert ours[arg].default == theirs[arg].default, (name, arg)


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01, amsgrad=True)), ("SGD", dict(lr=0.05, momentum=0.9)),
                                         ("RMSprop", dict(centered=True))])
def test_loads_a_pytorch_state_dict(name, kwargs):
    """Same layout as PyTorch: a torch optimizer's state dict (tensors converted to arrays) resumes here."""
    ew, tw, eopt, topt = _pair(name, kwargs, np.float64)
    _run(ew, tw, eopt, topt, 5, TOL[np.float64])
    sd = topt.state_dict()
    sd = {"state": {i: {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
                    for i, s in sd["state"].items()},
          "param_groups": sd["param_groups"]}
    ew2 = [ember.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tw]
    eopt2 = getattr(optim, name)(ew2)
    eopt2.load_state_dict(sd)
    _run(ew2, tw, eopt2, topt, 10, TOL[np.float64], start=5)


@pytest.mark.parametrize("make", [
    lambda p: optim.Adam(p, lr=0.1),
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: optim.RMSprop(p, lr=0.1),
    lambda p: optim.Adagrad(p, lr=0.1),
])
def test_state_of_other_dtype_after_double_raises(make):
    net = ember.nn.Linear(2, 1)
    opt = make(net.parameters())
    net(ember.ones(4, 2)).sum().backward()
    opt.step()
    net.double()
    net(ember.ones(4, 2, dtype=ember.float64)).sum().backward()
    with pytest.raises(RuntimeError, match=f"{type(opt).__name__}: parameter 0 of param group 0 is now float64"):
        opt.step()


def test_stateless_sgd_follows_double_like_torch():
    ours, theirs = ember.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with ember.no_grad():
        ours.weight.data[...] = theirs.weight.detach().numpy()
        ours.bias.data[...] = theirs.bias.detach().numpy()
    eo, to = optim.SGD(ours.parameters(), lr=0.1, weight_decay=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1,
                                                                                   weight_decay=0.1)
    for step in range(2):
        if step == 1:
            ours.double()
            theirs.double()
        dt = (ember.float32, torch.float32) if step == 0 else (ember.float64, torch.float64)
        ours(ember.ones(4, 2, dtype=dt[0])).sum().backward()
        theirs(torch.ones(4, 2, dtype=dt[1])).sum().backward()
        eo.step()
        to.step()
    assert ours.weight.dtype == ember.float64
    np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy(), rtol=1e-6)
