"""Learning-rate callbacks: ``ReduceLROnPlateau`` and ``LearningRateScheduler`` (Keras 3 semantics).

Both act on every param group's ``"lr"`` of ``model.optimizer`` (an ``ember.optim`` optimizer), and
both add the learning rate (of the first group) to the epoch's logs as ``"learning_rate"``.
"""
from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np

from .base import Callback, check_mode, improved, monitor_op

__all__ = ["ReduceLROnPlateau", "LearningRateScheduler"]


def param_groups(model, owner: str) -> list:
    """``model.optimizer.param_groups``, or a clear error when the model has no optimizer yet."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(f"{owner}: the model has no optimizer; call model.compile(optimizer=...) before fit()")
    groups = getattr(optimizer, "param_groups", None)
    if not groups or not all(isinstance(g, dict) and "lr" in g for g in groups):
        raise ValueError(f"{owner}: model.optimizer ({type(optimizer).__name__}) has no param_groups with an "
                         "'lr' entry; use an ember.optim optimizer")
    return groups


def current_lr(model, owner: str) -> float:
    return float(param_groups(model, owner)[0]["lr"])


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has stopped improving for ``patience`` epochs.

    Args:
        monitor: the logs entry to watch.
        factor: the new rate is ``lr * factor`` (must be < 1).
        patience: epochs without improvement before the rate is reduced.
        verbose: 1 prints a message on each reduction.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (from the monitored name).
        min_delta: a change smaller than this is not an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate never goes below this.

    >>> import ember
    >>> from ember.callbacks import ReduceLROnPlateau
    >>> class Model:
    ...     optimizer = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=0.1)
    >>> cb = ReduceLROnPlateau(patience=1, factor=0.5)
    >>> cb.set_model(Model()); cb.on_train_begin()
    >>> for epoch, loss in enumerate([1.0, 1.0, 1.0]):
    ...     cb.on_epoch_end(epoch, {"val_loss": loss})
    >>> Model.optimizer.param_groups[0]["lr"]
    0.025
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected keyword argument(s) {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.mode = check_mode(mode, "ReduceLROnPlateau")
        self._reset()

    def _reset(self) -> None:
        self.direction = monitor_op(self.monitor, self.mode, None, "ReduceLROnPlateau")
        self.best = np.inf if self.direction == "min" else -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = current_lr(self.model, "ReduceLROnPlateau")
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs.keys())}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if improved(float(current), self.best, self.direction, self.min_delta):
            self.best = float(current)
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                reduced = False
                for group in param_groups(self.model, "ReduceLROnPlateau"):
                    old_lr = float(group["lr"])
                    if old_lr > np.float32(self.min_lr):
                        group["lr"] = max(old_lr * self.factor, self.min_lr)
                        reduced = True
                if reduced:
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                              f"{current_lr(self.model, 'ReduceLROnPlateau')}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to ``schedule(epoch, lr)``.

    ``schedule`` takes the epoch (from 0) and the current rate and returns the new rate; a function of the
    epoch alone also works (Keras' older form). Each param group is scheduled from its own rate.

    >>> import ember
    >>> from ember.callbacks import LearningRateScheduler
    >>> class Model:
    ...     optimizer = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=0.1)
    >>> cb = LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr / 2)
    >>> cb.set_model(Model())
    >>> for epoch in range(4):
    ...     cb.on_epoch_begin(epoch)
    >>> Model.optimizer.param_groups[0]["lr"]
    0.025
    """

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        for group in param_groups(self.model, "LearningRateScheduler"):
            lr = self.schedule(epoch, float(group["lr"])) if self._takes_lr else self.schedule(epoch)
            if hasattr(lr, "item") and getattr(lr, "ndim", 1) == 0:
                lr = lr.item()
            if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
                raise ValueError(f"LearningRateScheduler: the output of the `schedule` function should be a "
                                 f"float. Got: {lr!r} for epoch {epoch}")
            group["lr"] = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{current_lr(self.model, 'LearningRateScheduler')}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_lr(self.model, "LearningRateScheduler")


def _accepts_two_args(fn) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: assume the (epoch, lr) form
        return True
    positional = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
