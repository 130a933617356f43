"""Keras-style normalization layers: BatchNormalization, LayerNormalization, GroupNormalization.

Channels-last by default (``axis=-1``), Keras' argument names and defaults, weights named ``gamma``,
``beta``, ``moving_mean`` and ``moving_variance`` (the moving statistics are non-trainable weights, so
they are saved and loaded with the others). They share the fused normalization op of
``ember.nn.functional.batch_norm``/``layer_norm``/``group_norm``.
"""
from __future__ import annotations

from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..autograd.node import OpError
from ..tensor import Tensor
from ..ops.normalization import (_batch_moment, _channel_affine, _channel_norm, _normalize, _prod,
                                 _update_running, group_norm)
from .layer import Layer

__all__ = ["BatchNormalization", "LayerNormalization", "GroupNormalization"]


def _axis(axis: int, ndim: int, layer) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{type(layer).__name__} {layer.name!r}: axis={axis} is out of range for inputs of rank "
                         f"{ndim}")
    return axis % ndim


def _ser_reg(reg):
    return _regularizers.serialize(reg) if reg is not None else None


class _Affine(Layer):
    """Shared arguments of the normalization layers: gamma/beta initializers and regularizers.

    ``beta_constraint``/``gamma_constraint`` are Keras' arguments, kept in the config; Ember has no
    constraints yet, so only ``None`` is accepted.
    """

    def __init__(self, center=True, scale=True, beta_initializer="zeros", gamma_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("beta_constraint", beta_constraint), ("gamma_constraint", gamma_constraint)):
            if v is not None:
                raise NotImplementedError(f"{type(self).__name__}: {arg} is not supported in Ember yet (got {v!r})")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer) if beta_regularizer else None
        self.gamma_regularizer = _regularizers.get(gamma_regularizer) if gamma_regularizer else None

    def _add_affine(self, shape, scale: bool, center: bool) -> None:
        self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma",
                                     regularizer=self.gamma_regularizer) if scale else None
        self.beta = self.add_weight(shape, self.beta_initializer, "beta",
                                    regularizer=self.beta_regularizer) if center else None

    def _cast(self, inputs):
        ref = self.gamma if self.gamma is not None else self.beta
        if ref is not None and inputs.dtype != ref.dtype:
            return inputs.to(ref.dtype)
        return inputs

    def _check_dim(self, inputs, axis: int, size: int) -> None:
        if inputs.shape[axis] != size:
            raise OpError(f"{type(self).__name__} {self.name!r}: built for inputs with {size} features on axis "
                          f"{self.axis}, got inputs of shape {tuple(inputs.shape)}")

    def get_config(self):
        return {**super().get_config(), "center": self.center, "scale": self.scale,
                "beta_initializer": _initializers.serialize(self.beta_initializer),
                "gamma_initializer": _initializers.serialize(self.gamma_initializer),
                "beta_regularizer": _ser_reg(self.beta_regularizer),
                "gamma_regularizer": _ser_reg(self.gamma_regularizer), "beta_constraint": None,
                "gamma_constraint": None}


class BatchNormalization(_Affine):
    """Normalize each feature (``axis``) with batch statistics while training, moving ones at inference.

    Keras' ``BatchNormalization``: training (``fit``, or ``training=True``) returns
    ``gamma * (x - mean(x)) / sqrt(var(x) + epsilon) + beta`` over all axes but ``axis`` and updates
    ``moving_mean = moving_mean * momentum + mean * (1 - momentum)`` (likewise ``moving_variance`` with
    the batch's biased variance, as Keras 3); inference uses the moving statistics. A layer with
    ``trainable=False`` always runs in inference mode, as in Keras.

    ``call(inputs, training=None, mask=None)``: ``mask`` (the input's shape without ``axis``, e.g. (B, T)
    for a (B, T, C) sequence; defaults to the input's Keras mask, as from ``Embedding(mask_zero=True)``)
    makes the training statistics Keras 3's weighted moments over the unmasked positions only,
    ``mean = sum(m * x) / (sum(m) + 1e-7)`` and ``var = sum(m * (m * x - mean)**2) / (sum(m) + 1e-7)``,
    for both the output and the moving statistics; every position (masked ones too) is then normalized
    with them, and the mask is passed on to the output. The masked path is built from differentiable Ember
    ops (memory: a few input-sized temporaries); without a mask the fused op runs (memory: the output plus
    a saved normalized input).

    ``synchronized`` (Keras 3: synchronize the statistics across devices under a distribution strategy)
    is accepted and kept in the config; on a single device, Ember's only mode for now, it changes nothing.

    >>> import ember
    >>> bn = ember.layers.BatchNormalization()
    >>> x = ember.tensor([[1., 10.], [3., 30.]])
    >>> bn(x, training=True)
    tensor([[-0.9995, -1.0000],
            [ 0.9995,  1.0000]], grad_fn=<NormalizeBackward>)
    >>> bn.moving_mean
    Parameter containing:
    tensor([0.0200, 0.2000])
    >>> bn(x).shape          # inference: normalized with the moving statistics
    ember.Size([2, 2])
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, synchronized: bool = False,
                 **kwargs):
        super().__init__(center, scale, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                         beta_constraint, gamma_constraint, **kwargs)
        self.axis = int(axis)
        self.synchronized = bool(synchronized)      # single device: nothing to synchronize
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)
            self.__dict__["built"] = True

    def build(self, input_shape):
        a = _axis(self.axis, len(input_shape), self)
        if input_shape[a] is None:
            raise ValueError(f"BatchNormalization {self.name!r}: axis {self.axis} of the input must be known, got "
                             f"shape {tuple(input_shape)}")
        shape = (int(input_shape[a]),)
        self._add_affine(shape, self.scale, self.center)
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, "moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer, "moving_variance",
                                               trainable=False)

    def call(self, inputs, training=None, mask=None):
        if mask is None:
            mask = getattr(inputs, "_keras_mask", None)
        inputs = self._cast(inputs)
        nd = inputs.ndim
        a = _axis(self.axis, nd, self)
        c = self.moving_mean.shape[0]
        self._check_dim(inputs, a, c)
        if mask is not None:
            mask = self._mask(inputs, mask, a)
        if training and self.trainable:
            if mask is not None:
                y = self._masked_call(inputs, mask, a)
            else:
                stats = {}
                y = _channel_norm(inputs, self.gamma, self.beta, a, self.epsilon, stats)
                _update_running(self.moving_mean, stats["mean"], 1.0 - self.momentum,
                                lambda: _batch_moment(inputs, a, "mean"))
                _update_running(self.moving_variance, stats["var"], 1.0 - self.momentum,
                                lambda: _batch_moment(inputs, a, "var"))
        else:           # the moving statistics (the mask does not change them)
            scale = (self.moving_variance.detach() + self.epsilon).rsqrt()
            if self.gamma is not None:
                scale = scale * self.gamma
            shift = -self.moving_mean.detach() * scale
            if self.beta is not None:
                shift = shift + self.beta
            y = _channel_affine(inputs, scale, shift, a)
        if mask is not None:
            y._keras_mask = mask        # passed on to the next layer, as Keras does
        return y

    def _mask(self, inputs, mask, a: int) -> Tensor:
        """The mask as a (no-grad) Tensor of the input's shape without ``axis``, else a clear error."""
        m = mask if isinstance(mask, Tensor) else Tensor(inputs.xp.asarray(getattr(mask, "data", mask)))
        want = tuple(s for i, s in enumerate(inputs.shape) if i != a)
        if tuple(m.shape) != want:
            raise ValueError(f"BatchNormalization {self.name!r}: the mask must have the input's shape without axis "
                             f"{self.axis}, i.e. {want} for inputs of shape {tuple(inputs.shape)}; got mask.shape="
                             f"{tuple(m.shape)}")
        return m

    def _masked_call(self, x, mask, a: int):
        """Training-mode batch normalization with Keras 3's weighted moments over the unmasked positions,
        from differentiable Ember ops (see the class docstring); updates the moving statistics."""
        nd = x.ndim
        bshape = tuple(x.shape[a] if i == a else 1 for i in range(nd))
        axes = tuple(i for i in range(nd) if i != a)
        m = mask.detach().to(x.dtype).unsqueeze(a)                   # 1 where a position counts
        wx = x * m
        count = m.sum(dim=axes, keepdim=True) + 1e-7                 # + Keras' backend epsilon, as Keras 3
        mean = wx.sum(dim=axes, keepdim=True) / count
        d = wx - mean
        var = (m * (d * d)).sum(dim=axes, keepdim=True) / count
        _update_running(self.moving_mean, mean.data.reshape(-1), 1.0 - self.momentum, lambda: mean.detach().reshape(-1))
        _update_running(self.moving_variance, var.data.reshape(-1), 1.0 - self.momentum,
                        lambda: var.detach().reshape(-1))
        y = (x - mean) * (var + self.epsilon).rsqrt()
        if self.gamma is not None:
            y = y * self.gamma.reshape(bshape)
        if self.beta is not None:
            y = y + self.beta.reshape(bshape)
        return y

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": _initializers.serialize(self.moving_variance_initializer),
                "synchronized": self.synchronized}

    def extra_repr(self):
        return f"name={self.name!r}, axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}"


class LayerNormalization(_Affine):
    """Normalize each sample over ``axis`` (an int or a list of ints), as Keras' ``LayerNormalization``.

    ``gamma``/``beta`` have the shape of the normalized axes. ``rms_scaling=True`` divides by the root
    mean square instead (no centering, no ``beta``).

    >>> import ember
    >>> ln = ember.layers.LayerNormalization()
    >>> ln(ember.tensor([[1., 2., 3.]]))
    tensor([[-1.2238,  0.0000,  1.2238]], grad_fn=<NormalizeBackward>)
    """

    def __init__(self, axis=-1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(center, scale, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                         beta_constraint, gamma_constraint, **kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, int):
            self.axis = int(axis)
        else:
            raise TypeError(f"LayerNormalization: expected an int or a list/tuple of ints for axis, got {axis!r}")
        self.epsilon = float(epsilon)
        self.rms_scaling = bool(rms_scaling)
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)
            self.__dict__["built"] = True

    def _axes(self, ndim: int) -> list:
        return [_axis(a, ndim, self) for a in (self.axis if isinstance(self.axis, list) else [self.axis])]

    def build(self, input_shape):
        axes = self._axes(len(input_shape))
        if any(input_shape[a] is None for a in axes):
            raise ValueError(f"LayerNormalization {self.name!r}: the normalized axes {self.axis} of the input must "
                             f"be known, got shape {tuple(input_shape)}")
        shape = tuple(int(input_shape[a]) for a in axes)
        self._add_affine(shape, self.scale or self.rms_scaling, self.center and not self.rms_scaling)

    def call(self, inputs):
        inputs = self._cast(inputs)
        nd = inputs.ndim
        axes = self._axes(nd)
        shape = tuple(inputs.shape)
        if any(shape[a] != s for a, s in zip(axes, self._weight_shape(axes, shape))):
            raise OpError(f"LayerNormalization {self.name!r}: built for normalized axes {self.axis} of sizes "
                          f"{self._weight_shape(axes, shape)}, got inputs of shape {shape}")
        if self.rms_scaling:
            bshape = tuple(shape[i] if i in axes else 1 for i in range(nd))
            y = inputs * ((inputs * inputs).mean(dim=tuple(axes), keepdim=True) + self.epsilon).rsqrt()
            return y * self.gamma.reshape(bshape)
        axes = sorted(axes)
        rest = [i for i in range(nd) if i not in axes]
        x = inputs if rest == list(range(len(rest))) else inputs.permute(rest + axes)   # normalized axes last
        k = _prod(shape[i] for i in axes)
        y = _normalize(x, self.gamma, self.beta, (x.numel() // max(k, 1), 1, k), True, 1, self.epsilon)
        if x is inputs:
            return y
        inverse = sorted(range(nd), key=(rest + axes).__getitem__)
        return y.permute(inverse)

    def _weight_shape(self, axes, shape) -> tuple:
        w = self.gamma if self.gamma is not None else self.beta
        return tuple(w.shape) if w is not None else tuple(shape[a] for a in axes)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "rms_scaling": self.rms_scaling}


class GroupNormalization(_Affine):
    """Normalize groups of features of each sample, as Keras' ``GroupNormalization``.

    The ``axis`` features form ``groups`` groups (``groups=-1``: one per feature, i.e. instance
    normalization); each sample's group is normalized over its features and all other non-batch axes.

    >>> import ember
    >>> gn = ember.layers.GroupNormalization(groups=2)
    >>> gn(ember.tensor([[1., 3., 0., 4.]]))
    tensor([[-0.9995,  0.9995, -0.9999,  0.9999]], grad_fn=<NormalizeBackward>)
    """

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(center, scale, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                         beta_constraint, gamma_constraint, **kwargs)
        self.groups, self.axis, self.epsilon = int(groups), int(axis), float(epsilon)
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)
            self.__dict__["built"] = True

    def build(self, input_shape):
        a = _axis(self.axis, len(input_shape), self)
        dim = input_shape[a]
        if dim is None:
            raise ValueError(f"GroupNormalization {self.name!r}: axis {self.axis} of the input should have a defined "
                             f"dimension, got shape {tuple(input_shape)}")
        if self.groups == -1:
            self.groups = int(dim)
        if not 0 < self.groups <= dim:
            raise ValueError(f"GroupNormalization {self.name!r}: number of groups ({self.groups}) cannot be more than "
                             f"the number of channels ({dim})")
        if dim % self.groups:
            raise ValueError(f"GroupNormalization {self.name!r}: the number of channels ({dim}) must be a multiple "
                             f"of the number of groups ({self.groups})")
        self._add_affine((int(dim),), self.scale, self.center)
        self.__dict__["_channels"] = int(dim)

    def call(self, inputs):
        inputs = self._cast(inputs)
        nd = inputs.ndim
        a = _axis(self.axis, nd, self)
        if a == 0:
            raise ValueError(f"GroupNormalization {self.name!r}: axis must not be the batch axis 0")
        c, g = self._channels, self.groups
        self._check_dim(inputs, a, c)
        x = inputs if a == 1 else inputs.movedim(a, 1)          # channels first for group_norm
        y = group_norm(x, g, self.gamma, self.beta, self.epsilon)
        return y if a == 1 else y.movedim(1, a)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon}
