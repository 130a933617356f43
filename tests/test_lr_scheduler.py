"""Learning-rate schedulers give PyTorch's learning rates (and momenta) step for step."""
import math

import pytest
import torch

import ember
from ember import optim
from ember.optim import lr_scheduler as ls

CASES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 30], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("CosineAnnealingLR", dict(T_max=20)),
    ("CosineAnnealingLR", dict(T_max=13, eta_min=0.01)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.8, total_iters=20)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e + 0.1 * (e % 3))),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=50)),
    ("OneCycleLR", dict(max_lr=[0.5, 2.0], total_steps=60, anneal_strategy="linear", three_phase=True)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=5, steps_per_epoch=11, pct_start=0.25, cycle_momentum=False,
                        div_factor=10.0, final_div_factor=100.0)),
]


def _opts(opt_name="SGD", **kw):
    ep = [ember.zeros(2, requires_grad=True), ember.zeros(1, requires_grad=True)]
    tp = [torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)]
    kw = kw or (dict(momentum=0.9) if opt_name == "SGD" else {})
    eo = getattr(optim, opt_name)([{"params": ep[:1], "lr": 0.1}, {"params": ep[1:], "lr": 0.02}], **kw)
    to = getattr(torch.optim, opt_name)([{"params": tp[:1], "lr": 0.1}, {"params": tp[1:], "lr": 0.02}], **kw)
    return eo, to


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def _compare(es, ts, eo, to, steps):
    assert es.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
    for t in range(steps):
        eo.step()
        to.step()
        es.step()
        ts.step()
        assert es.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15), f"step {t}"
        assert [g["lr"] for g in eo.param_groups] == es.get_last_lr()
        assert _momenta(eo) == pytest.approx(_momenta(to), rel=1e-12), f"step {t}"
        assert es.last_epoch == ts.last_epoch


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch(name, kwargs, opt_name):
    eo, to = _opts(opt_name)
    es, ts = getattr(ls, name)(eo, **kwargs), getattr(torch.optim.lr_scheduler, name)(to, **kwargs)
    steps = getattr(ts, "total_steps", 50)
    _compare(es, ts, eo, to, steps)


def test_cosine_annealing_keeps_cycling_past_t_max():
    eo, to = _opts()
    es, ts = ls.CosineAnnealingLR(eo, T_max=5, eta_min=0.001), torch.optim.lr_scheduler.CosineAnnealingLR(to, 5, 1e-3)
    _compare(es, ts, eo, to, 23)


def test_one_cycle_refuses_to_overrun():
    eo, _ = _opts()
    s = ls.OneCycleLR(eo, max_lr=1.0, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        s.step()


def test_one_cycle_needs_momentum():
    eo, _ = _opts("Adagrad", lr=0.1)
    with pytest.raises(ValueError, match="momentum or beta1"):
        ls.OneCycleLR(eo, max_lr=1.0, total_steps=10)
    with pytest.raises(ValueError, match="total_steps OR"):
        ls.OneCycleLR(eo, max_lr=1.0, cycle_momentum=False)


def test_epoch_argument_uses_closed_form():
    eo, to = _opts()
    es = ls.StepLR(eo, step_size=3, gamma=0.5)
    es.step(7)
    assert es.get_last_lr() == pytest.approx([0.1 * 0.25, 0.02 * 0.25])


@pytest.mark.parametrize("kwargs", [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.1),
                                    dict(patience=1, cooldown=2, min_lr=[0.05, 0.0], threshold_mode="abs",
                                         threshold=0.01),
                                    dict(patience=0, factor=0.5, min_lr=0.019, eps=1e-3)])
def test_reduce_on_plateau_matches_torch(kwargs):
    eo, to = _opts()
    es = ls.ReduceLROnPlateau(eo, **kwargs)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(to, **kwargs)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.899, 0.9, 0.91, 0.92, 0.93, 0.5, 0.5, 0.5, 0.5] * 4
    for t, m in enumerate(metrics):
        es.step(m)
        ts.step(m)
        assert es.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12), f"step {t}"
        assert (es.num_bad_epochs, es.cooldown_counter, es.best) == (ts.num_bad_epochs, ts.cooldown_counter, ts.best)
    assert es.state_dict()["best"] == ts.state_dict()["best"]


def test_reduce_on_plateau_errors():
    eo, _ = _opts()
    with pytest.raises(ValueError, match="factor"):
        ls.ReduceLROnPlateau(eo, factor=1.5)
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        ls.ReduceLROnPlateau(eo, mode="up")
    with pytest.raises(ValueError, match="expected 2 values for min_lr"):
        ls.ReduceLROnPlateau(eo, min_lr=[0.1])


@pytest.mark.parametrize("name,kwargs", [c for c in CASES if c[0] != "LambdaLR"] + [
    ("LambdaLR", dict(lr_lambda=[lambda e: 0.9 ** e, lambda e: 1.0 / (e + 1)]))])
def test_state_dict_round_trip(name, kwargs):
    eo, _ = _opts()
    s = getattr(ls, name)(eo, **kwargs)
    for _ in range(10):
        eo.step()
        s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd
    osd = eo.state_dict()
    expected = []
    for _ in range(10):
        eo.step()
        s.step()
        expected.append(s.get_last_lr())
    eo2, _ = _opts()
    s2 = getattr(ls, name)(eo2, **kwargs)
    eo2.load_state_dict(osd)
    s2.load_state_dict(sd)
    got = []
    for _ in range(10):
        eo2.step()
        s2.step()
        got.append(s2.get_last_lr())
    assert got == expected


def test_lambda_lr_state_keeps_callable_objects_state():
    class Warm:
        def __init__(self):
            self.k = 2

        def __call__(self, e):
            return self.k * e

    eo, _ = _opts()
    fn = Warm()
    s = ls.LambdaLR(eo, [fn, lambda e: 1.0])
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"k": 2}, None]
    fn.k = 5
    s.load_state_dict(sd)
    assert fn.k == 2


def test_resume_needs_initial_lr_and_checks_optimizer():
    eo, _ = _opts()
    with pytest.raises(KeyError, match="initial_lr"):
        ls.StepLR(eo, step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        ls.StepLR(object(), step_size=2)
    s = ls.StepLR(eo, step_size=2)
    assert s.base_lrs == [0.1, 0.02] and math.isclose(eo.param_groups[0]["initial_lr"], 0.1)


@pytest.mark.parametrize("make", [
    lambda o: ls.LambdaLR(o, lambda e: 0.5 ** e),
    lambda o: ls.StepLR(o, 2),
    lambda o: ls.ReduceLROnPlateau(o),
])
def test_param_groups_changed_since_creation(make):
    o = optim.SGD([ember.zeros(1, requires_grad=True)], lr=1.0)
    sched = make(o)
    o.add_param_group({"params": [ember.zeros(1, requires_grad=True)], "lr": 2.0})
    args = (1.0,) if isinstance(sched, ls.ReduceLROnPlateau) else ()
    with pytest.raises(ValueError, match=f"{type(sched).__name__}: the optimizer has 2 param groups but had 1"):
        sched.step(*args)
