"""Keras' loss functions: each returns the per-sample losses (the last axis reduced), differentiably.

The formulas follow Keras 3; where ``ember.nn.functional`` already has the formula (MSE, Huber,
binary and softmax cross-entropy) it is called rather than written again.

>>> import ember
>>> ember.losses.mean_squared_error([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
tensor([0.5000, 0.5000])
"""
from __future__ import annotations

import math
import warnings

from .. import dtypes as _dt
from .. import ops
from ..nn import functional as F
from ..tensor import Tensor, _wrap
from .loss import EPSILON, as_float, squeeze_or_expand_to_same_rank, to_tensor

__all__ = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "cosine_similarity", "huber", "log_cosh", "kl_divergence", "poisson",
           "hinge", "squared_hinge", "categorical_hinge", "binary_crossentropy", "binary_focal_crossentropy",
           "categorical_crossentropy", "sparse_categorical_crossentropy"]

_LOG2 = math.log(2.0)


def _prepare(who: str, y_true, y_pred, same_rank: bool = True):
    """Float tensors of one dtype and, after Keras' rank fix, one shape (else a ValueError naming both)."""
    y_pred = as_float(y_pred)
    y_true = to_tensor(y_true, y_pred.dtype)
    if same_rank:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"{who}: y_true and y_pred must have the same shape, got y_true of shape "
                         f"{tuple(y_true.shape)} and y_pred of shape {tuple(y_pred.shape)}")
    if y_pred.ndim == 0:
        raise ValueError(f"{who}: expected y_true and y_pred with at least one dimension (batch, ...), got scalars")
    return y_true, y_pred


def _l2_normalize(x: Tensor, axis: int) -> Tensor:
    """``x / ||x||`` along ``axis``; a zero vector stays zero (the norm is floored at EPSILON, as Keras)."""
    sq = ops.sum(x * x, axis, keepdim=True)
    return x * ops.rsqrt(ops.clamp(sq, min=EPSILON * EPSILON))


def mean_squared_error(y_true, y_pred) -> Tensor:
    """``mean((y_true - y_pred)^2, axis=-1)``."""
    y_true, y_pred = _prepare("mean_squared_error", y_true, y_pred)
    return ops.mean(F.mse_loss(y_pred, y_true, reduction="none"), -1)


def mean_absolute_error(y_true, y_pred) -> Tensor:
    """``mean(|y_true - y_pred|, axis=-1)``."""
    y_true, y_pred = _prepare("mean_absolute_error", y_true, y_pred)
    return ops.mean(F.l1_loss(y_pred, y_true, reduction="none"), -1)


def mean_absolute_percentage_error(y_true, y_pred) -> Tensor:
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7), axis=-1)``.

    >>> import ember
    >>> ember.losses.mean_absolute_percentage_error([[2.0, 4.0]], [[1.0, 4.0]])
    tensor([25.])
    """
    y_true, y_pred = _prepare("mean_absolute_percentage_error", y_true, y_pred)
    diff = ops.abs((y_true - y_pred) / ops.clamp(ops.abs(y_true), min=EPSILON))
    return 100.0 * ops.mean(diff, -1)


def mean_squared_logarithmic_error(y_true, y_pred) -> Tensor:
    """``mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2, axis=-1)``."""
    y_true, y_pred = _prepare("mean_squared_logarithmic_error", y_true, y_pred)
    d = ops.log(ops.clamp(y_pred, min=EPSILON) + 1.0) - ops.log(ops.clamp(y_true, min=EPSILON) + 1.0)
    return ops.mean(d * d, -1)


def cosine_similarity(y_true, y_pred, axis: int = -1) -> Tensor:
    """Negative cosine similarity along ``axis``: -1 for parallel vectors, 0 for orthogonal ones.

    >>> import ember
    >>> ember.losses.cosine_similarity([[1.0, 0.0]], [[2.0, 0.0]])
    tensor([-1.])
    """
    y_true, y_pred = _prepare("cosine_similarity", y_true, y_pred)
    return -ops.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis)


def huber(y_true, y_pred, delta: float = 1.0) -> Tensor:
    """``mean(0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta), axis=-1)`` with ``d = y_pred - y_true``."""
    y_true, y_pred = _prepare("huber", y_true, y_pred)
    return ops.mean(F.huber_loss(y_pred, y_true, reduction="none", delta=float(delta)), -1)


def log_cosh(y_true, y_pred) -> Tensor:
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``, computed as ``d + softplus(-2d) - log 2`` (no overflow)."""
    y_true, y_pred = _prepare("log_cosh", y_true, y_pred)
    d = y_pred - y_true
    return ops.mean(d + F.softplus(-2.0 * d) - _LOG2, -1)


def kl_divergence(y_true, y_pred) -> Tensor:
    """``sum(t * log(t / p), axis=-1)`` with both clipped to ``[1e-7, 1]``."""
    y_true, y_pred = _prepare("kl_divergence", y_true, y_pred)
    t = ops.clamp(y_true, EPSILON, 1.0)
    p = ops.clamp(y_pred, EPSILON, 1.0)
    return ops.sum(t * ops.log(t / p), -1)


def poisson(y_true, y_pred) -> Tensor:
    """``mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``."""
    y_true, y_pred = _prepare("poisson", y_true, y_pred)
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), -1)


def _hinge_labels(y_true: Tensor) -> Tensor:
    """Labels in {0, 1} become {-1, 1}, as Keras' hinge losses do; other labels pass unchanged."""
    d = y_true.data
    if bool(((d == 0) | (d == 1)).all()):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true, y_pred) -> Tensor:
    """``mean(max(1 - y_true * y_pred, 0), axis=-1)`` with labels -1/1 (0/1 converted)."""
    y_true, y_pred = _prepare("hinge", y_true, y_pred)
    return ops.mean(ops.clamp(1.0 - _hinge_labels(y_true) * y_pred, min=0.0), -1)


def squared_hinge(y_true, y_pred) -> Tensor:
    """``mean(max(1 - y_true * y_pred, 0)^2, axis=-1)`` with labels -1/1 (0/1 converted)."""
    y_true, y_pred = _prepare("squared_hinge", y_true, y_pred)
    h = ops.clamp(1.0 - _hinge_labels(y_true) * y_pred, min=0.0)
    return ops.mean(h * h, -1)


def categorical_hinge(y_true, y_pred) -> Tensor:
    """``max(max((1 - t) * p) - sum(t * p) + 1, 0)`` over the last axis, for one-hot ``t``."""
    y_true, y_pred = _prepare("categorical_hinge", y_true, y_pred)
    pos = ops.sum(y_true * y_pred, -1)
    neg = ops.amax((1.0 - y_true) * y_pred, -1)
    return ops.clamp(neg - pos + 1.0, min=0.0)


def _smooth_binary(y_true: Tensor, label_smoothing: float, who: str) -> Tensor:
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{who}: label_smoothing must be in [0, 1], got {label_smoothing}")
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


def _clipped_bce(y_true: Tensor, probs: Tensor) -> Tensor:
    """Elementwise binary cross-entropy of probabilities clipped to ``[1e-7, 1 - 1e-7]``."""
    return F.binary_cross_entropy(ops.clamp(probs, EPSILON, 1.0 - EPSILON), y_true, reduction="none")


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1) -> Tensor:
    """Binary cross-entropy, averaged over ``axis``; ``from_logits`` uses the exact sigmoid form.

    >>> import ember
    >>> ember.losses.binary_crossentropy([[1.0], [0.0]], [[0.0], [0.0]], from_logits=True)
    tensor([0.6931, 0.6931])
    """
    y_true, y_pred = _prepare("binary_crossentropy", y_true, y_pred)
    y_true = _smooth_binary(y_true, label_smoothing, "binary_crossentropy")
    if from_logits:
        bce = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        bce = _clipped_bce(y_true, y_pred)
    return ops.mean(bce, axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing: bool = False, alpha: float = 0.25,
                              gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                              axis: int = -1) -> Tensor:
    """Focal loss ``(1 - p_t)^gamma * bce``, optionally weighted ``alpha``/``1 - alpha``, averaged over ``axis``."""
    y_true, y_pred = _prepare("binary_focal_crossentropy", y_true, y_pred)
    y_true = _smooth_binary(y_true, label_smoothing, "binary_focal_crossentropy")
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    bce = _clipped_bce(y_true, y_pred)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = ops.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return ops.mean(focal, axis)


def _check_axis(axis, who: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"{who}: `axis` must be of type `int`, got {axis!r} of type {type(axis).__name__}")
    return axis


def _class_axis_first(x: Tensor, axis: int) -> Tensor:
    """Move the class axis to dim 1, where ``ember.nn.functional``'s cross-entropy expects it."""
    return x if x.ndim < 2 else ops.moveaxis(x, axis, 1)


def _log_probs(y_pred: Tensor, axis: int) -> Tensor:
    """``log`` of probabilities renormalised along ``axis`` and clipped to ``[1e-7, 1 - 1e-7]`` (Keras)."""
    p = y_pred / ops.sum(y_pred, axis, keepdim=True)
    return ops.log(ops.clamp(p, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1) -> Tensor:
    """Cross-entropy between one-hot (or soft) targets and probabilities or logits along ``axis``.

    >>> import ember
    >>> ember.losses.categorical_crossentropy([[0.0, 1.0]], [[0.25, 0.75]])
    tensor([0.2877])
    """
    _check_axis(axis, "categorical_crossentropy")
    y_true, y_pred = _prepare("categorical_crossentropy", y_true, y_pred, same_rank=False)
    if y_pred.shape[-1] == 1:
        warnings.warn(f"In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, num_classes) "
                      f"with num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}. Consider using "
                      f"'binary_crossentropy' if you only have 2 classes.", SyntaxWarning, stacklevel=2)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"categorical_crossentropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]
    if from_logits:
        return F.cross_entropy(_class_axis_first(y_pred, axis), _class_axis_first(y_true, axis), reduction="none")
    return -ops.sum(y_true * _log_probs(y_pred, axis), axis)


def _sparse_ce(y_true, y_pred, from_logits: bool, ignore_class, axis: int):
    """Per-sample sparse cross-entropy and, with ``ignore_class``, the boolean mask of counted samples."""
    who = "sparse_categorical_crossentropy"
    _check_axis(axis, who)
    y_pred = as_float(y_pred)
    y_true = to_tensor(y_true)
    if y_pred.ndim == 0:
        raise ValueError(f"{who}: y_pred must have a class axis, got a scalar")
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    axis = axis % y_pred.ndim
    expected = tuple(y_pred.shape[:axis]) + tuple(y_pred.shape[axis + 1:])
    if tuple(y_true.shape) != expected:
        raise ValueError(f"{who}: y_true of shape {tuple(y_true.shape)} does not match y_pred of shape "
                         f"{tuple(y_pred.shape)}: expected integer class indices of shape {expected}")
    target = y_true if y_true.data.dtype.kind in "iu" else y_true.to(_dt.int64)
    n = y_pred.shape[axis]
    t = target.data
    valid = None if ignore_class is None else t != int(ignore_class)
    bad = (t < 0) | (t >= n)
    if valid is not None:
        bad &= valid
    if t.size and bool(bad.any()):
        raise ValueError(f"{who}: class index {int(t[bad].reshape(-1)[0])} is out of range for y_pred with {n} "
                         f"classes (expected values in [0, {n - 1}]" +
                         ("" if ignore_class is None else f" or ignore_class={ignore_class}") + ")")
    ignore_index = -100 if ignore_class is None else int(ignore_class)
    if from_logits:
        loss = F.cross_entropy(_class_axis_first(y_pred, axis), target, reduction="none", ignore_index=ignore_index)
    else:
        loss = F.nll_loss(_class_axis_first(_log_probs(y_pred, axis), axis), target, reduction="none",
                          ignore_index=ignore_index)
    return loss, (None if valid is None else _wrap(valid))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, ignore_class: int | None = None,
                                    axis: int = -1) -> Tensor:
    """Cross-entropy between integer class indices and probabilities or logits along ``axis``.

    ``ignore_class`` gives those samples a zero loss (and, through a ``Loss``, leaves them out of the mean).

    >>> import ember
    >>> ember.losses.sparse_categorical_crossentropy([1, 0], [[0.25, 0.75], [0.5, 0.5]])
    tensor([0.2877, 0.6931])
    """
    loss, valid = _sparse_ce(y_true, y_pred, from_logits, ignore_class, axis)
    if valid is not None:
        loss._keras_mask = valid
    return loss
