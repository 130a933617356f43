"""Bad arguments to tensor factories and metadata calls raise clear errors, never NumPy's."""
import pytest

import ember


@pytest.mark.parametrize("fn,exc,match", [
    (lambda: ember.arange(0, 5, 0), ValueError, "step must be nonzero"),
    (lambda: ember.arange(5, 0), ValueError, "inconsistent with step sign"),
    (lambda: ember.tensor([[1, 2], [3]]), ValueError, "different lengths"),
    (lambda: ember.full((2,), "x"), TypeError, "fill_value must be a number"),
    (lambda: ember.randint(5, 2, (3,)), ValueError, "expected low < high"),
    (lambda: ember.ones(2, 3).size(2), IndexError, r"dimension 2 is out of range .* 2 dims"),
    (lambda: ember.tensor(1.0).size(0), IndexError, "0 dims"),
    (lambda: ember.zeros(-1), ember.OpError, "zeros: invalid size -1"),
    (lambda: ember.ones(2.5), TypeError, "ones: sizes must be integers, got 2.5"),
    (lambda: ember.randn(2, -3), ember.OpError, "randn: invalid size -3"),
])
def test_factory_and_metadata_errors(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()
