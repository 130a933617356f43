"""``Trainer``: Keras' ``compile``/``fit``/``evaluate``/``predict`` for ``ember.Model``, as a plain loop.

One training step is exactly the loop one would write by hand — ``model.train()``, forward, loss (plus
``sum(model.losses)``), ``optimizer.zero_grad()``, ``loss.backward()``, ``optimizer.step()`` — followed by the
metric updates, so ``fit`` ends with the same weights as that loop for the same data order.

>>> import ember
>>> from ember import layers
>>> _ = ember.manual_seed(0)
>>> model = ember.Sequential([layers.Input((2,)), layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> x = ember.randn(64, 2); y = x.sum(dim=1, keepdim=True)
>>> history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
>>> history.epoch, sorted(history.history)
([0, 1, 2], ['loss'])
"""
from __future__ import annotations

import warnings

from ..autograd.grad_mode import no_grad
from ..backend import array_module
from ..layers.symbolic import flatten_structure, pack_structure
from ..metrics import Mean
from ..optim import Optimizer
from ..tensor import Tensor, _wrap
from . import compile_utils as cu
from .mixed_precision import MixedPrecision, amp_context, parse_policy, to_float32
from .data_adapter import make_batches, on_device, split_arrays, to_arrays, unpack_x_y_sample_weight

__all__ = ["Trainer"]


def _leaf_list(y, names: list, who: str) -> list:
    return [None] * max(len(names), 1) if y is None else cu.flatten_targets(y, names, who)


def _sw_list(sw, n: int) -> list:
    """One sample-weight entry per output: a single array weighs every output (Keras)."""
    if sw is None:
        return [None] * n
    if isinstance(sw, (list, tuple, dict)) and n > 1:
        return list(sw.values()) if isinstance(sw, dict) else list(sw)
    return [sw] * n


def _tensors(struct):
    """Arrays in a (nested) batch as tensors, so that graph mode keys them by shape and dtype, not by identity."""
    if struct is None or isinstance(struct, Tensor):
        return struct
    if isinstance(struct, (list, tuple)):
        return type(struct)(_tensors(v) for v in struct)
    if isinstance(struct, dict):
        return {k: _tensors(v) for k, v in struct.items()}
    return _wrap(array_module(struct).asarray(struct)) if hasattr(struct, "shape") else struct


class Trainer:
    """The training API mixed into :class:`ember.Model` (Keras 3's ``Trainer``)."""

    compiled = False
    optimizer = None
    loss = None
    stop_training = False
    history = None

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=None, jit_compile=None, jit: bool = False, mixed_precision=None) -> None:
        """Set the optimizer, loss(es) and metrics (Keras' ``compile``).

        ``optimizer``: a name (``'adam'``, ``'sgd'``, ``'rmsprop'``, ``'adamw'``, ``'adagrad'``, with Keras'
        defaults), a ``{'class_name': 'Adam', 'config': {'learning_rate': 0.01}}`` dict, or an
        ``ember.optim`` optimizer. A named optimizer is made on the trainable weights once they exist.
        ``loss``/``metrics``/``loss_weights``: one for all outputs, a list by position or a dict by output
        name. ``jit=True`` (or Keras' ``jit_compile=True``) runs each training, evaluation and prediction step
        through graph mode (:func:`ember.jit`): forward, loss, backward and optimizer update as one traced
        graph per batch shape; losses and metrics are tracked outside it. ``run_eagerly=True`` overrides it.
        ``mixed_precision='bf16'`` or ``'fp16'`` runs the forward pass under :func:`ember.autocast` with float32
        weights, losses and metrics (fp16 adds an :class:`ember.amp.GradScaler`), see
        :mod:`ember.models.mixed_precision`.
        """
        d = self.__dict__
        if not isinstance(optimizer, Optimizer):
            cu.optimizer_spec(optimizer)                       # fail now on an unknown name
        d["_optimizer_spec"] = optimizer
        d["optimizer"] = optimizer if isinstance(optimizer, Optimizer) else None
        d["loss"], d["_loss_weights"] = loss, loss_weights
        d["_metric_specs"] = (metrics, weighted_metrics)
        d["_loss_tracker"] = Mean(name="loss")
        d["_compile_loss"] = d["_compile_metrics"] = None
        d["run_eagerly"], d["jit_compile"] = bool(run_eagerly), bool(jit_compile)
        d["_jit"] = bool(jit or jit_compile) and not run_eagerly
        policy = parse_policy(mixed_precision)
        if policy == "fp16" and d["_jit"]:
            raise ValueError("compile: mixed_precision='fp16' cannot be combined with jit=True: the loss scaler skips "
                             "steps whose gradients overflow, a data-dependent branch a traced step cannot hold; "
                             "use mixed_precision='bf16' (no scaler needed) or jit=False")
        d["_mixed_precision"] = MixedPrecision(policy, self.parameters()) if policy else None
        d["_jit_steps"] = {}
        d["compiled"] = True
        if d["optimizer"] is None and any(p.requires_grad for p in self.parameters()):
            self._make_optimizer()

    def _make_optimizer(self) -> None:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"Model {self.name!r} has no trainable weights for the optimizer to update")
        self.__dict__["optimizer"] = cu.get_optimizer(self._optimizer_spec, params)

    def _assert_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"You must call compile() on model {self.name!r} before {what}(): "
                               "e.g. model.compile(optimizer='adam', loss='mse')")

    @property
    def metrics(self) -> list:
        """The loss tracker, the per-output loss trackers and the compiled metrics (built on the first batch)."""
        if not self.compiled:
            return []
        out = [self._loss_tracker]
        if self._compile_loss is not None:
            out += [t for t in self._compile_loss.trackers if t is not None]
        if self._compile_metrics is not None:
            out += [m for m, _, _ in self._compile_metrics.metrics]
        return out

    @property
    def metrics_names(self) -> list:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    # ------------------------------------------------------------ one batch
    def _prepare_inputs(self, x):
        """Dict inputs keyed by ``Input`` names, reordered for a functional model built from a list."""
        struct = self.__dict__.get("_input_struct")
        if not isinstance(x, dict) or struct is None or isinstance(struct, dict):
            return x
        names = [t.name for t in self._flat_inputs]
        missing = [n for n in names if n not in x]
        if missing:
            raise ValueError(f"Model {self.name!r}: inputs {missing} are missing from the dict given as x (keys "
                             f"{list(x)}); the model's inputs are {names}")
        return pack_structure(struct, [x[n] for n in names])

    def _outputs(self, y_pred) -> list:
        names = self._compile_loss.names if self._compile_loss is not None else cu.output_names_of(self)
        if isinstance(y_pred, dict) and all(n in y_pred for n in names):
            return [y_pred[n] for n in names]
        return flatten_structure(y_pred)

    def _build_compiled(self, y, y_pred) -> None:
        """Make the per-output losses and metrics once the outputs (and their shapes) are known."""
        d = self.__dict__
        names = cu.output_names_of(self)
        n = len(flatten_structure(y_pred))
        if len(names) != n:
            names = [f"output_{i}" for i in range(n)] if n > 1 else ["output"]
        d["_compile_loss"] = cu.CompileLoss(self.loss, self._loss_weights, names)
        flat_pred = self._outputs(y_pred)
        d["_compile_metrics"] = cu.CompileMetrics(*self._metric_specs, names, d["_compile_loss"].identifiers)
        if y is not None:
            d["_compile_metrics"].build(_leaf_list(y, names, "y"), flat_pred)

    def _ensure_built(self, x, y, training: bool = True) -> None:
        """Build the model, its losses and metrics on a first batch, and (to train) the optimizer."""
        if self._compile_loss is None or (y is not None and not self._compile_metrics.built) or (
                training and self.optimizer is None and not any(p.requires_grad for p in self.parameters())):
            was = self.training
            self.train(False)
            with no_grad():
                y_pred = self(self._prepare_inputs(x))
            self.train(was)
            if self._compile_loss is None or not self._compile_metrics.built:
                self._build_compiled(y, y_pred)
        if training and self.optimizer is None:
            self._make_optimizer()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        """The total loss: weighted per-output losses plus ``sum(self.losses)``; updates the loss trackers."""
        total, tracked = self._loss_terms(y, y_pred, sample_weight)
        self._track(total, tracked, cu.first_dim(self._outputs(y_pred)))
        return total

    def _loss_terms(self, y, y_pred, sample_weight):
        """The total loss and each output's tracked loss as ``(output index, value)``, tracking nothing."""
        flat_pred = self._outputs(y_pred)
        names = self._compile_loss.names
        tracked: list = []
        total = self._compile_loss(_leaf_list(y, names, "y"), flat_pred, _sw_list(sample_weight, len(names)),
                                   cu.first_dim(flat_pred), tracked)
        for extra in self.losses:
            total = extra if total is None else total + extra
        if total is None:
            raise ValueError(f"Model {self.name!r} has no loss to optimize: pass loss= to compile() (and y to fit)")
        return total, tracked

    def _track(self, total, tracked, batch: int) -> None:
        for i, value in tracked:
            cu.track(self._compile_loss.trackers[i], value, batch)
        cu.track(self._loss_tracker, total, batch)

    # ------------------------------------------------------------ graph mode (compile(jit=True))
    def _jit_step(self, kind: str):
        """The jitted core of a train/test/predict step, made once per model (``ember.jit`` caches per shape)."""
        steps = self.__dict__.setdefault("_jit_steps", {})
        fn = steps.get(kind)
        if fn is None:
            from ..graph import JitFunction
            fn = steps[kind] = JitFunction(getattr(self, f"_{kind}_core"), module=self)
        return fn

    def _forward(self, x):
        """``self(x)``, under autocast with float32 outputs when compiled with ``mixed_precision``."""
        if self.__dict__.get("_mixed_precision") is None:
            return self(x)
        with amp_context(self):
            y_pred = self(x)
        return to_float32(y_pred)

    def _backward_step(self, loss) -> None:
        mp = self.__dict__.get("_mixed_precision")
        if mp is None:
            loss.backward()
            self.optimizer.step()
        else:
            mp.backward_and_step(loss, self.optimizer)

    def _train_core(self, x, y, sw):
        self.optimizer.zero_grad()
        y_pred = self._forward(x)
        total, tracked = self._loss_terms(y, y_pred, sw)
        self._backward_step(total)
        return total, tracked, y_pred

    def _test_core(self, x, y, sw):
        with no_grad():
            y_pred = self._forward(x)
            total, tracked = self._loss_terms(y, y_pred, sw)
        return total, tracked, y_pred

    def _predict_core(self, x):
        with no_grad():
            return self._forward(x)

    def _jit_loss_step(self, kind: str, x, y, sw) -> dict:
        x, y, sw = (_tensors(v) for v in (self._prepare_inputs(x), y, sw))
        total, tracked, y_pred = self._jit_step(kind)(x, y, sw)
        self._track(total, tracked, cu.first_dim(self._outputs(y_pred)))
        return self._update_metrics(y, y_pred, sw)

    def _update_metrics(self, y, y_pred, sample_weight) -> dict:
        names = self._compile_loss.names
        if y is not None:
            self._compile_metrics.update(_leaf_list(y, names, "y"), self._outputs(y_pred),
                                         _sw_list(sample_weight, len(names)))
        return self._logs()

    def _logs(self) -> dict:
        return {m.name: float(m.result().item()) for m in self.metrics}

    def train_step(self, data) -> dict:
        """One optimizer step on ``(x, y, sample_weight)``; returns the running metrics."""
        x, y, sw = unpack_x_y_sample_weight(data)
        if self.__dict__.get("_jit"):
            return self._jit_loss_step("train", x, y, sw)
        self.optimizer.zero_grad()
        y_pred = self._forward(self._prepare_inputs(x))
        loss = self.compute_loss(x, y, y_pred, sw)
        self._backward_step(loss)
        return self._update_metrics(y, y_pred, sw)

    def test_step(self, data) -> dict:
        x, y, sw = unpack_x_y_sample_weight(data)
        if self.__dict__.get("_jit") and y is not None:
            return self._jit_loss_step("test", x, y, sw)
        with no_grad():
            y_pred = self._forward(self._prepare_inputs(x))
            self.compute_loss(x, y, y_pred, sw)
        return self._update_metrics(y, y_pred, sw)

    def predict_step(self, data):
        x, _, _ = unpack_x_y_sample_weight(data)
        if self.__dict__.get("_jit"):
            return self._jit_step("predict")(_tensors(self._prepare_inputs(x)))
        with no_grad():
            return self._forward(self._prepare_inputs(x))

    # ------------------------------------------------------------ loops
    def _callbacks(self, callbacks, verbose, epochs: int, steps, history: bool):
        from ..callbacks import CallbackList
        if isinstance(callbacks, CallbackList):
            return callbacks
        return CallbackList(callbacks, add_history=history, add_progbar=verbose != 0, model=self,
                            verbose=verbose, epochs=epochs, steps=steps)

    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose="auto", callbacks=None,
            validation_split: float = 0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch: int = 0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs (Keras' ``fit``); returns the :class:`~ember.callbacks.History`.

        ``x``/``y``: arrays, tensors, lists/dicts of them, an ``ember.data.Dataset``/``DataLoader`` or a
        generator of ``(x, y[, sample_weight])`` batches. ``validation_split`` keeps the last fraction of the
        arrays (before shuffling) for validation; shuffling uses Ember's RNG (``ember.manual_seed``).
        """
        self._assert_compiled("fit")
        verbose = 1 if verbose == "auto" else verbose
        if validation_split and validation_data is None:
            if not isinstance(x, (Tensor, list, tuple, dict)) and not hasattr(x, "shape"):
                raise ValueError(f"fit: validation_split is only supported for arrays and tensors, not for "
                                 f"x of type {type(x).__name__}; pass validation_data instead")
            (x, y, sample_weight), validation_data = split_arrays(
                to_arrays(x, "x"), to_arrays(y, "y"), to_arrays(sample_weight, "sample_weight"), validation_split)
        train = on_device(make_batches(x, y, sample_weight, batch_size, shuffle, class_weight, steps_per_epoch), self)
        val = None
        if validation_data is not None:
            vx, vy, vsw = unpack_x_y_sample_weight(validation_data) if isinstance(validation_data, (tuple, list)) \
                else (validation_data, None, None)
            val = on_device(make_batches(vx, vy, vsw, validation_batch_size or batch_size, False, None,
                                         validation_steps, "fit (validation_data)"), self)
        first_epoch = train.epoch()
        first = next(first_epoch, None)
        if first is None:
            raise ValueError("fit: the training data yielded no batches")
        self._ensure_built(first[0], first[1])
        cbs = self._callbacks(callbacks, verbose, epochs, train.num_batches, history=True)
        was = self.training
        self.__dict__["stop_training"] = False
        cbs.on_train_begin()
        epoch_logs = None
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                batches = _chain(first, first_epoch) if first is not None else train.epoch()
                first = None
                self.train(True)
                logs, steps = {}, 0
                for step, data in enumerate(batches):
                    cbs.on_train_batch_begin(step)
                    logs = self.train_step(data)
                    cbs.on_train_batch_end(step, logs)
                    steps += 1
                    if self.stop_training:
                        break
                if steps == 0:
                    warnings.warn(f"fit: the input ran out of data at epoch {epoch}; training stops. A generator "
                                  "must yield steps_per_epoch * epochs batches", stacklevel=2)
                    break
                epoch_logs = dict(logs or self._logs())
                if val is not None and _should_validate(epoch, validation_freq):
                    val_logs = self._test_loop(val, cbs)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                if self.stop_training:
                    break
        finally:
            self.train(was)
        cbs.on_train_end(epoch_logs)
        return cbs._history if getattr(cbs, "_history", None) is not None else self.history

    def _test_loop(self, batches, cbs) -> dict:
        self.train(False)
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step, data in enumerate(batches.epoch()):
            if self._compile_loss is None or not self._compile_metrics.built:
                self._ensure_built(data[0], data[1], training=False)
            cbs.on_test_batch_begin(step)
            logs = self.test_step(data)
            cbs.on_test_batch_end(step, logs)
        logs = dict(logs or self._logs())
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict: bool = False):
        """The loss and metrics on the given data (Keras' ``evaluate``): a scalar loss when there are no
        other metrics, else ``[loss, *metrics]`` in :attr:`metrics_names` order, or a dict."""
        self._assert_compiled("evaluate")
        verbose = 1 if verbose == "auto" else verbose
        batches = on_device(make_batches(x, y, sample_weight, batch_size, False, None, steps, "evaluate"), self)
        cbs = self._callbacks(callbacks, verbose, 1, batches.num_batches, history=False)
        was = self.training
        try:
            logs = self._test_loop(batches, cbs)
        finally:
            self.train(was)
        return logs if return_dict else _flatten_logs(logs, self.metrics_names)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs as NumPy array(s), computed batch by batch in eval mode without gradients."""
        verbose = 1 if verbose == "auto" else verbose
        batches = on_device(make_batches(x, None, None, batch_size, False, None, steps, "predict"), self)
        cbs = self._callbacks(callbacks, verbose, 1, batches.num_batches, history=False)
        was = self.training
        self.train(False)
        outputs, struct = [], None
        try:
            cbs.on_predict_begin()
            for step, data in enumerate(batches.epoch()):
                cbs.on_predict_batch_begin(step)
                out = self.predict_step(data)
                struct = out
                outputs.append([t.data for t in flatten_structure(out)])
                cbs.on_predict_batch_end(step, {"outputs": out})
            cbs.on_predict_end()
        finally:
            self.train(was)
        if not outputs:
            raise ValueError("predict: the input data yielded no batches")
        xp = array_module(outputs[0][0])
        joined = [_wrap(xp.concatenate(parts, axis=0)).cpu().numpy() for parts in zip(*outputs)]
        return pack_structure(struct, joined)

    # ------------------------------------------------------------ single batches
    def _one_batch(self, x, y, sample_weight, class_weight=None, training: bool = True):
        batches = make_batches(x, y, sample_weight, None, False, class_weight, None, "train_on_batch")
        data = next(iter(_whole(batches)))
        self._ensure_built(data[0], data[1], training)
        return data

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict: bool = False):
        """One optimizer step on this batch; returns the running loss (and metrics) since the last
        :meth:`reset_metrics`, as Keras 3 does."""
        self._assert_compiled("train_on_batch")
        data = self._one_batch(x, y, sample_weight, class_weight)
        was = self.training
        self.train(True)
        try:
            logs = self.train_step(data)
        finally:
            self.train(was)
        return logs if return_dict else _flatten_logs(logs, self.metrics_names)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
        """The running loss (and metrics) after adding this batch, without training."""
        self._assert_compiled("test_on_batch")
        data = self._one_batch(x, y, sample_weight, training=False)
        was = self.training
        self.train(False)
        try:
            logs = self.test_step(data)
        finally:
            self.train(was)
        return logs if return_dict else _flatten_logs(logs, self.metrics_names)

    def predict_on_batch(self, x):
        """The outputs for one batch as NumPy array(s)."""
        was = self.training
        self.train(False)
        try:
            out = self.predict_step(next(iter(_whole(make_batches(x, None, None, None, False, None, None,
                                                                  "predict_on_batch")))))
        finally:
            self.train(was)
        return pack_structure(out, [t.numpy() for t in flatten_structure(out)])


def _chain(first, rest):
    yield first
    yield from rest


def _whole(batches):
    """The whole of an array source as one batch."""
    if hasattr(batches, "n"):
        batches.batch_size, batches.num_batches = batches.n, 1
    return batches.epoch()


def _should_validate(epoch: int, freq) -> bool:
    if isinstance(freq, int):
        if freq < 1:
            raise ValueError(f"fit: validation_freq must be a positive integer, got {freq}")
        return (epoch + 1) % freq == 0
    return epoch + 1 in freq


def _flatten_logs(logs: dict, names: list):
    values = [logs[n] for n in names if n in logs] + [v for k, v in logs.items() if k not in names]
    return values[0] if len(values) == 1 else values

