"""``ember train``: train a Keras-style MLP on a bundled data set and keep everything about the run in one folder.

``python -m ember train`` with no arguments trains the default model on the digits data (seed 0) with a
progress bar, early stopping (best weights restored) and a checkpoint, prints the test accuracy and writes
``runs/<timestamp>/``: ``model.ember`` (or ``model.safetensors`` until ``model.save`` exists), ``log.csv``,
``config.yaml``, ``results.json``, and, when those features are installed, ``history.png`` and TensorBoard
event files under ``tensorboard/``. A YAML file (``--config``) or flags change the model, data, optimizer and
schedule; flags win over the file.
"""
from __future__ import annotations

from .utils.atomic import atomic_write

import argparse
import datetime
import json
import os
import sys

import numpy  # data preparation only: standardizing features

DEFAULTS = {
    "model": {"hidden": [128, 64], "dropout": 0.1},
    "data": "digits",
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "epochs": 100,
    "batch_size": 32,
    "patience": 20,
    "validation_split": 0.1,
    "test_size": 0.2,
    "seed": 0,
    "out": None,
}
DATASETS = ("digits", "breast_cancer")

EPILOG = """\
config file (YAML, every key optional; defaults shown):
  model: {hidden: [128, 64], dropout: 0.1}    # hidden Dense(relu) widths; Dropout rate after each
  data: digits                # digits (8x8 images, 10 classes) or breast_cancer (30 features, 2 classes)
  optimizer: adam             # adam, sgd, rmsprop, adamw, adagrad
  learning_rate: 0.001
  epochs: 100                 # the most; EarlyStopping(patience) stops sooner
  batch_size: 32
  patience: 20
  validation_split: 0.1       # of the training part, for early stopping and the checkpoint
  test_size: 0.2              # held out, stratified, for the reported test accuracy
  seed: 0
  out: null                   # run folder; default runs/<timestamp>

example:  python -m ember train --config run.yaml --epochs 20 --out runs/first
"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ember", description="Ember command line.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    tr = sub.add_parser("train", help="train a model on a bundled data set and write a run folder",
                        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--config", metavar="FILE", help="YAML file with any of the keys below")
    tr.add_argument("--out", metavar="DIR", help="run folder (default runs/<timestamp>)")
    tr.add_argument("--data", choices=DATASETS, help="bundled data set (default digits)")
    tr.add_argument("--epochs", type=int, help="most epochs to train (default 100)")
    tr.add_argument("--batch-size", dest="batch_size", type=int, help="default 32")
    tr.add_argument("--optimizer", help="adam, sgd, rmsprop, adamw or adagrad (default adam)")
    tr.add_argument("--learning-rate", dest="learning_rate", type=float, help="default 0.001")
    tr.add_argument("--seed", type=int, help="seed for the split, the initial weights and dropout (default 0)")
    tr.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                    help="1: a progress bar per epoch (default), 2: a line per epoch, 0: quiet")
    return ap


def load_config(path: str | None, overrides: dict) -> dict:
    """The defaults, updated from the YAML file at ``path`` and then by the non-None ``overrides``."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    if path:
        import yaml
        try:
            with open(path) as f:
                loaded = yaml.safe_load(f) or {}
        except OSError as e:
            raise SystemExit(f"ember train: cannot read config file {path!r}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise SystemExit(f"ember train: config file {path!r} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise SystemExit(f"ember train: config file {path!r} must hold a mapping of keys, "
                             f"got {type(loaded).__name__}")
        unknown = sorted(set(loaded) - set(DEFAULTS))
        if unknown:
            raise SystemExit(f"ember train: unknown key(s) {unknown} in {path!r}; known keys: {sorted(DEFAULTS)}")
        model = loaded.pop("model", None) or {}
        if not isinstance(model, dict) or set(model) - {"hidden", "dropout"}:
            raise SystemExit(f"ember train: 'model' in {path!r} must be a mapping with keys 'hidden' "
                             f"(list of widths) and 'dropout', got {model!r}")
        config["model"].update(model)
        config.update(loaded)
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["data"] not in DATASETS:
        raise SystemExit(f"ember train: unknown data {config['data']!r}; choose one of {list(DATASETS)}")
    hidden = config["model"]["hidden"]
    if not isinstance(hidden, list) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise SystemExit(f"ember train: model.hidden must be a list of positive ints, got {hidden!r}")
    return config


def load_data(name: str, test_size: float, seed: int):
    """Stratified train/test split as float32/int64 arrays; features standardized with the training part's stats."""
    from .data import datasets
    X, y = (datasets.load_digits if name == "digits" else datasets.load_breast_cancer)(as_numpy=True)
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, test_size=test_size, seed=seed,
                                                                 stratify=True)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + numpy.float32(1e-7)    # + eps: constant pixels
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    return X_train, X_test, y_train, y_test


def build_model(n_features: int, n_classes: int, hidden: list, dropout: float):
    """``Input → [Dense(relu) → Dropout] * len(hidden) → Dense(softmax)`` as an ``ember.Sequential``."""
    from . import layers
    from .models import Sequential
    stack = [layers.Input((n_features,))]
    for units in hidden:
        stack.append(layers.Dense(units, activation="relu"))
        if dropout:
            stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return Sequential(stack, name="ember_train_mlp")


def _run_folder(out: str | None) -> str:
    if out is None:
        base = os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        out, i = base, 1
        while os.path.exists(out):
            out, i = f"{base}-{i}", i + 1
    os.makedirs(out, exist_ok=True)
    return out


def _write_text(path: str, text: str) -> None:
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def _optional(module: str, attr: str):
    """``ember.<module>.<attr>`` if it is installed and importable, else None with a printed note."""
    import importlib
    try:
        return getattr(importlib.import_module(f"ember.{module}"), attr)
    except (ImportError, AttributeError) as e:
        print(f"note: ember.{module}.{attr} is not available ({e}); skipping it")
        return None


def train(config: dict, verbose: int = 1) -> dict:
    """Run one training as described by ``config`` (see :data:`DEFAULTS`); returns the results written."""
    import ember
    from .callbacks import CSVLogger, EarlyStopping, ModelCheckpoint
    out = _run_folder(config["out"])
    import yaml
    _write_text(os.path.join(out, "config.yaml"), yaml.safe_dump(config, sort_keys=False))
    ember.manual_seed(config["seed"])
    X_train, X_test, y_train, y_test = load_data(config["data"], config["test_size"], config["seed"])
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = build_model(X_train.shape[1], n_classes, config["model"]["hidden"], config["model"]["dropout"])
    model.compile(optimizer={"class_name": config["optimizer"], "config": {"learning_rate": config["learning_rate"]}},
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    archive = callable(getattr(model, "save", None))
    checkpoint = os.path.join(out, "model.ember" if archive else "model.safetensors")
    if not archive:
        print("note: model.save is not available yet; the checkpoint holds the weights as safetensors")
    callbacks = [EarlyStopping(monitor="val_loss", patience=config["patience"], restore_best_weights=True),
                 ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True),
                 CSVLogger(os.path.join(out, "log.csv"))]
    tensorboard = _optional("callbacks", "TensorBoard")
    if tensorboard is not None:
        callbacks.append(tensorboard(log_dir=os.path.join(out, "tensorboard")))
    history = model.fit(X_train, y_train, batch_size=config["batch_size"], epochs=config["epochs"],
                        validation_split=config["validation_split"], callbacks=callbacks, verbose=verbose)
    loss, accuracy = model.evaluate(X_test, y_test, batch_size=256, verbose=0)
    results = {"data": config["data"], "epochs_run": len(history.epoch), "test_loss": float(loss),
               "test_accuracy": float(accuracy), "checkpoint": checkpoint}
    plot_history = _optional("plot", "history")
    if plot_history is not None:
        results["plot"] = os.path.join(out, "history.png")
        plot_history(history, results["plot"])
    _write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2) + "\n")
    print(f"test accuracy: {accuracy:.4f}  (test loss {loss:.4f}, {len(history.epoch)} epochs, "
          f"{len(y_test)} test samples of {config['data']})")
    print(f"run folder: {out}")
    return results


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "train":
        _parser().print_help()
        return 2
    overrides = {k: getattr(args, k) for k in ("out", "data", "epochs", "batch_size", "optimizer",
                                               "learning_rate", "seed")}
    train(load_config(args.config, overrides), verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
