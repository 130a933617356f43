"""Graph mode's compiled executor (ember.graph.codegen): the straight-line function equals the interpreter,
frees values where the liveness plan says, and keeps op state only for the backward nodes that read it."""
import sys
import tracemalloc

import numpy as np
import pytest

import ember
from helpers.training import cross_entropy_step
from ember.graph.codegen import compile_graph


def _lenet_step(seed=0):
    ember.manual_seed(seed)
    net = ember.nn.Sequential(ember.nn.Conv2d(1, 4, 3), ember.nn.ReLU(), ember.nn.MaxPool2d(2), ember.nn.Flatten(),
                              ember.nn.Linear(4 * 5 * 5, 10))
    opt = ember.optim.Adam(net.parameters(), lr=1e-2)
    x, y = ember.randn(8, 1, 12, 12), ember.randint(0, 10, (8,))
    return net, cross_entropy_step(net, opt, x, y)


@pytest.mark.parametrize("compiled", [False, True])
def test_compiled_and_interpreted_training_steps_match_eager(compiled):
    runs = []
    for use_jit in (False, True):
        net, step = _lenet_step()
        fn = ember.jit(step) if use_jit else step
        losses = []
        for _ in range(5):
            if use_jit and fn.cache:
                fn.graphs[0].frozen = compiled       # False: the node-by-node interpreter
            losses.append(float(fn()))
        runs.append((losses, [p.detach().numpy().copy() for p in net.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_compiled_step_frees_values_as_early_as_the_interpreter():
    _, step = _lenet_step()
    fn = ember.jit(step)
    fn()
    g = fn.graphs[0]
    peaks = {}
    for frozen in (False, True):
        g.frozen = frozen
        fn()
        tracemalloc.start()
        fn()
        peaks[frozen] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[True] <= peaks[False] * 1.02


def test_source_deletes_dead_values_and_keeps_state_only_for_backward_nodes():
    _, step = _lenet_step()
    fn = ember.jit(step)
    fn()
    g = fn.graphs[0]
    text = compile_graph(g, np).source
    replayed = [n for n in g.nodes if n.name == "backward"]
    assert replayed                                   # cross entropy's and max pooling's rules read their state
    kept = {line.split("=")[0].strip() for line in text.splitlines() if line.strip().startswith("o") and
            "= _new(" in line}
    assert len(kept - {"o"}) == len(replayed)         # one named op object per replayed backward, no more
    assert text.count("del ") >= len(g.nodes) // 2


def test_multi_output_nodes_scalars_and_literals():
    def f(x):
        a, b = x.split(2, dim=1)
        return (a * 2).sum(), b.max(dim=1)[0], x.mean()
    x = ember.randn(3, 4)
    g = ember.graph.trace(f, x)
    run = compile_graph(g, np)
    want = [t.numpy() for t in ember.graph.trace(f, x) and f(x)]
    got = run(x.numpy())
    assert all(type(a) is np.ndarray for a in got)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_errors_in_compiled_code_name_the_graph():
    g = ember.graph.trace(lambda x: x.relu(), ember.ones(2))
    run = compile_graph(g, np)
    with pytest.raises(Exception) as info:
        run(None)
    frames = []
    tb = info.tb
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert any("ember.jit graph" in f for f in frames)
    assert "ember.graph.codegen" in sys.modules


def test_grad_mode_is_restored_even_when_a_kernel_raises():
    g = ember.graph.trace(lambda x: x.relu(), ember.ones(2))
    run = compile_graph(g, np)
    assert ember.is_grad_enabled()
    with pytest.raises(Exception):
        run(None)
    assert ember.is_grad_enabled()
