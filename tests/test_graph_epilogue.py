"""Epilogue fusion (ember.graph.epilogue): relu(linear) and relu(conv2d) become one kernel in a jitted graph,
with eager's values, and only where nothing else reads the product."""
import numpy as np
import pytest

import ember
from helpers.training import cross_entropy_step
from ember.graph.epilogue import fuse_epilogues


def _names(g):
    return [n.name for n in g.nodes]


@pytest.mark.parametrize("dtype", ["float32", "float64"])     # oneDNN's post-op, and the portable fallback
def test_jitted_training_step_fuses_and_matches_eager(dtype):
    runs = []
    for use_jit in (False, True):
        ember.manual_seed(0)
        net = ember.nn.Sequential(ember.nn.Conv2d(2, 8, 3), ember.nn.ReLU(), ember.nn.Flatten(),
                                  ember.nn.Linear(8 * 8 * 8, 300), ember.nn.ReLU(), ember.nn.Linear(300, 5))
        net.to(getattr(ember, dtype))
        opt = ember.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x, y = ember.randn(64, 2, 10, 10, dtype=getattr(ember, dtype)), ember.randint(0, 5, (64,))

        step = cross_entropy_step(net, opt, x, y)
        fn = ember.jit(step) if use_jit else step
        losses = [float(fn()) for _ in range(5)]
        if use_jit:
            assert {"conv2d_relu", "linear_relu"} <= set(_names(fn.graphs[0]))
        runs.append((losses, [p.detach().numpy().copy() for p in net.parameters()]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])              # the same kernels: the same bits
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_product_read_elsewhere_is_not_fused():
    lin = ember.nn.Linear(4, 4)
    g = fuse_epilogues(ember.graph.trace(lambda x: lin(x).relu() + lin(x) * 0 + (lambda y: y.relu() - y)(lin(x)),
                                         ember.randn(2, 4)))
    assert _names(g).count("linear_relu") == 1 and _names(g).count("linear") == 2


def test_forward_only_graph_fuses_and_replays_on_new_inputs():
    conv = ember.nn.Conv2d(3, 4, 3, padding=1)
    f = ember.jit(lambda x: conv(x).relu())
    with ember.no_grad():
        f(ember.randn(2, 3, 5, 5))
        assert _names(f.graphs[0]) == ["conv2d_relu"]
        x = ember.randn(2, 3, 5, 5)
        np.testing.assert_array_equal(f(x).numpy(), conv(x).relu().numpy())
