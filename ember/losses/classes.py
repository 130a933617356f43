"""Keras' loss classes: each wraps one function of :mod:`ember.losses.functions` with its arguments.

>>> import ember
>>> bce = ember.losses.BinaryCrossentropy(from_logits=True)
>>> bce([[1.0], [0.0]], [[0.0], [0.0]])
tensor(0.6931)
"""
from __future__ import annotations

from . import functions as fn
from ..tensor import Tensor
from .loss import LossFunctionWrapper

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
           "CosineSimilarity", "Huber", "LogCosh", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
           "CategoricalHinge", "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy"]

_R = "sum_over_batch_size"


class _Fixed(LossFunctionWrapper):
    """A wrapper whose function is fixed by the class, so its config holds only the arguments."""

    _config_has_fn = False


class MeanSquaredError(_Fixed):
    """Mean of ``(y_true - y_pred)^2`` over the last axis, then reduced over the batch."""

    def __init__(self, reduction=_R, name: str = "mean_squared_error", dtype=None):
        super().__init__(fn.mean_squared_error, reduction=reduction, name=name, dtype=dtype)


class MeanAbsoluteError(_Fixed):
    """Mean of ``|y_true - y_pred|`` over the last axis."""

    def __init__(self, reduction=_R, name: str = "mean_absolute_error", dtype=None):
        super().__init__(fn.mean_absolute_error, reduction=reduction, name=name, dtype=dtype)


class MeanAbsolutePercentageError(_Fixed):
    """``100 * mean(|y_true - y_pred| / |y_true|)`` over the last axis."""

    def __init__(self, reduction=_R, name: str = "mean_absolute_percentage_error", dtype=None):
        super().__init__(fn.mean_absolute_percentage_error, reduction=reduction, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(_Fixed):
    """Mean of ``(log(1 + y_pred) - log(1 + y_true))^2`` over the last axis."""

    def __init__(self, reduction=_R, name: str = "mean_squared_logarithmic_error", dtype=None):
        super().__init__(fn.mean_squared_logarithmic_error, reduction=reduction, name=name, dtype=dtype)


class CosineSimilarity(_Fixed):
    """Negative cosine similarity along ``axis`` (so minimising it aligns the vectors)."""

    def __init__(self, axis: int = -1, reduction=_R, name: str = "cosine_similarity", dtype=None):
        super().__init__(fn.cosine_similarity, reduction=reduction, name=name, dtype=dtype, axis=axis)


class Huber(_Fixed):
    """Quadratic for errors up to ``delta``, linear beyond: robust to outliers."""

    def __init__(self, delta: float = 1.0, reduction=_R, name: str = "huber_loss", dtype=None):
        super().__init__(fn.huber, reduction=reduction, name=name, dtype=dtype, delta=float(delta))


class LogCosh(_Fixed):
    """Mean of ``log(cosh(y_pred - y_true))``: like MSE for small errors, like MAE for large ones."""

    def __init__(self, reduction=_R, name: str = "log_cosh", dtype=None):
        super().__init__(fn.log_cosh, reduction=reduction, name=name, dtype=dtype)


class KLDivergence(_Fixed):
    """Kullback-Leibler divergence ``sum(y_true * log(y_true / y_pred))`` over the last axis."""

    def __init__(self, reduction=_R, name: str = "kl_divergence", dtype=None):
        super().__init__(fn.kl_divergence, reduction=reduction, name=name, dtype=dtype)


class Poisson(_Fixed):
    """Poisson negative log-likelihood ``y_pred - y_true * log(y_pred)`` (up to a constant)."""

    def __init__(self, reduction=_R, name: str = "poisson", dtype=None):
        super().__init__(fn.poisson, reduction=reduction, name=name, dtype=dtype)


class Hinge(_Fixed):
    """``max(1 - y_true * y_pred, 0)`` with labels -1/1 (0/1 are converted)."""

    def __init__(self, reduction=_R, name: str = "hinge", dtype=None):
        super().__init__(fn.hinge, reduction=reduction, name=name, dtype=dtype)


class SquaredHinge(_Fixed):
    """``max(1 - y_true * y_pred, 0)^2`` with labels -1/1 (0/1 are converted)."""

    def __init__(self, reduction=_R, name: str = "squared_hinge", dtype=None):
        super().__init__(fn.squared_hinge, reduction=reduction, name=name, dtype=dtype)


class CategoricalHinge(_Fixed):
    """Multi-class hinge: the best wrong score minus the right one, plus one, floored at zero."""

    def __init__(self, reduction=_R, name: str = "categorical_hinge", dtype=None):
        super().__init__(fn.categorical_hinge, reduction=reduction, name=name, dtype=dtype)


class BinaryCrossentropy(_Fixed):
    """Binary cross-entropy for 0/1 targets against probabilities (or logits with ``from_logits=True``).

    >>> import ember
    >>> ember.losses.BinaryCrossentropy()([1.0, 0.0], [0.5, 0.5])
    tensor(0.6931)
    """

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1, reduction=_R,
                 name: str = "binary_crossentropy", dtype=None):
        super().__init__(fn.binary_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing), axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis


class BinaryFocalCrossentropy(_Fixed):
    """Focal binary cross-entropy: down-weights easy examples by ``(1 - p_t)^gamma``."""

    def __init__(self, apply_class_balancing: bool = False, alpha: float = 0.25, gamma: float = 2.0,
                 from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1, reduction=_R,
                 name: str = "binary_focal_crossentropy", dtype=None):
        super().__init__(fn.binary_focal_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         apply_class_balancing=bool(apply_class_balancing), alpha=float(alpha), gamma=float(gamma),
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing), axis=axis)
        self.from_logits = bool(from_logits)


class CategoricalCrossentropy(_Fixed):
    """Cross-entropy between one-hot targets and class probabilities (or logits) along ``axis``.

    >>> import ember
    >>> ember.losses.CategoricalCrossentropy(from_logits=True)([[0.0, 1.0]], [[0.0, 0.0]])
    tensor(0.6931)
    """

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1, reduction=_R,
                 name: str = "categorical_crossentropy", dtype=None):
        super().__init__(fn.categorical_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing), axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis


class SparseCategoricalCrossentropy(_Fixed):
    """Cross-entropy between integer class indices and class probabilities (or logits).

    ``ignore_class`` leaves samples with that label out of the loss and out of the mean.

    >>> import ember
    >>> ember.losses.SparseCategoricalCrossentropy(from_logits=True)([1, 0], [[0.0, 0.0], [0.0, 0.0]])
    tensor(0.6931)
    """

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None, reduction=_R,
                 name: str = "sparse_categorical_crossentropy", dtype=None):
        ignore_class = None if ignore_class is None else int(ignore_class)
        super().__init__(fn.sparse_categorical_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         from_logits=bool(from_logits), ignore_class=ignore_class)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class

    def __call__(self, y_true, y_pred, sample_weight=None):
        if (self.from_logits and sample_weight is None and self.ignore_class is None and self.dtype is None
                and self.reduction == "sum_over_batch_size" and isinstance(y_true, Tensor)
                and isinstance(y_pred, Tensor) and y_pred.ndim == 2 and y_true.ndim == 1
                and y_true.data.dtype.kind in "iu" and y_pred.data.dtype.kind == "f"):
            # the common case of training a classifier: one fused cross-entropy op (same value and gradient)
            from ..nn import functional as F
            return F.cross_entropy(y_pred, y_true)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)   # no rank fix: y_true has one dim fewer than y_pred
