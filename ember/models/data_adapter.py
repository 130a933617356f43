"""Turn what ``fit``/``evaluate``/``predict`` receive into batches of ``(x, y, sample_weight)`` tensors.

Accepted, as in Keras: NumPy arrays, Ember tensors and lists/dicts of them (sliced into batches here,
shuffled each epoch with Ember's RNG so ``ember.manual_seed`` repeats a run); an ``ember.data.Dataset``
(batched with a ``DataLoader``); a ``DataLoader`` or any re-iterable of batches; a Python generator
(read on across epochs, ``steps_per_epoch`` batches at a time). Batches may be ``x``, ``(x,)``,
``(x, y)`` or ``(x, y, sample_weight)``.
"""
from __future__ import annotations

import collections.abc
import itertools
import math

import numpy  # host-side conversion of user data only

from .. import dtypes as _dt
from ..backend import array_module, ndarray_types, rng
from ..data import DataLoader, Dataset
from ..layers.symbolic import flatten_structure, pack_structure
from ..tensor import Tensor, _wrap

__all__ = ["unpack_x_y_sample_weight", "make_batches", "on_device", "split_arrays", "class_weight_to_sample_weight",
           "ArrayBatches", "IterableBatches"]


def unpack_x_y_sample_weight(data):
    """``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` as the triple ``(x, y, sample_weight)``."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data is expected to be x, (x,), (x, y) or (x, y, sample_weight); got a tuple of "
                     f"{len(data)} elements")


def _is_leaf_list(v) -> bool:
    """A list of numbers (one array), rather than a list of arrays (several inputs or outputs)."""
    return isinstance(v, (list, tuple)) and not any(isinstance(e, (list, tuple, dict, Tensor, *ndarray_types))
                                                    or hasattr(e, "shape") for e in v)


def to_array(v, who: str):
    """One user value as a backend array; floating data in the default float dtype (Keras' floatx)."""
    a = v.data if isinstance(v, Tensor) else v
    if not isinstance(a, ndarray_types):
        try:
            a = numpy.asarray(a)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{who}: could not convert a {type(v).__name__} to an array ({e})") from None
    if a.dtype.kind == "f" and a.dtype != _dt.get_default_dtype().np:
        a = a.astype(_dt.get_default_dtype().np)
    elif a.dtype.kind not in "fiub":
        raise TypeError(f"{who}: expected numeric data, got an array of dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{who}: expected arrays with a batch dimension, got a scalar")
    return a


def to_arrays(struct, who: str):
    """Every leaf of ``struct`` (nested lists/tuples/dicts of arrays or tensors) as a backend array."""
    if struct is None:
        return None
    if _is_leaf_list(struct) or not isinstance(struct, (list, tuple, dict)):
        return to_array(struct, who)
    return pack_structure(struct, [to_array(v, who) for v in flatten_structure(struct)])


def _sizes(struct) -> list:
    return [] if struct is None else [int(a.shape[0]) for a in flatten_structure(struct)]


def check_lengths(x, y, sample_weight) -> int:
    """The number of samples, after checking that x, y and sample_weight all have it."""
    sizes = {"x": _sizes(x), "y": _sizes(y), "sample_weight": _sizes(sample_weight)}
    every = {n for v in sizes.values() for n in v}
    if len(every) > 1:
        shown = " ".join(f"'{k}' sizes: {', '.join(map(str, v))}" for k, v in sizes.items() if v)
        raise ValueError(f"Data cardinality is ambiguous: x, y and sample_weight must all contain the same number "
                         f"of samples. {shown}")
    if not every:
        raise ValueError("No data: x is empty")
    return every.pop()


def _take(struct, index):
    if struct is None:
        return None
    return pack_structure(struct, [_wrap(a[index]) for a in flatten_structure(struct)])


def split_arrays(x, y, sample_weight, validation_split: float):
    """Keras' ``validation_split``: the last fraction of the samples (taken before any shuffling) validates."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n = check_lengths(x, y, sample_weight)
    at = int(math.floor(n * (1.0 - validation_split)))
    if at == 0 or at == n:
        raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples "
                         f"(there are {n} samples)")

    def cut(struct, part):
        if struct is None:
            return None
        return pack_structure(struct, [a[:at] if part == 0 else a[at:] for a in flatten_structure(struct)])
    return (cut(x, 0), cut(y, 0), cut(sample_weight, 0)), (cut(x, 1), cut(y, 1), cut(sample_weight, 1))


def class_weight_to_sample_weight(y, class_weight: dict):
    """Per-sample weights ``class_weight[label]``, labels being integers or one-hot rows (argmax)."""
    if isinstance(y, (list, tuple, dict)):
        raise ValueError("`class_weight` is only supported for models with a single output")
    labels = y.data if isinstance(y, Tensor) else y
    xp = array_module(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = xp.argmax(labels, axis=-1)
    elif labels.ndim == 2:
        labels = labels[:, 0]
    elif labels.ndim != 1:
        raise ValueError(f"`class_weight` needs labels of shape (N,), (N, 1) or one-hot (N, C); got y of shape "
                         f"{tuple(labels.shape)}")
    labels = xp.round(labels).astype("int64") if labels.dtype.kind == "f" else labels.astype("int64")
    present = {int(v) for v in xp.unique(labels).tolist()}
    missing = sorted(present - {int(k) for k in class_weight})
    if missing:
        raise ValueError(f"`class_weight` has no entry for class(es) {missing} found in y; classes given: "
                         f"{sorted(int(k) for k in class_weight)}")
    table = xp.zeros(max(max(present), max(int(k) for k in class_weight)) + 1, dtype=_dt.get_default_dtype().np)
    for k, w in class_weight.items():
        table[int(k)] = w
    return table[labels]


class ArrayBatches:
    """Batches sliced from in-memory arrays; a new order each epoch when shuffling."""

    def __init__(self, x, y, sample_weight, batch_size: int, shuffle, steps: int | None = None):
        self.x, self.y, self.sw = x, y, sample_weight
        self.n = check_lengths(x, y, sample_weight)
        self.batch_size, self.shuffle = batch_size, shuffle
        full = math.ceil(self.n / batch_size)
        self.num_batches = min(steps, full) if steps is not None else full

    def _order(self):
        xp = array_module(flatten_structure(self.x)[0])
        if self.shuffle == "batch":          # Keras: shuffle whole batches, keep each batch's samples together
            starts = rng().permutation(math.ceil(self.n / self.batch_size)) * self.batch_size
            return xp.concatenate([xp.arange(s, min(s + self.batch_size, self.n)) for s in starts.tolist()])
        if self.shuffle:
            return xp.asarray(rng().permutation(self.n))
        return None

    def epoch(self):
        order = self._order()
        for i in range(self.num_batches):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, self.n)
            index = slice(lo, hi) if order is None else order[lo:hi]
            yield _take(self.x, index), _take(self.y, index), _take(self.sw, index)


def _as_tensors(struct):
    if struct is None:
        return None
    if _is_leaf_list(struct) or not isinstance(struct, (list, tuple, dict)):
        return struct if isinstance(struct, Tensor) else _wrap(to_array(struct, "batch"))
    return pack_structure(struct, [v if isinstance(v, Tensor) else _wrap(to_array(v, "batch"))
                                   for v in flatten_structure(struct)])


class IterableBatches:
    """Batches from a DataLoader, a re-iterable of batches, or a generator (read on across epochs)."""

    def __init__(self, source, steps: int | None = None, class_weight: dict | None = None):
        self.source, self.steps, self.class_weight = source, steps, class_weight
        self.one_shot = isinstance(source, collections.abc.Iterator)
        self._it = iter(source) if self.one_shot else None
        length = len(source) if isinstance(source, collections.abc.Sized) else None
        self.num_batches = steps if steps is not None else length
        if self.one_shot and steps is None:
            self.num_batches = None

    def epoch(self):
        it = self._it if self.one_shot else iter(self.source)
        for data in itertools.islice(it, self.steps):
            x, y, sw = unpack_x_y_sample_weight(data)
            if self.class_weight is not None and y is not None:
                if sw is not None:
                    raise ValueError("You cannot pass `class_weight` together with sample weights in the data")
                sw = _wrap(class_weight_to_sample_weight(_as_tensors(y), self.class_weight))
            yield _as_tensors(x), _as_tensors(y), _as_tensors(sw)


def make_batches(x, y=None, sample_weight=None, batch_size: int | None = None, shuffle=False, class_weight=None,
                 steps: int | None = None, who: str = "fit"):
    """The batch source for ``x`` (and ``y``, ``sample_weight``) as ``fit``/``evaluate``/``predict`` take them."""
    if isinstance(x, Dataset) or isinstance(x, (DataLoader, collections.abc.Iterator)) or (
            isinstance(x, collections.abc.Iterable) and not isinstance(x, (list, tuple, dict, Tensor, str,
                                                                            *ndarray_types))):
        if y is not None or sample_weight is not None:
            raise ValueError(f"{who}: `y` and `sample_weight` must not be given when x is a "
                             f"{type(x).__name__}; it should yield (x, y) or (x, y, sample_weight) itself")
        if isinstance(x, Dataset):
            x = DataLoader(x, batch_size=batch_size or 32, shuffle=bool(shuffle))
        return IterableBatches(x, steps, class_weight)
    if x is None:
        raise ValueError(f"{who}: no input data: pass x")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise ValueError(f"{who}: batch_size must be a positive integer, got {batch_size!r}")
    x, y, sample_weight = to_arrays(x, "x"), to_arrays(y, "y"), to_arrays(sample_weight, "sample_weight")
    if class_weight is not None and y is not None:
        if sample_weight is not None:
            raise ValueError(f"{who}: you cannot pass `class_weight` and `sample_weight` at the same time")
        sample_weight = class_weight_to_sample_weight(y, class_weight)
    return ArrayBatches(x, y, sample_weight, batch_size or 32, shuffle, steps)


class _OnDevice:
    """Batches moved to a model's device as they are read (``fit`` on a GPU model takes host arrays)."""

    def __init__(self, batches, device):
        self.batches, self.device = batches, device

    def __getattr__(self, name):
        return getattr(self.batches, name)

    def epoch(self):
        move = self._move
        for batch in self.batches.epoch():
            yield tuple(move(part) for part in batch)

    def _move(self, struct):
        if struct is None:
            return None
        return pack_structure(struct, [t.to(self.device) if isinstance(t, Tensor) else t
                                       for t in flatten_structure(struct)])


def on_device(batches, model):
    """``batches`` as read on the device of ``model``'s parameters (themselves when that is the CPU)."""
    first = next(iter(model.parameters()), None)
    if first is None or first.device.type == "cpu":
        return batches
    return _OnDevice(batches, first.device)
