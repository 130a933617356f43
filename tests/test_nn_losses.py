import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from helpers.opcheck import Arr, check_op

R = np.random.default_rng(42)


def _targets(n, c, shape=None, ignore=None):
    t = R.integers(0, c, size=shape or (n,))
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return Arr(t)


def _probs(shape, axis=1):
    a = R.random(shape) + 0.1
    return Arr(a / a.sum(axis=axis, keepdims=True))


W5 = Arr(R.random(5) + 0.5, grad=False)

CE = []
for red in ("mean", "sum", "none"):
    CE += [
        (f"idx_{red}", dict(reduction=red), [(6, 5), _targets(6, 5)]),
        (f"weight_{red}", dict(reduction=red), [(6, 5), _targets(6, 5), W5]),
        (f"ignore_{red}", dict(reduction=red, ignore_index=-100), [(6, 5), _targets(6, 5, ignore=-100)]),
        (f"ignore_cls_weight_{red}", dict(reduction=red, ignore_index=2), [(6, 5), _targets(6, 5, ignore=2), W5]),
        (f"smooth_{red}", dict(reduction=red, label_smoothing=0.2), [(6, 5), _targets(6, 5, ignore=-100)]),
        (f"smooth_weight_{red}", dict(reduction=red, label_smoothing=0.1),
         [(6, 5), _targets(6, 5, ignore=-100), W5]),
        (f"spatial_{red}", dict(reduction=red, label_smoothing=0.1), [(2, 5, 3, 2), _targets(2, 5, (2, 3, 2))]),
        (f"unbatched_{red}", dict(reduction=red), [(5,), Arr(np.array(3))]),
        (f"soft_{red}", dict(reduction=red), [(4, 5), _probs((4, 5))]),
        (f"soft_weight_smooth_{red}", dict(reduction=red, label_smoothing=0.3), [(4, 5), _probs((4, 5)), W5]),
        (f"soft_spatial_{red}", dict(reduction=red), [(2, 5, 3), _probs((2, 5, 3))]),
    ]


def _with_weight(fn, kw):
    def f(x, t, w=None):
        return fn(x, t, weight=w, **kw)
    return f


@pytest.mark.parametrize("name,kw,specs", CE, ids=[c[0] for c in CE])
def test_cross_entropy(name, kw, specs):
    check_op(_with_weight(F.cross_entropy, kw), _with_weight(TF.cross_entropy, kw), specs)


NLL = []
for red in ("mean", "sum", "none"):
    NLL += [
        (f"idx_{red}", dict(reduction=red), [(6, 5), _targets(6, 5)]),
        (f"weight_ignore_{red}", dict(reduction=red, ignore_index=1), [(6, 5), _targets(6, 5, ignore=1), W5]),
        (f"spatial_{red}", dict(reduction=red), [(2, 5, 3), _targets(2, 5, (2, 3))]),
        (f"unbatched_{red}", dict(reduction=red), [(5,), Arr(np.array(1))]),
    ]


@pytest.mark.parametrize("name,kw,specs", NLL, ids=[c[0] for c in NLL])
def test_nll_loss(name, kw, specs):
    check_op(_with_weight(F.nll_loss, kw), _with_weight(TF.nll_loss, kw), specs)


def test_cross_entropy_double_backward_matches_torch():
    x = R.standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    v = R.standard_normal((4, 3))
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    (eg,) = ember.autograd.grad(F.cross_entropy(ex, ember.tensor(t), label_smoothing=0.1), ex, create_graph=True)
    (tg,) = torch.autograd.grad(TF.cross_entropy(tx, torch.tensor(t), label_smoothing=0.1), tx, create_graph=True)
    (eh,) = ember.autograd.grad((eg * ember.tensor(v)).sum(), ex)
    (th,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), tx)
    np.testing.assert_allclose(eh.numpy(), th.numpy(), atol=1e-10)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    x = np.zeros((2, 3), np.float32)
    t = np.array([-100, -100])
    e = F.cross_entropy(ember.tensor(x), ember.tensor(t)).item()
    assert np.isnan(e) and np.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(t)).item())


REG = []
for red in ("mean", "sum", "none"):
    REG += [
        (f"mse_{red}", lambda f, red=red: (lambda a, b: f.mse_loss(a, b, reduction=red)), [(3, 4), (3, 4)]),
        (f"l1_{red}", lambda f, red=red: (lambda a, b: f.l1_loss(a, b, reduction=red)), [(3, 4), (3, 4)]),
        (f"huber_{red}", lambda f, red=red: (lambda a, b: f.huber_loss(a, b, reduction=red, delta=0.7)),
         [(3, 4), (3, 4)]),
        (f"smooth_l1_{red}", lambda f, red=red: (lambda a, b: f.smooth_l1_loss(a, b, reduction=red, beta=0.5)),
         [(3, 4), (3, 4)]),
        (f"smooth_l1_beta0_{red}", lambda f, red=red: (lambda a, b: f.smooth_l1_loss(a, b, reduction=red, beta=0.0)),
         [(3, 4), (3, 4)]),
        (f"bce_{red}", lambda f, red=red: (lambda a, b: f.binary_cross_entropy(a, b, reduction=red)),
         [Arr(R.uniform(0.05, 0.95, (3, 4))), Arr(R.random((3, 4)))]),
        (f"bce_weight_{red}", lambda f, red=red: (lambda a, b, w: f.binary_cross_entropy(a, b, w, reduction=red)),
         [Arr(R.uniform(0.05, 0.95, (3, 4))), Arr(R.random((3, 4))), Arr(R.random(4) + 0.5, grad=False)]),
        (f"bce_logits_{red}", lambda f, red=red: (lambda a, b: f.binary_cross_entropy_with_logits(a, b, reduction=red)),
         [(3, 4), Arr(R.random((3, 4)))]),
        (f"bce_logits_w_pw_{red}",
         lambda f, red=red: (lambda a, b, w, pw: f.binary_cross_entropy_with_logits(a, b, w, reduction=red,
                                                                                     pos_weight=pw)),
         [(3, 4), Arr(R.random((3, 4))), Arr(R.random((3, 1)) + 0.5, grad=False), Arr(R.random(4) + 0.5, grad=False)]),
        (f"kl_{red}", lambda f, red=red: (lambda a, b: f.kl_div(a, b, reduction=red)),
         [(3, 4), Arr(np.where(R.random((3, 4)) < 0.2, 0.0, R.random((3, 4)) + 0.1), grad=False)]),
        (f"kl_logt_{red}", lambda f, red=red: (lambda a, b: f.kl_div(a, b, reduction=red, log_target=True)),
         [(3, 4), (3, 4)]),
    ]
REG += [
    ("kl_batchmean", lambda f: (lambda a, b: f.kl_div(a, b, reduction="batchmean")), [(3, 4), Arr(R.random((3, 4)))]),
    ("bce_extreme", lambda f: (lambda a, b: f.binary_cross_entropy(a, b)),
     [Arr(np.array([0.0, 1.0, 0.5, 1e-30]), grad=False), Arr(np.array([1.0, 0.0, 0.5, 1.0]))]),
    ("bce_logits_large", lambda f: (lambda a, b: f.binary_cross_entropy_with_logits(a, b)),
     [Arr(np.array([-80.0, 80.0, 30.0, -30.0, 0.5])), Arr(np.array([1.0, 0.0, 1.0, 0.0, 0.3]))]),
]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("name,mk,specs", REG, ids=[c[0] for c in REG])
def test_pointwise_losses(name, mk, specs):
    check_op(mk(F), mk(TF), specs, gradcheck="large" not in name and "extreme" not in name)


def test_bce_with_logits_kl_target_gradients():
    # gradients with respect to the target as well (PyTorch supports them)
    check_op(lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=ember.tensor([2.0])),
             lambda a, b: TF.binary_cross_entropy_with_logits(a, b, pos_weight=torch.tensor([2.0])),
             [(3, 4), Arr(R.random((3, 4)))], gradcheck=False)
    check_op(lambda a, b: F.kl_div(a, b, reduction="sum"), lambda a, b: TF.kl_div(a, b, reduction="sum"),
             [(3, 4), Arr(R.random((3, 4)) + 0.1)])


MODS = [
    ("CrossEntropyLoss", dict(label_smoothing=0.1, ignore_index=1), [(6, 5), _targets(6, 5, ignore=1)]),
    ("NLLLoss", dict(reduction="sum"), [(6, 5), _targets(6, 5)]),
    ("MSELoss", dict(), [(3, 4), (3, 4)]),
    ("L1Loss", dict(reduction="sum"), [(3, 4), (3, 4)]),
    ("HuberLoss", dict(delta=0.5), [(3, 4), (3, 4)]),
    ("SmoothL1Loss", dict(beta=0.5), [(3, 4), (3, 4)]),
    ("BCELoss", dict(), [Arr(R.uniform(0.1, 0.9, (3, 4))), Arr(R.random((3, 4)))]),
    ("BCEWithLogitsLoss", dict(), [(3, 4), Arr(R.random((3, 4)))]),
    ("KLDivLoss", dict(reduction="batchmean", log_target=True), [(3, 4), (3, 4)]),
]


@pytest.mark.parametrize("name,kw,specs", MODS, ids=[c[0] for c in MODS])
def test_loss_modules(name, kw, specs):
    em, tm = getattr(ember.nn, name)(**kw), getattr(torch.nn, name)(**kw)
    assert repr(em) == repr(tm)
    check_op(em, tm, specs, gradcheck=False)


def test_weighted_loss_modules():
    w = R.random(5) + 0.5
    em = ember.nn.CrossEntropyLoss(weight=ember.tensor(w, dtype=ember.float32))
    tm = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32))
    check_op(em, tm, [(6, 5), _targets(6, 5)], gradcheck=False)
    assert "weight" in em.state_dict()
    pw = R.random(4) + 0.5
    em = ember.nn.BCEWithLogitsLoss(pos_weight=ember.tensor(pw, dtype=ember.float32))
    tm = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw, dtype=torch.float32))
    check_op(em, tm, [(3, 4), Arr(R.random((3, 4)))], gradcheck=False)


def test_cross_entropy_errors():
    x = ember.randn(4, 5)
    with pytest.raises(ember.OpError, match=r"cross_entropy: .*target.*\(4, 3\).*float32.*\(4, 5\)"):
        F.cross_entropy(x, ember.randn(4, 3))
    with pytest.raises(ember.OpError, match=r"cross_entropy: target of shape \(4, 1\).*expected target shape \(4,\)"):
        F.cross_entropy(x, ember.tensor([[0], [1], [2], [3]]))
    with pytest.raises(ember.OpError, match=r"target value 7 is out of bounds for 5 classes"):
        F.cross_entropy(x, ember.tensor([0, 1, 7, 2]))
    with pytest.raises(ember.OpError, match=r"target value -1 is out of bounds"):
        F.cross_entropy(x, ember.tensor([0, 1, -1, 2]))
    with pytest.raises(ember.OpError, match=r"weight must be a 1-D tensor.*\(5,\)"):
        F.cross_entropy(x, ember.tensor([0, 1, 2, 2]), weight=ember.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, ember.tensor([0, 1, 2, 2]), reduction="avg")
    with pytest.raises(ember.OpError, match=r"nll_loss: expected class indices as an integer tensor"):
        F.nll_loss(x, ember.randn(4, 5))
    with pytest.raises(ValueError, match="reduction"):
        ember.nn.MSELoss(reduction="bad")


def test_pointwise_loss_errors():
    with pytest.raises(ember.OpError, match=r"binary_cross_entropy: all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(ember.tensor([0.5, 1.5]), ember.tensor([1.0, 0.0]))
    with pytest.raises(ember.OpError, match=r"binary_cross_entropy: target of shape \(3,\) must have the same shape"):
        F.binary_cross_entropy(ember.tensor([0.5, 0.5]), ember.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ember.OpError, match=r"mse_loss: expected floating point input and target"):
        F.mse_loss(ember.tensor([1.0, 2.0]), ember.tensor([1, 2]))
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(ember.ones(3, 1), ember.ones(3))
    with pytest.raises(ember.OpError, match="cannot be broadcast"), pytest.warns(UserWarning):
        F.mse_loss(ember.ones(3), ember.ones(4))


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("as_", [list, np.asarray])
def test_class_weight_as_list_or_array(fn, as_):
    x = R.standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    w = [0.2, 1.0, 3.0]
    ours = getattr(F, fn)(ember.tensor(x), ember.tensor(t), weight=as_(w))
    theirs = getattr(TF, fn)(torch.tensor(x), torch.tensor(t), weight=torch.tensor(w, dtype=torch.float64))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
    assert ember.nn.CrossEntropyLoss(weight=as_(w)).weight.shape == (3,)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_weight_wrong_shape(fn):
    with pytest.raises(ember.OpError,
                       match=rf"{fn}: weight must be .*expected shape \(3,\), got \(4,\)"):
        getattr(F, fn)(ember.ones(2, 3), ember.tensor([0, 1]), weight=ember.ones(4))


@pytest.mark.parametrize("fn", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_bce_weight_wrong_shape_names_the_loss(fn):
    x = ember.full((4, 3), 0.5)
    with pytest.raises(ember.OpError, match=rf"^{fn}: weight of shape \(4,\) cannot be broadcast"):
        getattr(F, fn)(x, ember.ones(4, 3), weight=ember.ones(4))
    if fn.endswith("logits"):
        with pytest.raises(ember.OpError, match=rf"^{fn}: pos_weight of shape \(2,\)"):
            F.binary_cross_entropy_with_logits(x, ember.ones(4, 3), pos_weight=ember.ones(2))


def test_reduction_checked_in_one_place():
    for call in (lambda: F.mse_loss(ember.ones(2), ember.ones(2), reduction="avg"),
                 lambda: F.kl_div(ember.ones(2), ember.ones(2), reduction="avg"),
                 lambda: ember.nn.KLDivLoss(reduction="avg"),
                 lambda: ember.nn.MSELoss(reduction="batchmean")):
        with pytest.raises(ValueError, match="reduction must be one of 'mean'"):
            call()
    ember.nn.KLDivLoss(reduction="batchmean")


def test_functional_dir_lists_only_resolvable_names():
    missing = [n for n in dir(F) if not n.startswith("__") and not hasattr(F, n)]
    assert missing == []
    assert "conv2d" in dir(F) and "relu" in dir(F) and "nope" not in dir(F)
    assert F.conv2d is ember.ops.conv.conv2d and F.max_pool2d is ember.ops.pool.max_pool2d
