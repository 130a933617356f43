"""``EarlyStopping``: stop ``fit`` when a monitored value stops improving (Keras 3 semantics)."""
from __future__ import annotations

import warnings

from ..tensor import Tensor
from .base import Callback, check_mode, improved, monitor_op

__all__ = ["EarlyStopping"]


def copy_weights(model) -> dict:
    """A copy of the model's ``state_dict`` arrays, which later training steps do not change."""
    if not hasattr(model, "state_dict"):
        raise TypeError(f"EarlyStopping(restore_best_weights=True) needs a model with state_dict(), "
                        f"got {type(model).__name__}")
    out = {}
    for key, value in model.state_dict().items():
        array = value.detach().data if isinstance(value, Tensor) else value
        out[key] = array.copy()
    return out


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: the logs entry to watch, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        min_delta: a change smaller than this (in absolute value) is not an improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a message when stopping and when restoring weights.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (losses down, accuracy-like metrics up).
        baseline: training stops unless the value beats this within ``patience`` epochs.
        restore_best_weights: at the end of training, put back the weights of the best epoch
            (whether or not training stopped early; ``fit``'s last epoch is kept if it was the best).
        start_from_epoch: epochs of warm-up before improvement is watched.

    >>> from ember.callbacks import EarlyStopping
    >>> class Model:
    ...     stop_training = False
    >>> es = EarlyStopping(monitor="val_loss", patience=1)
    >>> es.set_model(Model()); es.on_train_begin()
    >>> for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7]):
    ...     es.on_epoch_end(epoch, {"val_loss": loss})
    ...     if es.model.stop_training:
    ...         break
    >>> es.stopped_epoch, es.best, es.best_epoch
    (2, 0.5, 1)
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.mode = check_mode(mode, "EarlyStopping")
        self.direction: str | None = None     # "min"/"max", chosen at the first epoch end (metrics are known)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        # reset, so that one instance can serve several fit() calls
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0
        self._warned = False

    def on_epoch_end(self, epoch, logs=None):
        if self.direction is None:
            self.direction = monitor_op(self.monitor, self.mode, self.model, "EarlyStopping", strict=True)
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # nothing recorded yet: the current weights are the best so far
            self.best_weights = copy_weights(self.model)
            self.best_epoch = epoch
        self.wait += 1
        if improved(current, self.best, self.direction, self.min_delta):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = copy_weights(self.model)
            # restart the wait only when the value beats both the baseline and the previous best
            if self.baseline is None or improved(current, self.baseline, self.direction, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)

    def get_monitor_value(self, logs):
        """The monitored value from ``logs``; warns once (naming the available keys) when it is missing."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            if not self._warned:
                self._warned = True
                warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                              f"Available metrics are: {','.join(logs.keys())}", stacklevel=3)
            return None
        return float(value)
