"""Small bundled datasets and a train/test split helper.

``load_digits`` reads the UCI "Optical Recognition of Handwritten Digits" test set (optdigits,
1797 8x8 images of the digits 0-9; E. Alpaydin and C. Kaynak, UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49, licensed CC BY 4.0), bundled as ``datasets/digits.csv.gz`` in
the form scikit-learn ships it: one image per row, 64 pixel values in 0..16, then the label.

``load_breast_cancer`` reads the Breast Cancer Wisconsin (Diagnostic) data set (569 tumours, 30 real-valued
features computed from a digitized image of a fine needle aspirate; W. Wolberg, O. Mangasarian, N. Street and
W. Street, UCI Machine Learning Repository, https://doi.org/10.24432/C5DW2B, licensed CC BY 4.0), bundled as
``datasets/breast_cancer.csv.gz`` exactly as scikit-learn ships it: a header line ``569,30,malignant,benign``,
then one tumour per row, 30 features, then the label (0 malignant, 1 benign).
"""
from __future__ import annotations

import functools
import gzip
import os

import numpy  # file I/O only: parsing the bundled CSV

from ..backend import array_module, rng
from ..creation import tensor
from ..tensor import Tensor, _wrap

__all__ = ["load_digits", "load_breast_cancer", "train_test_split"]

_DIGITS = os.path.join(os.path.dirname(__file__), "datasets", "digits.csv.gz")
_BREAST_CANCER = os.path.join(os.path.dirname(__file__), "datasets", "breast_cancer.csv.gz")


@functools.lru_cache(maxsize=1)
def _read_digits():
    with gzip.open(_DIGITS, "rt") as f:
        raw = numpy.loadtxt(f, delimiter=",", dtype=numpy.float32)
    return raw[:, :-1] / numpy.float32(16.0), raw[:, -1].astype(numpy.int64)


def load_digits(as_numpy: bool = False):
    """The 8x8 handwritten digits: ``X`` float32 of shape (1797, 64) scaled to [0, 1], ``y`` int64 labels 0-9.

    Returns ember tensors, or NumPy arrays with ``as_numpy=True``.

    >>> X, y = load_digits()
    >>> tuple(X.shape), tuple(y.shape), float(X.max()), int(y.max())
    ((1797, 64), (1797,), 1.0, 9)
    """
    X, y = _read_digits()
    if as_numpy:
        return X.copy(), y.copy()
    return tensor(X), tensor(y)


@functools.lru_cache(maxsize=1)
def _read_breast_cancer():
    with gzip.open(_BREAST_CANCER, "rt") as f:
        raw = numpy.loadtxt(f, delimiter=",", dtype=numpy.float64, skiprows=1)
    return raw[:, :-1].astype(numpy.float32), raw[:, -1].astype(numpy.int64)


def load_breast_cancer(as_numpy: bool = False):
    """Breast Cancer Wisconsin (Diagnostic): ``X`` float32 of shape (569, 30), unscaled, ``y`` int64 (1 benign).

    The features span very different ranges (areas in the hundreds, smoothness near 0.1): standardize them
    with the training split's mean and standard deviation before training. Returns ember tensors, or NumPy
    arrays with ``as_numpy=True``.

    >>> X, y = load_breast_cancer(as_numpy=True)
    >>> X.shape, y.shape, int(y.sum())
    ((569, 30), (569,), 357)
    """
    X, y = _read_breast_cancer()
    if as_numpy:
        return X.copy(), y.copy()
    return tensor(X), tensor(y)


def train_test_split(X, y, test_size: float | int = 0.25, seed: int | None = None, stratify: bool = False):
    """Shuffle and split ``X`` and ``y`` (tensors or arrays) into ``X_train, X_test, y_train, y_test``.

    ``test_size`` is a fraction or a count; ``seed`` makes the split repeat (otherwise Ember's RNG
    is used); ``stratify=True`` keeps each class's share of ``y`` in both parts.

    >>> import ember
    >>> X, y = ember.arange(20).reshape(10, 2), ember.tensor([0, 1] * 5)
    >>> Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    >>> tuple(Xtr.shape), sorted(yte.tolist())
    ((8, 2), [0, 1])
    """
    xs, ys = (X.data if isinstance(X, Tensor) else X), (y.data if isinstance(y, Tensor) else y)
    n = len(xs)
    if len(ys) != n:
        raise ValueError(f"train_test_split: X has {n} samples but y has {len(ys)}")
    n_test = int(test_size) if isinstance(test_size, int) else int(numpy.ceil(test_size * n))
    if not 0 < n_test < n:
        raise ValueError(f"train_test_split: test_size={test_size} leaves no samples in one part (n={n})")
    gen = numpy.random.default_rng(seed) if seed is not None else rng()
    if stratify:
        labels = numpy.asarray(ys)
        classes, counts = numpy.unique(labels, return_counts=True)
        share = numpy.round(counts * n_test / n).astype(numpy.int64)
        test, train = [], []
        for c, k in zip(classes, share):
            idx = gen.permutation(numpy.flatnonzero(labels == c))
            test.append(idx[:k])
            train.append(idx[k:])
        test_idx, train_idx = gen.permutation(numpy.concatenate(test)), gen.permutation(numpy.concatenate(train))
    else:
        perm = gen.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]

    def take(a, orig, idx):
        out = a[array_module(a).asarray(idx)]
        return _wrap(out) if isinstance(orig, Tensor) else out

    return take(xs, X, train_idx), take(xs, X, test_idx), take(ys, y, train_idx), take(ys, y, test_idx)
