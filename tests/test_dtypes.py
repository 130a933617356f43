"""ember.dtypes helpers: which NumPy dtypes count as floating point."""
import numpy as np
import pytest

import ember
from ember.dtypes import is_float
from ember.ops._util import OpError


def test_is_float_takes_bfloat16_but_not_structured_records():
    assert is_float(np.dtype("float16")) and is_float(np.dtype("float64")) and is_float(ember.bfloat16.np)
    assert not is_float(np.dtype("int32")) and not is_float(np.dtype("bool"))
    assert not is_float(np.dtype([("a", "f4"), ("b", "f4")])) and not is_float(np.dtype("V8"))


def test_bfloat16_still_counts_as_floating_for_the_ops():
    x = ember.tensor([1.0, 2.0]).to(ember.bfloat16).requires_grad_()
    y = ember.nn.functional.softmax(x, 0)
    assert y.dtype == ember.bfloat16
    y.sum().backward()
    assert x.grad.dtype == ember.bfloat16
    with pytest.raises(OpError, match="softmax: expected a floating point"):
        ember.nn.functional.softmax(ember.tensor([1, 2]), 0)
