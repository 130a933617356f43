"""Core Keras-style layers: ``Dense``, ``Activation``, ``Dropout``, ``Flatten``, ``Reshape``, ``Lambda``."""
from __future__ import annotations

from .. import activations as _activations
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..autograd.node import OpError
from .layer import Layer

__all__ = ["Dense", "Activation", "Dropout", "Flatten", "Reshape", "Lambda", "register_lambda"]


class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` over the last axis (Keras' ``Dense``); kernel is (in, units).

    >>> import ember
    >>> layer = ember.layers.Dense(4, activation="relu")
    >>> layer(ember.ones(2, 3)).shape, tuple(layer.kernel.shape)
    (ember.Size([2, 4]), (3, 4))
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer) if kernel_regularizer else None
        self.bias_regularizer = _regularizers.get(bias_regularizer) if bias_regularizer else None
        if self._batch_input_shape is not None:
            self._build_now()

    def _build_now(self):
        self.build(self._batch_input_shape)
        self.__dict__["built"] = True

    def build(self, input_shape):
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"Dense {self.name!r}: the last dim of the input must be known, got shape "
                             f"{tuple(input_shape)}")
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer)

    def call(self, inputs):
        from ..ops import matmul
        k = self.kernel
        if inputs.shape[-1] != k.shape[0]:
            raise OpError(f"Dense {self.name!r}: expected inputs with last dim {k.shape[0]}, got shape "
                          f"{tuple(inputs.shape)} ({inputs.dtype})")
        if inputs.dtype != k.dtype:
            inputs = inputs.to(k.dtype)
        out = matmul(inputs, k)
        if self.use_bias:
            out = out + self.bias
        return self.activation(out) if self.activation is not _activations.linear else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": _activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer)
                if self.kernel_regularizer else None,
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None}

    def extra_repr(self):
        return f"name={self.name!r}, units={self.units}"


class Activation(Layer):
    """Apply an activation by name or function: ``Activation('softmax')``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": _activations.serialize(self.activation)}


class Dropout(Layer):
    """Zero a fraction ``rate`` of inputs while training (scaled by 1/(1-rate)); identity at inference."""

    def __init__(self, rate: float, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=None):
        from ..nn.functional import dropout
        if not training or self.rate == 0:
            return inputs
        return dropout(inputs, self.rate, training=True)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


class Flatten(Layer):
    """Flatten all but the batch dim: (N, d1, d2, ...) → (N, d1·d2·...)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], -1) if inputs.ndim > 1 else inputs.reshape(-1, 1)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape all but the batch dim to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)

    def call(self, inputs):
        return inputs.reshape((inputs.shape[0],) + self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


_LAMBDAS: dict = {}


def register_lambda(name: str, fn) -> None:
    """Allow a ``Lambda`` layer's function to be loaded from a saved config under ``name``.

    Saved models never contain code; a Lambda is restored only from this registry.
    """
    _LAMBDAS[name] = fn


class Lambda(Layer):
    """Wrap an expression as a layer: ``Lambda(lambda x: x * 2)``.

    Its function is code, so it is saved by name only and reloads only if registered with
    :func:`register_lambda` (nothing is ever unpickled or evaluated from a file).
    """

    def __init__(self, function, output_shape=None, arguments: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(function, str):
            if function not in _LAMBDAS:
                raise ValueError(f"Lambda: function {function!r} is not registered; call "
                                 "ember.layers.register_lambda(name, fn) before loading (code is never loaded "
                                 "from a file)")
            function = _LAMBDAS[function]
        self.function = function
        self.arguments = dict(arguments or {})

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def get_config(self):
        name = next((k for k, v in _LAMBDAS.items() if v is self.function), None)
        if name is None:
            raise ValueError(f"Lambda {self.name!r}: its function is not registered, so it can't be saved; call "
                             "ember.layers.register_lambda(name, fn) first")
        return {**super().get_config(), "function": name, "arguments": self.arguments}
