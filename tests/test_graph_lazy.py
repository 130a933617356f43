"""Lazy mode: ``with ember.lazy():`` records ops without computing; reading a value runs the graph."""
import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.graph import LazyArray


def test_ops_build_a_graph_and_compute_nothing_until_read(monkeypatch):
    calls = []
    from ember.ops.unary import Exp
    real = Exp.forward
    monkeypatch.setattr(Exp, "forward", lambda self, x: calls.append(1) or real(self, x))
    x = ember.arange(4.0)
    with ember.lazy():
        y = (x * 2 + 1).exp()
        s = y.sum()
    assert isinstance(y.data, LazyArray) and isinstance(s.data, LazyArray)
    assert y.shape == (4,) and y.dtype == ember.float32 and s.shape == ()
    assert len(calls) == 1                        # only the shape rule's one-element stand-in so far
    np.testing.assert_allclose(s.item(), np.exp(np.arange(4.0) * 2 + 1).sum(), rtol=1e-6)
    np.testing.assert_allclose(ember.realize(y).numpy(), np.exp(np.arange(4.0) * 2 + 1), rtol=1e-6)
    assert not isinstance(y.data, LazyArray)


def test_shape_rules_match_eager_results():
    ember.manual_seed(0)
    a, b, v = ember.randn(2, 3, 4), ember.randn(4, 5), ember.randn(5)
    model = nn.Sequential(nn.Linear(5, 6), nn.GELU(), nn.Linear(6, 2))

    def f():
        return [a @ b, (a @ b).relu().mean((0, 2), keepdim=True), a.permute(2, 0, 1).reshape(4, -1).amax(1),
                model(a @ b).softmax(-1), (a > 0).float() * 3, v + 1]
    eager = f()
    with ember.lazy():
        lazy = f()
    for e, z in zip(eager, lazy):
        assert isinstance(z.data, LazyArray)
        assert z.shape == e.shape and z.dtype == e.dtype
        np.testing.assert_allclose(z.numpy(), e.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_ops_without_shape_rule_run_eagerly_on_realized_inputs():
    with ember.lazy():
        a = ember.arange(6.0).reshape(2, 3)
        b = a[0] + a.sum(0)                        # indexing has no shape rule: a is computed, a[0] runs now
        c = ember.cat([a, a], 0)
    assert b.tolist() == [3.0, 6.0, 9.0] and c.shape == (4, 3)


def test_realized_values_are_not_computed_twice():
    x = ember.ones(3)
    with ember.lazy() as rec:
        y = x * 2
        z = y + 1
    ember.realize(y)
    nodes_before = len(rec.graph.nodes)
    assert z.tolist() == [3.0, 3.0, 3.0] and len(rec.graph.nodes) == nodes_before
    assert y.data is not None and rec.graph.nodes[0].outputs[0].kind == "const"


def test_lazy_tensors_print_and_convert_to_numpy():
    with ember.lazy():
        y = ember.ones(2) * 3
    assert "3." in repr(y)
    np.testing.assert_array_equal(np.asarray(y), [3.0, 3.0])


def test_lazy_records_no_gradients_and_refuses_inside_jit():
    w = ember.ones(2, requires_grad=True)
    with ember.lazy():
        y = (w * 2).sum()
    assert not y.requires_grad and y.item() == 4.0
    f = ember.jit(lambda x: ember.lazy().__enter__())
    with pytest.raises(RuntimeError, match="not inside ember.jit"):
        f(ember.ones(1))
