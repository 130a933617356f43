"""``Layer``: the Keras-style building block — config in ``__init__``, weights in ``build``, math in ``call``.

Every Layer is an ``ember.nn.Module``, so Keras-style layers and PyTorch-style modules mix freely: a
Layer's weights are Parameters, it trains in a hand-written loop, and it appears in ``state_dict()``.
Weights are created on the first call, from the input's shape (lazy shapes), or at once when the layer is
given ``input_shape=``.
"""
from __future__ import annotations

import re
import threading

from .. import dtypes as _dt
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor
from .symbolic import KerasTensor, Node, flatten_structure, pack_structure

__all__ = ["Layer", "unique_name", "clear_session"]


class _Names(threading.local):
    def __init__(self):
        self.counts = {}


_names = _Names()


def unique_name(base: str) -> str:
    """``dense``, ``dense_1``, ``dense_2``... as Keras names layers (counted per thread)."""
    n = _names.counts.get(base, 0)
    _names.counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def clear_session() -> None:
    """Restart automatic layer names (``dense``, ``dense_1``...), as ``keras.backend.clear_session``."""
    _names.counts.clear()


def infer_output(fn, args, kwargs=None):
    """Symbolic outputs of ``fn(*args)`` for KerasTensor args: run it on stand-in zeros twice (unknown dims
    as 1, then as 2) without recording gradients; output dims that differ between the runs are unknown."""
    from ..autograd.grad_mode import no_grad
    leaves = flatten_structure(args)
    outs = []
    with no_grad():
        for fill in (1, 2):
            real = [t.stand_in(fill) if isinstance(t, KerasTensor) else t for t in leaves]
            outs.append(fn(*pack_structure(args, real), **(kwargs or {})))
    a, b = flatten_structure(outs[0]), flatten_structure(outs[1])
    kts = [KerasTensor(tuple(None if x != y else x for x, y in zip(ta.shape, tb.shape)), ta.dtype)
           for ta, tb in zip(a, b)]
    return pack_structure(outs[0], kts)


def symbolic_module_call(module, args, kwargs):
    """A PyTorch-style ``nn.Module`` called on KerasTensors: named like a layer, probed in eval mode and
    recorded as a node, so that any module works as a layer of a functional model."""
    if "name" not in module.__dict__:
        module.__dict__["name"] = unique_name(_snake(type(module).__name__))
    was = module.training
    module.train(False)
    try:
        result = infer_output(module, args, kwargs)
    finally:
        module.train(was)
    Node(module, args, kwargs, result)
    return result


def _snake(name: str) -> str:
    """Keras' default layer names: ``Conv2D`` → ``conv2d``, ``MaxPooling2D`` → ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Layer(Module):
    """Base class of Keras-style layers.

    Subclasses store plain arguments in ``__init__`` (returned by ``get_config``), create weights with
    :meth:`add_weight` in ``build(input_shape)`` and compute in ``call(inputs, training=None)``.
    ``training`` follows the layer's mode (``model.train()``/``eval()``; ``fit`` trains) unless passed.

    >>> import ember
    >>> class Scale(ember.layers.Layer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
    ...     def call(self, x):
    ...         return x * self.w
    >>> Scale()(ember.ones(2, 3)).shape
    ember.Size([2, 3])
    """

    def __init__(self, *, name: str | None = None, trainable: bool = True, dtype=None, input_shape=None,
                 input_dim: int | None = None, batch_size: int | None = None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        super().__init__()
        d = self.__dict__
        d["name"] = name or unique_name(_snake(type(self).__name__))
        d["_trainable"] = bool(trainable)
        d["built"] = False
        d["training"] = False              # Keras: layers infer unless told to train
        d["_dtype"] = _dt.as_dtype(dtype) if dtype is not None else None
        d["_regularized"] = []             # (weight, regularizer) pairs
        d["_activity_losses"] = []
        d["_nodes"] = []
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        d["_batch_input_shape"] = (batch_size,) + tuple(input_shape) if input_shape is not None else None

    # ------------------------------------------------------------ weights
    @property
    def dtype(self):
        return self._dtype or _dt.get_default_dtype()

    def add_weight(self, shape, initializer="glorot_uniform", name: str | None = None, dtype=None,
                   trainable: bool = True, regularizer=None) -> Parameter:
        """Create, register and return a weight of ``shape`` (Keras' ``add_weight``)."""
        from .. import initializers, regularizers
        name = name or f"weight_{len(self._parameters)}"
        value = initializers.get(initializer)(tuple(int(s) for s in shape), dtype=dtype or self.dtype)
        p = Parameter(value, requires_grad=bool(trainable) and self._trainable)
        p._keras_trainable = bool(trainable)
        self.register_parameter(name, p)
        if regularizer is not None:
            self._regularized.append((p, regularizers.get(regularizer)))
        return p

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (``False``) or unfreeze every weight of this layer and the layers inside it."""
        for m in self.modules():
            if isinstance(m, Layer):
                m.__dict__["_trainable"] = bool(value)
            for p in m._parameters.values():
                if p is not None:
                    p.requires_grad = bool(value) and getattr(p, "_keras_trainable", True)

    @property
    def weights(self) -> list:
        return list(self.parameters())

    @property
    def trainable_weights(self) -> list:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def non_trainable_weights(self) -> list:
        return [p for p in self.parameters() if not p.requires_grad]

    def get_weights(self) -> list:
        """The weights as NumPy arrays, in :attr:`weights` order (Keras' ``get_weights``)."""
        return [p.detach().numpy().copy() for p in self.weights]

    def set_weights(self, weights) -> None:
        """Copy NumPy arrays (or tensors) into :attr:`weights`, in order; count and shapes must match.

        >>> import ember, numpy as np
        >>> d = ember.layers.Dense(2, input_shape=(3,))
        >>> d.set_weights([np.ones((3, 2)), np.zeros(2)])
        >>> d(ember.ones(1, 3)).tolist()
        [[3.0, 3.0]]
        """
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"{self.name}: set_weights expected {len(own)} arrays "
                             f"({[tuple(p.shape) for p in own]}), got {len(weights)}")
        for p, w in zip(own, weights):
            value = w.detach().numpy() if isinstance(w, Tensor) else w
            if tuple(getattr(value, "shape", ())) != tuple(p.shape):
                raise ValueError(f"{self.name}: set_weights got an array of shape {tuple(value.shape)} for a "
                                 f"weight of shape {tuple(p.shape)}")
        for p, w in zip(own, weights):
            p.data[...] = p.xp.asarray(w.detach().numpy() if isinstance(w, Tensor) else w, dtype=p.data.dtype)
            p._bump()

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def losses(self) -> list:
        """Regularization penalties of this layer and its sublayers (scalar tensors with gradients)."""
        out = []
        for m in self.modules():
            if isinstance(m, Layer):
                out.extend(reg(w) for w, reg in m._regularized)
                out.extend(m._activity_losses)
        return out

    # ------------------------------------------------------------ calling
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch dim included, possibly ``None``)."""

    def call(self, *args, **kwargs):  # pragma: no cover - subclasses define it
        raise NotImplementedError(f"{type(self).__name__} must define call()")

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape``, found by running the layer on stand-in data."""
        kt = KerasTensor(input_shape, self.dtype)
        return self._symbolic_call((kt,), {}, record=False).shape

    def forward(self, *args, **kwargs):
        if "training" in kwargs and not self._accepts_training():
            kwargs.pop("training")
        elif "training" not in kwargs and self._accepts_training():
            kwargs["training"] = self.training
        return self.call(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        leaves = flatten_structure(args)
        if any(isinstance(t, KerasTensor) for t in leaves):
            return self._symbolic_call(args, kwargs)
        if not self.built:
            self._build_from(args[0] if len(args) == 1 else list(args))
        return super().__call__(*args, **kwargs)

    def _accepts_training(self) -> bool:
        import inspect
        cache = type(self).__dict__.get("_training_arg")
        if cache is None:
            cache = "training" in inspect.signature(type(self).call).parameters
            type.__setattr__(type(self), "_training_arg", cache)
        return cache

    def _build_from(self, inputs) -> None:
        shapes = [tuple(t.shape) for t in flatten_structure(inputs) if isinstance(t, (Tensor, KerasTensor))]
        self._check_input_dtype(inputs)
        self.build(shapes[0] if len(shapes) == 1 else shapes)
        self.__dict__["built"] = True

    def _check_input_dtype(self, inputs) -> None:
        pass

    def _symbolic_call(self, args, kwargs, record: bool = True):
        """Learn the output's shape and record a Node for the functional API.

        A layer with its own ``compute_output_shape`` gives the shape when some non-batch dims are
        unknown (stand-in data with those dims set to 1 or 2 would be smaller than most kernels);
        otherwise the layer runs on stand-in data.
        """
        x = args[0] if len(args) == 1 else None
        if (isinstance(x, KerasTensor) and not kwargs and any(s is None for s in x.shape[1:])
                and type(self).compute_output_shape is not Layer.compute_output_shape):
            if not self.built:
                self._build_from(x)
            params = list(self.parameters())
            result = KerasTensor(tuple(self.compute_output_shape(tuple(x.shape))),
                                 params[0].dtype if params else x.dtype)
            if record:
                self._nodes.append(Node(self, args, kwargs, result))
            return result
        was = self.training
        self.__dict__["training"] = False
        try:
            result = infer_output(self, args, kwargs)
        finally:
            self.__dict__["training"] = was
        if record:
            self._nodes.append(Node(self, args, kwargs, result))
        return result

    # ------------------------------------------------------------ config
    def get_config(self) -> dict:
        """Plain, JSON-able arguments that rebuild this layer with :meth:`from_config`."""
        cfg = {"name": self.name, "trainable": self._trainable}
        if self._dtype is not None:
            cfg["dtype"] = self._dtype.name
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        bis = config.pop("batch_input_shape", None)
        if bis is not None:
            config["batch_size"], config["input_shape"] = bis[0], tuple(bis[1:])
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
