"""Embedding: functional and module parity with PyTorch, padding_idx, max_norm, gradchecks, errors."""
import numpy as np
import pytest
import torch

import ember
from helpers.modcheck import check_module
from helpers.opcheck import Arr, check_op

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

F = torch.nn.functional
IDX = np.array([[1, 4, 0, 4], [2, 2, 2, 3]])


def _emb(**kw):
    return (lambda w, i: ember.nn.functional.embedding(i, w, **kw)), (lambda w, i: F.embedding(i, w, **kw))


CASES = [
    ("basic", _emb(), [(5, 3), IDX]),
    ("1d", _emb(), [(6, 2), np.array([5, 0, 5, 1])]),
    ("scalar_index", _emb(), [(6, 2), np.array(3)]),
    ("3d_index", _emb(), [(7, 4), np.arange(12).reshape(2, 3, 2) % 7]),
    ("padding", _emb(padding_idx=4), [(5, 3), IDX]),
    ("padding_negative", _emb(padding_idx=-1), [(5, 3), IDX]),
    ("freq", _emb(scale_grad_by_freq=True), [(5, 3), IDX]),
    ("freq_padding", _emb(scale_grad_by_freq=True, padding_idx=2), [(5, 3), IDX]),
    ("int32", _emb(), [(5, 3), IDX.astype(np.int32)]),
    ("empty", _emb(), [(5, 3), np.zeros((0, 2), dtype=np.int64)]),
]


@pytest.mark.parametrize("name,fns,specs", CASES, ids=[c[0] for c in CASES])
def test_functional_parity(name, fns, specs):
    # padding_idx and scale_grad_by_freq deliberately change the gradient (PyTorch's rule), so no gradcheck there
    check_op(*fns, specs, gradcheck=name in ("basic", "1d", "scalar_index", "3d_index", "int32"))


def test_double_backward():
    w = ember.tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    idx = ember.tensor(IDX)

    def f(w):
        return ember.nn.functional.embedding(idx, w) ** 2
    assert ember.autograd.gradgradcheck(f, [w])


@pytest.mark.parametrize("kw", [{}, {"padding_idx": 0}, {"padding_idx": -2}, {"scale_grad_by_freq": True}],
                         ids=["plain", "pad0", "pad_neg", "freq"])
def test_module_parity(kw):
    torch.manual_seed(0)
    tm = torch.nn.Embedding(6, 4, **kw)
    em = ember.nn.Embedding(6, 4, **kw)
    check_module(em, tm, [np.array([[0, 1, 5], [4, 4, 0]])], gradcheck=not kw)


def test_init_and_repr():
    ember.manual_seed(0)
    e = ember.nn.Embedding(1000, 8, padding_idx=3)
    w = e.weight.detach().numpy()
    assert np.all(w[3] == 0)
    assert abs(w.std() - 1) < 0.05 and abs(w.mean()) < 0.05
    assert repr(e) == "Embedding(1000, 8, padding_idx=3)"
    assert dict(e.named_parameters()).keys() == {"weight"}
    e(ember.tensor([[3, 1]])).sum().backward()
    assert np.all(e.weight.grad.numpy()[3] == 0) and np.all(e.weight.grad.numpy()[1] == 1)


def test_from_pretrained():
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    e = ember.nn.Embedding.from_pretrained(t)
    assert not e.weight.requires_grad
    np.testing.assert_array_equal(e(ember.tensor([2, 0])).numpy(), [[5, 6], [1, 2]])
    e2 = ember.nn.Embedding.from_pretrained(t, freeze=False, padding_idx=1)
    assert e2.weight.requires_grad and e2.padding_idx == 1
    e2(ember.tensor([1, 2])).sum().backward()
    np.testing.assert_array_equal(e2.weight.grad.numpy(), [[0, 0], [0, 0], [1, 1]])


def test_max_norm_matches_torch():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3)).astype(np.float32) * 3
    idx = np.array([[0, 2, 2], [5, 1, 0]])
    ew, tw = ember.tensor(w.copy()), torch.tensor(w.copy())
    eo = ember.nn.functional.embedding(ember.tensor(idx), ew, max_norm=1.5)
    to = F.embedding(torch.tensor(idx), tw, max_norm=1.5)
    np.testing.assert_allclose(eo.numpy(), to.numpy(), atol=1e-5)
    np.testing.assert_allclose(ew.numpy(), tw.numpy(), atol=1e-5)   # the table was renormalised in place
    em = ember.nn.Embedding(6, 3, max_norm=1.0, norm_type=1.0)
    tm = torch.nn.Embedding(6, 3, max_norm=1.0, norm_type=1.0)
    check_module(em, tm, [Arr(idx)])


def test_in_a_model_trains():
    ember.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Embedding(10, 4), ember.nn.Flatten(), ember.nn.Linear(8, 2))
    opt = ember.optim.SGD(model.parameters(), lr=0.5)
    x = ember.tensor([[1, 2], [3, 4]])
    y = ember.tensor([0, 1])
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first / 5


def test_errors():
    e = ember.nn.Embedding(5, 2)
    with pytest.raises(IndexError, match="embedding: index 5 is out of range for a table of 5 rows"):
        e(ember.tensor([1, 5]))
    with pytest.raises(IndexError, match="index -1"):
        e(ember.tensor([-1]))
    with pytest.raises(ValueError, match="indices must be an integer tensor"):
        e(ember.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        ember.nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="sparse"):
        ember.nn.Embedding(5, 2, sparse=True)
    with pytest.raises(ValueError, match="2-D"):
        ember.nn.functional.embedding(ember.tensor([0]), ember.ones(3))
    with pytest.raises(ValueError, match="_weight has shape"):
        ember.nn.Embedding(5, 2, _weight=ember.ones(4, 2))
