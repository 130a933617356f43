"""Confusion-matrix metrics (Keras 3): ``Precision``, ``Recall``, ``AUC``, ``F1Score`` and ``FBetaScore``.

Counts are accumulated per threshold as backend arrays: a prediction is positive when it is
strictly greater than the threshold, a label is positive when it is non-zero. Counting sorts
the predictions once and reads every threshold with a binary search, so 200 thresholds cost
no more than one.
"""
from __future__ import annotations

from ..backend import array_module, errstate
from ..ops import sigmoid
from ..tensor import Tensor
from .base import Metric, check_same_shape, shape_of, squeeze_or_expand_to_same_rank, to_tensor

__all__ = ["Precision", "Recall", "AUC", "FBetaScore", "F1Score"]

NEG_INF = -1e10
EPSILON = 1e-7


def _thresholds_arg(thresholds, default: float, who: str) -> list:
    if thresholds is None:
        return [default]
    values = [float(t) for t in (thresholds if isinstance(thresholds, (list, tuple)) else [thresholds])]
    bad = [t for t in values if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"{who}: threshold values must be in [0, 1]. Received: {bad}")
    return values


def _filter_top_k(p, k: int):
    """Keep the ``k`` largest scores of each row (first index wins ties); set the others to -1e10."""
    xp = array_module(p)
    order = xp.argsort(-p, axis=-1, kind="stable")[..., :k]
    keep = xp.zeros(p.shape, dtype=bool)
    xp.put_along_axis(keep, order, True, axis=-1)
    return xp.where(keep, p, xp.asarray(NEG_INF, dtype=p.dtype))


def confusion_counts(y_true: Tensor, y_pred: Tensor, thresholds, sample_weight, who: str, dtype,
                     top_k: int | None = None, class_id: int | None = None, label_weights=None,
                     soft_labels: bool = False):
    """Weighted (tp, fp, tn, fn) arrays, one entry per threshold, over every element of the batch."""
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    check_same_shape(y_true, y_pred, who)
    xp = y_pred.xp
    p = y_pred.data.astype(dtype)
    t = y_true.data.astype(dtype)
    if sample_weight is not None:
        sw = to_tensor(sample_weight, who, "sample_weight")
        w = sw.data.astype(dtype)
        if w.ndim > p.ndim and w.shape[p.ndim:] == (1,) * (w.ndim - p.ndim):
            w = w.reshape(w.shape[:p.ndim])
        w = w.reshape(w.shape + (1,) * (p.ndim - w.ndim))   # weights are per sample: align on the first axis
        try:
            w = xp.broadcast_to(w, p.shape)
        except ValueError:
            raise ValueError(f"{who}: sample_weight of shape {shape_of(sw)} cannot be broadcast to y_pred of shape "
                             f"{tuple(p.shape)}") from None
    else:
        w = xp.ones(p.shape, dtype=dtype)
    if label_weights is not None:
        w = w * xp.asarray(label_weights, dtype=dtype)
    if top_k is not None:
        if p.ndim == 0:
            raise ValueError(f"{who}: top_k needs predictions with a class axis, got shape {tuple(p.shape)}")
        p = _filter_top_k(p, top_k)
    if class_id is not None:
        n = p.shape[-1] if p.ndim else 0
        if not 0 <= class_id < n:
            raise ValueError(f"{who}: class_id={class_id} is out of range for y_pred of shape {tuple(p.shape)}")
        p, t, w = p[..., class_id], t[..., class_id], w[..., class_id]
    p, t, w = p.reshape(-1), t.reshape(-1), w.reshape(-1)
    pos, neg = (t * w, (1 - t) * w) if soft_labels else (xp.where(t != 0, w, 0), xp.where(t != 0, 0, w))
    order = xp.argsort(p, kind="stable")
    zero = xp.zeros(1, dtype=dtype)
    cpos = xp.concatenate([zero, xp.cumsum(pos[order], dtype=dtype)])
    cneg = xp.concatenate([zero, xp.cumsum(neg[order], dtype=dtype)])
    below = xp.searchsorted(p[order], xp.asarray(thresholds, dtype=dtype), side="right")  # count of p <= threshold
    return cpos[-1] - cpos[below], cneg[-1] - cneg[below], cneg[below], cpos[below]


def _divide_no_nan(a, b):
    xp = array_module(a)
    return xp.where(b == 0, 0.0, a / xp.where(b == 0, 1.0, b)).astype(a.dtype)


class _Thresholded(Metric):
    """Shared state and update of Precision and Recall."""

    _counts: tuple = ()

    def __init__(self, thresholds=None, top_k: int | None = None, class_id: int | None = None, name=None,
                 dtype=None):
        super().__init__(dtype=dtype, name=name)
        who = type(self).__name__
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"{who}: top_k must be a positive integer or None, got {top_k!r}")
        self.init_thresholds = thresholds
        self.top_k, self.class_id = top_k, class_id
        self.thresholds = _thresholds_arg(thresholds, 0.5 if top_k is None else NEG_INF, who)
        for n in self._counts:
            self.add_variable(n, (len(self.thresholds),))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        who = type(self).__name__
        tp, fp, tn, fn = confusion_counts(to_tensor(y_true, who, "y_true"), to_tensor(y_pred, who, "y_pred"),
                                          self.thresholds, sample_weight, who, self._dtype.np,
                                          top_k=self.top_k, class_id=self.class_id)
        counts = {"true_positives": tp, "false_positives": fp, "true_negatives": tn, "false_negatives": fn}
        for n in self._counts:
            self._add(n, counts[n])

    def _finish(self, value) -> Tensor:
        return self._tensor(value[0] if len(self.thresholds) == 1 else value)

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_Thresholded):
    """Of the predictions called positive (``y_pred > threshold``), the fraction whose label is positive.

    With ``top_k``, only each sample's ``k`` highest scores count as positive; with ``class_id``,
    only that column is scored. Several thresholds give one value each.

    >>> import ember
    >>> ember.metrics.Precision()([0, 1, 1, 1], [1, 0, 1, 1])
    tensor(0.6667)
    """

    _counts = ("true_positives", "false_positives")

    def result(self) -> Tensor:
        tp = self._get("true_positives")
        return self._finish(_divide_no_nan(tp, tp + self._get("false_positives")))


class Recall(_Thresholded):
    """Of the positive labels, the fraction predicted positive (``y_pred > threshold``).

    >>> import ember
    >>> ember.metrics.Recall()([0, 1, 1, 1], [1, 0, 1, 1])
    tensor(0.6667)
    """

    _counts = ("true_positives", "false_negatives")

    def result(self) -> Tensor:
        tp = self._get("true_positives")
        return self._finish(_divide_no_nan(tp, tp + self._get("false_negatives")))


_CURVES = {"roc": "ROC", "pr": "PR"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


class AUC(Metric):
    """Area under the ROC or precision-recall curve, from confusion counts at ``num_thresholds`` thresholds.

    Keras' approximation: thresholds ``-1e-7, 1/(n-1), ..., (n-2)/(n-1), 1+1e-7``; the ROC area sums
    trapezoids (``summation_method='interpolation'``), the PR area uses Davis & Goadrich's
    interpolation; ``'minoring'``/``'majoring'`` give lower/upper Riemann sums.

    >>> import ember
    >>> round(ember.metrics.AUC(num_thresholds=3)([0, 0, 1, 1], [0, 0.5, 0.3, 0.9]).item(), 4)
    0.75
    """

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, dtype=None, thresholds=None, multi_label: bool = False,
                 num_labels: int | None = None, label_weights=None, from_logits: bool = False):
        super().__init__(dtype=dtype, name=name or "auc")
        if str(curve).lower() not in _CURVES:
            raise ValueError(f'AUC: invalid curve value: "{curve}". Expected values are ["PR", "ROC"]')
        if str(summation_method).lower() not in _SUMMATIONS:
            raise ValueError(f'AUC: invalid summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        self.curve = _CURVES[str(curve).lower()]
        self.summation_method = str(summation_method).lower()
        if thresholds is not None:
            inner = sorted(_thresholds_arg(thresholds, 0.5, "AUC"))
            num_thresholds = len(inner) + 2
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds <= 1:
                raise ValueError(f"AUC: argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.num_thresholds = num_thresholds
        self._init_thresholds = None if thresholds is None else inner
        self.thresholds = [0.0 - EPSILON] + inner + [1.0 + EPSILON]
        if label_weights is not None:
            label_weights = [float(v) for v in (label_weights.tolist() if hasattr(label_weights, "tolist")
                                                else label_weights)]
            if any(v < 0 for v in label_weights):
                raise ValueError(f"AUC: all values of `label_weights` must be non-negative. "
                                 f"Received: label_weights={label_weights}")
        self.multi_label, self.num_labels, self._num_labels_arg = bool(multi_label), num_labels, num_labels
        self.label_weights, self.from_logits = label_weights, bool(from_logits)
        self._built = False
        if not self.multi_label or num_labels is not None:
            self._build(num_labels)

    def _build(self, num_labels) -> None:
        shape = (self.num_thresholds, num_labels) if self.multi_label else (self.num_thresholds,)
        for n in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_variable(n, shape)
        self._built = True
        if self.multi_label:
            self.num_labels = num_labels

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = to_tensor(y_true, "AUC", "y_true"), to_tensor(y_pred, "AUC", "y_pred")
        if not y_pred.is_floating_point():
            y_pred = y_pred.to(self._dtype)
        if self.from_logits:
            y_pred = sigmoid(y_pred)
        soft = self._init_thresholds is None
        np_dtype = self._dtype.np
        if not self.multi_label:
            counts = confusion_counts(y_true, y_pred, self.thresholds, sample_weight, "AUC", np_dtype,
                                      label_weights=self.label_weights, soft_labels=soft)
        else:
            if y_pred.ndim != 2 or shape_of(y_true) != shape_of(y_pred):
                raise ValueError(f"AUC: multi_label=True expects y_true and y_pred of the same shape "
                                 f"(batch_size, num_labels), got y_true {shape_of(y_true)} and y_pred "
                                 f"{shape_of(y_pred)}")
            if not self._built:
                self._build(y_pred.shape[1])
            if y_pred.shape[1] != self.num_labels:
                raise ValueError(f"AUC: expected {self.num_labels} labels, got y_pred of shape {shape_of(y_pred)}")
            sw = None if sample_weight is None else to_tensor(sample_weight, "AUC", "sample_weight")
            if sw is not None and sw.ndim == 1:
                sw = sw.unsqueeze(-1)
            cols = [confusion_counts(y_true[:, j], y_pred[:, j], self.thresholds,
                                     None if sw is None else (sw[:, j] if sw.ndim == 2 and sw.shape[1] > 1
                                                              else sw.reshape(-1)),
                                     "AUC", np_dtype, soft_labels=soft) for j in range(self.num_labels)]
            xp = y_pred.xp
            counts = tuple(xp.stack([c[i] for c in cols], axis=1) for i in range(4))
        for n, v in zip(("true_positives", "false_positives", "true_negatives", "false_negatives"), counts):
            self._add(n, v)

    def _by_label(self, terms) -> Tensor:
        xp = array_module(terms)
        if not self.multi_label:
            return self._tensor(terms.sum())
        per_label = terms.sum(axis=0)
        if self.label_weights is None:
            return self._tensor(per_label.mean())
        lw = xp.asarray(self.label_weights, dtype=per_label.dtype)
        return self._tensor(_divide_no_nan((per_label * lw).sum(), lw.sum()))

    def _interpolate_pr_auc(self, tp, fp, fn) -> Tensor:
        xp = array_module(tp)
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, xp.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = xp.where(both, _divide_no_nan(p[:-1], xp.maximum(p[1:], 0)), 1.0)
        with errstate(xp, divide="ignore", invalid="ignore"):
            log_ratio = xp.log(xp.where(both, ratio, 1.0))
        return self._by_label(_divide_no_nan(slope * (dtp + intercept * log_ratio), xp.maximum(tp[1:] + fn[1:], 0)))

    def result(self) -> Tensor:
        if not self._built:
            return self._tensor(0.0)
        tp, fp = self._get("true_positives"), self._get("false_positives")
        tn, fn = self._get("true_negatives"), self._get("false_negatives")
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(tp, fp, fn)
        xp = array_module(tp)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = xp.minimum(y[:-1], y[1:])
        else:
            heights = xp.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def reset_state(self) -> None:
        if self.multi_label and self._num_labels_arg is None:
            self._variables, self._built, self.num_labels = {}, False, None
        else:
            super().reset_state()

    def get_config(self) -> dict:
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "multi_label": self.multi_label,
                "num_labels": self.num_labels, "label_weights": self.label_weights,
                "from_logits": self.from_logits, "thresholds": self._init_thresholds}


_AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """F-beta score ``(1 + b^2) P R / (b^2 P + R)`` of multi-class/multi-label predictions of shape (N, C).

    ``threshold=None`` marks each row's highest score as the prediction; otherwise ``y_pred > threshold``.
    ``average=None`` gives one score per class; 'micro' pools the counts, 'macro' averages the classes
    and 'weighted' weights them by their support.

    >>> import ember
    >>> m = ember.metrics.FBetaScore(beta=2.0, average='micro', threshold=0.5)
    >>> round(m([[1, 0], [0, 1], [1, 1]], [[0.9, 0.2], [0.6, 0.7], [0.2, 0.8]]).item(), 4)
    0.75
    """

    def __init__(self, average: str | None = None, beta: float = 1.0, threshold: float | None = None,
                 name: str = "fbeta_score", dtype=None):
        super().__init__(dtype=dtype, name=name)
        who = type(self).__name__
        if average not in _AVERAGES:
            raise ValueError(f"{who}: invalid `average` argument value. Expected one of: "
                             f"{{None, 'micro', 'macro', 'weighted'}}. Received: average={average!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0.0:
            raise ValueError(f"{who}: invalid `beta` argument value. It should be a Python float > 0. "
                             f"Received: beta={beta!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError(f"{who}: invalid `threshold` argument value. It should be a Python float in the "
                             f"range ]0, 1]. Received: threshold={threshold!r}")
        self.average, self.beta = average, float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self._built = False

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        who = type(self).__name__
        y_true, y_pred = to_tensor(y_true, who, "y_true"), to_tensor(y_pred, who, "y_pred")
        if y_true.ndim != 2 or y_pred.ndim != 2 or shape_of(y_true) != shape_of(y_pred):
            raise ValueError(f"{who} expects 2D inputs of the same shape (batch_size, num_classes). Received: "
                             f"y_true.shape={shape_of(y_true)}, y_pred.shape={shape_of(y_pred)}")
        if not self._built:
            shape = () if self.average == "micro" else (y_pred.shape[1],)
            for n in ("true_positives", "false_positives", "false_negatives", "intermediate_weights"):
                self.add_variable(n, shape)
            self._num_classes, self._built = y_pred.shape[1], True
        elif y_pred.shape[1] != self._num_classes:
            raise ValueError(f"{who}: y_pred has {y_pred.shape[1]} classes but earlier batches had "
                             f"{self._num_classes} (y_pred.shape={shape_of(y_pred)})")
        dt = self._dtype.np
        p, t = y_pred.data.astype(dt), y_true.data.astype(dt)
        xp = y_pred.xp
        if self.threshold is None:
            p = ((p >= p.max(axis=-1, keepdims=True)) & (xp.abs(p) > 1e-9)).astype(dt)
        else:
            p = (p > self.threshold).astype(dt)
        axis = None if self.average == "micro" else 0
        w = None
        if sample_weight is not None:
            sw = to_tensor(sample_weight, who, "sample_weight").reshape(-1)
            if sw.numel() != p.shape[0]:
                raise ValueError(f"{who}: sample_weight of shape {shape_of(to_tensor(sample_weight, who, 'w'))} "
                                 f"does not match the batch size of y_pred {shape_of(y_pred)}")
            w = sw.data.astype(dt)[:, None]

        def wsum(v):
            return (v if w is None else v * w).sum(axis=axis)

        self._add("true_positives", wsum(p * t))
        self._add("false_positives", wsum(p * (1 - t)))
        self._add("false_negatives", wsum((1 - p) * t))
        self._add("intermediate_weights", wsum(t))

    def result(self) -> Tensor:
        if not self._built:
            return self._tensor(0.0)
        tp, fp = self._get("true_positives"), self._get("false_positives")
        fn, support = self._get("false_negatives"), self._get("intermediate_weights")
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        b2 = self.beta ** 2
        f = (precision * recall) / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            f = (f * (support / (support.sum() + EPSILON))).sum()
        elif self.average is not None:
            f = f.mean()
        return self._tensor(f)

    def reset_state(self) -> None:
        self._variables, self._built = {}, False

    def get_config(self) -> dict:
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 score, the harmonic mean of precision and recall (``FBetaScore`` with ``beta=1``).

    >>> import ember
    >>> m = ember.metrics.F1Score(average='macro', threshold=0.5)
    >>> round(m([[1, 0], [0, 1], [1, 1]], [[0.9, 0.2], [0.6, 0.7], [0.2, 0.8]]).item(), 4)
    0.75
    """

    def __init__(self, average: str | None = None, threshold: float | None = None, name: str = "f1_score",
                 dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["beta"]
        return config
