"""Layers that merge a list of inputs: ``Concatenate``, ``Add``, ``Subtract``, ``Multiply``, ``Average``,
``Maximum``, ``Minimum``."""
from __future__ import annotations

from ..autograd.node import OpError
from .layer import Layer

__all__ = ["Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


class _Merge(Layer):
    """Base of merging layers: checks that the call receives a list of at least two tensors."""

    def _inputs(self, inputs) -> list:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise OpError(f"{type(self).__name__} {self.name!r}: expected a list of at least 2 inputs, got "
                          f"{type(inputs).__name__}")
        return list(inputs)

    def call(self, inputs):
        xs = self._inputs(inputs)
        shapes = {tuple(x.shape[1:]) for x in xs}
        if len(shapes) > 1:
            raise OpError(f"{type(self).__name__} {self.name!r}: inputs must have the same shape (apart from the "
                          f"batch dim), got {[tuple(x.shape) for x in xs]}")
        return self._merge(xs)


class Add(_Merge):
    """Elementwise sum of the inputs."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``."""

    def _merge(self, xs):
        if len(xs) != 2:
            raise OpError(f"Subtract {self.name!r}: expected exactly 2 inputs, got {len(xs)}")
        return xs[0] - xs[1]


class Multiply(_Merge):
    """Elementwise product of the inputs."""

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Average(Add):
    """Elementwise mean of the inputs."""

    def _merge(self, xs):
        return super()._merge(xs) / len(xs)


class Maximum(_Merge):
    """Elementwise maximum of the inputs."""

    def _merge(self, xs):
        from ..ops import maximum
        out = xs[0]
        for x in xs[1:]:
            out = maximum(out, x)
        return out


class Minimum(_Merge):
    """Elementwise minimum of the inputs."""

    def _merge(self, xs):
        from ..ops import minimum
        out = xs[0]
        for x in xs[1:]:
            out = minimum(out, x)
        return out


class Concatenate(_Merge):
    """Join the inputs along ``axis`` (default the last)."""

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        from ..ops import cat
        xs = self._inputs(inputs)
        return cat(xs, dim=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
