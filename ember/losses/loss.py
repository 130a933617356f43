"""The Keras-style ``Loss`` base: per-sample losses from ``call``, then sample weights, masks and a reduction.

>>> import ember
>>> loss = ember.losses.MeanSquaredError(reduction="sum")
>>> loss([[0.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 0.0]])
tensor(1.)
"""
from __future__ import annotations

import re

from .. import dtypes as _dt
from .. import ops
from ..tensor import Tensor

__all__ = ["Loss", "LossFunctionWrapper", "EPSILON", "REDUCTIONS", "standardize_reduction",
           "squeeze_or_expand_to_same_rank", "reduce_weighted_values"]

#: Keras' ``backend.epsilon()``: probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` before a log.
EPSILON = 1e-7
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def standardize_reduction(reduction):
    """Check ``reduction`` against Keras' names (``'none'`` and ``None`` keep the per-sample losses)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {list(REDUCTIONS)}. "
                         f"Received: reduction={reduction!r}")
    return reduction


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def to_tensor(x, dtype=None) -> Tensor:
    """``x`` as an Ember tensor (arrays and lists converted), cast to ``dtype`` when given."""
    t = x if isinstance(x, Tensor) else _as_tensor(x)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t


def _as_tensor(x) -> Tensor:
    from ..creation import as_tensor
    return as_tensor(x)


def as_float(x, dtype=None) -> Tensor:
    """``x`` as a floating tensor: ``dtype`` if given, else its own float dtype or the default one."""
    t = to_tensor(x)
    if dtype is not None:
        return to_tensor(t, _dt.as_dtype(dtype))
    if not _dt.is_float(t.data.dtype):
        t = t.to(_dt.get_default_dtype())
    return t


def squeeze_or_expand_to_same_rank(x1: Tensor, x2: Tensor, expand_rank_1: bool = True):
    """Keras' rank fix: when the ranks differ by one and the longer ends in a size-1 dim, match them.

    ``(N,)`` against ``(N, 1)`` becomes ``(N, 1)`` and ``(N, 1)``; ``(N, T)`` against ``(N, T, 1)`` squeezes.
    """
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.unsqueeze(x2, -1)
        else:
            x1 = ops.squeeze(x1, -1)
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.unsqueeze(x1, -1)
        else:
            x2 = ops.squeeze(x2, -1)
    return x1, x2


def _apply_mask(sample_weight, mask: Tensor | None, values: Tensor, reduction):
    """Fold a boolean mask into the sample weights; under a mean, rescale so the mean runs over valid entries."""
    if mask is None:
        return sample_weight
    m = mask.to(values.dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        valid = float(m.data.sum())
        m = m * (m.numel() / (valid + EPSILON))
    if sample_weight is None:
        return m
    m, sample_weight = squeeze_or_expand_to_same_rank(m, sample_weight)
    return sample_weight * m


def reduce_weighted_values(values: Tensor, sample_weight=None, mask: Tensor | None = None,
                           reduction="sum_over_batch_size", who: str = "loss") -> Tensor:
    """Weight per-sample ``values`` by ``sample_weight`` (broadcast, Keras' rank fix) and reduce them."""
    reduction = standardize_reduction(reduction)
    if sample_weight is not None:
        sample_weight = as_float(sample_weight, values.dtype)
    sample_weight = _apply_mask(sample_weight, mask, values, reduction)
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        try:
            ok = _broadcast(values.shape, sample_weight.shape) == tuple(values.shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{who}: sample_weight of shape {tuple(sample_weight.shape)} cannot be broadcast to "
                             f"the per-sample losses of shape {tuple(values.shape)}")
        values = values * sample_weight
    if reduction in (None, "none") or values.ndim == 0 or tuple(values.shape) == (0,):
        return values
    total = ops.sum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = float(ops.broadcast_to(sample_weight, values.shape).data.sum())
    else:
        divisor = values.numel()
    return total / divisor if divisor else total * 0.0


def _broadcast(a, b) -> tuple:
    from ..backend import broadcast_shapes
    return tuple(broadcast_shapes(tuple(a), tuple(b)))


class Loss:
    """Base of Keras-style losses: subclasses define ``call(y_true, y_pred)`` returning per-sample losses.

    ``__call__(y_true, y_pred, sample_weight=None)`` converts the inputs, weights the per-sample losses and
    reduces them with ``reduction``: ``'sum_over_batch_size'`` (the mean), ``'sum'``, ``'none'``/``None``.
    """

    def __init__(self, name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self.dtype = None if dtype is None else _dt.as_dtype(dtype).name

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        y_pred = as_float(y_pred, self.dtype)
        y_true = to_tensor(y_true, y_pred.dtype)
        losses = self.call(y_true, y_pred)
        mask = getattr(losses, "_keras_mask", None)
        return reduce_weighted_values(losses, sample_weight, mask, self.reduction, self.name)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Loss must implement call(y_true, y_pred)")

    def get_config(self) -> dict:
        config = {"name": self.name, "reduction": self.reduction}
        if self.dtype is not None:
            config["dtype"] = self.dtype
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, reduction={self.reduction!r})"


class LossFunctionWrapper(Loss):
    """A ``Loss`` around a per-sample loss function ``fn(y_true, y_pred, **kwargs)``.

    >>> import ember
    >>> loss = ember.losses.LossFunctionWrapper(ember.losses.mean_absolute_error)
    >>> loss([1.0, 2.0], [2.0, 2.0])
    tensor(0.5000)
    """

    #: whether ``get_config`` names ``fn`` (the concrete classes fix their function, so they leave it out)
    _config_has_fn = True

    def __init__(self, fn, reduction="sum_over_batch_size", name: str | None = None, dtype=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"LossFunctionWrapper: fn must be callable, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        if self._config_has_fn:
            from . import serialize
            config["fn"] = serialize(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if "fn" in config:
            from . import get
            config["fn"] = get(config["fn"])
        return cls(**config)
