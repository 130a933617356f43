"""What ``compile`` sets up: the optimizer, the per-output losses with their weights, and the metrics.

Keras' rules: a loss may be one loss for every output, a list (by position) or a dict (by output name);
the total is ``sum(loss_weight_i * loss_i) + sum(model.losses)``; with several outputs each output's own
(unweighted) loss is also tracked as ``<output>_loss``. Metrics follow the same structure and are named
``<output>_<metric>`` when there are several outputs. ``'accuracy'``/``'acc'`` pick binary, categorical or
sparse categorical accuracy from the loss and the shapes (:func:`ember.metrics.resolve_accuracy`).
"""
from __future__ import annotations

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optim
from ..autograd.node import OpError
from ..layers.symbolic import flatten_structure

__all__ = ["get_optimizer", "CompileLoss", "CompileMetrics", "output_names_of", "flatten_targets"]

# Keras' optimizers and their defaults, in ember.optim's PyTorch argument names
_OPTIMIZERS = {
    "sgd": (optim.SGD, {"lr": 0.01}),
    "adam": (optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "adamw": (optim.AdamW, {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004}),
    "rmsprop": (optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "adagrad": (optim.Adagrad, {"lr": 1e-3, "eps": 1e-7, "initial_accumulator_value": 0.1}),
}
_KERAS_ARGS = {"learning_rate": "lr", "epsilon": "eps", "rho": "alpha"}


def optimizer_spec(identifier):
    """``(class, kwargs)`` for an optimizer name or a Keras-like ``{'class_name': ..., 'config': {...}}`` dict."""
    if isinstance(identifier, dict):
        name, config = identifier.get("class_name"), dict(identifier.get("config") or {})
    else:
        name, config = identifier, {}
    key = str(name).lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"compile: unknown optimizer {name!r}; expected one of {sorted(_OPTIMIZERS)}, a config "
                         "dict {'class_name': ..., 'config': {...}} or an ember.optim optimizer")
    cls, kwargs = _OPTIMIZERS[key]
    kwargs = dict(kwargs)
    for k, v in config.items():
        if k in ("name", "jit_compile", "is_legacy_optimizer"):
            continue
        if k in ("beta_1", "beta_2"):
            betas = list(kwargs.get("betas", (0.9, 0.999)))
            betas[int(k[-1]) - 1] = v
            kwargs["betas"] = tuple(betas)
        else:
            kwargs[_KERAS_ARGS.get(k, k)] = v
    return cls, kwargs


def get_optimizer(identifier, params):
    """An ember.optim optimizer over ``params`` from a name or config dict (Keras' defaults)."""
    cls, kwargs = optimizer_spec(identifier)
    try:
        return cls(params, **kwargs)
    except TypeError as e:
        raise ValueError(f"compile: bad optimizer config for {cls.__name__}: {e}") from None


def output_names_of(model) -> list:
    """The model's output names (Keras: the output layers' names, or the keys of a dict of outputs)."""
    struct = model.__dict__.get("_output_struct")
    if isinstance(struct, dict):
        return list(struct)
    outs = model.__dict__.get("_flat_outputs")
    if outs:
        return [t.node.layer.name if t.node is not None else (t.name or f"output_{i}") for i, t in enumerate(outs)]
    layers = model.__dict__.get("_layers")
    if layers:
        return [getattr(layers[-1], "name", "output")]
    return []


def flatten_targets(y, names: list, who: str = "y") -> list:
    """``y`` as a list in output order: a dict by output name, a list by position, a single target as is."""
    if len(names) <= 1:
        if isinstance(y, dict):
            if len(y) == 1:
                return list(y.values())
            if names and names[0] in y:
                return [y[names[0]]]
        return [y[0] if isinstance(y, (list, tuple)) and len(y) == 1 else y]
    if isinstance(y, dict):
        missing = [n for n in names if n not in y]
        unknown = [k for k in y if k not in names]
        if unknown:
            raise ValueError(f"{who}: keys {unknown} are not output names; the model's outputs are {names}")
        return [y.get(n) for n in names] if not missing or len(missing) < len(names) else [None] * len(names)
    if isinstance(y, (list, tuple)):
        if len(y) != len(names):
            raise ValueError(f"{who}: the model has {len(names)} outputs {names} but {len(y)} were given")
        return list(y)
    raise ValueError(f"{who}: the model has {len(names)} outputs {names}; give a list or a dict of targets")


def _per_output(spec, names: list, what: str) -> list:
    """One entry per output from a single value (shared), a list (by position) or a dict (by name)."""
    n = max(len(names), 1)
    if isinstance(spec, dict) and not ("class_name" in spec and "config" in spec):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f"compile: {what} has keys {unknown} that are not output names; outputs are {names}")
        return [spec.get(name) for name in names]
    if isinstance(spec, (list, tuple)) and n == 1 and len(spec) == 1 and what.startswith("loss"):
        return list(spec)
    if isinstance(spec, (list, tuple)) and n > 1:
        if what.endswith("metrics") and len(spec) != n:
            return [list(spec)] * n                    # one flat list of metrics for every output
        if len(spec) != n:
            raise ValueError(f"compile: {what} has {len(spec)} entries but the model has {n} outputs {names}")
        return list(spec)
    return [spec] * n


def _shape(t) -> tuple:
    return tuple(getattr(t, "shape", ()))


class CompileLoss:
    """The losses of every output, their weights, and the per-output loss trackers."""

    def __init__(self, loss, loss_weights, names: list):
        self.names = names or ["output"]
        ids = _per_output(loss, self.names, "loss")
        self.identifiers = ids
        self.fns = [self._wrap(i) for i in ids]
        weights = _per_output(loss_weights, self.names, "loss_weights") if loss_weights is not None \
            else [1.0] * len(self.names)
        self.weights = [1.0 if w is None else float(w) for w in weights]
        multi = len(self.names) > 1
        self.trackers = [_metrics.Mean(name=f"{n}_loss") if multi and f is not None else None
                         for n, f in zip(self.names, self.fns)]

    @staticmethod
    def _wrap(identifier):
        if identifier is None:
            return None
        from ..nn.module import Module
        if isinstance(identifier, Module):
            return _ModuleLoss(identifier)
        fn = _losses.get(identifier)
        return fn if isinstance(fn, _losses.Loss) else _losses.LossFunctionWrapper(fn)

    def __call__(self, y_true: list, y_pred: list, sample_weight: list, batch_size: int, tracked=None):
        """The weighted total loss. Each output's loss goes to its tracker now, or into ``tracked`` as
        ``(output index, value)`` for the caller to track (graph mode tracks outside the jitted step)."""
        total = None
        for i, (fn, w, yt, yp, sw) in enumerate(zip(self.fns, self.weights, y_true, y_pred, sample_weight)):
            if fn is None or yt is None:
                continue
            try:
                value = fn(yt, yp, sample_weight=sw)
            except (ValueError, OpError, IndexError, TypeError, RuntimeError) as e:
                raise ValueError(f"loss {getattr(fn, 'name', fn)!r} of output {self.names[i]!r}: y_true of shape "
                                 f"{_shape(yt)} does not fit y_pred of shape {_shape(yp)}: {e}") from e
            if self.trackers[i] is not None:
                if tracked is None:
                    track(self.trackers[i], value, batch_size)
                else:
                    tracked.append((i, value))
            term = value * w if w != 1.0 else value
            total = term if total is None else total + term
        return total


class CompileMetrics:
    """The metrics of every output, built on the first batch (``'accuracy'`` needs the shapes)."""

    def __init__(self, metrics, weighted_metrics, names: list, loss_ids: list):
        self.names = names or ["output"]
        self.specs = [_per_output(metrics, self.names, "metrics") if metrics is not None else [None] * len(
            self.names), _per_output(weighted_metrics, self.names, "weighted_metrics")
            if weighted_metrics is not None else [None] * len(self.names)]
        self.loss_ids = loss_ids
        self.built = False
        self.metrics: list = []        # (metric, output index, weighted)

    def build(self, y_true: list, y_pred: list) -> None:
        multi = len(self.names) > 1
        taken = set()
        for weighted, specs in enumerate(self.specs):
            for i, spec in enumerate(specs):
                entries = spec if isinstance(spec, (list, tuple)) else ([] if spec is None else [spec])
                for entry in entries:
                    m = self._make(entry, i, y_true, y_pred)
                    if any(m is other for other, _, _ in self.metrics):    # one instance given for two outputs
                        m = type(m).from_config(m.get_config())
                    name = f"{self.names[i]}_{m.name}" if multi else m.name
                    if weighted and name in taken:
                        name = f"weighted_{name}"
                    m.name = name
                    taken.add(name)
                    self.metrics.append((m, i, bool(weighted)))
        self.built = True

    def _make(self, entry, i: int, y_true: list, y_pred: list):
        if isinstance(entry, str) and entry.lower() in ("accuracy", "acc"):
            return _metrics.resolve_accuracy(self.loss_ids[i], _shape(y_true[i]), _shape(y_pred[i]), name=entry)
        m = _metrics.get(entry)
        if not isinstance(m, _metrics.Metric):
            m = _metrics.MeanMetricWrapper(m, name=getattr(m, "__name__", None))
        if isinstance(entry, str):
            m.name = entry
        return m

    def update(self, y_true: list, y_pred: list, sample_weight: list) -> None:
        for m, i, weighted in self.metrics:
            if y_true[i] is None:
                continue
            try:
                m.update_state(y_true[i], y_pred[i].detach(), sample_weight=sample_weight[i] if weighted else None)
            except (ValueError, OpError, IndexError) as e:
                raise ValueError(f"metric {m.name!r} of output {self.names[i]!r}: {e}") from e


def track(mean: _metrics.Mean, value, weight: int) -> None:
    """``mean.update_state(value, sample_weight=weight)`` for a scalar loss, without the general
    broadcasting path (this runs on every batch)."""
    mean._add("total", value.data * weight)
    mean._add("count", weight)


def first_dim(struct) -> int:
    leaves = flatten_structure(struct)
    return int(leaves[0].shape[0]) if leaves and _shape(leaves[0]) else 1


class _ModuleLoss(_losses.Loss):
    """A PyTorch-style loss module (``nn.CrossEntropyLoss()``) used by ``compile``: it takes
    ``(input, target)`` where Keras passes ``(y_true, y_pred)``, and reduces by itself."""

    def __init__(self, module):
        import re
        super().__init__(name=re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(module).__name__).lower())
        self.module = module

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(f"{type(self.module).__name__}: sample_weight/class_weight need a Keras-style loss "
                             "(ember.losses), which weights each sample; this module reduces by itself")
        return self.module(y_pred, _losses.loss.to_tensor(y_true))
