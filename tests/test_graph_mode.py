"""Graph mode: tracing into the IR, ember.jit's cache and replay, debug checks, inspection.

Every op's jit parity (outputs and gradients against eager) runs in ``helpers.opcheck.check_jit`` with the
op tables; the passes have their own tests in test_graph_passes.py.
"""
import warnings

import numpy as np
import pytest

import ember
from helpers.training import cross_entropy_step
import ember.nn as nn
from ember.graph import Graph, JitMismatchError, TracerWarning, Value, trace


def test_trace_records_ops_inputs_and_captured_parameters():
    lin = nn.Linear(4, 3)
    g = trace(lambda x: lin(x).relu().sum(), ember.ones(2, 4))
    assert [n.name for n in g.nodes] == ["linear", "relu", "sum"]
    assert [v.kind for v in g.inputs] == ["input"]
    captured = [v for v in g.nodes[0].value_args() if v.kind == "captured"]
    assert [v.tensor for v in captured] == [lin.weight, lin.bias]
    assert g.outputs[0].shape == () and g.outputs[0].dtype == np.float32
    g.validate()


def test_graph_run_reads_parameters_at_each_run():
    lin = nn.Linear(3, 2)
    g = trace(lin, ember.ones(1, 3))
    x = np.ones((1, 3), np.float32)
    before = g.run(x)[0].copy()
    with ember.no_grad():
        lin.weight.mul_(2.0)
        lin.bias.zero_()
    after = g.run(x)[0]
    np.testing.assert_allclose(after, lin(ember.tensor(x)).detach().numpy(), rtol=1e-6)
    assert not np.allclose(before, after)


def test_print_and_dot_name_ops_shapes_and_edges():
    g = trace(lambda x, y: (x @ y).exp(), ember.ones(2, 3), ember.ones(3, 4))
    text = str(g)
    assert "%in0: float32[2, 3]" in text and "%in1: float32[3, 4]" in text
    assert "= matmul(%in0, %in1)" in text and "float32[2, 4] = exp(" in text and "return" in text
    dot = g.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == 4 and "matmul" in dot


def test_plot_graph_draws_a_box_per_input_and_op(tmp_path):
    pytest.importorskip("matplotlib")
    g = trace(lambda x, y: (x + y).tanh(), ember.ones(3), ember.ones(3))
    path = tmp_path / "g.png"
    fig = ember.plot.graph(g, path)
    assert len(fig.axes[0].patches) == 4 and path.stat().st_size > 0


def test_jit_replays_without_retracing_and_retraces_on_new_signature():
    calls = []

    @ember.jit
    def f(x, scale):
        calls.append(1)                 # Python side effects run only while tracing
        return (x * scale).sum(-1)

    x = ember.randn(4, 3)
    with ember.no_grad():
        a = f(x, 2.0)
        b = f(ember.randn(4, 3), 2.0)        # same shapes: replay
        assert f.traces == 1 and len(calls) == 1
        f(ember.randn(5, 3), 2.0)            # new shape
        f(ember.randn(5, 3).double(), 2.0)   # new dtype
        f(ember.randn(5, 3), 3.0)            # new literal
        assert f.traces == 4
    f(ember.randn(5, 3), 3.0)                # grad mode is part of the signature
    f(ember.randn(5, 3, requires_grad=True), 3.0)   # so is requires_grad
    assert f.traces == 6 and len(calls) == 6
    np.testing.assert_allclose(a.numpy(), (x * 2.0).sum(-1).numpy())
    assert b.shape == (4,)


def test_jit_module_retraces_when_training_flag_changes():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    jm = ember.jit(model)
    x = ember.ones(2, 6)
    with ember.no_grad():
        model.eval()
        jm(x)
        out_eval = jm(x)
        model.train()
        jm(x)
        first, second = jm(x), jm(x)
    assert jm.traces == 2
    with ember.no_grad():
        np.testing.assert_allclose(out_eval.numpy(), model.eval()(x).numpy(), rtol=1e-6)
    # dropout draws inside its op: each replay draws a fresh mask
    assert not np.array_equal(first.numpy(), second.numpy())


def test_jit_warns_after_max_traces():
    f = ember.jit(lambda x: x + 1, max_traces=2)
    with ember.no_grad():
        f(ember.ones(1))
        f(ember.ones(2))
        with pytest.warns(TracerWarning, match="traced 3 times"):
            f(ember.ones(3))


def test_jit_gradients_flow_into_parameters_like_eager():
    ember.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))
    x = ember.randn(3, 5)
    model(x).pow(2).sum().backward()
    eager = [p.grad.numpy().copy() for p in model.parameters()]
    jm = ember.jit(model)
    for _ in range(2):                       # trace, then replay
        model.zero_grad()
        jm(x).pow(2).sum().backward()
    for g, p in zip(eager, model.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-6, atol=1e-7)


def test_jit_output_structure_is_kept():
    f = ember.jit(lambda x: {"sum": x.sum(), "parts": (x * 2, [x + 1]), "n": 3})
    with ember.no_grad():
        f(ember.ones(2))
        out = f(ember.ones(2))
    assert set(out) == {"sum", "parts", "n"} and out["n"] == 3
    assert out["sum"].item() == 2.0 and out["parts"][1][0].tolist() == [2.0, 2.0]


def test_item_on_a_traced_value_warns_and_is_frozen():
    def f(x):
        return x * x.sum().item()
    jf = ember.jit(f)
    with ember.no_grad(), pytest.warns(TracerWarning, match="item"):
        jf(ember.ones(2))
    with ember.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        out = jf(ember.full((2,), 2.0))
    assert out.tolist() == [4.0, 4.0]         # the traced sum (2.0) was frozen: eager would give 8.0


def test_debug_names_the_first_node_that_differs_from_eager():
    state = {"k": 2.0}

    def f(x):
        return (x * 2).exp() + x * state["k"]      # state["k"] is frozen at trace time
    jf = ember.jit(f, debug=True)
    with ember.no_grad():
        jf(ember.ones(3))
        jf(ember.ones(3))                          # agrees with eager
        state["k"] = 5.0
        with pytest.raises(JitMismatchError, match=r"node \d+ \(mul"):
            jf(ember.ones(3))


def test_debug_catches_value_dependent_control_flow():
    def f(x):
        return x.exp() if x.sum().item() > 0 else x.neg().relu()
    jf = ember.jit(f, debug=True)
    with ember.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", TracerWarning)
        jf(ember.ones(2))
        with pytest.raises(JitMismatchError, match="control flow"):
            jf(-ember.ones(2))


def test_hand_built_graph_runs_and_validates():
    from ember.ops.elementwise import Add, Mul
    g = Graph()
    x = Value("input", (3,), np.float64)
    g.inputs.append(x)
    (s,) = g.add(Add, {}, [x, x], [((3,), np.float64)])
    (p,) = g.add(Mul, {}, [s, 3.0], [((3,), np.float64)])
    g.outputs = [p]
    g.validate()
    np.testing.assert_array_equal(g.run(np.arange(3.0))[0], [0.0, 6.0, 12.0])
    bad = Graph([x], [g.nodes[1]], [p])
    with pytest.raises(ValueError, match="before it is defined"):
        bad.validate()


def test_nested_jit_inlines_into_the_outer_trace():
    inner = ember.jit(lambda x: x.exp())
    outer = ember.jit(lambda x: inner(x) * 2, optimize=False)
    with ember.no_grad():
        outer(ember.ones(2))
        g = outer.graph_for(ember.ones(2))
    assert [n.name for n in g.nodes] == ["exp", "mul"] and inner.traces == 0


def test_lenet_step_eval_matches_eager():
    ember.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 10)).eval()
    x = ember.randn(4, 1, 28, 28)
    jn = ember.jit(net)
    with ember.no_grad():
        jn(x)
        np.testing.assert_allclose(jn(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- whole training steps
def _net(kind):
    ember.manual_seed(0)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), ember.randn(32, 64)
    return (nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10)),
            ember.randn(16, 1, 28, 28))


def _optimizer(name, params):
    if name == "sgd":
        return ember.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    if name == "sgd_dampening":
        return ember.optim.SGD(params, lr=0.05, momentum=0.9, dampening=0.3)
    if name == "adamw":
        return ember.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    if name == "rmsprop":
        return ember.optim.RMSprop(params, lr=1e-3, weight_decay=1e-4)
    if name == "rmsprop_centered_momentum":
        return ember.optim.RMSprop(params, lr=1e-3, momentum=0.9, centered=True, maximize=False)
    if name == "adagrad":
        return ember.optim.Adagrad(params, lr=0.01, lr_decay=1e-3, weight_decay=1e-4, initial_accumulator_value=0.1)
    return ember.optim.Adam(params, lr=1e-3, amsgrad=name == "adam")


@pytest.mark.parametrize("kind", ["mlp", "lenet"])
@pytest.mark.parametrize("opt_name", ["sgd", "sgd_dampening", "adam", "adamw", "adam_unfused", "rmsprop",
                                      "rmsprop_centered_momentum", "adagrad"])
def test_jitted_training_step_matches_eager_for_100_steps(kind, opt_name, monkeypatch):
    """Forward, backward and optimizer update in one graph: after 100 steps the weights equal eager's.

    Eager Adam runs numba's fused kernel when installed, which rounds through float64 scalars; Adam's
    normalised steps amplify that float32 noise over LeNet's 100 steps, so ``adam_unfused`` (and AdamW on
    LeNet) compare with eager's NumPy update, the same operations in the same order."""
    if opt_name == "adam_unfused" or (opt_name == "adamw" and kind == "lenet"):
        from ember.optim import _fused
        monkeypatch.setattr(_fused, "available", False)
    weights, losses = [], []
    for use_jit in (False, True):
        model, x = _net(kind)
        y = ember.tensor(np.arange(x.shape[0]) % 10)
        opt = _optimizer(opt_name, model.parameters())
        step = cross_entropy_step(model, opt)
        run = ember.jit(step) if use_jit else step
        losses.append([float(run(x, y).item()) for _ in range(100)])
        weights.append([p.detach().numpy().copy() for p in model.parameters()])
        if use_jit:
            assert run.traces == 1
            assert any(n.name == "backward" for n in run.graphs[0].nodes)
            assert all(p.grad is not None for p in model.parameters())
    for a, b in zip(*weights):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    assert losses[0][-1] < losses[0][0]


def test_jitted_step_follows_a_learning_rate_schedule():
    results = []
    for use_jit in (False, True):
        model, x = _net("mlp")
        y = ember.tensor(np.arange(32) % 10)
        opt = ember.optim.SGD(model.parameters(), lr=0.1)
        sched = ember.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
        step = cross_entropy_step(model, opt)
        run = ember.jit(step) if use_jit else step
        for _ in range(6):
            run(x, y)
            sched.step()
        results.append([p.detach().numpy().copy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_optimizer_without_graph_step_says_so():
    class Sign(ember.optim.Optimizer):                 # a user's optimizer with only an eager step
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

        def _step_group(self, group):
            for p, w, g, xp, state in self._updates(group):
                w -= group["lr"] * xp.sign(g)
    model, x = _net("mlp")
    opt = Sign(model.parameters())

    @ember.jit
    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    with pytest.raises(TypeError, match="Sign has no graph-mode step"):
        step(x)


def test_training_graph_prints_backward_nodes_and_effects():
    model, x = _net("mlp")
    opt = ember.optim.SGD(model.parameters(), lr=0.1)

    @ember.jit
    def step(x):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss
    g = step.graph_for(x)
    text = str(g)
    # the gradient rules of linear, relu, pow and mean are traced into ordinary ops (linear's: two products)
    assert "matmul(" in text and "backward(" not in text
    assert "effect: grad of (32, 64)" in text and "effect: (10,)" in text
    assert g.n_results == 1 and len(g.effects) == 8      # 4 parameters: their new values and their gradients


def test_backward_rules_reading_forward_state_replay_as_backward_nodes():
    """A rule that reads state its forward kept (max pooling's argmax), or whose op opts out of tracing
    (layer norm's fused rule), is one backward node replaying the op's own backward; the others are traced."""
    conv, norm = ember.nn.Conv2d(1, 2, 3), ember.nn.LayerNorm(4)

    def f(x):
        y = ember.nn.functional.max_pool2d(conv(x).relu(), 2)
        norm(y.reshape(1, -1)[:, :4]).sum().backward()
    g = ember.graph.trace(f, ember.randn(1, 1, 6, 6))
    replayed = {n.attrs["forward"].name for n in g.nodes if n.name == "backward"}
    assert replayed == {"max_pool", "normalize"}
    assert {"conv2d_weight_grad", "gt", "where"} <= {n.name for n in g.nodes}     # conv's and relu's rules


# ---------------------------------------------------------------- the high-level API
@pytest.mark.parametrize("flag", [{"jit": True}, {"jit_compile": True}])
def test_compile_jit_fit_evaluate_predict_match_eager(flag):
    from ember import layers
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((300, 16)).astype(np.float32), rng.integers(0, 4, 300)
    runs = []
    for extra in ({}, flag):
        ember.manual_seed(0)
        model = ember.Sequential([layers.Input((16,)), layers.Dense(32, activation="relu", kernel_regularizer="l2"),
                                  layers.Dropout(0.2), layers.Dense(4)])
        model.compile(optimizer=ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                      loss=ember.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"], **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # no TracerWarning: losses and metrics are tracked outside
            hist = model.fit(x, y, batch_size=64, epochs=3, validation_split=0.2, verbose=0).history
            runs.append((hist, model.get_weights(), model.evaluate(x, y, verbose=0), model.predict(x[:7], verbose=0)))
        if extra:
            assert model._jit_steps["train"].traces == 2      # full batches and the last, smaller one
    (h0, w0, e0, p0), (h1, w1, e1, p1) = runs
    assert h1.keys() == h0.keys()
    for k in h0:
        np.testing.assert_allclose(h1[k], h0[k], rtol=1e-6)
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(e1, e0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(p1), np.asarray(p0), rtol=1e-6, atol=1e-7)


def test_run_eagerly_overrides_jit():
    model = ember.Sequential([ember.layers.Input((3,)), ember.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", jit=True, run_eagerly=True)
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), verbose=0)
    assert not model._jit_steps


@pytest.mark.parametrize("length", [5, 24])      # 24: every draw (4*24*16 and up) by graph.pcg64
def test_jitted_transformer_step_with_dropout_matches_eager(monkeypatch, length):
    """Dropout and attention draw inside their ops, in eager's order: the jitted step draws the same masks."""
    from ember.optim import _fused
    monkeypatch.setattr(_fused, "available", False)
    weights = []
    for use_jit in (False, True):
        ember.manual_seed(3)
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True), 2)
        head = nn.Linear(16, 4)
        params = list(enc.parameters()) + list(head.parameters())
        opt = ember.optim.Adam(params, lr=1e-3)
        x, y = ember.randn(4, length, 16), ember.tensor([0, 1, 3, 2])

        def step():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(head(enc(x).mean(1)), y)
            loss.backward()
            opt.step()
            return loss
        run = ember.jit(step) if use_jit else step
        for _ in range(20):
            run()
        weights.append([p.detach().numpy().copy() for p in params])
    for a, b in zip(*weights):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_jitted_step_updates_batchnorm_running_statistics(momentum):
    states = []
    for use_jit in (False, True):
        ember.manual_seed(4)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=momentum), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
        opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        step = cross_entropy_step(model, opt)
        run = ember.jit(step) if use_jit else step
        x, y = ember.randn(6, 3, 8, 8), ember.tensor([0, 1, 2, 3, 0, 1])
        for _ in range(7):
            run(x, y)
        states.append({k: v.numpy().copy() for k, v in model.state_dict().items()})
    assert states[1]["1.num_batches_tracked"] == 7
    for k in states[0]:
        np.testing.assert_allclose(states[1][k], states[0][k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_jit_fit_updates_keras_batchnormalization_moving_statistics():
    from ember import layers
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((128, 6)).astype(np.float32) * 3 + 1, rng.integers(0, 3, 128)
    stats = []
    for jit in (False, True):
        ember.manual_seed(0)
        model = ember.Sequential([layers.Input((6,)), layers.Dense(8), layers.BatchNormalization(), layers.Dense(3)])
        model.compile(optimizer=ember.optim.SGD(model.parameters(), lr=0.05), jit=jit,
                      loss=ember.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        stats.append([w.copy() for w in model.layers[1].get_weights()])
    for a, b in zip(*stats):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_jitted_keras_rnn_dropout_draws_new_masks_like_eager():
    """Keras RNN dropout masks are drawn inside an op: each replay draws anew, in eager's order."""
    layer = ember.layers.LSTM(4, dropout=0.3, recurrent_dropout=0.3, return_sequences=True)
    x = ember.randn(2, 5, 3)
    layer(x)                                           # build
    f = ember.jit(lambda x: layer(x, training=True))
    results = []
    for run in (lambda x: layer(x, training=True), f, f):
        ember.manual_seed(7)
        with ember.no_grad():
            results.append((run(x).numpy().copy(), run(x).numpy().copy()))
    (e1, e2), _, (j1, j2) = results                    # the middle round traced
    np.testing.assert_allclose(j1, e1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(j2, e2, rtol=1e-6, atol=1e-7)
    assert not np.allclose(j1, j2)


@pytest.mark.parametrize("fn", [
    lambda x, w: ember.nn.functional.embedding((x.abs() * 3).long() % 5, w).sum(1),
    lambda x, w: ember.nn.functional.adaptive_max_pool2d(x.reshape(1, 2, 3, 4), (2, 3)).reshape(2, 6) @ w[:, :6].T,
    lambda x, w: x.max(dim=1)[0][:, None] * w.sum() + x.min(dim=0).values.sum(),
])
def test_data_dependent_indices_are_computed_at_every_replay(fn):
    """Indices that depend on the input (an embedding's, adaptive max pooling's and max(dim)'s argmax) come
    from ops in the graph, so a replay on new data picks new rows, not the traced example's."""
    w = ember.randn(5, 6, requires_grad=True)
    f = ember.jit(fn)
    f(ember.randn(2, 12), w)
    for seed in (1, 2):
        ember.manual_seed(seed)
        x = ember.randn(2, 12)
        got, want = f(x, w), fn(x, w)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
        gw_got, = ember.autograd.grad(got.sum(), w)
        gw_want, = ember.autograd.grad(want.sum(), w)
        np.testing.assert_allclose(gw_got.numpy(), gw_want.numpy(), rtol=1e-6)


def test_debug_checks_a_training_step_and_updates_the_model_once():
    """A jitted training step under debug=True is compared op by op with its traced graph (dropout draws
    rewound), updates the model exactly as without debug, and names a node a pass got wrong."""
    runs = []
    for debug in (False, True):
        ember.manual_seed(0)
        model = ember.nn.Sequential(ember.nn.Linear(8, 16), ember.nn.ReLU(), ember.nn.Dropout(0.3),
                                    ember.nn.Linear(16, 3))
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)
        x, y = ember.randn(5, 8), ember.randint(0, 3, (5,))

        step = cross_entropy_step(model, opt, x, y)
        jf = ember.jit(step, debug=debug)
        losses = [float(jf()) for _ in range(4)]
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)

    from ember.ops.linalg import MatMul

    class Wrong(MatMul):
        def forward(self, a, b):
            return super().forward(a, b) * 2
    node = next(n for n in jf.graphs[0].nodes if n.op is MatMul)   # break one node of the optimised graph
    node.op = Wrong
    jf.graphs[0]._code = {}
    with pytest.raises(JitMismatchError, match=r"node \d+ \(matmul"):
        jf()


class _Cube(ember.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


class _CubeNumPy(_Cube):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return ember.Tensor(3 * x.data ** 2) * g


def test_custom_autograd_function_traces_when_its_backward_uses_ember_ops():
    w = ember.randn(4, requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = _Cube.apply(w * x).sum()
        loss.backward()
        opt.step()
        return loss
    jf = ember.jit(step)
    x = ember.randn(4)
    for _ in range(3):
        before = w.detach().numpy().copy()
        jf(x)
        np.testing.assert_allclose(w.detach().numpy(), before - 0.1 * 3 * (before * x.numpy()) ** 2 * x.numpy(),
                                   rtol=1e-5)
    with pytest.raises(TypeError, match="reads arrays the graph does not know"):
        ember.jit(lambda x: _CubeNumPy.apply(w * x).sum().backward())(x)


def test_jitted_backward_of_an_op_whose_other_output_is_unused():
    """Attention's weights come out unused: their gradient is None in the backward (materialize_grads = False),
    which the traced backward node passes on as None, as eager does."""
    q, k = ember.randn(2, 3, 4, requires_grad=True), ember.randn(2, 5, 4, requires_grad=True)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)

    def step():
        q.grad = k.grad = None
        out, _ = mha(q, k, k, need_weights=True, average_attn_weights=False)
        (out * out).sum().backward()
        return q.grad, k.grad
    want = [g.numpy().copy() for g in step()]
    jitted = ember.jit(step)
    for _ in range(2):
        got = jitted()
        for a, b in zip(want, got):
            np.testing.assert_allclose(b.numpy(), a, rtol=1e-6, atol=1e-7)
    assert "None" in str(jitted.graphs[0])           # the missing gradient, shown as a literal in the IR
