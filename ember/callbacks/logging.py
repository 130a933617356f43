"""Callbacks that log or react to logs: ``CSVLogger``, ``TerminateOnNaN``, ``LambdaCallback``, ``ProgbarLogger``."""
from __future__ import annotations

import collections.abc
import csv
import math
import os

from .base import HOOKS, Callback

__all__ = ["CSVLogger", "TerminateOnNaN", "LambdaCallback", "ProgbarLogger"]


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the logs' keys (sorted), flushed after every row.

    Args:
        filename: the CSV file (its folder is made if missing).
        separator: the field separator.
        append: add to an existing file (the header is written only if the file is empty).

    >>> import os, tempfile
    >>> from ember.callbacks import CSVLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> cb = CSVLogger(path)
    >>> cb.on_train_begin()
    >>> cb.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.75})
    >>> cb.on_train_end()
    >>> print(open(path).read().strip())
    epoch,loss,val_loss
    0,0.5,0.75
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys: list | None = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        folder = os.path.dirname(os.path.abspath(self.filename))
        os.makedirs(folder, exist_ok=True)
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.csv_file is None or self.csv_file.closed:
            raise RuntimeError(f"CSVLogger({self.filename!r}): on_epoch_end before on_train_begin opened the file")
        if self.keys is None:
            self.keys = sorted(logs.keys())
            # with validation_freq > 1 the first epoch has no val_ keys: make room for them in the header
            if not any(key.startswith("val_") for key in self.keys):
                self.keys.extend(["val_" + k for k in self.keys])
        if self.writer is None:
            dialect = type("EmberCSVDialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and getattr(value, "ndim", 1) != 0:
        return f"\"[{', '.join(map(str, value))}]\""
    return value


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite.

    >>> from ember.callbacks import TerminateOnNaN
    >>> class Model:
    ...     stop_training = False
    >>> cb = TerminateOnNaN(); cb.set_model(Model())
    >>> cb.on_train_batch_end(3, {"loss": float("nan")})
    Batch 3: Invalid loss, terminating training
    >>> cb.model.stop_training
    True
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Epoch and batch hooks take ``(epoch_or_batch, logs)``; begin/end hooks take ``(logs)``. Any other hook
    (``on_test_begin``, ``on_predict_batch_end``, ...) can be given by name as a keyword.

    >>> from ember.callbacks import LambdaCallback
    >>> seen = []
    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])))
    >>> cb.on_epoch_end(0, {"loss": 1.5})
    >>> seen
    [(0, 1.5)]
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        unknown = sorted(k for k in kwargs if k not in HOOKS)
        if unknown:
            raise TypeError(f"LambdaCallback got unknown hook name(s) {unknown}; hooks are {list(HOOKS)}")
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be a function, got {type(fn).__name__}")
            setattr(self, name, fn)


class ProgbarLogger(Callback):
    """Show progress: ``verbose=1`` a live tqdm bar per epoch (and for ``evaluate``/``predict``), ``verbose=2``
    one line per epoch. Reads ``epochs``, ``steps`` and ``verbose`` from :meth:`set_params`.
    """

    def __init__(self):
        super().__init__()
        self.verbose, self.epochs, self.target = 1, 1, None
        self._bar = None
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _open(self, unit: str = "step") -> None:
        self._close()
        if self.verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is an extra
                raise ImportError("verbose=1 shows its progress bar with tqdm: pip install tqdm") from None
            self._bar = tqdm(total=self.target, unit=unit, leave=True, dynamic_ncols=True)

    def _update(self, logs) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(_format_logs(logs), refresh=False)

    def _close(self, logs=None) -> None:
        if self._bar is not None:
            if logs:
                self._bar.set_postfix(_format_logs(logs))
            self._bar.close()
            self._bar = None

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
        self._open()

    def on_train_batch_end(self, batch, logs=None):
        self._update(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._close(logs)
        elif self.verbose == 2:
            text = " - ".join(f"{k}: {v}" for k, v in _format_logs(logs).items())
            print(f"{self.target}/{self.target} - {text}" if self.target else text)

    def on_train_end(self, logs=None):
        self._close()
        self._in_fit = False

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._open()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._close(logs)

    def on_predict_begin(self, logs=None):
        self._open()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(None)

    def on_predict_end(self, logs=None):
        self._close()


def _format_logs(logs) -> dict:
    out = {}
    for key, value in (logs or {}).items():
        if isinstance(value, float):
            out[key] = f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"
        elif isinstance(value, int):
            out[key] = str(value)
    return out
