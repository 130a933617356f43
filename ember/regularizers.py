"""Keras' weight regularizers: callables that map a weight tensor to a differentiable penalty (a scalar).

Keras' formulas, without PyTorch's 1/2: ``L2(l2)(w) = l2 * sum(w**2)``, ``L1(l1)(w) = l1 * sum(|w|)``.

>>> import ember
>>> ember.regularizers.get("l2")(ember.tensor([1.0, 2.0]))
tensor(0.0500)
"""
from __future__ import annotations

from .utils.lookup import from_identifier, resolve

import math

from . import ops
from .creation import eye
from .tensor import Tensor

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "get", "serialize", "deserialize"]


def _factor(value, name: str) -> float:
    """A non-negative finite float, as Keras' ``validate_float_arg``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


def _weight(x, who: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{who}: expected a weight tensor, got {type(x).__name__}")
    return x


class Regularizer:
    """Base of weight regularizers: ``__call__(x)`` returns a scalar penalty added to the loss."""

    def __call__(self, x: Tensor) -> Tensor:
        return ops.sum(_weight(x, type(self).__name__) * 0.0)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    """``l1 * sum(|x|)``: pushes weights to exactly zero (sparsity).

    >>> import ember
    >>> ember.regularizers.L1(0.1)(ember.tensor([1.0, -2.0]))
    tensor(0.3000)
    """

    def __init__(self, l1: float = 0.01):
        self.l1 = _factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x: Tensor) -> Tensor:
        return self.l1 * ops.sum(ops.abs(_weight(x, "L1")))

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(x**2)``: weight decay (Keras' form, no factor 1/2).

    >>> import ember
    >>> ember.regularizers.L2(0.1)(ember.tensor([1.0, -2.0]))
    tensor(0.5000)
    """

    def __init__(self, l2: float = 0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x: Tensor) -> Tensor:
        return self.l2 * ops.sum(ops.square(_weight(x, "L2")))

    def get_config(self) -> dict:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)`` (both default to 0, as in Keras 3)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x: Tensor) -> Tensor:
        x = _weight(x, "L1L2")
        penalty = ops.sum(x * 0.0)
        if self.l1:
            penalty = penalty + self.l1 * ops.sum(ops.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * ops.sum(ops.square(x))
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Penalise non-orthogonal rows (``mode='rows'``) or columns of a 2-D weight: the mean |cosine| of distinct pairs.

    ``factor * 0.5 * sum(|off-diagonal of N N^T|) / (n (n - 1) / 2)`` with ``N`` the L2-normalised rows/columns.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _factor(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError(f"Invalid value for argument `mode`. Expected one of {{'rows', 'columns'}}. "
                             f"Received: mode={mode}")
        self.mode = mode

    def __call__(self, x: Tensor) -> Tensor:
        x = _weight(x, "OrthogonalRegularizer")
        if x.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape="
                             f"{tuple(x.shape)}")
        axis = 1 if self.mode == "rows" else 0
        n = x * ops.rsqrt(ops.clamp(ops.sum(x * x, axis, keepdim=True), min=1e-14))   # Keras' normalize
        product = ops.matmul(n, n.t()) if axis == 1 else ops.matmul(n.t(), n)
        size = product.shape[0]
        if size < 2:
            return ops.sum(product * 0.0)
        off = product * (1.0 - eye(size, dtype=product.dtype))
        return self.factor * 0.5 * ops.sum(ops.abs(off)) / (size * (size - 1) / 2.0)

    def get_config(self) -> dict:
        return {"factor": self.factor, "mode": self.mode}


_CLASSES = [Regularizer, L1, L2, L1L2, OrthogonalRegularizer]
ALL_OBJECTS_DICT: dict = {c.__name__: c for c in _CLASSES}
ALL_OBJECTS_DICT.update({"regularizer": Regularizer, "l1": L1, "l2": L2, "l1l2": L1L2,
                         "orthogonal_regularizer": OrthogonalRegularizer})
#: names that build a configured instance: Keras 2's ``l1_l2()`` defaults to 0.01 for both factors
_PRESETS = {"l1_l2": lambda: L1L2(l1=0.01, l2=0.01)}


def serialize(regularizer: Regularizer) -> dict:
    """Keras' dict form ``{'module', 'class_name', 'config', 'registered_name'}`` of a regularizer."""
    if not isinstance(regularizer, Regularizer):
        raise ValueError(f"serialize: expected an ember.regularizers.Regularizer, got {regularizer!r}")
    return {"module": "ember.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def _known() -> str:
    return ", ".join(sorted({*ALL_OBJECTS_DICT, *_PRESETS}))


def deserialize(config, custom_objects: dict | None = None) -> Regularizer:
    """A regularizer from a name or :func:`serialize`'s dict; ``custom_objects`` adds user classes."""
    table = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    if isinstance(config, str) and config in _PRESETS:
        return _PRESETS[config]()
    return from_identifier(config, table, "regularizer", _known())


def get(identifier):
    """Resolve a regularizer: None, a name ('l1', 'l2', 'l1_l2'), a dict, a class or a callable."""
    return resolve(identifier, deserialize, "regularizer", _known())
