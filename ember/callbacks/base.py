"""``Callback``, ``CallbackList`` and ``History``: Keras 3's hooks into ``fit``/``evaluate``/``predict``.

A callback is told the model (:meth:`Callback.set_model`) and the run's settings (:meth:`Callback.set_params`,
e.g. ``{"epochs": 10, "steps": 32, "verbose": 1}``), then the training loop calls its hooks with a ``logs``
dict of plain numbers (``{"loss": 0.3, "val_loss": 0.4, ...}``). Callbacks may add entries to ``logs``
(``ReduceLROnPlateau`` adds ``"learning_rate"``) and set ``model.stop_training = True`` to end ``fit``.

>>> from ember.callbacks import CallbackList, History
>>> class Model:  # any object works as the model of a callback
...     pass
>>> model = Model()
>>> cbs = CallbackList([], add_history=True, model=model, epochs=2)
>>> cbs.on_train_begin()
>>> for epoch in range(2):
...     cbs.on_epoch_begin(epoch)
...     cbs.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
>>> cbs.on_train_end()
>>> model.history.history
{'loss': [1.0, 0.5]}
"""
from __future__ import annotations

import numbers
import warnings

from ..tensor import Tensor

__all__ = ["Callback", "CallbackList", "History"]

# hook names a callback can define (LambdaCallback checks its keyword arguments against these)
HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end",
         "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
         "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")


class Callback:
    """Base class of callbacks: every hook does nothing until a subclass overrides it.

    ``on_batch_begin``/``on_batch_end`` are Keras' older names for the training-batch hooks:
    the default ``on_train_batch_*`` call them, so overriding either works.
    """

    def __init__(self):
        self.params: dict | None = None
        self._model = None

    def set_params(self, params: dict) -> None:
        self.params = params

    def set_model(self, model) -> None:
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Alias of :meth:`on_train_batch_begin` kept for older callbacks."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Alias of :meth:`on_train_batch_end` kept for older callbacks."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """At the start of epoch ``epoch`` (counted from 0) of ``fit``."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """At the end of an epoch; ``logs`` has the epoch's training and validation metrics."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Before a batch of ``evaluate`` (or of the validation pass inside ``fit``)."""

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After a batch of ``evaluate``; ``logs`` has the running metrics."""

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Before a batch of ``predict``."""

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After a batch of ``predict``; ``logs`` has ``"outputs"``."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        """At the start of ``fit``."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """At the end of ``fit`` (also after early stopping)."""

    def on_test_begin(self, logs: dict | None = None) -> None:
        """At the start of ``evaluate`` or of a validation pass."""

    def on_test_end(self, logs: dict | None = None) -> None:
        """At the end of ``evaluate`` or of a validation pass."""

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """At the start of ``predict``."""

    def on_predict_end(self, logs: dict | None = None) -> None:
        """At the end of ``predict``."""


def _plain(value):
    """A log value as a plain Python number where it is a scalar tensor or array; other values unchanged."""
    if isinstance(value, Tensor) and value.ndim == 0:
        value = value.detach().data
    if not isinstance(value, Tensor) and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def pythonify_logs(logs: dict | None) -> dict:
    """``logs`` with scalar tensors turned into Python numbers, in place (so what callbacks add is seen)."""
    if logs is None:
        return {}
    if not isinstance(logs, dict):
        raise TypeError(f"callbacks: logs must be a dict of metric name -> value, got {type(logs).__name__}")
    for key, value in logs.items():
        logs[key] = _plain(value)
    return logs


class CallbackList(Callback):
    """Calls each hook on every callback in turn, sharing one ``logs`` dict (Keras' ``CallbackList``).

    Args:
        callbacks: a list of :class:`Callback` (or None).
        add_history: append a :class:`History` unless the list already has one; it becomes ``model.history``.
        add_progbar: append a :class:`~ember.callbacks.ProgbarLogger` unless the list already has one.
        model: the model to give every callback.
        **params: the run's settings (``epochs``, ``steps``, ``verbose``) given to every callback.
    """

    def __init__(self, callbacks=None, add_history: bool = False, add_progbar: bool = False, model=None,
                 **params):
        super().__init__()
        self.callbacks = list(_flatten(callbacks)) if callbacks else []
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be ember.callbacks.Callback instances, got {type(cb).__name__} "
                                f"({cb!r}); wrap plain functions with ember.callbacks.LambdaCallback")
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if add_progbar:
            from .logging import ProgbarLogger
            if not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
                self.callbacks.append(ProgbarLogger())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def set_params(self, params: dict) -> None:
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model) -> None:
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def _call(self, hook: str, *args, logs=None) -> None:
        logs = pythonify_logs(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is the list of epoch losses.

    ``fit`` adds one to every run and returns it; it is also ``model.history``.
    ``history.epoch`` lists the epochs recorded (counted from 0, after ``initial_epoch``).
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


def check_mode(mode: str, owner: str) -> str:
    """``mode`` if it is ``"auto"``, ``"min"`` or ``"max"``; otherwise a warning and ``"auto"``, as Keras."""
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner} mode {mode!r} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def monitor_op(monitor: str, mode: str, model, owner: str, strict: bool = False):
    """``"min"`` or ``"max"``: which way ``monitor`` improves, as Keras chooses it.

    ``mode="auto"``: losses go down; a compiled metric of that name that knows its direction
    (``_direction`` ``"up"``/``"down"``) decides; then names like accuracy/AUC/precision/recall/F1 go up
    and errors go down. Anything else is ``"min"``, or (``strict``, as Keras' EarlyStopping) an error.
    """
    mode = check_mode(mode, owner)
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss" or name.endswith("_loss"):
        return "min"
    for metric in _model_metrics(model):
        if getattr(metric, "name", None) == name and getattr(metric, "_direction", None) in ("up", "down"):
            return "max" if metric._direction == "up" else "min"
    lowered = name.lower()
    if any(word in lowered for word in _UP) or lowered.startswith("fmeasure"):
        return "max"
    if any(word in lowered for word in _DOWN) or not strict:
        return "min"
    raise ValueError(f"{owner} callback received monitor={monitor!r} but Ember isn't able to automatically "
                     "determine whether that metric should be maximized or minimized. Pass `mode='max'` in "
                     "order to use the highest metric value, or `mode='min'` to use the lowest value.")


_UP = ("acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "r2", "cosine_similarity", "true_positives",
       "true_negatives")
_DOWN = ("error", "mse", "mae", "mape", "msle", "crossentropy", "hinge", "huber", "kl_divergence", "poisson",
         "logcosh", "false_positives", "false_negatives")


def _model_metrics(model) -> list:
    try:
        metrics = list(getattr(model, "metrics", None) or [])
    except Exception:  # a model whose metrics property needs compile() first
        return []
    flat = []
    for m in metrics:
        flat.extend(getattr(m, "metrics", None) or [m])
    return flat


def improved(current: float, best, mode: str, min_delta: float) -> bool:
    """Whether ``current`` beats ``best`` by more than ``min_delta`` (any value beats ``best=None``)."""
    if best is None:
        return True
    if mode == "min":
        return current + min_delta < best
    return current - min_delta > best


def is_scalar(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
