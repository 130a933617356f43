"""Gradient clipping matches torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""
import math

import numpy as np
import pytest
import torch

import ember
from ember.nn.utils import clip_grad_norm_, clip_grad_value_


def _pair(scale=1.0, dtype=np.float32):
    r = np.random.default_rng(0)
    grads = [(r.standard_normal(s) * scale).astype(dtype) for s in [(5, 3), (3,), (2, 2, 2)]]
    ep = [ember.zeros(*g.shape, dtype=ember.float32 if dtype == np.float32 else ember.float64, requires_grad=True)
          for g in grads]
    tp = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in grads]
    for e, t, g in zip(ep, tp, grads):
        e.grad = ember.tensor(g.copy())
        t.grad = torch.from_numpy(g.copy())
    return ep, tp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    ep, tp = _pair(dtype=dtype)
    ours = clip_grad_norm_(ep, max_norm, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type=norm_type)
    assert isinstance(ours, ember.Tensor) and ours.shape == () and ours.dtype.name == str(theirs.dtype)[6:]
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-5)
    for e, t in zip(ep, tp):
        np.testing.assert_allclose(e.grad.data, t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_single_tensor_skips_missing_grads_and_empty():
    a = ember.zeros(2, requires_grad=True)
    b = ember.zeros(2, requires_grad=True)
    a.grad = ember.tensor([3.0, 4.0])
    assert float(clip_grad_norm_([a, b], 10.0)) == pytest.approx(5.0)
    assert float(clip_grad_norm_(a, 1.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.data, [0.6, 0.8], rtol=1e-5)
    assert float(clip_grad_norm_([b], 1.0)) == 0.0


def test_clip_grad_norm_nonfinite():
    a = ember.zeros(2, requires_grad=True)
    a.grad = ember.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    t = torch.zeros(2, requires_grad=True)
    t.grad = torch.tensor([math.inf, 1.0])
    assert math.isinf(float(clip_grad_norm_([a], 1.0)))
    torch.nn.utils.clip_grad_norm_([t], 1.0)
    np.testing.assert_array_equal(a.grad.data, t.grad.numpy())


def test_clip_grad_value_matches_torch():
    ep, tp = _pair(scale=3.0)
    assert clip_grad_value_(ep, 1.5) is None
    torch.nn.utils.clip_grad_value_(tp, 1.5)
    for e, t in zip(ep, tp):
        np.testing.assert_array_equal(e.grad.data, t.grad.numpy())
