"""``DataLoader``: batches from a dataset, optionally shuffled, with default collation into tensors."""
from __future__ import annotations

import collections.abc
import math

from ..backend import array_module, ndarray_types, rng
from ..creation import tensor
from ..tensor import Tensor, _wrap
from .dataset import Subset, TensorDataset

__all__ = ["DataLoader", "default_collate"]


def default_collate(batch: list):
    """Stack a list of samples into a batch: tensors, arrays and numbers become tensors with a new first
    dimension; tuples, lists and dicts are collated field by field; strings stay lists.

    >>> import ember
    >>> default_collate([{"x": ember.tensor([1.0, 2.0]), "y": 0}, {"x": ember.tensor([3.0, 4.0]), "y": 1}])
    {'x': tensor([[1., 2.],
            [3., 4.]]), 'y': tensor([0, 1])}
    """
    return _collate(batch, "")


def _check_shapes(batch, path: str) -> None:
    """Raise, naming the sample and field, when the samples to stack differ in shape."""
    first = tuple(batch[0].shape)
    for i, b in enumerate(batch):
        if tuple(b.shape) != first:
            where = f" in field {path}" if path else ""
            raise RuntimeError(f"default_collate: sample {i} has shape {tuple(b.shape)} but sample 0 has shape "
                               f"{first}{where}; samples must have equal shapes to be stacked "
                               "(pad them or pass a collate_fn)")


def _collate(batch: list, path: str):
    elem = batch[0]
    if isinstance(elem, Tensor):
        _check_shapes(batch, path)
        return _wrap(elem.xp.stack([b.data for b in batch]))
    if isinstance(elem, ndarray_types):
        _check_shapes(batch, path)
        return _wrap(array_module(elem).stack(batch))
    if isinstance(elem, bool):
        return tensor(batch)
    if isinstance(elem, float):
        return tensor(batch, dtype="float64")
    if isinstance(elem, int) or hasattr(elem, "dtype") and getattr(elem, "shape", None) == ():
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {key: _collate([d[key] for d in batch], f"{path}[{key!r}]") for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(_collate(list(field), f"{path}.{name}")
                            for name, field in zip(elem._fields, zip(*batch))))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(s) != len(elem) for s in batch):
            raise RuntimeError("default_collate: each sample in the batch should have the same number of fields")
        fields = [_collate(list(field), f"{path}[{i}]") for i, field in enumerate(zip(*batch))]
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def _gather(dataset, index):
    """The batch at ``index`` (a 1-D integer array) with one fancy-index per tensor, or None if not a tensor dataset."""
    if isinstance(dataset, TensorDataset):
        out = []
        for t in dataset.tensors:
            xp = array_module(t.data)
            out.append(_wrap(t.data[xp.asarray(index)]))
        return tuple(out)
    if isinstance(dataset, Subset):
        inner = dataset.indices.data if isinstance(dataset.indices, Tensor) else dataset.indices
        if isinstance(inner, ndarray_types):
            return _gather(dataset.dataset, inner[index])
        # keep the index an integer array, so a Subset of a Subset recurses with the same type
        return _gather(dataset.dataset, array_module(index).asarray([int(inner[i]) for i in index.tolist()]))
    return None


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``.

    ``shuffle`` draws a new order each epoch from ``generator`` (a NumPy ``Generator``) or from
    Ember's RNG, so ``ember.manual_seed`` repeats it; ``drop_last`` drops a final short batch;
    ``collate_fn`` turns a list of samples into a batch (default: :func:`default_collate`).
    A :class:`TensorDataset` (or a ``Subset`` of one) with the default collation is batched with
    one fancy-index per tensor instead of sample by sample. ``num_workers`` and ``pin_memory`` are
    accepted for PyTorch compatibility; batches are always made in the calling thread.

    >>> import ember
    >>> ds = TensorDataset(ember.arange(10).reshape(5, 2), ember.arange(5))
    >>> [tuple(y.tolist()) for _, y in DataLoader(ds, batch_size=2)]
    [(0, 1), (2, 3), (4,)]
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool = False, drop_last: bool = False,
                 collate_fn=None, generator=None, num_workers: int = 0, pin_memory: bool = False):
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size should be a positive integer or None, got {batch_size!r}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.collate_fn, self.generator = collate_fn, generator
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if self.shuffle:
            return (self.generator or rng()).permutation(n)
        return array_module(None).arange(n)

    def __iter__(self):
        order = self._order()
        if self.batch_size is None:
            for i in order.tolist():
                yield self.dataset[i]
            return
        fast = self.collate_fn is None
        collate = self.collate_fn or default_collate
        n, bs = len(order), self.batch_size
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            index = order[start:start + bs]
            batch = _gather(self.dataset, index) if fast else None
            if batch is None:
                fast = False
                batch = collate([self.dataset[i] for i in index.tolist()])
            yield batch
