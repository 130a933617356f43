"""ember.activations: Keras 3 definitions and defaults, checked against NumPy/torch formulas, plus get/serialize."""
import numpy as np
import pytest
import torch

import ember
from ember import activations as A

X = np.linspace(-7, 7, 29) + 0.013   # off the kinks (0, ±1, ±3, 6), where subgradients differ
T = torch.nn.functional

CASES = [   # (name, ember call, reference on a float64 torch tensor)
    ("relu", A.relu, torch.relu),
    ("sigmoid", A.sigmoid, torch.sigmoid),
    ("tanh", A.tanh, torch.tanh),
    ("elu", lambda x: A.elu(x, 0.5), lambda x: T.elu(x, 0.5)),
    ("selu", A.selu, T.selu),
    ("celu", A.celu, T.celu),
    ("gelu", A.gelu, T.gelu),
    ("gelu_tanh", lambda x: A.gelu(x, approximate=True), lambda x: T.gelu(x, approximate="tanh")),
    ("silu", A.silu, T.silu),
    ("swish", A.swish, T.silu),
    ("softplus", A.softplus, lambda x: torch.log1p(torch.exp(x))),
    ("softsign", A.softsign, lambda x: x / (1 + x.abs())),
    ("hard_sigmoid", A.hard_sigmoid, lambda x: torch.clamp(x / 6 + 0.5, 0, 1)),
    ("hard_silu", A.hard_silu, lambda x: x * torch.clamp(x / 6 + 0.5, 0, 1)),
    ("hard_tanh", A.hard_tanh, lambda x: torch.clamp(x, -1, 1)),
    ("leaky_relu", A.leaky_relu, lambda x: torch.where(x > 0, x, 0.2 * x)),   # Keras' slope is 0.2
    ("relu6", A.relu6, lambda x: torch.clamp(x, 0, 6)),
    ("mish", A.mish, T.mish),
    ("exponential", A.exponential, torch.exp),
    ("log_sigmoid", A.log_sigmoid, T.logsigmoid),
    ("soft_shrink", A.soft_shrink, T.softshrink),
    ("hard_shrink", A.hard_shrink, T.hardshrink),
    ("tanh_shrink", A.tanh_shrink, T.tanhshrink),
    ("linear", A.linear, lambda x: x),
]


@pytest.mark.parametrize("name,fn,ref", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradient_match(name, fn, ref):
    x = ember.tensor(X, requires_grad=True)
    xt = torch.tensor(X, requires_grad=True)
    y, yt = fn(x), ref(xt)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-7, atol=1e-10)
    if name != "linear":
        g = np.cos(X)
        y.backward(ember.tensor(g))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-9)


def np_keras_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras' ReLU formula, written out: thresholded, capped, leaking ``slope * (x - threshold)`` below."""
    out = np.where(x > threshold, x, 0.0) if threshold else np.maximum(x, 0)
    if max_value is not None:
        out = np.minimum(out, max_value)
    if negative_slope:
        out = out - negative_slope * np.maximum(threshold - x, 0)
    return out


@pytest.mark.parametrize("kwargs", [dict(max_value=5.0), dict(max_value=6.0), dict(threshold=2.0),
                                    dict(negative_slope=0.1), dict(negative_slope=0.1, threshold=1.5),
                                    dict(negative_slope=0.3, max_value=4.0, threshold=0.5)])
def test_relu_arguments(kwargs):
    np.testing.assert_allclose(A.relu(ember.tensor(X), **kwargs).numpy(), np_keras_relu(X, **kwargs), rtol=1e-12)


def test_softmax_and_log_softmax():
    x = np.random.RandomState(0).randn(2, 3, 4)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(A.softmax(ember.tensor(x)).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(A.log_softmax(ember.tensor(x), axis=1).numpy(),
                               torch.log_softmax(torch.tensor(x), 1).numpy(), rtol=1e-12)
    both = np.exp(x) / np.exp(x).sum((1, 2), keepdims=True)
    np.testing.assert_allclose(A.softmax(ember.tensor(x), axis=(1, 2)).numpy(), both, rtol=1e-12)
    np.testing.assert_allclose(A.log_softmax(ember.tensor(x), axis=(1, 2)).numpy(), np.log(both), rtol=1e-10)
    with pytest.warns(UserWarning, match="axis has size 1"):
        A.softmax(ember.tensor([[1.0]]))


def test_glu_and_array_inputs():
    x = np.arange(8.0).reshape(2, 4)
    np.testing.assert_allclose(A.glu(ember.tensor(x)).numpy(), x[:, :2] / (1 + np.exp(-x[:, 2:])), rtol=1e-12)
    with pytest.raises(ValueError, match=r"glu: axis -1 must have an even size .*\(2, 3\)"):
        A.glu(ember.zeros(2, 3))
    assert A.relu([-1.0, 2.0]).tolist() == [0.0, 2.0]   # lists are converted, as Keras does


def test_get_and_serialize():
    assert A.get(None) is A.linear and A.get("relu") is A.relu and A.get("swish") is A.silu
    assert A.get("softmax") is A.softmax and A.get({"class_name": "function", "config": "gelu"}) is A.gelu
    custom = ember.tanh
    assert A.get(custom) is custom
    assert A.serialize(A.relu) == "relu" and A.serialize(A.hard_sigmoid) == "hard_sigmoid"
    assert A.deserialize(A.serialize(A.leaky_relu)) is A.leaky_relu
    with pytest.raises(ValueError, match="Known activations: .*relu"):
        A.get("relu7")
    with pytest.raises(ValueError, match="not a built-in activation"):
        A.serialize(lambda x: x)
    with pytest.raises(ValueError, match="Could not interpret"):
        A.get(3)
