"""``TensorBoard``: write event files that TensorBoard reads — scalars, histograms and the model graph.

As Keras 3, training values go to ``<log_dir>/train`` and validation values to ``<log_dir>/validation``:
per epoch ``epoch_loss``, ``epoch_accuracy``, ... (``val_`` prefixes dropped in ``validation``), per batch
``batch_loss``, ... when ``update_freq`` is ``"batch"`` or a number of batches, and after each validation pass
inside ``fit`` ``evaluation_<metric>_vs_iterations`` at the global training step. Events are written with
``tensorboardX`` (``pip install 'ember-dl[tensorboard]'``), imported only when the callback is created.

>>> import numpy as np, tempfile, ember
>>> from ember import layers
>>> from ember.callbacks import TensorBoard
>>> model = ember.Sequential([layers.Input(shape=(3,)), layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> log_dir = tempfile.mkdtemp()
>>> _ = model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=2, verbose=0, callbacks=[TensorBoard(log_dir)])
>>> import os
>>> sorted(os.listdir(log_dir))
['train']
"""
from __future__ import annotations

import os
import time

import numpy as np

from .base import Callback, is_scalar

__all__ = ["TensorBoard"]


def _import_tensorboardx():
    try:
        import tensorboardX
    except ImportError as exc:
        raise ImportError("ember.callbacks.TensorBoard needs the 'tensorboardX' package to write event files; "
                          "install it with: pip install 'ember-dl[tensorboard]'  (or: pip install tensorboardX)"
                          ) from exc
    return tensorboardX


class TensorBoard(Callback):
    """Log scalars, weight/gradient histograms and the model graph for TensorBoard (Keras' ``TensorBoard``).

    Args:
        log_dir: the folder for the event files (``train/`` and ``validation/`` are made inside it).
        histogram_freq: every how many epochs to write a histogram of every weight, and of its gradient
            (the gradient left by the epoch's last training batch) where it has one; 0 writes none.
        write_graph: write the layer graph (TensorBoard's Graphs tab) and ``model.summary()`` as text
            (the Text tab, tag ``model_summary``) when training starts.
        write_steps_per_second: also log ``epoch_steps_per_second`` (training batches per second).
        update_freq: ``"epoch"`` logs scalars once per epoch; ``"batch"`` also after every training batch;
            an integer ``N`` also after every ``N``-th batch (counted over the whole run).
        write_images, profile_batch, embeddings_freq, embeddings_metadata: Keras' options that Ember does not
            implement; leave them at their defaults (a clear error says so otherwise).

    Run ``tensorboard --logdir <log_dir>`` to see the result.
    """

    def __init__(self, log_dir="logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, write_steps_per_second: bool = False, update_freq="epoch",
                 profile_batch=0, embeddings_freq: int = 0, embeddings_metadata=None):
        super().__init__()
        self._tbx = _import_tensorboardx()
        unsupported = {"write_images": write_images, "profile_batch": profile_batch,
                       "embeddings_freq": embeddings_freq, "embeddings_metadata": embeddings_metadata}
        for name, value in unsupported.items():
            if value:
                raise NotImplementedError(f"TensorBoard: {name}={value!r} is not supported by Ember; "
                                          f"leave {name} at its default")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be an integer >= 0, got {histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq >= 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or an integer >= 1, "
                             f"got {update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self._writers: dict = {}
        self._global_train_batch = 0
        self._in_fit = False
        self._epoch_start = None
        self._epoch_steps = 0

    # ------------------------------------------------------------ writers
    @property
    def _train_dir(self) -> str:
        return os.path.join(self.log_dir, "train")

    @property
    def _val_dir(self) -> str:
        return os.path.join(self.log_dir, "validation")

    def _writer(self, which: str):
        """The ``SummaryWriter`` of ``"train"`` or ``"validation"``, made on first use."""
        if which not in self._writers:
            folder = self._train_dir if which == "train" else self._val_dir
            os.makedirs(folder, exist_ok=True)
            self._writers[which] = self._tbx.SummaryWriter(folder)
        return self._writers[which]

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._global_train_batch = 0
        if self.write_graph and self.model is not None:
            self._write_model_graph()

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        self._epoch_steps += 1
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        writer = self._writer("train")
        for name, value in (logs or {}).items():
            if is_scalar(value):
                writer.add_scalar("batch_" + name, value, self._global_train_batch)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            return
        writer = self._writer("validation")
        for name, value in (logs or {}).items():
            if is_scalar(value):
                writer.add_scalar(f"evaluation_{name}_vs_iterations", value, self._global_train_batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if "learning_rate" not in train:
            lr = _learning_rate(self.model)
            if lr is not None:
                train["learning_rate"] = lr
        if self.write_steps_per_second and self._epoch_start is not None:
            elapsed = time.perf_counter() - self._epoch_start
            train["steps_per_second"] = self._epoch_steps / elapsed if elapsed > 0 else 0.0
        for which, values in (("train", train), ("validation", val)):
            scalars = {k: v for k, v in values.items() if is_scalar(v)}
            if scalars:
                writer = self._writer(which)
                for name, value in scalars.items():
                    writer.add_scalar("epoch_" + name, value, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_histograms(epoch)
        for writer in self._writers.values():
            writer.flush()

    # ------------------------------------------------------------ content
    def _write_histograms(self, epoch: int) -> None:
        writer = self._writer("train")
        for name, param in self.model.named_parameters():
            tag = name.replace(".", "/")
            writer.add_histogram(tag + "/histogram", np.asarray(param.detach().numpy()), epoch)
            grad = getattr(param, "grad", None)
            if grad is not None:
                writer.add_histogram(tag + "/gradient", np.asarray(grad.detach().numpy()), epoch)

    def _write_model_graph(self) -> None:
        writer = self._writer("train")
        lines: list[str] = []
        summary = getattr(self.model, "summary", None)
        if callable(summary):
            try:
                summary(print_fn=lines.append)
            except Exception as exc:  # a subclassed model not built yet has no shapes to show
                lines = [f"model summary unavailable: {exc}"]
        if lines:
            # the text plugin renders markdown: indent four spaces so the table keeps its columns
            writer.add_text("model_summary", "\n".join("    " + line for line in lines), 0)
        graph = _graph_def(self._tbx, self.model)
        if graph is not None:
            from tensorboardX.proto import event_pb2
            writer.file_writer.add_event(event_pb2.Event(graph_def=graph.SerializeToString()))


def _learning_rate(model):
    optimizer = getattr(model, "optimizer", None)
    groups = getattr(optimizer, "param_groups", None)
    if groups:
        lr = groups[0].get("lr")
        if is_scalar(lr):
            return float(lr)
    return None


def _graph_def(tbx, model):
    """The model's layer graph as a TensorFlow ``GraphDef`` (one node per layer), or None without one."""
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef

    from ..plot import layer_graph
    try:
        boxes = layer_graph(model)
    except ValueError:            # a subclassed model: no recorded graph
        return None
    names = {box.key: box.name for box in boxes}
    nodes = [NodeDef(name=box.name, op=box.kind, input=[names[p] for p in box.parents],
                     attr={"output_shape": AttrValue(s=box.shape_text.encode())}) for box in boxes]
    return GraphDef(node=nodes)
