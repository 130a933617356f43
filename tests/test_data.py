"""Datasets, DataLoader batching/shuffling/collation, random_split and the bundled digits."""
import collections

import numpy as np
import pytest

import ember
from ember.data import (DataLoader, Dataset, Subset, TensorDataset, default_collate, load_digits, random_split,
                        train_test_split)


def _tds(n=10):
    return TensorDataset(ember.arange(n * 3, dtype=ember.float32).reshape(n, 3), ember.arange(n))


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float32), "y": i * i, "name": f"s{i}", "w": float(i)}


def test_tensor_dataset():
    ds = _tds()
    assert len(ds) == 10
    x, y = ds[3]
    assert x.tolist() == [9.0, 10.0, 11.0] and int(y) == 3
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(ember.zeros(3, 2), ember.zeros(4))
    with pytest.raises(TypeError, match="expected an ember Tensor"):
        TensorDataset(np.zeros(3))


@pytest.mark.parametrize("n,bs,drop_last,expected", [(10, 3, False, [3, 3, 3, 1]), (10, 3, True, [3, 3, 3]),
                                                     (9, 3, True, [3, 3, 3]), (2, 5, False, [2]),
                                                     (2, 5, True, [])])
def test_batching_and_len(n, bs, drop_last, expected):
    dl = DataLoader(_tds(n), batch_size=bs, drop_last=drop_last)
    batches = list(dl)
    assert [len(y) for _, y in batches] == expected and len(dl) == len(expected)
    if batches:
        assert np.concatenate([y.data for _, y in batches]).tolist() == list(range(sum(expected)))
        assert batches[0][0].dtype == ember.float32 and batches[0][1].dtype == ember.int64


def test_fast_path_equals_per_sample_collation():
    ds = _tds(11)
    fast = list(DataLoader(ds, batch_size=4, shuffle=True, generator=np.random.default_rng(3)))
    slow = list(DataLoader(ds, batch_size=4, shuffle=True, generator=np.random.default_rng(3),
                           collate_fn=default_collate))
    for (fx, fy), (sx, sy) in zip(fast, slow):
        np.testing.assert_array_equal(fx.data, sx.data)
        np.testing.assert_array_equal(fy.data, sy.data)
    sub = Subset(ds, [10, 2, 5, 7])
    (x, y), = list(DataLoader(sub, batch_size=4))
    assert y.tolist() == [10, 2, 5, 7] and x.shape == (4, 3)


def test_shuffle_is_seeded_by_manual_seed_and_changes_each_epoch():
    dl = DataLoader(_tds(20), batch_size=20, shuffle=True)
    ember.manual_seed(7)
    a1, a2 = [next(iter(dl))[1].tolist() for _ in range(2)]
    ember.manual_seed(7)
    b1, b2 = [next(iter(dl))[1].tolist() for _ in range(2)]
    assert a1 == b1 and a2 == b2 and a1 != a2 and sorted(a1) == list(range(20))
    g1 = [y.tolist() for _, y in DataLoader(_tds(20), 6, shuffle=True, generator=np.random.default_rng(1))]
    g2 = [y.tolist() for _, y in DataLoader(_tds(20), 6, shuffle=True, generator=np.random.default_rng(1))]
    assert g1 == g2


def test_dict_and_mixed_collation():
    batch = next(iter(DataLoader(Squares(5), batch_size=4)))
    assert set(batch) == {"x", "y", "name", "w"}
    assert batch["x"].shape == (4, 2) and batch["x"].dtype == ember.float32
    assert batch["y"].tolist() == [0, 1, 4, 9] and batch["y"].dtype == ember.int64
    assert batch["w"].dtype == ember.float64
    assert batch["name"] == ["s0", "s1", "s2", "s3"]


def test_default_collate_structures():
    Point = collections.namedtuple("Point", "x y")
    out = default_collate([Point(1.0, ember.tensor([1, 2])), Point(2.0, ember.tensor([3, 4]))])
    assert isinstance(out, Point) and out.y.tolist() == [[1, 2], [3, 4]] and out.x.tolist() == [1.0, 2.0]
    out = default_collate([[1, True], [2, False]])
    assert isinstance(out, list) and out[0].tolist() == [1, 2] and out[1].dtype == ember.bool
    out = default_collate([(np.float32(1), np.zeros((2, 2))), (np.float32(2), np.ones((2, 2)))])
    assert isinstance(out, tuple) and out[0].dtype == ember.float32 and out[1].shape == (2, 2, 2)
    with pytest.raises(RuntimeError, match="same number of fields"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object()])


def test_custom_collate_and_unbatched():
    dl = DataLoader(Squares(3), batch_size=2, collate_fn=lambda b: [s["y"] for s in b])
    assert list(dl) == [[0, 1], [4]]
    assert [s["y"] for s in DataLoader(Squares(3), batch_size=None)] == [0, 1, 4]
    assert len(DataLoader(Squares(3), batch_size=None)) == 3
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(Squares(3), batch_size=0)


def test_random_split():
    ember.manual_seed(0)
    a, b = random_split(_tds(10), [7, 3])
    ember.manual_seed(0)
    a2, _ = random_split(_tds(10), [7, 3])
    assert len(a) == 7 and len(b) == 3 and a.indices == a2.indices
    assert sorted(a.indices + b.indices) == list(range(10))
    assert [len(s) for s in random_split(range(10), [0.5, 0.3, 0.2])] == [5, 3, 2]
    assert [len(s) for s in random_split(range(11), [0.5, 0.5])] == [6, 5]
    with pytest.raises(ValueError, match="does not equal the length"):
        random_split(range(10), [3, 3])
    x, y = next(iter(DataLoader(a, batch_size=7)))
    assert sorted(y.tolist()) == sorted(a.indices)


def test_load_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == ember.float32
    assert y.shape == (1797,) and y.dtype == ember.int64
    assert float(X.data.min()) == 0.0 and float(X.data.max()) == 1.0
    assert sorted(set(y.tolist())) == list(range(10))
    assert np.bincount(y.data).min() >= 170
    Xn, yn = load_digits(as_numpy=True)
    assert isinstance(Xn, np.ndarray) and np.array_equal(Xn, X.data) and np.array_equal(yn, y.data)
    Xn[0, 0] = 5.0
    assert load_digits(as_numpy=True)[0][0, 0] == 0.0


def test_train_test_split():
    X, y = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0)
    assert Xtr.shape == (1437, 64) and Xte.shape == (360, 64) and ytr.shape == (1437,)
    again = train_test_split(X, y, test_size=0.2, seed=0)
    assert np.array_equal(again[1].data, Xte.data)
    Xtr, Xte, ytr, yte = train_test_split(X.data, y.data, test_size=300, seed=1, stratify=True)
    assert isinstance(Xte, np.ndarray)
    frac = np.bincount(yte, minlength=10) / np.bincount(y.data, minlength=10)
    assert np.allclose(frac, 300 / 1797, atol=0.01)
    assert len(np.unique(np.concatenate([Xtr, Xte]), axis=0)) == len(np.unique(X.data, axis=0))
    with pytest.raises(ValueError, match="X has 1797 samples but y has 3"):
        train_test_split(X, y[:3])


def test_loader_on_subset_of_subset():
    ds = TensorDataset(ember.arange(20).reshape(10, 2), ember.arange(10))
    inner = Subset(Subset(ds, [9, 7, 5, 3, 1]), [4, 0, 2])
    assert [y.tolist() for _, y in DataLoader(inner, batch_size=2)] == [[1, 9], [5]]
    a, _ = random_split(ds, [6, 4])
    aa, _ = random_split(a, [3, 3])
    assert sum((y.tolist() for _, y in DataLoader(aa, batch_size=2)), []) == [int(aa[i][1]) for i in range(3)]
    tensor_idx = Subset(Subset(ds, ember.tensor([1, 3, 5, 7])), range(1, 3))
    assert [y.tolist() for _, y in DataLoader(tensor_idx, batch_size=4)] == [[3, 5]]


def test_collate_different_shapes_names_sample_and_field():
    with pytest.raises(RuntimeError, match=r"sample 1 has shape \(2,\) but sample 0 has shape \(1,\)"):
        default_collate([ember.ones(1), ember.ones(2)])
    batch = [{"x": (ember.ones(2), np.ones(3))}, {"x": (ember.ones(2), np.ones(3))}, {"x": (ember.ones(2), np.ones(4))}]
    msg = r"sample 2 has shape \(4,\) but sample 0 has shape \(3,\) in field \['x'\]\[1\]"
    with pytest.raises(RuntimeError, match=msg):
        default_collate(batch)
