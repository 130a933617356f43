"""ember.graph.pcg64: NumPy's PCG64 uniforms made by a compiled loop, the same numbers and the generator left
in the same state as ``Generator.random``, for every size and buffered state; and dropout's multiplier and
product made from them in one pass, as eager dropout makes them."""
import numpy as np
import pytest

from ember.graph import kernels

pytestmark = pytest.mark.skipif(not kernels.available, reason="the compiled draws need numba")

# around the 4-output blocks, the 4096-draw chunks of the fused kernels, and odd float32 counts
SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1023, 4095, 4096, 4097, 8191, 8193, 12290]


@pytest.fixture
def pcg64():
    from ember.graph import pcg64
    return pcg64


def _pair(seed, buffered):
    """Two generators in one state; with ``buffered``, NumPy holds half an output (after one float32 draw)."""
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    if buffered:
        a.random(1, dtype=np.float32), b.random(1, dtype=np.float32)
        assert a.bit_generator.state["has_uint32"] == 1
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("buffered", [False, True])
def test_uniforms_and_state_match_numpy(pcg64, dtype, buffered):
    a, b = _pair(7, buffered)
    for n in SIZES:
        want = a.random((n, 1), dtype=dtype)
        got = pcg64.random(b, (n, 1), dtype)
        assert got.dtype == dtype and got.shape == (n, 1)
        np.testing.assert_array_equal(got, want)
        assert b.bit_generator.state == a.bit_generator.state, n
    # and NumPy carries on from where the compiled draws stopped, in both widths
    np.testing.assert_array_equal(b.random(5, dtype=np.float32), a.random(5, dtype=np.float32))
    np.testing.assert_array_equal(b.random(3), a.random(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout_and_keep_match_eager_formulas(pcg64, dtype, p):
    scale = dtype(1.0 / (1.0 - p))
    for n in SIZES:
        a, b = _pair(n, buffered=n % 2 == 1)
        x = np.random.default_rng(100 + n).standard_normal(n).astype(dtype)
        x[:3] = [np.inf, -0.0, np.nan][:min(n, 3)]
        u = a.random(n, dtype=dtype)                         # ember.ops.random.Dropout's own formula
        mask = np.asarray(u >= p, dtype=dtype) * scale
        with np.errstate(invalid="ignore"):
            want_out = x * mask
            out, keep = pcg64.dropout(b, x, p)
        assert keep.dtype == bool
        np.testing.assert_array_equal(keep, u >= p)
        np.testing.assert_array_equal(out, want_out)
        assert b.bit_generator.state == a.bit_generator.state
        want_keep = a.random((n, 2), dtype=dtype) >= p          # attention's pattern
        np.testing.assert_array_equal(pcg64.dropout_mask(b, (n, 2), dtype, p), want_keep)
        assert b.bit_generator.state == a.bit_generator.state


def test_only_pcg64_generators_are_supported(pcg64):
    assert pcg64.supported(np.random.default_rng(0))
    assert not pcg64.supported(np.random.Generator(np.random.MT19937(0)))
    assert not pcg64.supported(np.random.RandomState(0))
