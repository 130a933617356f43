"""ember.losses against independent NumPy formulas of Keras 3's losses, and gradients against torch."""
import json

import numpy as np
import pytest
import torch

import ember
from ember import losses as L

EPS = 1e-7
rs = np.random.RandomState(0)
Y_REG = rs.rand(4, 3).astype(np.float32) + 0.1
P_REG = rs.rand(4, 3).astype(np.float32) + 0.1
Y_BIN = (rs.rand(4, 3) > 0.5).astype(np.float32)
P_PROB = rs.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
LOGITS = rs.randn(4, 3).astype(np.float32) * 2
ONE_HOT = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
SOFTMAX = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)


def np_bce(t, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def np_huber(t, p, delta=1.0):
    d = np.abs(p - t)
    return np.where(d <= delta, 0.5 * d ** 2, delta * d - 0.5 * delta ** 2).mean(-1)


def np_cos(t, p):
    tn = t / np.linalg.norm(t, axis=-1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
    return -(tn * pn).sum(-1)


def np_hinge_labels(t):
    return 2 * t - 1 if np.isin(t, (0, 1)).all() else t


CASES = [   # (function, class, y_true, y_pred, numpy per-sample reference)
    (L.mean_squared_error, L.MeanSquaredError, Y_REG, P_REG, lambda t, p: ((t - p) ** 2).mean(-1)),
    (L.mean_absolute_error, L.MeanAbsoluteError, Y_REG, P_REG, lambda t, p: np.abs(t - p).mean(-1)),
    (L.mean_absolute_percentage_error, L.MeanAbsolutePercentageError, Y_REG, P_REG,
     lambda t, p: 100 * (np.abs(t - p) / np.abs(t)).mean(-1)),
    (L.mean_squared_logarithmic_error, L.MeanSquaredLogarithmicError, Y_REG, P_REG,
     lambda t, p: ((np.log1p(p) - np.log1p(t)) ** 2).mean(-1)),
    (L.cosine_similarity, L.CosineSimilarity, Y_REG, P_REG, np_cos),
    (L.huber, L.Huber, Y_REG * 3, P_REG, np_huber),
    (L.log_cosh, L.LogCosh, Y_REG, P_REG * 5, lambda t, p: np.log(np.cosh(p - t)).mean(-1)),
    (L.kl_divergence, L.KLDivergence, SOFTMAX[::-1].copy(), SOFTMAX, lambda t, p: (t * np.log(t / p)).sum(-1)),
    (L.poisson, L.Poisson, Y_REG, P_REG, lambda t, p: (p - t * np.log(p + EPS)).mean(-1)),
    (L.hinge, L.Hinge, Y_BIN, LOGITS, lambda t, p: np.maximum(1 - np_hinge_labels(t) * p, 0).mean(-1)),
    (L.squared_hinge, L.SquaredHinge, Y_BIN, LOGITS,
     lambda t, p: (np.maximum(1 - np_hinge_labels(t) * p, 0) ** 2).mean(-1)),
    (L.categorical_hinge, L.CategoricalHinge, ONE_HOT, LOGITS,
     lambda t, p: np.maximum(((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0)),
    (L.binary_crossentropy, L.BinaryCrossentropy, Y_BIN, P_PROB, lambda t, p: np_bce(t, p).mean(-1)),
    (L.categorical_crossentropy, L.CategoricalCrossentropy, ONE_HOT, SOFTMAX,
     lambda t, p: -(t * np.log(p)).sum(-1)),
]


@pytest.mark.parametrize("fn,cls,t,p,ref", CASES, ids=[c[0].__name__ for c in CASES])
def test_function_and_class_match_numpy(fn, cls, t, p, ref):
    expected = ref(t.astype(np.float64), p.astype(np.float64))
    out = fn(t, p)
    assert tuple(out.shape) == (4,)
    np.testing.assert_allclose(out.numpy(), expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(cls()(t, p).item(), expected.mean(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(cls(reduction="sum")(t, p).item(), expected.sum(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(cls(reduction=None)(t, p).numpy(), expected, rtol=2e-5, atol=1e-6)
    w = np.array([0.5, 1.0, 0.0, 2.0], np.float32)
    np.testing.assert_allclose(cls()(t, p, sample_weight=w).item(), (expected * w).mean(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(cls(reduction="mean_with_sample_weight")(t, p, sample_weight=w).item(),
                               (expected * w).sum() / w.sum(), rtol=2e-5, atol=1e-6)
    config = json.loads(json.dumps(L.serialize(cls())))
    again = L.deserialize(config)
    assert type(again) is cls and again.get_config() == cls().get_config()


def test_from_logits_and_label_smoothing():
    ls = 0.2
    t = Y_BIN * (1 - ls) + 0.5 * ls
    s = 1 / (1 + np.exp(-LOGITS.astype(np.float64)))
    expected = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean(-1)
    out = L.binary_crossentropy(Y_BIN, LOGITS, from_logits=True, label_smoothing=ls)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    tc = ONE_HOT * (1 - ls) + ls / 3
    logp = LOGITS - np.log(np.exp(LOGITS.astype(np.float64)).sum(-1, keepdims=True))
    np.testing.assert_allclose(L.CategoricalCrossentropy(from_logits=True, label_smoothing=ls)(ONE_HOT, LOGITS).item(),
                               -(tc * logp).sum(-1).mean(), rtol=1e-5)


def test_probabilities_are_clipped():
    t = np.array([[1.0, 0.0]], np.float32)
    out = L.binary_crossentropy(t, np.array([[0.0, 1.0]], np.float32))
    p32 = np.float32(EPS)
    hi32 = np.float64(np.float32(1 - EPS))   # 1 - 1e-7 rounded to float32, as in Keras
    np.testing.assert_allclose(out.item(), (-np.log(p32) - np.log(1 - hi32)) / 2, rtol=1e-5)
    cce = L.categorical_crossentropy(np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32))
    np.testing.assert_allclose(cce.item(), -np.log(p32), rtol=1e-4)
    # unnormalised probabilities are renormalised first, as Keras does
    np.testing.assert_allclose(L.categorical_crossentropy([[0.0, 1.0]], [[1.0, 3.0]]).item(), -np.log(0.75), rtol=1e-6)


def test_binary_focal_crossentropy():
    g, a = 2.0, 0.25
    p = np.clip(P_PROB.astype(np.float64), EPS, 1 - EPS)
    t = Y_BIN
    pt = t * p + (1 - t) * (1 - p)
    focal = (1 - pt) ** g * np_bce(t, p)
    np.testing.assert_allclose(L.binary_focal_crossentropy(t, P_PROB).numpy(), focal.mean(-1), rtol=1e-5)
    balanced = (t * a + (1 - t) * (1 - a)) * focal
    loss = L.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=a, gamma=g)
    np.testing.assert_allclose(loss(t, P_PROB).item(), balanced.mean(), rtol=1e-5)
    assert L.deserialize(L.serialize(loss)).get_config()["apply_class_balancing"] is True


def test_sparse_categorical_crossentropy():
    labels = np.array([0, 2, 1, 2])
    logp = LOGITS - np.log(np.exp(LOGITS.astype(np.float64)).sum(-1, keepdims=True))
    expected = -logp[np.arange(4), labels]
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(labels, LOGITS, from_logits=True).numpy(),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(labels[:, None], SOFTMAX).numpy(), expected,
                               rtol=1e-4)
    # ignore_class: zero loss there, and the mean runs over the other samples only
    per = L.sparse_categorical_crossentropy(labels, LOGITS, from_logits=True, ignore_class=2)
    np.testing.assert_allclose(per.numpy(), np.where(labels == 2, 0, expected), rtol=1e-5)
    loss = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2)
    np.testing.assert_allclose(loss(labels, LOGITS).item(), expected[labels != 2].mean(), rtol=1e-5)
    # a class axis other than the last
    np.testing.assert_allclose(
        L.sparse_categorical_crossentropy(labels, LOGITS.T.copy(), from_logits=True, axis=0).numpy(), expected,
        rtol=1e-5)
    with pytest.raises(ValueError, match=r"class index 3 is out of range .*3 classes"):
        L.sparse_categorical_crossentropy([0, 3, 1, 2], LOGITS)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: y_true of shape \(3,\) .* \(4, 3\)"):
        L.sparse_categorical_crossentropy([0, 1, 1], LOGITS)


def test_rank_fix_and_sample_weight_broadcast():
    t = np.array([1.0, 0.0, 1.0], np.float32)
    p = np.array([[0.9], [0.2], [0.6]], np.float32)
    expected = np_bce(t, p[:, 0])
    np.testing.assert_allclose(L.BinaryCrossentropy(reduction="none")(t, p).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(L.BinaryCrossentropy()(t, p, sample_weight=[[1.0], [2.0], [0.0]]).item(),
                               (expected * [1, 2, 0]).mean(), rtol=1e-5)
    # per-timestep weights for (N, T, C) predictions
    yt, yp = rs.rand(2, 5, 3).astype(np.float32), rs.rand(2, 5, 3).astype(np.float32)
    w = rs.rand(2, 5).astype(np.float32)
    per = ((yt - yp) ** 2).mean(-1)
    np.testing.assert_allclose(L.MeanSquaredError()(yt, yp, sample_weight=w).item(), (per * w).mean(), rtol=1e-5)


def test_errors_name_the_loss_and_the_shapes():
    with pytest.raises(ValueError, match=r"mean_squared_error: .*\(4, 3\).*\(4, 2\)"):
        L.MeanSquaredError()(Y_REG, P_REG[:, :2])
    with pytest.raises(ValueError, match=r"categorical_crossentropy: .*\(4, 3\).*\(4, 2\)"):
        L.categorical_crossentropy(ONE_HOT, SOFTMAX[:, :2])
    with pytest.raises(ValueError, match=r"mean_squared_error: sample_weight of shape \(3,\) .* \(4,\)"):
        L.MeanSquaredError()(Y_REG, P_REG, sample_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`"):
        L.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match="`axis` must be of type `int`"):
        L.categorical_crossentropy(ONE_HOT, SOFTMAX, axis=True)
    with pytest.warns(SyntaxWarning, match="Consider using 'binary_crossentropy'"):
        L.categorical_crossentropy([[1.0]], [[0.7]])


def test_get_serialize_deserialize():
    assert L.get("mse") is L.mean_squared_error
    assert L.get("MAE") is L.mean_absolute_error
    assert L.get("mape") is L.mean_absolute_percentage_error and L.get("msle") is L.mean_squared_logarithmic_error
    assert L.get("kld") is L.kl_divergence and L.get("huber") is L.huber
    assert L.get("sparse_categorical_crossentropy") is L.sparse_categorical_crossentropy
    assert isinstance(L.get("CategoricalCrossentropy"), L.CategoricalCrossentropy)
    assert isinstance(L.get(L.Huber), L.Huber)
    loss = L.Huber(delta=2.5, reduction="sum")
    assert L.get(loss) is loss and L.get(None) is None
    again = L.get({"class_name": "Huber", "config": {"delta": 2.5, "reduction": "sum"}})
    assert again.get_config() == loss.get_config()
    assert L.serialize(L.mean_squared_error)["config"] == "mean_squared_error"
    assert L.deserialize(L.serialize(L.binary_crossentropy)) is L.binary_crossentropy
    wrapped = L.LossFunctionWrapper(L.huber, name="h", delta=0.5)
    config = json.loads(json.dumps(L.serialize(wrapped)))
    assert config["config"]["delta"] == 0.5
    back = L.deserialize(config)
    assert back.fn is L.huber and back(Y_REG * 3, P_REG).item() == pytest.approx(np_huber(Y_REG * 3, P_REG, 0.5).mean(),
                                                                                   rel=1e-5)
    with pytest.raises(ValueError, match="Known losses: .*mse"):
        L.get("not_a_loss")
    with pytest.raises(ValueError, match="cannot serialize"):
        L.serialize(lambda t, p: t - p)


def _grads(ember_loss, torch_loss, *arrays, int_target=None):
    xs = [ember.tensor(a, dtype=ember.float64, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    target_e = [] if int_target is None else [int_target]
    target_t = [] if int_target is None else [torch.tensor(int_target)]
    le, lt = ember_loss(*target_e, *xs), torch_loss(*ts, *target_t)
    le.backward()
    lt.backward()
    np.testing.assert_allclose(le.item(), lt.item(), rtol=1e-10)
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_gradients_match_torch():
    F = torch.nn.functional
    y, p, logits = Y_BIN.astype(np.float64), P_PROB.astype(np.float64), LOGITS.astype(np.float64)
    _grads(lambda t, x: L.BinaryCrossentropy(from_logits=True)(t, x),
           lambda t, x: F.binary_cross_entropy_with_logits(x, t), y, logits)
    _grads(lambda t, x: L.BinaryCrossentropy()(t, x), lambda t, x: F.binary_cross_entropy(x, t), y, p)
    _grads(lambda x, t: L.MeanSquaredError()(t, x), lambda x, t: F.mse_loss(x, t), p, y)
    _grads(lambda x, t: L.Huber(delta=0.3)(t, x), lambda x, t: F.huber_loss(x, t, delta=0.3), p, y)
    labels = np.array([0, 2, 1, 2])
    _grads(lambda t, x: L.SparseCategoricalCrossentropy(from_logits=True)(t, x), F.cross_entropy, logits,
           int_target=labels)
    _grads(lambda t, x: L.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")(t, x),
           lambda x, t: F.cross_entropy(x, t, reduction="sum"), logits, int_target=labels)
    one_hot = ONE_HOT.astype(np.float64)
    _grads(lambda x: L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(one_hot, x),
           lambda x: F.cross_entropy(x, torch.tensor(one_hot), label_smoothing=0.1), logits)
    softmax = SOFTMAX.astype(np.float64)
    _grads(lambda x: L.CategoricalCrossentropy()(one_hot, x),
           lambda x: -(torch.tensor(one_hot) * torch.log(x / x.sum(-1, keepdim=True))).sum(-1).mean(), softmax)


def test_loss_subclass_with_call():
    class Doubled(L.Loss):
        def call(self, y_true, y_pred):
            return 2.0 * L.mean_absolute_error(y_true, y_pred)

    loss = Doubled(reduction="sum")
    assert loss.name == "doubled"
    assert loss([[1.0, 2.0]], [[2.0, 2.0]]).item() == pytest.approx(1.0)
    assert Doubled.from_config(loss.get_config()).reduction == "sum"


def test_sparse_ce_fast_path_equals_the_general_path():
    """Integer labels with logits take one fused op; value and gradients equal the general formula."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    loss = ember.losses.SparseCategoricalCrossentropy(from_logits=True)
    a = ember.tensor(logits, requires_grad=True)
    fast = loss(ember.tensor(labels), a)
    fast.backward()
    b = ember.tensor(logits, requires_grad=True)
    general = loss.__class__.__mro__[1].__call__(loss, ember.tensor(labels), b)   # the base Loss path
    general.backward()
    assert fast.grad_fn.name() != general.grad_fn.name()
    np.testing.assert_allclose(fast.item(), general.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)
    with pytest.raises(ember.OpError, match="target value 9 is out of bounds for 4 classes"):
        loss(ember.tensor([0, 9, 1, 1, 1, 1]), ember.tensor(logits))
