"""Accuracy metrics (Keras 3): exact match, binary, categorical, sparse categorical and top-k.

The functional forms return one value per sample (1.0 for a hit, 0.0 for a miss) as an
Ember tensor; the classes average them over every batch since the last reset.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..tensor import Tensor
from .base import MeanMetricWrapper, check_same_shape, shape_of, squeeze_or_expand_to_same_rank, to_tensor

__all__ = ["accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy"]


def _floatx():
    return _dt.get_default_dtype()


def _pair(y_true, y_pred, who: str):
    return to_tensor(y_true, who, "y_true"), to_tensor(y_pred, who, "y_pred")


def _float(t: Tensor) -> Tensor:
    return t if t.is_floating_point() else t.to(_floatx())


def accuracy(y_true, y_pred) -> Tensor:
    """1.0 where ``y_true == y_pred`` exactly, elementwise.

    >>> import ember
    >>> ember.metrics.accuracy([1, 2, 3], [1, 2, 4])
    tensor([1., 1., 0.])
    """
    y_true, y_pred = _pair(y_true, y_pred, "accuracy")
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    check_same_shape(y_true, y_pred, "accuracy")
    return (y_true.to(y_pred.dtype) == y_pred).to(_floatx())


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> Tensor:
    """1.0 where ``(y_pred > threshold) == y_true``, elementwise (labels 0/1, predictions probabilities).

    >>> import ember
    >>> ember.metrics.binary_accuracy([[1.0], [0.0], [1.0]], [[0.9], [0.7], [0.2]])
    tensor([[1.],
            [0.],
            [0.]])
    """
    y_true, y_pred = _pair(y_true, y_pred, "binary_accuracy")
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    check_same_shape(y_true, y_pred, "binary_accuracy")
    y_true = _float(y_true)
    return ((_float(y_pred) > threshold).to(y_true.dtype) == y_true).to(_floatx())


def _check_labels(y_true: Tensor, y_pred: Tensor, who: str) -> Tensor:
    """Squeeze sparse labels of shape ``y_pred.shape[:-1] + (1,)``; check they index ``y_pred``'s last axis."""
    if y_pred.ndim == 0:
        raise ValueError(f"{who}: y_pred must have a class axis, got shape {shape_of(y_pred)}")
    if y_true.ndim == y_pred.ndim and y_true.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if shape_of(y_true) != shape_of(y_pred)[:-1]:
        raise ValueError(f"{who}: y_true of shape {shape_of(y_true)} does not match y_pred of shape "
                         f"{shape_of(y_pred)}; expected integer labels of shape {shape_of(y_pred)[:-1]} "
                         f"(or {shape_of(y_pred)[:-1] + (1,)})")
    return y_true


def categorical_accuracy(y_true, y_pred) -> Tensor:
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` (one-hot labels), per sample.

    >>> import ember
    >>> ember.metrics.categorical_accuracy([[0, 0, 1], [0, 1, 0]], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    tensor([1., 0.])
    """
    y_true, y_pred = _pair(y_true, y_pred, "categorical_accuracy")
    check_same_shape(y_true, y_pred, "categorical_accuracy")
    if y_pred.ndim == 0:
        raise ValueError("categorical_accuracy: y_pred must have a class axis, got shape ()")
    return (y_true.argmax(-1) == y_pred.argmax(-1)).to(_floatx())


def sparse_categorical_accuracy(y_true, y_pred) -> Tensor:
    """1.0 where ``argmax(y_pred) == y_true`` (integer labels), per sample.

    >>> import ember
    >>> ember.metrics.sparse_categorical_accuracy([2, 1], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    tensor([1., 0.])
    """
    y_true, y_pred = _pair(y_true, y_pred, "sparse_categorical_accuracy")
    y_true = _check_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (y_true.to(_dt.int64) == y_pred.argmax(-1)).to(_floatx())


def _in_top_k(labels: Tensor, y_pred: Tensor, k: int, who: str) -> Tensor:
    """Whether each label's score is among the ``k`` largest; ties at the boundary count as hits (TF's rule)."""
    n = y_pred.shape[-1]
    lab = labels.to(_dt.int64)
    if lab.numel() and (bool((lab < 0).any()) or bool((lab >= n).any())):
        raise ValueError(f"{who}: labels must be in [0, {n}) for y_pred of shape {shape_of(y_pred)}, got values "
                         f"in [{int(lab.min())}, {int(lab.max())}]")
    target = y_pred.gather(-1, lab.unsqueeze(-1))
    return (y_pred > target).to(_dt.int64).sum(-1) < k


def _check_k(k, who: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{who}: k must be a positive integer, got {k!r}")
    return k


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> Tensor:
    """1.0 where the true class (argmax of one-hot ``y_true``) is among the ``k`` highest scores, per sample.

    >>> import ember
    >>> ember.metrics.top_k_categorical_accuracy([[0, 0, 1], [1, 0, 0]], [[0.5, 0.2, 0.3], [0.1, 0.5, 0.4]], k=2)
    tensor([1., 0.])
    """
    who = "top_k_categorical_accuracy"
    _check_k(k, who)
    y_true, y_pred = _pair(y_true, y_pred, who)
    check_same_shape(y_true, y_pred, who)
    if y_pred.ndim == 0:
        raise ValueError(f"{who}: y_pred must have a class axis, got shape ()")
    return _in_top_k(y_true.argmax(-1), y_pred, k, who).to(_floatx())


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> Tensor:
    """1.0 where the integer label ``y_true`` is among the ``k`` highest scores of ``y_pred``, per sample.

    >>> import ember
    >>> ember.metrics.sparse_top_k_categorical_accuracy([2, 0], [[0.5, 0.2, 0.3], [0.1, 0.5, 0.4]], k=2)
    tensor([1., 0.])
    """
    who = "sparse_top_k_categorical_accuracy"
    _check_k(k, who)
    y_true, y_pred = _pair(y_true, y_pred, who)
    y_true = _check_labels(y_true, y_pred, who)
    return _in_top_k(y_true, y_pred, k, who).to(_floatx())


class _Wrapped(MeanMetricWrapper):
    """A MeanMetricWrapper around a fixed function, configured only by name, dtype and its own arguments."""

    _fn_ = staticmethod(accuracy)

    def __init__(self, name: str | None = None, dtype=None, **kwargs):
        super().__init__(type(self)._fn_, name=name, dtype=dtype, **kwargs)

    def _values(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        try:
            return super()._values(y_true, y_pred)
        except ValueError as e:
            msg = str(e)
            raise ValueError(f"{type(self).__name__}: {msg.split(': ', 1)[1] if ': ' in msg else msg}") from None


class Accuracy(_Wrapped):
    """How often predictions equal labels exactly.

    >>> import ember
    >>> ember.metrics.Accuracy()([[1], [2], [3], [4]], [[0], [2], [3], [4]])
    tensor(0.7500)
    """

    _fn_ = staticmethod(accuracy)

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class BinaryAccuracy(_Wrapped):
    """How often ``y_pred > threshold`` matches the 0/1 label.

    >>> import ember
    >>> ember.metrics.BinaryAccuracy()([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    tensor(0.7500)
    """

    _fn_ = staticmethod(binary_accuracy)

    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5):
        super().__init__(name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(_Wrapped):
    """How often the predicted class (argmax) matches the one-hot label.

    >>> import ember
    >>> ember.metrics.CategoricalAccuracy()([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    tensor(0.5000)
    """

    _fn_ = staticmethod(categorical_accuracy)

    def __init__(self, name: str = "categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class SparseCategoricalAccuracy(_Wrapped):
    """How often the predicted class (argmax) matches the integer label.

    >>> import ember
    >>> ember.metrics.SparseCategoricalAccuracy()([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
    tensor(0.5000)
    """

    _fn_ = staticmethod(sparse_categorical_accuracy)

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class TopKCategoricalAccuracy(_Wrapped):
    """How often the one-hot label is among the ``k`` highest predictions.

    >>> import ember
    >>> ember.metrics.TopKCategoricalAccuracy(k=1)([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    tensor(0.5000)
    """

    _fn_ = staticmethod(top_k_categorical_accuracy)

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype, k=_check_k(k, "TopKCategoricalAccuracy"))


class SparseTopKCategoricalAccuracy(_Wrapped):
    """How often the integer label is among the ``k`` highest predictions.

    >>> import ember
    >>> ember.metrics.SparseTopKCategoricalAccuracy(k=1)([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    tensor(0.5000)
    """

    _fn_ = staticmethod(sparse_top_k_categorical_accuracy)

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype, k=_check_k(k, "SparseTopKCategoricalAccuracy"))
