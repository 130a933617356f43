"""The stateful ``Metric`` base class (Keras 3) and the reducing metrics ``Mean``, ``Sum`` and ``MeanMetricWrapper``.

A metric keeps running totals as plain backend arrays (no graph, no gradients), updated batch
by batch with ``update_state`` and turned into a value with ``result()``; ``reset_state()``
starts a new epoch.
"""
from __future__ import annotations

import re

from .. import dtypes as _dt
from ..backend import array_module, cpu
from ..tensor import Tensor

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "to_tensor", "squeeze_or_expand_to_same_rank"]


def _snake(name: str) -> str:
    """``CategoricalAccuracy`` -> ``categorical_accuracy`` (Keras' ``to_snake_case``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def to_tensor(x, who: str, what: str) -> Tensor:
    """``x`` (an Ember tensor, NumPy array, list or number) as a Tensor cut from any graph."""
    if isinstance(x, Tensor):
        return x.detach()
    try:
        return Tensor(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}: could not convert {what} of type {type(x).__name__} to a tensor ({e})") from None


def shape_of(t: Tensor) -> tuple:
    return tuple(t.shape)


def squeeze_or_expand_to_same_rank(x1: Tensor, x2: Tensor, expand_rank_1: bool = True):
    """Make two tensors the same rank when they differ by a trailing axis of size 1 (Keras' rule)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def check_same_shape(y_true: Tensor, y_pred: Tensor, who: str) -> None:
    """Raise a ValueError naming the metric and both shapes unless they are equal."""
    if shape_of(y_true) != shape_of(y_pred):
        raise ValueError(f"{who}: y_true of shape {shape_of(y_true)} and y_pred of shape {shape_of(y_pred)} "
                         "must have the same shape")


def _float(t: Tensor, dtype: _dt.dtype) -> Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def reduce_to_samplewise_values(values: Tensor, sample_weight, reduce: str, dtype: _dt.dtype, who: str):
    """Per-sample values (first axis kept) times their weights, and the per-sample weights (Keras' rule)."""
    values = _float(values, dtype)
    if sample_weight is not None:
        sample_weight = _float(to_tensor(sample_weight, who, "sample_weight"), dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        w_nd, v_nd = sample_weight.ndim, values.ndim
        if v_nd > w_nd:
            values = getattr(values, reduce)(dim=tuple(range(w_nd, v_nd)))
        try:
            sample_weight = sample_weight.expand(*values.shape) if sample_weight.ndim else sample_weight
            ok = shape_of(sample_weight) == shape_of(values) or sample_weight.ndim == 0
        except Exception:  # noqa: BLE001  (any broadcast failure is reported below in the user's terms)
            ok = False
        if not ok:
            raise ValueError(f"{who}: sample_weight of shape {shape_of(sample_weight)} cannot be broadcast to the "
                             f"values of shape {shape_of(values)}")
        values = values * sample_weight
        if w_nd > 1:
            sample_weight = getattr(sample_weight, reduce)(dim=tuple(range(1, w_nd)))
    if values.ndim > 1:
        values = getattr(values, reduce)(dim=tuple(range(1, values.ndim)))
    return values, sample_weight


class Metric:
    """Base class of stateful metrics: ``update_state`` per batch, ``result()`` for the value, ``reset_state()``.

    Subclasses create their running totals with :meth:`add_variable` in ``__init__``.

    >>> import ember
    >>> m = ember.metrics.Mean()
    >>> m.update_state([1.0, 2.0]); m.update_state([6.0])
    >>> m.result()
    tensor(3.)
    """

    def __init__(self, dtype=None, name: str | None = None):
        self.name = name or _snake(type(self).__name__)
        self._dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        self._variables: dict = {}

    # ------------------------------------------------------------ state
    @property
    def dtype(self) -> str:
        return self._dtype.name

    @property
    def xp(self):
        return cpu.xp

    def add_variable(self, name: str, shape=(), dtype=None):
        """Create (or re-create) a zero-filled state array named ``name``."""
        np_dtype = (_dt.as_dtype(dtype) if dtype is not None else self._dtype).np
        self._variables[name] = self.xp.zeros(shape, dtype=np_dtype)
        return self._variables[name]

    def _add(self, name: str, value) -> None:
        """Accumulate ``value`` (an array or Tensor) into state ``name``."""
        if isinstance(value, Tensor):
            value = value.data
        old = self._variables[name]
        xp = array_module(old)
        self._variables[name] = xp.asarray(old + xp.asarray(value, dtype=old.dtype), dtype=old.dtype)

    def _get(self, name: str):
        return self._variables[name]

    @property
    def variables(self) -> list:
        """The state arrays (backend arrays, not tensors), in creation order."""
        return list(self._variables.values())

    def reset_state(self) -> None:
        """Set every state array back to zero (call between epochs)."""
        for k, v in self._variables.items():
            self._variables[k] = array_module(v).zeros_like(v)

    # ------------------------------------------------------------ API
    def update_state(self, *args, **kwargs) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update_state()")

    def result(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement result()")

    def _tensor(self, array) -> Tensor:
        return Tensor(array_module(array).asarray(array, dtype=self._dtype.np))

    def __call__(self, *args, **kwargs) -> Tensor:
        """Update the state with one batch and return the running result."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class Sum(Metric):
    """The (weighted) sum of the values seen since the last reset.

    >>> import ember
    >>> ember.metrics.Sum()([1.0, 3.0, 5.0], sample_weight=[1, 1, 0])
    tensor(4.)
    """

    def __init__(self, name: str = "sum", dtype=None):
        super().__init__(dtype=dtype, name=name)
        self.add_variable("total")

    def update_state(self, values, sample_weight=None) -> None:
        values = to_tensor(values, type(self).__name__, "values")
        values, _ = reduce_to_samplewise_values(values, sample_weight, "sum", self._dtype, type(self).__name__)
        self._add("total", values.data.sum())

    def result(self) -> Tensor:
        return self._tensor(self._get("total"))


class Mean(Metric):
    """The (weighted) mean of the values seen since the last reset: ``sum(w * v) / sum(w)``.

    Values of rank > 1 are first averaged over all but the first (sample) axis.

    >>> import ember
    >>> ember.metrics.Mean()([1.0, 3.0, 5.0, 7.0], sample_weight=[1, 1, 0, 0])
    tensor(2.)
    """

    def __init__(self, name: str = "mean", dtype=None):
        super().__init__(dtype=dtype, name=name)
        self.add_variable("total")
        self.add_variable("count")

    def update_state(self, values, sample_weight=None) -> None:
        who = type(self).__name__
        values = to_tensor(values, who, "values")
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, "mean", self._dtype, who)
        self._add("total", values.data.sum())
        if sample_weight is not None:
            n = sample_weight.data.sum() if sample_weight.ndim else sample_weight.data * max(values.numel(), 1)
        else:
            n = values.shape[0] if values.ndim >= 1 else 1
        self._add("count", n)

    def result(self) -> Tensor:
        total, count = self._get("total"), self._get("count")
        xp = array_module(total)
        return self._tensor(xp.where(count == 0, 0.0, total / xp.where(count == 0, 1.0, count)))


class MeanMetricWrapper(Mean):
    """Average a per-sample function ``fn(y_true, y_pred, **kwargs)`` over everything seen.

    >>> import ember
    >>> m = ember.metrics.MeanMetricWrapper(ember.metrics.binary_accuracy, threshold=0.5)
    >>> m([[1.0], [0.0]], [[0.8], [0.9]])
    tensor(0.5000)
    """

    def __init__(self, fn, name: str | None = None, dtype=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"MeanMetricWrapper: fn must be callable, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def _values(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        who = type(self).__name__
        values = self._values(to_tensor(y_true, who, "y_true"), to_tensor(y_pred, who, "y_pred"))
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        config = {**super().get_config(), **self._fn_kwargs}
        if type(self) is MeanMetricWrapper:
            from . import serialize_function
            config["fn"] = serialize_function(self._fn)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if "fn" in config:
            from . import get
            config["fn"] = get(config["fn"], instantiate=False)
        return cls(**config)
