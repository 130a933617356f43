"""``ModelCheckpoint``: save the model during ``fit``, every epoch or only when it improves; resume from it.

A ``.safetensors`` checkpoint is the model's ``state_dict`` (load it with ``model.load_state_dict(ember.load(p))``)
plus a JSON sidecar ``<path>.json`` with the epoch reached, the logs and, unless ``save_weights_only``, the
model's config and the optimizer's settings; the optimizer's arrays (e.g. Adam moments) go to
``<path>.optimizer.safetensors``. :func:`load_checkpoint` puts all of it back and returns the sidecar, whose
``"epoch"`` is the ``initial_epoch`` to resume ``fit`` from. Paths ending in ``.ember``/``.keras`` are
written by ``model.save`` and ``.h5`` weights by ``model.save_weights``. Every file is written atomically.
"""
from __future__ import annotations

from ..utils.atomic import atomic_write

import json
import os
import warnings

import numpy as np

from ..serialization import load, save
from ..tensor import Tensor
from .base import Callback, is_scalar, monitor_op, pythonify_logs

__all__ = ["ModelCheckpoint", "load_checkpoint"]

FORMAT = "ember.checkpoint/1"
_ARCHIVE = (".ember", ".keras")


class ModelCheckpoint(Callback):
    """Save the model (or its weights) to ``filepath`` during training.

    Args:
        filepath: where to save; may hold ``str.format`` fields filled from the epoch (counted from 1)
            and the logs, e.g. ``"ckpt/{epoch:02d}-{val_loss:.2f}.safetensors"``. Missing folders are made.
        monitor: the logs entry that decides what "best" means.
        verbose: 1 prints a line on each save.
        save_best_only: save only when ``monitor`` improves on the best value seen.
        save_weights_only: save only the weights (no config, no optimizer state).
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save_freq: ``"epoch"``, or an int to save every that many training batches.
        initial_value_threshold: the value a save has to beat at first (with ``save_best_only``).

    >>> import ember, os, tempfile
    >>> from ember.callbacks import ModelCheckpoint
    >>> model = ember.nn.Linear(2, 1)
    >>> folder = tempfile.mkdtemp()
    >>> cb = ModelCheckpoint(os.path.join(folder, "w-{epoch:02d}.safetensors"), save_weights_only=True)
    >>> cb.set_model(model)
    >>> cb.on_epoch_end(0, {"val_loss": 0.5})
    >>> sorted(os.listdir(folder))
    ['w-01.safetensors', 'w-01.safetensors.json']
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq="epoch",
                 initial_value_threshold: float | None = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self.direction = monitor_op(monitor, mode, None, "ModelCheckpoint")
        self.mode = mode if mode in ("auto", "min", "max") else "auto"
        self.best = initial_value_threshold
        if self.best is None:
            self.best = np.inf if self.direction == "min" else -np.inf
        if save_freq != "epoch" and not (isinstance(save_freq, int) and not isinstance(save_freq, bool)
                                         and save_freq > 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected save_freq are 'epoch' or "
                             "a positive integer (a number of batches)")
        allowed = (".safetensors", ".h5") if save_weights_only else (".safetensors",) + _ARCHIVE
        if not self.filepath.endswith(allowed):
            what = "save_weights_only=True" if save_weights_only else "save_weights_only=False"
            raise ValueError(f"ModelCheckpoint: with {what} the filepath must end in {' or '.join(allowed)}. "
                             f"Received: filepath={self.filepath}")
        self._current_epoch = 0
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        added = batch + 1 if batch <= self._last_batch_seen else batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _get_file_path(self, epoch: int, batch: int | None, logs: dict) -> str:
        fields = dict(logs)
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**{**fields, "epoch": epoch + 1})
        except (KeyError, IndexError, ValueError) as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e!r}; '
                           f"available fields are epoch, {', '.join(fields)}") from None

    def _save_model(self, epoch: int, batch: int | None, logs) -> None:
        logs = pythonify_logs(logs)
        path = self._get_file_path(epoch, batch, logs)
        if os.path.isdir(path):
            raise IsADirectoryError(f"Please specify a non-directory filepath for ModelCheckpoint. Filepath used "
                                    f"is an existing directory: {path}")
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise OSError(f"ModelCheckpoint: cannot create the folder {folder!r} for checkpoint {path!r}: "
                          f"{e.strerror or e}") from None
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"ModelCheckpoint: the folder {folder!r} is not writable; "
                                  f"cannot save checkpoint {path!r}")
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            self._write(path, epoch, batch, logs)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available, skipping. "
                          f"Available metrics are: {','.join(logs.keys())}", stacklevel=2)
            return
        if not is_scalar(current):
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. Received: {current!r}. "
                          "Skipping.", stacklevel=2)
            return
        if (current < self.best) if self.direction == "min" else (current > self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
            self._write(path, epoch, batch, logs)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")

    def _write(self, path: str, epoch: int, batch: int | None, logs: dict) -> None:
        model = self.model
        if path.endswith(_ARCHIVE) or path.endswith(".h5"):
            method = "save_weights" if self.save_weights_only else "save"
            if not callable(getattr(model, method, None)):
                raise ValueError(f"ModelCheckpoint: {path!r} needs model.{method}(), which "
                                 f"{type(model).__name__} does not have; use a .safetensors filepath")
            getattr(model, method)(path)
            return
        save_checkpoint(model, path, epoch=epoch + 1, batch=batch, logs=logs,
                        full=not self.save_weights_only, best=self.best if self.save_best_only else None,
                        monitor=self.monitor)


def save_checkpoint(model, path: str, epoch: int, batch: int | None = None, logs: dict | None = None,
                    full: bool = True, best=None, monitor: str | None = None) -> None:
    """Write ``model``'s weights to ``path`` (safetensors) and the JSON sidecar (and optimizer arrays if ``full``).

    ``epoch`` is the number of epochs completed (the ``initial_epoch`` to resume from).
    """
    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(f"ModelCheckpoint: cannot save {type(model).__name__}: it has no state_dict()")
    info = {"format": FORMAT, "epoch": int(epoch), "batch": None if batch is None else int(batch) + 1,
            "weights": os.path.basename(path), "logs": _jsonable(logs or {})}
    if monitor is not None and best is not None:
        info.update(monitor=monitor, best=_jsonable(best))
    optimizer = getattr(model, "optimizer", None) if full else None
    opt_arrays = {}
    if full:
        config = _model_config(model)
        if config is not None:
            info["config"] = config
        if callable(getattr(optimizer, "state_dict", None)):
            opt_state, opt_arrays = _split_optimizer_state(optimizer.state_dict())
            info["optimizer"] = {"class": type(optimizer).__name__, **opt_state}
            if opt_arrays:
                info["optimizer"]["arrays"] = os.path.basename(path) + ".optimizer.safetensors"
    save(model.state_dict(), path, metadata={"format": FORMAT, "epoch": str(int(epoch))})
    if opt_arrays:
        save(opt_arrays, path + ".optimizer.safetensors")
    _write_json(path + ".json", info)


def load_checkpoint(model, path: str, optimizer=None) -> dict:
    """Restore weights (and the optimizer's state, if saved) from a ``.safetensors`` checkpoint.

    ``optimizer`` defaults to ``model.optimizer``. Returns the sidecar dict; ``info["epoch"]`` is the
    ``initial_epoch`` for ``fit`` to resume from.
    """
    sidecar = path + ".json"
    info = {}
    if os.path.exists(sidecar):
        try:
            with open(sidecar, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"load_checkpoint: {sidecar} is not a valid checkpoint sidecar ({e})") from None
        if info.get("format") != FORMAT:
            raise ValueError(f"load_checkpoint: {sidecar} has format {info.get('format')!r}, expected {FORMAT!r}")
    model.load_state_dict(load(path))
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    saved = info.get("optimizer")
    if saved is not None and optimizer is not None:
        arrays = load(os.path.join(os.path.dirname(path), saved["arrays"])) if saved.get("arrays") else {}
        state: dict = {}
        for index, entries in saved["state"].items():
            state[int(index)] = dict(entries)
        for key, tensor in arrays.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = tensor
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return info


def _split_optimizer_state(state_dict: dict):
    """An optimizer ``state_dict`` as JSON-able numbers plus a flat ``{"<param>.<name>": array}`` dict."""
    numbers, arrays = {}, {}
    for index, entries in state_dict.get("state", {}).items():
        numbers[str(index)] = {}
        for name, value in entries.items():
            plain = _jsonable(value)
            if plain is not None or value is None:
                numbers[str(index)][name] = plain
            elif isinstance(value, Tensor) or hasattr(value, "shape"):
                arrays[f"{index}.{name}"] = value
    groups = [_jsonable(g) for g in state_dict.get("param_groups", [])]
    return {"state": numbers, "param_groups": groups}, arrays


def _jsonable(value):
    """``value`` as JSON data (numbers, strings, lists, dicts); None for what JSON can't hold (arrays)."""
    if isinstance(value, Tensor):
        value = value.detach().data
    if hasattr(value, "shape") and hasattr(value, "item"):
        if getattr(value, "ndim", 1) != 0:
            return None
        value = value.item()
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return None


def _model_config(model):
    get_config = getattr(model, "get_config", None)
    if not callable(get_config):
        return None
    try:
        config = get_config()
    except (NotImplementedError, TypeError, ValueError):
        return None
    return {"class_name": type(model).__name__, "config": _jsonable(config)}


def _write_json(path: str, data: dict) -> None:
    with atomic_write(path, ".json") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
