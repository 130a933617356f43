"""Regression metrics (Keras 3): mean absolute / squared / absolute-percentage error and RMSE.

The functional forms average over the last axis, as Keras' do. The metric classes treat
1-D ``y_true``/``y_pred`` as one output per sample (shape ``(N, 1)``), so that several batches
always give the same value as one big batch.
"""
from __future__ import annotations

from ..ops import abs as _abs
from ..tensor import Tensor
from .base import Mean, MeanMetricWrapper, check_same_shape, squeeze_or_expand_to_same_rank, to_tensor

__all__ = ["mean_absolute_error", "mean_squared_error", "mean_absolute_percentage_error", "MeanAbsoluteError",
           "MeanSquaredError", "RootMeanSquaredError", "MeanAbsolutePercentageError"]

EPSILON = 1e-7


def _pair(y_true, y_pred, who: str):
    y_true, y_pred = to_tensor(y_true, who, "y_true"), to_tensor(y_pred, who, "y_pred")
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    check_same_shape(y_true, y_pred, who)
    if not y_pred.is_floating_point():
        y_pred = y_pred.float()
    return y_true.to(y_pred.dtype), y_pred


def _last_axis_mean(t: Tensor) -> Tensor:
    return t.mean(dim=-1) if t.ndim else t


def mean_absolute_error(y_true, y_pred) -> Tensor:
    """``mean(|y_true - y_pred|, axis=-1)``.

    >>> import ember
    >>> ember.metrics.mean_absolute_error([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
    tensor([0.5000, 0.5000])
    """
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_error")
    return _last_axis_mean(_abs(y_pred - y_true))


def mean_squared_error(y_true, y_pred) -> Tensor:
    """``mean((y_true - y_pred)^2, axis=-1)``.

    >>> import ember
    >>> ember.metrics.mean_squared_error([[0.0, 1.0], [0.0, 0.0]], [[2.0, 1.0], [1.0, 0.0]])
    tensor([2.0000, 0.5000])
    """
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_error")
    d = y_pred - y_true
    return _last_axis_mean(d * d)


def mean_absolute_percentage_error(y_true, y_pred) -> Tensor:
    """``100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|, axis=-1)``.

    >>> import ember
    >>> ember.metrics.mean_absolute_percentage_error([[2.0, 4.0]], [[1.0, 5.0]])
    tensor([37.5000])
    """
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_percentage_error")
    diff = _abs((y_true - y_pred) / _abs(y_true).clamp(min=EPSILON))
    return 100.0 * _last_axis_mean(diff)


def _per_sample(y_true: Tensor, y_pred: Tensor):
    """1-D targets and predictions as (N, 1): one output per sample."""
    if y_true.ndim == 1 and y_pred.ndim == 1:
        return y_true.unsqueeze(-1), y_pred.unsqueeze(-1)
    return y_true, y_pred


class _Regression(MeanMetricWrapper):
    _fn_ = staticmethod(mean_absolute_error)

    def __init__(self, name: str, dtype=None):
        super().__init__(type(self)._fn_, name=name, dtype=dtype)

    def _values(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        try:
            return super()._values(*_per_sample(y_true, y_pred))
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {str(e).split(': ', 1)[-1]}") from None


class MeanAbsoluteError(_Regression):
    """Mean absolute error over every sample seen.

    >>> import ember
    >>> ember.metrics.MeanAbsoluteError()([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    tensor(0.2500)
    """

    _fn_ = staticmethod(mean_absolute_error)

    def __init__(self, name: str = "mean_absolute_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class MeanSquaredError(_Regression):
    """Mean squared error over every sample seen.

    >>> import ember
    >>> ember.metrics.MeanSquaredError()([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    tensor(0.2500)
    """

    _fn_ = staticmethod(mean_squared_error)

    def __init__(self, name: str = "mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class MeanAbsolutePercentageError(_Regression):
    """Mean absolute percentage error over every sample seen.

    >>> import ember
    >>> ember.metrics.MeanAbsolutePercentageError()([[2.0, 4.0]], [[1.0, 5.0]])
    tensor(37.5000)
    """

    _fn_ = staticmethod(mean_absolute_percentage_error)

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """Square root of the mean squared error over every element seen.

    >>> import ember
    >>> ember.metrics.RootMeanSquaredError()([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    tensor(0.5000)
    """

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _pair(y_true, y_pred, "RootMeanSquaredError")
        d = y_pred - y_true
        super().update_state(d * d, sample_weight=sample_weight)

    def result(self) -> Tensor:
        return super().result().sqrt()
