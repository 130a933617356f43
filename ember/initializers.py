"""Keras' weight initializers (``keras.initializers`` names, formulas and defaults), drawing from Ember's RNG.

``init(shape, dtype=None)`` returns a new tensor. Fans follow Keras' channels-last layout: a 2-D
kernel is ``(in, out)``, a conv kernel ``(..., in, out)`` with the receptive field in front.
Unseeded initializers draw from ``ember.backend.rng()`` (so ``ember.manual_seed`` repeats them);
an integer ``seed`` makes one that returns the same values on every call, whatever the global RNG.

>>> import ember
>>> w = ember.initializers.get("glorot_uniform")((3, 4))
>>> tuple(w.shape), bool((w.abs() <= (6 / 7) ** 0.5).all())
((3, 4), True)
"""
from __future__ import annotations

from .utils.lookup import from_identifier, resolve

import math
import re

from . import dtypes as _dt
from .backend import cpu, rng
from .creation import empty, eye, full
from .nn import init as _init
from .tensor import Tensor

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
           "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
           "LecunNormal", "Orthogonal", "Identity", "compute_fans", "get", "serialize", "deserialize"]


def compute_fans(shape) -> tuple:
    """``(fan_in, fan_out)`` as Keras: ``(in, out)`` for a matrix, ``receptive field * in/out`` for a kernel.

    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _shape(shape, who: str) -> tuple:
    if isinstance(shape, int):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: shape must be a tuple of non-negative ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{who}: shape must be a tuple of non-negative ints, got {shape}")
    return shape


def _dtype(dtype):
    d = _dt.get_default_dtype() if dtype is None else _dt.as_dtype(dtype)
    if not d.is_floating_point:
        raise ValueError(f"initializers: expected a floating point dtype, got {d}")
    return d


class Initializer:
    """Base of Keras-style initializers: ``__call__(shape, dtype=None)`` and a JSON-able ``get_config``."""

    def __call__(self, shape, dtype=None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}: initializers must implement __call__(shape, dtype)")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None) -> Tensor:
        return full(_shape(shape, "Zeros"), 0.0, dtype=_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None) -> Tensor:
        return full(_shape(shape, "Ones"), 1.0, dtype=_dtype(dtype))


class Constant(Initializer):
    """Every value ``value``.

    >>> import ember
    >>> ember.initializers.Constant(3.0)((2,))
    tensor([3., 3.])
    """

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None) -> Tensor:
        return full(_shape(shape, "Constant"), self.value, dtype=_dtype(dtype))

    def get_config(self) -> dict:
        return {"value": self.value}


class _Random(Initializer):
    """Shared seeding: an int ``seed`` gives a private generator, fresh (so identical) on every call."""

    def __init__(self, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}")
        self.seed = seed

    def _generator(self):
        return rng() if self.seed is None else cpu.xp.random.default_rng(self.seed)

    def _empty(self, shape, dtype) -> Tensor:
        return empty(_shape(shape, type(self).__name__), dtype=_dtype(dtype))

    def get_config(self) -> dict:
        return {"seed": self.seed}


class RandomNormal(_Random):
    """Draws from N(mean, stddev^2)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None) -> Tensor:
        return _init.normal_(self._empty(shape, dtype), self.mean, self.stddev, self._generator())

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(_Random):
    """Draws from U(minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None) -> Tensor:
        return _init.uniform_(self._empty(shape, dtype), self.minval, self.maxval, self._generator())

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(_Random):
    """Draws from N(mean, stddev^2), redrawing values more than two standard deviations from the mean."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None) -> Tensor:
        m, s = self.mean, self.stddev
        return _init.trunc_normal_(self._empty(shape, dtype), m, s, m - 2 * s, m + 2 * s, self._generator())

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


#: std of a unit normal truncated to [-2, 2]: dividing by it keeps the truncated draw's variance at ``scale``
_TRUNC_STD = 0.87962566103423978


class VarianceScaling(_Random):
    """Variance ``scale / n`` with ``n`` the fan in, fan out or their mean (``mode``), in three distributions.

    ``distribution``: ``'truncated_normal'`` (``'normal'`` means it too), ``'untruncated_normal'`` or ``'uniform'``.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None):
        super().__init__(seed)
        if not scale > 0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in self._MODES:
            raise ValueError(f"Invalid `mode` argument: expected one of {list(self._MODES)}. Received: mode={mode}")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"Invalid `distribution` argument: expected one of {list(self._DISTRIBUTIONS)}. "
                             f"Received: distribution={distribution}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=None) -> Tensor:
        out = self._empty(shape, dtype)
        fan_in, fan_out = compute_fans(out.shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        g = self._generator()
        if self.distribution == "truncated_normal":
            std = math.sqrt(scale) / _TRUNC_STD
            return _init.trunc_normal_(out, 0.0, std, -2 * std, 2 * std, g)
        if self.distribution == "untruncated_normal":
            return _init.normal_(out, 0.0, math.sqrt(scale), g)
        limit = math.sqrt(3.0 * scale)
        return _init.uniform_(out, -limit, limit, g)

    def get_config(self) -> dict:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed arguments; its config is only the seed."""

    _preset: tuple = ()

    def __init__(self, seed: int | None = None):
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """U(-l, l) with ``l = sqrt(6 / (fan_in + fan_out))`` (Keras' default kernel initializer)."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Truncated normal with variance ``2 / (fan_in + fan_out)``."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Preset):
    """U(-l, l) with ``l = sqrt(6 / fan_in)`` (for ReLU layers)."""

    _preset = (2.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """Truncated normal with variance ``2 / fan_in`` (for ReLU layers)."""

    _preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """U(-l, l) with ``l = sqrt(3 / fan_in)`` (for SELU layers)."""

    _preset = (1.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """Truncated normal with variance ``1 / fan_in`` (for SELU layers)."""

    _preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(_Random):
    """A (semi-)orthogonal matrix times ``gain``; leading dims are flattened into rows (``(prod(shape[:-1]), out)``)."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None) -> Tensor:
        shape = _shape(shape, "Orthogonal")
        if len(shape) < 2:
            raise ValueError(f"The tensor to initialize must be at least two-dimensional. Received: shape={shape} "
                             f"of rank {len(shape)}.")
        flat = empty((math.prod(shape[:-1]), shape[-1]), dtype=_dtype(dtype))
        return _init.orthogonal_(flat, self.gain, self._generator()).reshape(shape)

    def get_config(self) -> dict:
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; non-square ones get ones on the main diagonal)."""

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None) -> Tensor:
        shape = _shape(shape, "Identity")
        if len(shape) != 2:
            raise ValueError(f"Identity matrix initializer can only be used for 2D matrices. Received: "
                             f"shape={shape} of rank {len(shape)}.")
        return eye(shape[0], shape[1], dtype=_dtype(dtype)) * self.gain

    def get_config(self) -> dict:
        return {"gain": self.gain}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_CLASSES = [Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform,
            GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal, Identity]
ALL_OBJECTS_DICT: dict = {c.__name__: c for c in _CLASSES}
ALL_OBJECTS_DICT.update({_snake(c.__name__): c for c in _CLASSES})
ALL_OBJECTS_DICT.update({"uniform": RandomUniform, "normal": RandomNormal, "one": Ones, "zero": Zeros,
                         "OrthogonalInitializer": Orthogonal, "IdentityInitializer": Identity})


def serialize(initializer: Initializer) -> dict:
    """Keras' dict form ``{'module', 'class_name', 'config', 'registered_name'}`` of an initializer."""
    if not isinstance(initializer, Initializer):
        raise ValueError(f"serialize: expected an ember.initializers.Initializer, got {initializer!r}")
    return {"module": "ember.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config(), "registered_name": None}


def deserialize(config, custom_objects: dict | None = None) -> Initializer:
    """An initializer from a name or :func:`serialize`'s dict; ``custom_objects`` adds user classes."""
    table = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    return from_identifier(config, table, "initializer", ", ".join(sorted(ALL_OBJECTS_DICT)))


def get(identifier):
    """Resolve an initializer: None, a name ('glorot_uniform', 'he_normal', 'zeros', ...), a dict, class or callable."""
    return resolve(identifier, deserialize, "initializer", ", ".join(sorted(ALL_OBJECTS_DICT)))
