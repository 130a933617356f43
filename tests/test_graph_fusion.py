"""Graph mode's elementwise fusion (numba kernels) and its liveness plan (values dropped after their last use)."""
import numpy as np
import pytest

import ember
from ember.graph import Graph, Value, fusion, trace
from ember.ops.elementwise import Add, Mul

pytestmark = pytest.mark.skipif(not fusion.available, reason="fusion compiles with numba")


def _fused(g):
    return [n for n in g.nodes if n.op is fusion.FusedElementwise]


def test_chain_becomes_one_kernel_with_numpy_rounding():
    x, s = ember.randn(5, 7), ember.tensor(np.float32(0.3))
    g = trace(lambda x, s: ((x * 2 + 1) / (x * x + 0.5)).sqrt() - x * s, x, s)
    before = g.run(x.numpy(), s.numpy())[0]
    n = len(g.nodes)
    fusion.fuse_elementwise(g)
    assert len(g.nodes) == 1 and g.nodes[0].attrs["ops"].count("+") == n - 1
    after = g.run(x.numpy(), s.numpy())[0]
    np.testing.assert_array_equal(after, before)          # + - * / sqrt round exactly as NumPy's
    assert after.dtype == np.float32 and after.shape == (5, 7)


def test_transcendental_ops_match_numpy_closely():
    x = ember.rand(100) + 0.1
    g = trace(lambda x: (x.exp() + x.log()).tanh() * 3, x)
    before = g.run(x.numpy())[0]
    fusion.fuse_elementwise(g)
    assert len(_fused(g)) == 1
    np.testing.assert_allclose(g.run(x.numpy())[0], before, rtol=2e-6)


def test_broadcasting_and_other_dtypes_are_not_fused():
    x, b = ember.randn(3, 4), ember.randn(4)
    g = trace(lambda x, b: (x + b) * 2, x, b)        # (3, 4) + (4,): a broadcast, not fused into the mul
    fusion.fuse_elementwise(g)
    assert not _fused(g)
    xi = ember.arange(6)
    g = trace(lambda x: x * 2 + 1, xi)               # integers stay on NumPy
    fusion.fuse_elementwise(g)
    assert not _fused(g)


def test_value_read_outside_becomes_a_kernel_output():
    x = ember.randn(8)
    def f(x):
        a = x * 2
        return a.sum(), (a + 1).exp()
    g = trace(f, x)
    ref = g.run(x.numpy())
    fusion.fuse_elementwise(g)
    (node,) = _fused(g)
    assert node.attrs["n_out"] == 2                   # x * 2 (read by sum) and the exp
    out = g.run(x.numpy())
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-6)


def test_group_with_an_outside_reader_in_between_is_left_alone():
    # a (mul) -> sum (outside) -> b (add, reads the sum and a): fusing a and b would put b before the sum
    g = Graph()
    x = Value("input", (4,), np.float32)
    g.inputs.append(x)
    (a,) = g.add(Mul, {}, [x, 2.0], [((4,), np.float32)])
    (s,) = g.add(ember.ops.reduce.Sum, {"axes": None, "keepdim": True}, [a], [((1,), np.float32)])
    (b,) = g.add(Add, {}, [a, s], [((4,), np.float32)])
    g.outputs = [b]
    ref = g.run(np.arange(4, dtype=np.float32))[0]
    fusion.fuse_elementwise(g)
    assert not _fused(g)
    np.testing.assert_array_equal(g.run(np.arange(4, dtype=np.float32))[0], ref)


def test_equal_chains_share_one_compiled_kernel():
    def f(a, b):
        return a * 0.5 + 1.25, b * 0.5 + 1.25
    g = trace(f, ember.randn(3), ember.randn(6, 2))
    fusion.fuse_elementwise(g)
    keys = {n.attrs["key"] for n in _fused(g)}
    assert len(_fused(g)) == 2 and len(keys) == 1


def test_jit_fuses_inference_graphs_and_keeps_results():
    f = ember.jit(lambda x: (x * 3 - 1).relu() * 2 + x)
    x = ember.randn(10)
    with ember.no_grad():
        f(x)
        out = f(x)
        g = f.graph_for(x)
    assert _fused(g)
    np.testing.assert_allclose(out.numpy(), ((x * 3 - 1).relu() * 2 + x).numpy(), rtol=1e-6)


def test_liveness_drops_values_after_last_use_and_plans_peak():
    g = trace(lambda x: ((x * 2) * 3) * 4, ember.ones(1000))
    drops = g.liveness()
    ids = [n.outputs[0].id for n in g.nodes]
    assert drops[1][0] == [ids[0]] and drops[2][0] == [ids[1]] and drops[2][0] != [ids[2]]
    assert g.peak_bytes() == 2 * 4000                 # an op's input and output, never three arrays


def test_optimizer_update_is_written_into_the_parameters_own_arrays():
    """A training step's fused update writes the new parameters and state where they live (no copy back),
    and the result equals the eager step's."""
    ember.manual_seed(0)
    lin = ember.nn.Linear(6, 3)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    x = ember.randn(4, 6)

    @ember.jit
    def step():
        opt.zero_grad()
        loss = lin(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss
    step()
    weight_array = lin.weight.data
    g = step.graphs[0]
    into = [n for n in _fused(g) if n.attrs.get("into")]
    assert len(into) == 2                             # the weight's and the bias's update (with momentum)
    before = lin.weight.detach().numpy().copy()
    step()
    assert lin.weight.data is weight_array and not np.array_equal(lin.weight.detach().numpy(), before)


def test_liveness_keeps_a_forward_input_that_a_backward_node_reads():
    """``linear(a * 2 + b)``: the sum is read by no later forward node, but the linear's backward needs it."""
    runs = []
    for use_jit in (False, True):
        ember.manual_seed(0)
        lin = ember.nn.Linear(3, 2)
        opt = ember.optim.SGD(lin.parameters(), lr=0.05)
        a, b = ember.randn(4, 3), ember.randn(4, 3)

        def step():
            opt.zero_grad()
            loss = lin(a * 2 + b).pow(2).mean()
            loss.backward()
            opt.step()
            return loss
        run = ember.jit(step) if use_jit else step
        runs.append([float(run().item()) for _ in range(3)])
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-6)


def test_comparisons_and_where_fuse_with_float_ops():
    """relu's traced gradient rule (``where(y > 0, g, 0)``) and a clamp-like chain become one kernel each; a
    boolean that other nodes read leaves the kernel as a bool output; values equal NumPy's."""
    x = ember.randn(64, 33)

    def f(x):
        m = x > 0.25
        a = ember.where(m, x * 2.0, x - 1.0)
        return a.exp(), m.float().sum()
    g = fusion.fuse_elementwise(ember.graph.trace(f, x))
    fused = _fused(g)
    assert len(fused) == 1 and fused[0].attrs["ops"] == "gt+mul+sub+where+exp"
    assert [v.dtype.name for v in fused[0].outputs] == ["bool", "float32"]
    got = g.run(x.numpy())
    want = f(x)
    np.testing.assert_allclose(got[0], want[0].numpy(), rtol=1e-6)
    assert float(got[1]) == float(want[1])

    lin = ember.nn.Linear(33, 8)
    g = fusion.fuse_elementwise(ember.graph.trace(lambda x: lin(x).relu().sum().backward(), x))
    assert any(n.attrs["ops"] == "gt+where" for n in _fused(g))
