"""ember.graph.rowsums: row sums in NumPy's pairwise order, bit for bit, and attention's softmax finished
(divided by the sum, a dead row kept at zero, the dropout product) as eager mode finishes it."""
import numpy as np
import pytest

from ember.graph import kernels

pytestmark = pytest.mark.skipif(not kernels.available, reason="the compiled kernels need numba")


@pytest.fixture
def rowsums():
    from ember.graph import rowsums
    return rowsums


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sums_are_numpys_to_the_bit(rowsums, dtype):
    rng = np.random.default_rng(1)
    for n in range(1, rowsums.MAX_ROW + 1):
        x = (rng.standard_normal((6, n)) * 10.0 ** rng.uniform(-8, 8, (6, n))).astype(dtype)
        x[5] = -0.0                                          # NumPy's sum of negative zeros is +0 (its identity)
        got = np.empty(6, dtype)
        rowsums.row_sums(x, got)
        np.testing.assert_array_equal(got, x.sum(axis=-1))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(x.sum(axis=-1)))
    assert rowsums.matches_numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep_as", [None, "multiplier", "booleans"])
def test_softmax_finish_matches_eager_steps(rowsums, dtype, keep_as):
    rng = np.random.default_rng(2)
    e = rng.random((4, 3, 37)).astype(dtype)
    e[1, 2] = 0.0                                            # a dead row: every key masked, exp(-inf) = 0
    dead = np.zeros((4, 3, 1), bool)
    dead[1, 2] = True
    scale = dtype(1 / 0.8)
    pattern = rng.random(e.shape) >= 0.2
    keep = np.multiply(pattern, scale, dtype=dtype)          # eager's multiplier
    den = np.where(dead, 1, e.sum(axis=-1, keepdims=True))   # ember.ops.attention._softmax_rows' steps
    want_p = e / den
    got, pd = e.copy(), np.empty_like(e)
    none = got.reshape(-1, 37)[:0]
    given = {None: none, "multiplier": keep.reshape(-1, 37), "booleans": pattern.reshape(-1, 37)}[keep_as]
    rowsums.softmax_finish_rows(got.reshape(-1, 37), dead.reshape(-1), given, scale,
                                none if keep_as is None else pd.reshape(-1, 37))
    np.testing.assert_array_equal(got, want_p)
    assert not got[1, 2].any()
    if keep_as is not None:
        np.testing.assert_array_equal(pd, want_p * keep)
