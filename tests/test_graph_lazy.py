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


@pytest.mark.parametrize("name", ["cnn", "transformer", "embedding"])
def test_whole_models_record_without_running_any_op(name, monkeypatch):
    """Convolutions, pooling, normalization, attention, embedding, indexing and cross entropy all have shape
    rules: a model's forward records every op, and realizing gives eager's values."""
    from ember.graph.lazy import LazyRecorder
    ember.manual_seed(0)
    nn = ember.nn
    if name == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 3))
        x = ember.randn(2, 1, 12, 12)
    elif name == "transformer":
        model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True), 2)
        x = ember.randn(2, 5, 16)
    else:
        emb, lin = nn.Embedding(10, 8), nn.Linear(8, 3)
        model = lambda t: lin(emb(t)[:, 1:].mean(1))  # noqa: E731
        x = ember.tensor([[1, 2, 3], [4, 5, 6]])
    if hasattr(model, "eval"):
        model.eval()
    y_t = ember.randint(0, 3, (2,))
    eager_runs = []
    real = LazyRecorder.defer

    def counting(self, op, attrs, inputs):
        out = real(self, op, attrs, inputs)
        if out is None:
            eager_runs.append(op.op_name())
        return out
    monkeypatch.setattr(LazyRecorder, "defer", counting)
    with ember.no_grad():
        want = model(x)
        want_loss = ember.nn.functional.cross_entropy(want.reshape(2, -1)[:, :3], y_t)
        eager_runs.clear()
        with ember.lazy():
            out = model(x)
            loss = ember.nn.functional.cross_entropy(out.reshape(2, -1)[:, :3], y_t)
        assert eager_runs == []
        assert isinstance(out.data, LazyArray)
        np.testing.assert_allclose(ember.realize(out).numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(loss.item(), want_loss.item(), rtol=1e-5)
