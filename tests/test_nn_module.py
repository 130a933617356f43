import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn


def _build(ns):
    class SimpleModel(ns.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = ns.Linear(784, 64)
            self.act = ns.ReLU()
            self.drop = ns.Dropout(0.1)
            self.head = ns.Sequential(ns.Linear(64, 32), ns.GELU(), ns.Linear(32, 10))
            self.blocks = ns.ModuleList([ns.Linear(10, 10) for _ in range(3)])
            self.scale = ns.Parameter(ember.ones(1) if ns is nn else torch.ones(1))
            self.register_buffer("steps", ember.zeros(1) if ns is nn else torch.zeros(1))
            self.register_buffer("cache", ember.zeros(2) if ns is nn else torch.zeros(2), persistent=False)

        def forward(self, x):
            x = self.head(self.drop(self.act(self.fc1(x))))
            for b in self.blocks:
                x = b(x)
            return x * self.scale
    return SimpleModel()


def test_registration_and_traversal_match_torch():
    em, tm = _build(nn), _build(torch.nn)
    assert [n for n, _ in em.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert [n for n, _ in em.named_buffers()] == [n for n, _ in tm.named_buffers()]
    assert [n for n, _ in em.named_modules()] == [n for n, _ in tm.named_modules()]
    assert [n for n, _ in em.named_children()] == [n for n, _ in tm.named_children()]
    assert list(em.state_dict()) == list(tm.state_dict())
    assert len(list(em.parameters())) == len(list(tm.parameters()))
    assert [n for n, _ in em.named_parameters(recurse=False)] == ["scale"]
    assert len(list(em.modules())) == len(list(tm.modules()))
    assert isinstance(em.fc1.weight, nn.Parameter) and em.fc1.weight.requires_grad
    assert em.get_submodule("head.0") is em.head[0]
    assert em.get_parameter("blocks.1.bias") is em.blocks[1].bias


def test_repr_matches_torch():
    em, tm = _build(nn), _build(torch.nn)
    assert repr(em) == repr(tm)
    assert repr(nn.Sequential()) == repr(torch.nn.Sequential())
    assert repr(nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.Tanh()})) == \
        repr(torch.nn.ModuleDict({"a": torch.nn.Linear(1, 2), "b": torch.nn.Tanh()}))
    ml = [nn.ReLU(), nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU(), nn.ReLU()]
    tl = [torch.nn.ReLU(), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.ReLU()]
    assert repr(nn.ModuleList(ml)) == repr(torch.nn.ModuleList(tl))


def test_parameter_basics():
    p = nn.Parameter(ember.tensor([1.0, 2.0]))
    assert repr(p) == repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))
    assert p.requires_grad and p.is_leaf
    assert not nn.Parameter(ember.ones(2), requires_grad=False).requires_grad
    t = ember.ones(3)
    assert nn.Parameter(t).data is t.data   # shares storage
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.data is not p.data and q.requires_grad
    assert type(p * 2) is ember.Tensor


def test_state_dict_round_trip_and_sharing():
    a, b = _build(nn), _build(nn)
    sd = a.state_dict()
    assert all(not v.requires_grad for v in sd.values())
    assert sd["fc1.weight"].data is a.fc1.weight.data or np.shares_memory(sd["fc1.weight"].data, a.fc1.weight.data)
    assert "cache" not in sd and "steps" in sd
    w_obj = b.fc1.weight
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == [] and repr(res) == "<All keys matched successfully>"
    assert b.fc1.weight is w_obj
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k].numpy())
    # numpy arrays and torch state dicts work as sources
    tm = _build(torch.nn)
    b.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    np.testing.assert_array_equal(b.head[2].bias.detach().numpy(), tm.head[2].bias.detach().numpy())
    assert b.fc1.weight.requires_grad and b.fc1.weight.dtype == ember.float32
    ver = b.fc1.weight._version
    b.load_state_dict(sd)
    assert b.fc1.weight._version > ver


def test_load_state_dict_errors():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    sd = m.state_dict()
    bad = dict(sd)
    del bad["0.bias"]
    bad["extra.weight"] = ember.ones(1)
    bad["2.weight"] = ember.ones(3, 3)
    with pytest.raises(RuntimeError) as ei:
        m.load_state_dict(bad)
    msg = str(ei.value)
    assert "Error(s) in loading state_dict for Sequential" in msg
    assert 'Missing key(s) in state_dict: "0.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    assert "size mismatch for 2.weight: copying a param with shape (3, 3) from checkpoint, the shape in current " \
           "model is (2, 3)" in msg
    del bad["2.weight"]
    res = m.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["0.bias", "2.weight"] and res.unexpected_keys == ["extra.weight"]
    with pytest.raises(RuntimeError, match="size mismatch"):
        m.load_state_dict({**sd, "0.weight": np.zeros((4, 3))}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([1, 2])


def test_train_eval_and_dropout_mode():
    m = _build(nn)
    assert m.training and m.drop.training
    assert m.eval() is m
    assert not m.training and not m.drop.training and not m.head[1].training
    m.train()
    assert all(mod.training for mod in m.modules())
    with pytest.raises(ValueError, match="boolean"):
        m.train("yes")


def test_forward_backward_zero_grad_and_requires_grad():
    m = _build(nn).eval()
    out = m(ember.randn(2, 784))
    assert tuple(out.shape) == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_to_dtype_keeps_parameter_objects():
    m = _build(nn)
    params = list(m.parameters())
    m(ember.randn(2, 784)).sum().backward()
    assert m.double() is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype == ember.float64 and p.grad.dtype == ember.float64 for p in params)
    assert m.steps.dtype == ember.float64
    assert m(ember.randn(2, 784, dtype=ember.float64)).dtype == ember.float64
    m.to(ember.float32)
    assert m.fc1.weight.dtype == ember.float32
    m.to("cpu")
    with pytest.raises(TypeError, match="floating point"):
        m.to(ember.int64)


def test_setattr_getattr_delattr_dir():
    m = nn.Module()
    m.w = nn.Parameter(ember.ones(2))
    m.sub = nn.Linear(2, 2)
    m.register_buffer("buf", ember.zeros(2))
    m.plain = 3
    assert "w" in m._parameters and "sub" in m._modules and "buf" in m._buffers and "plain" not in m._parameters
    assert {"w", "sub", "buf", "plain", "forward"} <= set(dir(m))
    m.buf = ember.ones(2)
    assert float(m.buf.sum()) == 2
    with pytest.raises(TypeError, match="cannot assign 'int' as parameter 'w'"):
        m.w = 5
    with pytest.raises(TypeError, match="buffer"):
        m.buf = 5
    m.w = None
    assert m.w is None and list(m.named_parameters(recurse=False)) == []
    del m.sub
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'sub'"):
        m.sub  # noqa: B018
    m.sub = nn.ReLU()
    m.sub = nn.Parameter(ember.ones(1))   # replacing a module by a parameter moves it
    assert "sub" not in m._modules and "sub" in m._parameters
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", None)
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("z", ember.ones(1))

    class Bad(nn.Module):
        def __init__(self):
            self.p = nn.Parameter(ember.ones(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_hooks():
    m = nn.Linear(3, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append(("pre", mod)) or (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(("post", tuple(args[0].shape))) or out + 1)
    out = m(ember.ones(4, 3))
    assert [c[0] for c in calls] == ["pre", "post"] and calls[0][1] is m
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(m.bias.detach().numpy() + 1, (4, 2)), rtol=1e-6)
    h1.remove()
    h2.remove()
    out = m(ember.ones(4, 3))
    assert len(calls) == 2
    np.testing.assert_allclose(out.detach().numpy(), (ember.ones(4, 3) @ m.weight.detach().T + m.bias.detach()).numpy(),
                               rtol=1e-6)


def test_apply_and_shared_parameters():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Sequential"]

    def init(mod):
        if isinstance(mod, nn.Linear):
            nn.init.zeros_(mod.bias)
    m.apply(init)
    assert float(m[0].bias.abs().sum()) == 0
    shared = nn.Linear(2, 2)
    s = nn.Sequential(shared, shared)
    assert len(list(s.parameters())) == 2
    assert list(s.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_sequential_indexing():
    layers = [nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and s[0] is layers[0] and s[-1] is layers[2]
    assert list(s) == layers
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:]
    assert [n for n, _ in sub.named_children()] == ["1", "2"]   # slices keep the keys, as torch
    with pytest.raises(IndexError, match="out of range"):
        s[3]
    s.append(nn.Tanh())
    assert len(s) == 4 and type(s[3]).__name__ == "Tanh"
    s[1] = nn.GELU()
    assert isinstance(s[1], nn.GELU)
    del s[1]
    assert [n for n, _ in s.named_children()] == ["0", "1", "2"]
    od = nn.Sequential(OrderedDict([("enc", nn.Linear(4, 3)), ("act", nn.ReLU())]))
    assert od.enc is od[0] and list(od.state_dict()) == ["enc.weight", "enc.bias"]
    x = ember.randn(5, 4)
    np.testing.assert_allclose(od(x).detach().numpy(), od.act(od.enc(x)).detach().numpy())


def test_module_list_dict_parameter_containers():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert [type(x).__name__ for x in ml] == ["Identity", "Linear", "ReLU", "Tanh"] and len(ml) == 4
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    assert len(list(ml.parameters())) == 2
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    md = nn.ModuleDict({"a": nn.Linear(2, 3)})
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    assert list(md.state_dict()) == ["a.weight", "a.bias"]
    pl = nn.ParameterList([nn.Parameter(ember.ones(2)), ember.zeros(3)])
    assert len(pl) == 2 and isinstance(pl[1], nn.Parameter) and list(pl.state_dict()) == ["0", "1"]
    pd = nn.ParameterDict({"x": nn.Parameter(ember.ones(1))})
    assert list(pd.state_dict()) == ["x"] and pd["x"].requires_grad
    assert "x" in pd and len(pd) == 1


def test_deepcopy_module():
    m = nn.Sequential(nn.Linear(3, 2))
    c = copy.deepcopy(m)
    assert c[0].weight is not m[0].weight
    np.testing.assert_array_equal(c[0].weight.detach().numpy(), m[0].weight.detach().numpy())
    c(ember.ones(1, 3)).sum().backward()
    assert m[0].weight.grad is None and c[0].weight.grad is not None


def test_training_step_reduces_loss():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    x = ember.randn(32, 4)
    y = ember.tensor(np.random.default_rng(0).integers(0, 3, 32))
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(30):
        loss = loss_fn(model(x), y)
        first = first if first is not None else loss.item()
        model.zero_grad()
        loss.backward()
        with ember.no_grad():
            for p in model.parameters():
                p.sub_(p.grad * 0.5)
    assert loss.item() < first * 0.8


def _frozen_parent(ns):
    class Frozen(ns.Module):
        def __init__(self):
            super().__init__()
            self.lin = ns.Linear(2, 2)

        def train(self, mode=True):
            return super().train(False)

    class Parent(ns.Module):
        def __init__(self):
            super().__init__()
            self.f = Frozen()

    return Parent()


def test_train_calls_children_train_like_torch():
    ours, theirs = _frozen_parent(nn).train(), _frozen_parent(torch.nn).train()
    assert ours.f.training is theirs.f.training is False
    assert ours.f.lin.training is theirs.f.lin.training is False
    assert ours.training is theirs.training is True


@pytest.mark.parametrize("register", [
    lambda m, ns, mk: m.register_buffer("weight", mk.zeros(2, 2)),
    lambda m, ns, mk: m.register_parameter("lin", ns.Parameter(mk.ones(1))),
    lambda m, ns, mk: m.add_module("weight", ns.Linear(1, 1)),
    lambda m, ns, mk: m.register_buffer("plain", mk.ones(1)),
])
def test_register_over_other_kind_raises_like_torch(register):
    def make(ns):
        m = ns.Module()
        m.weight = ns.Parameter(torch.ones(2, 2) if ns is torch.nn else ember.ones(2, 2))
        m.lin = ns.Linear(1, 1)
        m.plain = 3
        return m
    with pytest.raises(KeyError) as theirs:
        register(make(torch.nn), torch.nn, torch)
    with pytest.raises(KeyError) as ours:
        register(make(nn), nn, ember)
    assert str(ours.value) == str(theirs.value)


def test_register_same_kind_again_allowed():
    m = nn.Module()
    m.register_buffer("b", ember.zeros(1))
    m.register_buffer("b", ember.ones(2))
    m.register_parameter("p", nn.Parameter(ember.ones(1)))
    m.register_parameter("p", None)
    m.add_module("c", nn.ReLU())
    m.add_module("c", nn.Tanh())
    assert m.b.shape == (2,) and m.p is None and isinstance(m.c, nn.Tanh)


def test_load_state_dict_assign_keeps_checkpoint_dtype():
    ours, theirs = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ours.load_state_dict({k: v.double() for k, v in nn.Linear(2, 2).state_dict().items()}, assign=True)
    theirs.load_state_dict({k: v.double() for k, v in torch.nn.Linear(2, 2).state_dict().items()}, assign=True)
    assert ours.weight.dtype == ember.float64 and theirs.weight.dtype == torch.float64
    assert isinstance(ours.weight, nn.Parameter) and ours(ember.ones(1, 2, dtype=ember.float64)).dtype == ember.float64


def test_get_submodule_through_none_child():
    s = nn.Sequential(nn.Linear(1, 1))
    s.add_module("n", None)
    with pytest.raises(AttributeError, match="`n` is not an nn.Module.*'n.x'"):
        s.get_submodule("n.x")


def test_pickle_roundtrip_without_setstate():
    import pickle
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).eval()
    back = pickle.loads(pickle.dumps(net))
    assert not back.training and not back[1].training
    np.testing.assert_array_equal(back[0].weight.detach().numpy(), net[0].weight.detach().numpy())
    assert copy.deepcopy(net)[0].weight is not net[0].weight


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
def test_list_containers_grow_like_torch(kind):
    def build(m):
        c = getattr(m.nn, kind)([m.nn.ReLU()]) if kind == "ModuleList" else m.nn.Sequential(m.nn.ReLU())
        c.append(m.nn.Linear(2, 3))
        c.extend([m.nn.Tanh(), m.nn.Identity()])
        c.insert(1, m.nn.Sigmoid())
        return c
    e, t = build(ember), build(torch)
    assert repr(e) == repr(t)
    assert [n for n, _ in e.named_parameters()] == [n for n, _ in t.named_parameters()]
