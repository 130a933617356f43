"""ember.metrics against scikit-learn and NumPy formulas: values, statefulness, weights, configs, errors."""
import json

import numpy as np
import pytest
from sklearn import metrics as skm

import ember
from ember import metrics as M

RNG = np.random.default_rng(0)
N, C = 97, 5


def _val(t):
    assert isinstance(t, ember.Tensor)
    return np.asarray(t.numpy(), dtype=np.float64)


def _batches(m, *arrays, sizes=(10, 31, 1, 55), sample_weight=None):
    """Feed ``arrays`` to ``m`` in uneven batches and return the result."""
    start = 0
    for s in sizes:
        sl = slice(start, start + s)
        kw = {} if sample_weight is None else {"sample_weight": sample_weight[sl]}
        m.update_state(*(a[sl] for a in arrays), **kw)
        start += s
    assert start == len(arrays[0])
    return _val(m.result())


# ---------------------------------------------------------------- data
labels = RNG.integers(0, C, size=N)
onehot = np.eye(C, dtype=np.float32)[labels]
logits = RNG.normal(size=(N, C)).astype(np.float32)
probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
bin_true = RNG.integers(0, 2, size=(N, 1)).astype(np.float32)
bin_prob = np.clip(bin_true * 0.3 + RNG.uniform(size=(N, 1)) * 0.7, 0, 1).astype(np.float32)
weights = RNG.uniform(0.1, 2.0, size=N).astype(np.float32)


@pytest.mark.parametrize("as_type", [np.asarray, ember.tensor, lambda a: a.tolist()])
def test_sparse_categorical_accuracy_matches_sklearn_any_input_type(as_type):
    m = M.SparseCategoricalAccuracy()
    got = m(as_type(labels), as_type(probs))
    assert got.shape == ()
    assert np.isclose(_val(got), skm.accuracy_score(labels, probs.argmax(-1)))


@pytest.mark.parametrize("cls,args,expected", [
    (M.SparseCategoricalAccuracy, (labels, probs), skm.accuracy_score(labels, probs.argmax(-1))),
    (M.CategoricalAccuracy, (onehot, probs), skm.accuracy_score(labels, probs.argmax(-1))),
    (M.BinaryAccuracy, (bin_true, bin_prob), skm.accuracy_score(bin_true, bin_prob > 0.5)),
    (M.Accuracy, (labels, probs.argmax(-1)), skm.accuracy_score(labels, probs.argmax(-1))),
])
def test_accuracies_stateful_equal_one_batch(cls, args, expected):
    m = cls()
    assert np.isclose(_batches(m, *args), expected, atol=1e-6)
    m.reset_state()
    assert np.isclose(_val(m(*args)), expected, atol=1e-6)
    m.reset_state()
    assert _val(m.result()) == 0.0


def test_accuracies_sample_weight_matches_sklearn():
    pred = probs.argmax(-1)
    exp = skm.accuracy_score(labels, pred, sample_weight=weights)
    assert np.isclose(_batches(M.SparseCategoricalAccuracy(), labels, probs, sample_weight=weights), exp, atol=1e-6)
    assert np.isclose(_batches(M.CategoricalAccuracy(), onehot, probs, sample_weight=weights[:, None]), exp,
                      atol=1e-6)
    exp_b = skm.accuracy_score(bin_true, bin_prob > 0.5, sample_weight=weights)
    assert np.isclose(_val(M.BinaryAccuracy()(bin_true[:, 0], bin_prob, sample_weight=weights)), exp_b, atol=1e-6)


def test_binary_accuracy_threshold_and_multilabel():
    y = RNG.integers(0, 2, size=(20, 3)).astype(np.float32)
    p = RNG.uniform(size=(20, 3)).astype(np.float32)
    m = M.BinaryAccuracy(threshold=0.7)
    assert np.isclose(_val(m(y, p)), np.mean((p > 0.7) == y))
    per = M.binary_accuracy(y, p)
    assert per.shape == (20, 3) and np.allclose(_val(per), (p > 0.5) == y)


def test_sparse_labels_with_trailing_axis_and_float_labels():
    exp = np.mean(labels == probs.argmax(-1))
    assert np.isclose(_val(M.SparseCategoricalAccuracy()(labels[:, None].astype(np.float32), probs)), exp)
    assert M.sparse_categorical_accuracy(labels, probs).shape == (N,)


def _topk_ref(lab, p, k):
    # numpy: the label's score is >= the k-th largest score (ties at the boundary count, as TF's in_top_k)
    kth = -np.sort(-p, axis=-1)[:, k - 1]
    return (p[np.arange(len(lab)), lab] >= kth).astype(np.float64)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_against_numpy_and_sklearn(k):
    exp = _topk_ref(labels, probs, k)
    assert np.allclose(_val(M.sparse_top_k_categorical_accuracy(labels, probs, k=k)), exp)
    assert np.allclose(_val(M.top_k_categorical_accuracy(onehot, probs, k=k)), exp)
    assert np.isclose(_batches(M.SparseTopKCategoricalAccuracy(k=k), labels, probs), exp.mean(), atol=1e-6)
    assert np.isclose(_val(M.TopKCategoricalAccuracy(k=k)(onehot, probs)),
                      skm.top_k_accuracy_score(labels, probs, k=k, labels=range(C)), atol=1e-6)


def test_top_k_ties_count_as_hits():
    assert _val(M.sparse_top_k_categorical_accuracy([2], [[0.5, 0.5, 0.5]], k=1)).tolist() == [1.0]


def test_functional_forms_return_per_sample_tensors():
    got = M.categorical_accuracy(ember.tensor(onehot), ember.tensor(probs))
    assert isinstance(got, ember.Tensor) and got.shape == (N,)
    assert np.allclose(_val(got), labels == probs.argmax(-1))


def test_metrics_accept_tensors_that_require_grad():
    p = ember.tensor(probs, requires_grad=True)
    assert np.isclose(_val(M.SparseCategoricalAccuracy()(labels, p)), np.mean(labels == probs.argmax(-1)))


# ---------------------------------------------------------------- mean / sum / wrapper
def test_mean_and_sum_weighted_and_stateful():
    v = RNG.normal(size=N).astype(np.float32)
    assert np.isclose(_batches(M.Mean(), v, sample_weight=weights), np.average(v, weights=weights), atol=1e-5)
    assert np.isclose(_batches(M.Sum(), v, sample_weight=weights), np.sum(v * weights), atol=1e-4)
    v2 = RNG.normal(size=(N, 3)).astype(np.float32)
    assert np.isclose(_val(M.Mean()(v2)), v2.mean(), atol=1e-6)
    assert np.isclose(_val(M.Mean()(v2, sample_weight=weights)), np.average(v2.mean(1), weights=weights), atol=1e-5)
    assert _val(M.Mean().result()) == 0.0


def test_mean_metric_wrapper_of_a_custom_function():
    def abs_diff(y_true, y_pred):
        return ember.abs(ember.tensor(y_true) - ember.tensor(y_pred))

    m = M.MeanMetricWrapper(abs_diff)
    assert m.name == "abs_diff"
    y, p = RNG.normal(size=N).astype(np.float32), RNG.normal(size=N).astype(np.float32)
    assert np.isclose(_batches(m, y, p), np.mean(np.abs(y - p)), atol=1e-5)
    with pytest.raises(ValueError, match="cannot be serialized"):
        m.get_config()


# ---------------------------------------------------------------- precision / recall / F
yb = RNG.integers(0, 2, size=N)
pb = np.clip(yb * 0.25 + RNG.uniform(size=N) * 0.75, 0, 1).astype(np.float32)


@pytest.mark.parametrize("cls,ref", [(M.Precision, skm.precision_score), (M.Recall, skm.recall_score)])
def test_precision_recall_match_sklearn(cls, ref):
    assert np.isclose(_batches(cls(), yb, pb), ref(yb, pb > 0.5), atol=1e-6)
    assert np.isclose(_batches(cls(), yb, pb, sample_weight=weights), ref(yb, pb > 0.5, sample_weight=weights),
                      atol=1e-5)
    many = _val(cls(thresholds=[0.3, 0.5, 0.8])(yb, pb))
    assert many.shape == (3,)
    assert np.allclose(many, [ref(yb, pb > t) for t in (0.3, 0.5, 0.8)], atol=1e-6)


def test_precision_recall_class_id_and_top_k():
    y_multi = onehot
    pred_cls = probs.argmax(-1)
    for c in range(C):
        p = M.Precision(class_id=c, top_k=1)(y_multi, probs)
        r = M.Recall(class_id=c, top_k=1)(y_multi, probs)
        assert np.isclose(_val(p), skm.precision_score(labels == c, pred_cls == c, zero_division=0), atol=1e-6)
        assert np.isclose(_val(r), skm.recall_score(labels == c, pred_cls == c, zero_division=0), atol=1e-6)
    # top_k=2 without class_id: the two highest scores of each row are the positives
    top2 = np.argsort(-probs, axis=-1)[:, :2]
    hits = (top2 == labels[:, None]).any(-1).sum()
    assert np.isclose(_val(M.Precision(top_k=2)(y_multi, probs)), hits / (2 * N), atol=1e-6)
    assert np.isclose(_val(M.Recall(top_k=2)(y_multi, probs)), hits / N, atol=1e-6)


def test_precision_of_nothing_predicted_is_zero():
    assert _val(M.Precision()([1, 1], [0.1, 0.2])) == 0.0


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_f1_and_fbeta_match_sklearn(average):
    y = RNG.integers(0, 2, size=(60, 4))
    p = RNG.uniform(size=(60, 4)).astype(np.float32)
    f1 = _batches(M.F1Score(average=average, threshold=0.5), y, p, sizes=(7, 50, 3))
    assert np.allclose(f1, skm.f1_score(y, p > 0.5, average=average), atol=1e-5)
    fb = M.FBetaScore(average=average, beta=2.0, threshold=0.4)(y, p)
    assert np.allclose(_val(fb), skm.fbeta_score(y, p > 0.4, beta=2.0, average=average), atol=1e-5)
    fw = M.F1Score(average=average, threshold=0.5)(y, p, sample_weight=weights[:60])
    assert np.allclose(_val(fw), skm.f1_score(y, p > 0.5, average=average, sample_weight=weights[:60]), atol=1e-5)


def test_f1_without_threshold_uses_row_argmax():
    f = M.F1Score(average="macro")(onehot, probs)
    assert np.isclose(_val(f), skm.f1_score(labels, probs.argmax(-1), average="macro"), atol=1e-5)


# ---------------------------------------------------------------- AUC
ya = RNG.integers(0, 2, size=400)
pa = np.clip(ya * 0.3 + RNG.uniform(size=400) * 0.7, 0, 1).astype(np.float32)


def test_auc_roc_and_pr_close_to_sklearn():
    assert abs(_batches(M.AUC(), ya, pa, sizes=(100, 300)) - skm.roc_auc_score(ya, pa)) < 1e-2
    assert abs(_val(M.AUC(curve="PR")(ya, pa)) - skm.average_precision_score(ya, pa)) < 2e-2
    w = RNG.uniform(size=400)
    assert abs(_val(M.AUC()(ya, pa, sample_weight=w)) - skm.roc_auc_score(ya, pa, sample_weight=w)) < 1e-2
    logit = np.log(pa + 1e-6) - np.log1p(-pa + 1e-6)
    assert abs(_val(M.AUC(from_logits=True)(ya, logit)) - skm.roc_auc_score(ya, pa)) < 1e-2


def test_auc_exact_small_case_and_summation_methods():
    # thresholds [-1e-7, 0.5, 1+1e-7]: ROC points (1,1), (1/2, 1/2)... computed by hand with numpy
    y, p = np.array([0, 0, 1, 1]), np.array([0.0, 0.6, 0.3, 0.9])
    th = np.array([-1e-7, 0.5, 1 + 1e-7])
    tp = np.array([((p > t) & (y == 1)).sum() for t in th], float)
    fp = np.array([((p > t) & (y == 0)).sum() for t in th], float)
    tpr, fpr = tp / 2, fp / 2
    trap = np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2)
    lo = np.sum((fpr[:-1] - fpr[1:]) * np.minimum(tpr[:-1], tpr[1:]))
    hi = np.sum((fpr[:-1] - fpr[1:]) * np.maximum(tpr[:-1], tpr[1:]))
    assert np.isclose(_val(M.AUC(num_thresholds=3)(y, p)), trap)
    assert np.isclose(_val(M.AUC(num_thresholds=3, summation_method="minoring")(y, p)), lo)
    assert np.isclose(_val(M.AUC(num_thresholds=3, summation_method="majoring")(y, p)), hi)
    assert np.isclose(_val(M.AUC(thresholds=[0.5])(y, p)), trap)


def test_auc_multi_label_averages_per_label():
    y = RNG.integers(0, 2, size=(300, 3))
    p = np.clip(y * 0.3 + RNG.uniform(size=(300, 3)) * 0.7, 0, 1)
    per = [skm.roc_auc_score(y[:, j], p[:, j]) for j in range(3)]
    assert abs(_batches(M.AUC(multi_label=True), y, p, sizes=(100, 200)) - np.mean(per)) < 1e-2
    lw = [1.0, 0.0, 3.0]
    got = _val(M.AUC(multi_label=True, num_labels=3, label_weights=lw)(y, p))
    assert abs(got - np.average(per, weights=lw)) < 1e-2
    flat = _val(M.AUC()(y, p))
    assert abs(flat - skm.roc_auc_score(y.ravel(), p.ravel())) < 1e-2


# ---------------------------------------------------------------- regression
yr = RNG.normal(size=(N, 3)).astype(np.float32)
pr = RNG.normal(size=(N, 3)).astype(np.float32)


@pytest.mark.parametrize("cls,ref", [
    (M.MeanAbsoluteError, skm.mean_absolute_error),
    (M.MeanSquaredError, skm.mean_squared_error),
    (M.RootMeanSquaredError, lambda a, b, **kw: np.sqrt(skm.mean_squared_error(a, b, **kw))),
    (M.MeanAbsolutePercentageError, lambda a, b, **kw: 100 * skm.mean_absolute_percentage_error(a, b, **kw)),
])
def test_regression_metrics_match_sklearn(cls, ref):
    assert np.isclose(_batches(cls(), yr, pr), ref(yr, pr), rtol=1e-5)
    assert np.isclose(_batches(cls(), yr, pr, sample_weight=weights), ref(yr, pr, sample_weight=weights), rtol=1e-5)
    # 1-D targets: one output per sample, so uneven batches still equal one big batch
    assert np.isclose(_batches(cls(), yr[:, 0], pr[:, 0]), ref(yr[:, 0], pr[:, 0]), rtol=1e-5)
    assert np.isclose(_val(cls()(yr[:, :1], pr[:, 0])), ref(yr[:, 0], pr[:, 0]), rtol=1e-5)


def test_regression_functional_forms_average_last_axis():
    assert np.allclose(_val(M.mean_squared_error(yr, pr)), ((yr - pr) ** 2).mean(-1), atol=1e-6)
    assert np.allclose(_val(M.mean_absolute_error(yr, pr)), np.abs(yr - pr).mean(-1), atol=1e-6)
    mape = 100 * np.mean(np.abs((yr - pr) / np.maximum(np.abs(yr), 1e-7)), -1)
    assert np.allclose(_val(M.mean_absolute_percentage_error(yr, pr)), mape, rtol=1e-5)


# ---------------------------------------------------------------- lookup, config, accuracy resolution
@pytest.mark.parametrize("name,cls", [
    ("accuracy", M.Accuracy), ("acc", M.Accuracy), ("mae", M.MeanAbsoluteError), ("mse", M.MeanSquaredError),
    ("MAE", M.MeanAbsoluteError), ("mape", M.MeanAbsolutePercentageError), ("auc", M.AUC), ("AUC", M.AUC),
    ("precision", M.Precision), ("recall", M.Recall), ("Recall", M.Recall), ("f1_score", M.F1Score),
    ("binary_accuracy", M.BinaryAccuracy), ("sparse_categorical_accuracy", M.SparseCategoricalAccuracy),
    ("top_k_categorical_accuracy", M.TopKCategoricalAccuracy), ("root_mean_squared_error", M.RootMeanSquaredError),
])
def test_get_resolves_names(name, cls):
    m = M.get(name)
    assert type(m) is cls


def test_get_other_identifiers():
    assert M.get(None) is None
    p = M.Precision()
    assert M.get(p) is p
    assert type(M.get(M.Recall)) is M.Recall
    assert M.get(M.binary_accuracy) is M.binary_accuracy
    with pytest.raises(ValueError, match="Unknown metric 'nope'.*Known metrics:.*accuracy"):
        M.get("nope")
    with pytest.raises(ValueError, match="Could not interpret"):
        M.get(3)


@pytest.mark.parametrize("metric", [
    M.Mean(name="m"), M.Sum(), M.Accuracy(), M.BinaryAccuracy(threshold=0.3), M.CategoricalAccuracy(),
    M.SparseCategoricalAccuracy(), M.TopKCategoricalAccuracy(k=3), M.SparseTopKCategoricalAccuracy(k=2),
    M.Precision(thresholds=[0.2, 0.4], class_id=1), M.Recall(top_k=2),
    M.AUC(num_thresholds=50, curve="PR", summation_method="majoring", from_logits=True),
    M.AUC(thresholds=[0.1, 0.7], multi_label=True, num_labels=2, label_weights=[1.0, 2.0]),
    M.F1Score(average="macro", threshold=0.4), M.FBetaScore(beta=0.5), M.MeanAbsoluteError(),
    M.MeanSquaredError(dtype="float64"), M.RootMeanSquaredError(), M.MeanAbsolutePercentageError(),
    M.MeanMetricWrapper(M.sparse_categorical_accuracy, name="sca"),
])
def test_config_round_trip_is_json(metric):
    d = json.loads(json.dumps(M.serialize(metric)))
    back = M.get(d)
    assert type(back) is type(metric)
    assert back.get_config() == metric.get_config()
    assert back.name == metric.name and back.dtype == metric.dtype


def test_wrapper_round_trip_computes_the_same():
    m = M.MeanMetricWrapper(M.sparse_top_k_categorical_accuracy, k=2)
    back = M.MeanMetricWrapper.from_config(m.get_config())
    assert np.isclose(_val(back(labels, probs)), _val(m(labels, probs)))


def test_variables_are_backend_arrays_and_dtype():
    m = M.Mean(dtype="float64")
    m.update_state([1.0, 2.0])
    assert all(isinstance(v, np.ndarray) for v in m.variables) and len(m.variables) == 2
    assert m.result().dtype == ember.float64
    assert M.Precision(thresholds=[0.1, 0.2]).variables[0].shape == (2,)


@pytest.mark.parametrize("loss,t_shape,p_shape,cls", [
    ("binary_crossentropy", (8, 1), (8, 1), M.BinaryAccuracy),
    ("bce", (8, 4), (8, 4), M.BinaryAccuracy),           # multi-label binary: the loss decides
    ("sparse_categorical_crossentropy", (8,), (8, 10), M.SparseCategoricalAccuracy),
    ("categorical_crossentropy", (8, 10), (8, 10), M.CategoricalAccuracy),
    ({"class_name": "SparseCategoricalCrossentropy", "config": {}}, (8, 1), (8, 10), M.SparseCategoricalAccuracy),
    ("mse", (8, 1), (8, 1), M.BinaryAccuracy),
    (None, (8, 1), (8, 10), M.SparseCategoricalAccuracy),
    (None, (8,), (8, 10), M.SparseCategoricalAccuracy),
    (None, (8, 10), (8, 10), M.CategoricalAccuracy),
    (ember.nn.CrossEntropyLoss(), (None,), (None, 3), M.SparseCategoricalAccuracy),
    (ember.nn.BCEWithLogitsLoss(), (None, 3), (None, 3), M.BinaryAccuracy),
])
def test_resolve_accuracy(loss, t_shape, p_shape, cls):
    m = M.resolve_accuracy(loss, t_shape, p_shape)
    assert type(m) is cls and m.name == "accuracy"


def test_resolve_accuracy_by_loss_function_name():
    def sparse_categorical_crossentropy(y_true, y_pred):
        return y_pred

    assert type(M.resolve_accuracy(sparse_categorical_crossentropy, None, (4, 3))) is M.SparseCategoricalAccuracy


# ---------------------------------------------------------------- errors
def test_shape_mismatch_errors_name_metric_and_shapes():
    with pytest.raises(ValueError, match=r"BinaryAccuracy: y_true of shape \(4, 3\) and y_pred of shape \(4, 2\)"):
        M.BinaryAccuracy()(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"CategoricalAccuracy: y_true of shape \(4, 3\) and y_pred of shape \(4, 2\)"):
        M.CategoricalAccuracy()(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"SparseCategoricalAccuracy: y_true of shape \(5,\) does not match y_pred "
                                         r"of shape \(4, 3\)"):
        M.SparseCategoricalAccuracy()(np.zeros(5), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"MeanSquaredError: y_true of shape \(4, 2\) and y_pred of shape \(4, 3\)"):
        M.MeanSquaredError()(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"Precision: y_true of shape \(3,\) and y_pred of shape \(4,\)"):
        M.Precision()(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"AUC: y_true of shape"):
        M.AUC()(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"F1Score expects 2D inputs.*y_true.shape=\(4,\), y_pred.shape=\(4,\)"):
        M.F1Score()(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"Mean: sample_weight of shape \(3,\) cannot be broadcast to the values "
                                         r"of shape \(4,\)"):
        M.Mean()(np.zeros(4), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"Precision: sample_weight of shape \(3,\) cannot be broadcast"):
        M.Precision()(np.zeros(4), np.zeros(4), sample_weight=np.ones(3))


def test_argument_errors():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        M.SparseTopKCategoricalAccuracy(k=1)([3], [[0.1, 0.2, 0.7]])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        M.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match=r"threshold values must be in \[0, 1\]"):
        M.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="class_id=7 is out of range"):
        M.Recall(class_id=7)(onehot, probs)
    with pytest.raises(ValueError, match='invalid curve value: "XY"'):
        M.AUC(curve="XY")
    with pytest.raises(ValueError, match="invalid summation method"):
        M.AUC(summation_method="avg")
    with pytest.raises(ValueError, match="num_thresholds"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="label_weights"):
        M.AUC(multi_label=True, label_weights=[-1.0])
    with pytest.raises(ValueError, match="average"):
        M.F1Score(average="samples")
    with pytest.raises(ValueError, match="beta"):
        M.FBetaScore(beta=0)
    with pytest.raises(ValueError, match="threshold"):
        M.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="could not convert y_pred"):
        M.Accuracy()([1], object())
