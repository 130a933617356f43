"""Normalization modules: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, LayerNorm, GroupNorm, RMSNorm.

Arguments, parameter and buffer names, initialisation and train/eval behaviour are PyTorch's, so a
PyTorch ``state_dict`` loads: ``weight``/``bias`` (ones/zeros), ``running_mean``/``running_var``
(zeros/ones) and the int64 ``num_batches_tracked``.
"""
from __future__ import annotations

import warnings

from ... import dtypes as _dt
from ...autograd.grad_mode import _state
from ...creation import ones, tensor, zeros
from ...ops.normalization import batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from ..module import Module
from ..parameter import Parameter
from ...tensor import _wrap

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "GroupNorm", "RMSNorm"]


def _dtype(dtype):
    return _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()


def _shape_tuple(normalized_shape) -> tuple:
    if isinstance(normalized_shape, int):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def _affine(module, shape: tuple, affine: bool, bias: bool | None, dtype, device) -> None:
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape`` as PyTorch names them: None where switched
    off, and no ``bias`` at all when ``bias`` is None (RMSNorm)."""
    dt = _dtype(dtype)
    module.register_parameter("weight", Parameter(ones(*shape, dtype=dt, device=device)) if affine else None)
    if bias is not None:
        module.register_parameter("bias", Parameter(zeros(*shape, dtype=dt, device=device)) if affine and bias
                                  else None)


def _reset_affine(module) -> None:
    """Weight to 1 and bias to 0 (those that exist)."""
    for p, value in ((module.weight, 1), (getattr(module, "bias", None), 0)):
        if p is not None:
            p.data[...] = value
            p._bump()


class _NormBase(Module):
    """Shared state of batch and instance norm: affine parameters and running statistics."""

    _dims: tuple = ()          # accepted input ranks
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        if int(num_features) < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dt = _dtype(dtype)
        _affine(self, (self.num_features,), self.affine, bias, dtype, device)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(self.num_features, dtype=dt, device=device))
            self.register_buffer("running_var", ones(self.num_features, dtype=dt, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=_dt.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean to 0, running variance to 1, batch count to 0."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0
            for b in (self.running_mean, self.running_var, self.num_batches_tracked):
                b._bump()

    def reset_parameters(self) -> None:
        """Running statistics reset; weight to 1 and bias to 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def _check_input_dim(self, input) -> None:
        name = type(self).__name__
        nd = input.ndim
        if nd not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{name}: expected {want} input {self._layout}, got {nd}D input of shape "
                             f"{tuple(input.shape)}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input with {self.num_features} "
                             f"channels (dim 1), got {input.shape[1]} channels in input of shape "
                             f"{tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            if _state.tracer is not None:  # graph mode: count (and take the factor) before every run
                factor = self._traced_count(_state.tracer, input)
            else:
                self.num_batches_tracked.data[...] += 1
                self.num_batches_tracked._bump()
                if self.momentum is None:      # cumulative moving average
                    factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                                self.weight, self.bias, use_batch, factor, self.eps)


    def _traced_count(self, tracer, input):
        """Graph mode: a prologue counts the batch and writes this run's momentum into a 0-d tensor."""
        nbt = self.num_batches_tracked
        factor = _wrap(input.xp.zeros((), input.data.dtype))

        def count():
            nbt.data[...] += 1
            nbt._bump()
            factor.data[...] = self.momentum if self.momentum is not None else 1.0 / float(nbt.data)
        tracer.on_run(count)
        return factor


class BatchNorm1d(_BatchNorm):
    """Batch normalization over a 2-D (N, C) or 3-D (N, C, L) input (PyTorch's ``nn.BatchNorm1d``).

    Training normalizes with the batch's per-channel statistics and updates ``running_mean`` and
    ``running_var`` (``momentum=None``: a cumulative average); evaluation uses the running statistics.

    >>> import ember
    >>> bn = ember.nn.BatchNorm1d(3)
    >>> bn
    BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> bn(ember.randn(8, 3)).shape
    ember.Size([8, 3])
    """

    _dims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over a 4-D (N, C, H, W) input (PyTorch's ``nn.BatchNorm2d``).

    >>> import ember
    >>> bn = ember.nn.BatchNorm2d(3).eval()
    >>> bn(ember.ones(2, 3, 4, 4)).shape
    ember.Size([2, 3, 4, 4])
    """

    _dims = (4,)
    _layout = "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalization over a 5-D (N, C, D, H, W) input (PyTorch's ``nn.BatchNorm3d``).

    >>> import ember
    >>> ember.nn.BatchNorm3d(2)(ember.randn(2, 2, 3, 3, 3)).shape
    ember.Size([2, 2, 3, 3, 3])
    """

    _dims = (5,)
    _layout = "(N, C, D, H, W)"


class _InstanceNorm(_NormBase):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        self._check_input_dim(input)
        unbatched = input.ndim == self._dims[0]
        c = input.shape[0 if unbatched else 1]
        if c != self.num_features:
            msg = (f"{type(self).__name__}({self.num_features}): expected input with {self.num_features} channels "
                   f"(dim {0 if unbatched else 1}), got {c} channels in input of shape {tuple(input.shape)}")
            if self.affine or self.track_running_stats:
                raise ValueError(msg)
            warnings.warn(msg + "; num_features is not used because affine=False and track_running_stats=False",
                          stacklevel=2)
        x = input.unsqueeze(0) if unbatched else input
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                self.training or not self.track_running_stats,
                                self.momentum if self.momentum is not None else 0.0, self.eps)
        return y.squeeze(0) if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of a (N, C, L) or unbatched (C, L) input (PyTorch's ``nn.InstanceNorm1d``).

    Each channel of each sample is normalized over its length. Defaults: ``affine=False``,
    ``track_running_stats=False``.

    >>> import ember
    >>> ember.nn.InstanceNorm1d(3)(ember.randn(2, 3, 5)).shape
    ember.Size([2, 3, 5])
    """

    _dims = (2, 3)
    _layout = "(C, L) or (N, C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of a (N, C, H, W) or unbatched (C, H, W) input (PyTorch's ``nn.InstanceNorm2d``).

    >>> import ember
    >>> ember.nn.InstanceNorm2d(3, affine=True)
    InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=False)
    """

    _dims = (3, 4)
    _layout = "(C, H, W) or (N, C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of a (N, C, D, H, W) or unbatched (C, D, H, W) input (``nn.InstanceNorm3d``).

    >>> import ember
    >>> ember.nn.InstanceNorm3d(2)(ember.randn(1, 2, 3, 3, 3)).shape
    ember.Size([1, 2, 3, 3, 3])
    """

    _dims = (4, 5)
    _layout = "(C, D, H, W) or (N, C, D, H, W)"


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dims (PyTorch's ``nn.LayerNorm``).

    ``weight`` (ones) and ``bias`` (zeros, absent with ``bias=False``) have shape ``normalized_shape``
    when ``elementwise_affine``. The variance is the biased one, as PyTorch.

    >>> import ember
    >>> ln = ember.nn.LayerNorm(4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> ln(ember.randn(2, 3, 4)).shape
    ember.Size([2, 3, 4])
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        _affine(self, self.normalized_shape, self.elementwise_affine, bias, dtype, device)

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Group normalization of an (N, C, *) input (PyTorch's ``nn.GroupNorm``).

    The C channels form ``num_groups`` groups, each normalized per sample over its channels and
    spatial dims; ``weight``/``bias`` of shape (C,) then scale and shift each channel.

    >>> import ember
    >>> gn = ember.nn.GroupNorm(2, 4)
    >>> gn
    GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)
    >>> gn(ember.randn(3, 4, 5, 5)).shape
    ember.Size([3, 4, 5, 5])
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        if int(num_groups) < 1 or int(num_channels) % int(num_groups):
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps = float(eps)
        self.affine = bool(affine)
        _affine(self, (self.num_channels,), self.affine, bias, dtype, device)

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected an (N, C, *) input with "
                             f"C = {self.num_channels}, got input of shape {tuple(input.shape)}")
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing ``normalized_shape`` dims (PyTorch's ``nn.RMSNorm``).

    ``y = x / sqrt(mean(x**2) + eps) * weight``; ``eps=None`` means the input dtype's machine epsilon.

    >>> import ember
    >>> ember.nn.RMSNorm(4)
    RMSNorm((4,), eps=None, elementwise_affine=True)
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        _affine(self, self.normalized_shape, self.elementwise_affine, None, dtype, device)

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
