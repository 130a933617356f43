"""Graph mode's compiled row kernels (ember.graph.kernels, ember.graph.compiled_ops): a jitted graph swaps
attention, dropout and cross-entropy for their compiled variants, which give eager mode's numbers to the bit
(forward, gradients and random draws), and fall back to the op's own path for what the kernels do not take."""
import numpy as np
import pytest

import ember
from ember.backend import STRICT
from ember.graph import compiled_ops, kernels
from ember.ops.attention import _shift_rows

F = ember.nn.functional
NUMPY_GRAPHS = not STRICT        # graphs on the strict backend (as on CuPy) keep the ops' own paths
pytestmark = pytest.mark.skipif(not kernels.available, reason="the compiled kernels need numba")


def _grads_step(fn, tensors):
    """A step returning fn's output and the gradients of a weighted sum of it for ``tensors``."""
    def step():
        for t in tensors:
            t.grad = None
        out = fn()
        w = ember.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape), dtype=out.dtype)
        (out * w).sum().backward()
        return (out.detach(), *[t.grad.detach() for t in tensors])
    return step


def _eager_and_jit(make, seed=0, calls=3):
    """The results of ``calls`` calls of make()'s step run eagerly and through ember.jit, from one seed, and
    the jitted graph's op names."""
    runs, names = [], None
    for use_jit in (False, True):
        ember.manual_seed(seed)
        step, tensors = make()
        fn = ember.jit(step) if use_jit else step
        runs.append([[a.numpy().copy() for a in fn()] for _ in range(calls)])
        if use_jit:
            names = {n.op.__name__ for n in fn.graphs[0].nodes}
    return runs, names


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["plain", "dropout", "dropout_compiled_draws", "causal", "bool_mask_dead_row",
                                  "float_mask", "long_rows", "long_rows_dropout", "dropout_values_broadcast"])
def test_attention_matches_eager_to_the_bit(dtype, case):
    def make():
        dt = getattr(ember, dtype)
        # 2*3*40*40 draws: ember.graph.pcg64's; 130 keys: longer rows than ember.graph.rowsums sums
        length = {"dropout_compiled_draws": 40, "long_rows": 130, "long_rows_dropout": 130}.get(case, 5)
        q, k, v = (ember.randn(2, 3, length, 4, dtype=dt, requires_grad=True) for _ in range(3))
        if case == "dropout_values_broadcast":          # v's batch is wider than the scores': so is keep
            length = 40
            q, k = (ember.randn(1, 3, length, 4, dtype=dt, requires_grad=True) for _ in range(2))
            v = ember.randn(2, 3, length, 4, dtype=dt, requires_grad=True)
        kw = {}
        if "dropout" in case:
            kw["dropout_p"] = 0.3
        elif case == "causal":
            kw["is_causal"] = True
        elif case == "bool_mask_dead_row":
            mask = np.ones((5, 5), bool)
            mask[2] = False                         # every key masked for query 2: a row of zeros, not NaN
            kw["attn_mask"] = ember.tensor(mask)
        elif case == "float_mask":
            kw["attn_mask"] = ember.randn(5, 5, dtype=dt)
        return _grads_step(lambda: F.scaled_dot_product_attention(q, k, v, **kw), [q, k, v]), [q, k, v]
    (eager, jitted), names = _eager_and_jit(make)
    assert ("CompiledAttention" in names) == NUMPY_GRAPHS
    for e_call, j_call in zip(eager, jitted):
        for a, b in zip(e_call, j_call):
            assert np.isfinite(a).all()
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("transposed", [False, True])       # a non-contiguous input is made contiguous first
@pytest.mark.parametrize("rows", [64, 8])                      # 2112 draws are compiled, 264 are NumPy's
def test_dropout_matches_eager_to_the_bit(dtype, transposed, rows):
    def make():
        x = ember.randn(rows, 33, dtype=getattr(ember, dtype), requires_grad=True)
        return _grads_step(lambda: F.dropout(x.t() if transposed else x, 0.25, training=True), [x]), [x]
    (eager, jitted), names = _eager_and_jit(make, seed=5)
    assert ("CompiledDropout" in names) == NUMPY_GRAPHS
    for e_call, j_call in zip(eager, jitted):
        for a, b in zip(e_call, j_call):
            np.testing.assert_array_equal(b, a)
    kept = eager[0][0] != 0                         # and it is dropout: about a quarter dropped, the rest scaled
    assert 0.15 < 1 - kept.mean() < 0.35
    assert len({tuple(np.flatnonzero(c[0].reshape(-1) == 0)[:20]) for c in eager}) == 3   # fresh masks per call


def test_attention_takes_numpys_sums_where_the_order_check_fails(monkeypatch):
    """Where ember.graph.rowsums finds that NumPy adds in another order, attention keeps NumPy's sums."""
    from ember.graph import rowsums
    monkeypatch.setattr(rowsums, "matches_numpy", lambda: False)
    monkeypatch.setattr(rowsums, "softmax_finish_rows", None)        # never reached
    test_attention_matches_eager_to_the_bit("float32", "dropout_compiled_draws")


@pytest.mark.parametrize("recorded", [False, True])
def test_compiled_dropout_backward_from_its_boolean_pattern(recorded):
    """The kept pattern gives eager's ``g * mask``, through the kernel or (a recorded backward, another
    dtype) through the float mask made from it."""
    x = np.random.default_rng(0).standard_normal((50, 41)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((41, 50)).astype(np.float32).T      # non-contiguous too
    grads = []
    for cls in (compiled_ops.Dropout, compiled_ops.CompiledDropout):
        ember.manual_seed(4)
        op = cls.__new__(cls)
        op.xp, op.attrs = np, {"p": 0.3}
        out = op.forward(x, 0.3)
        if cls is compiled_ops.CompiledDropout and NUMPY_GRAPHS:   # the strict backend: Dropout's own path
            assert op.keep.dtype == bool and not hasattr(op, "mask")
        with (ember.enable_grad() if recorded else ember.no_grad()):
            grads.append((out, op.backward(ember.tensor(g))[0].numpy()))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(b, a)


def test_eager_and_jitted_dropout_share_one_stream():
    """The compiled draws leave Ember's generator where NumPy's would: eager and jitted calls interleaved
    give the numbers of eager calls alone (odd sizes, so NumPy's buffered half-output is in play)."""
    x = ember.ones(37, 29)
    step = lambda: F.dropout(x, 0.5, training=True)            # noqa: E731
    jitted = ember.jit(step)
    ember.manual_seed(3)
    jitted()                                                   # the trace runs eagerly: draw once first
    want = [step().numpy() for _ in range(4)]
    ember.manual_seed(3)
    jitted()
    got = [f().numpy() for f in (step, jitted, jitted, step)]
    for a, b in zip(want, got):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["layer_norm", "layer_norm_no_affine", "layer_norm_no_bias", "group_norm",
                                  "instance_norm", "batch_norm"])
def test_normalization_matches_eager_to_the_bit(dtype, case):
    def make():
        dt = getattr(ember, dtype)
        x = ember.randn(4, 6, 5, 3, dtype=dt, requires_grad=True)
        w, b = ember.randn(6, dtype=dt, requires_grad=True), ember.randn(6, dtype=dt, requires_grad=True)
        wl, bl = ember.randn(5, 3, dtype=dt, requires_grad=True), ember.randn(5, 3, dtype=dt, requires_grad=True)
        fn, tensors = {
            "layer_norm": (lambda: F.layer_norm(x, (5, 3), wl, bl), [x, wl, bl]),
            "layer_norm_no_affine": (lambda: F.layer_norm(x, (5, 3)), [x]),
            "layer_norm_no_bias": (lambda: F.layer_norm(x, (5, 3), wl), [x, wl]),
            "group_norm": (lambda: F.group_norm(x, 3, w, b), [x, w, b]),          # a weight repeated over K
            "instance_norm": (lambda: F.instance_norm(x, weight=w, bias=b), [x, w, b]),
            "batch_norm": (lambda: F.batch_norm(x, None, None, w, b, training=True), [x, w, b]),  # its own path
        }[case]
        return _grads_step(fn, tensors), tensors
    (eager, jitted), names = _eager_and_jit(make)
    assert ("CompiledNormalize" in names) == NUMPY_GRAPHS
    for e_call, j_call in zip(eager, jitted):
        for a, b in zip(e_call, j_call):
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1},
                                    {"label_smoothing": 0.1}, {"weight": "w"}])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_matches_eager_to_the_bit(kwargs, dtype):
    def make():
        dt = getattr(ember, dtype)
        x = ember.randn(7, 4, dtype=dt, requires_grad=True)
        y = ember.tensor([0, 1, 3, 2, 1, 0, 3])
        kw = dict(kwargs)
        if kw.get("weight") == "w":
            kw["weight"] = ember.tensor([1.0, 2.0, 0.5, 1.5], dtype=dt)
        return _grads_step(lambda: F.cross_entropy(x, y, **kw), [x]), [x]
    (eager, jitted), names = _eager_and_jit(make)
    assert ("CompiledCrossEntropy" in names) == NUMPY_GRAPHS
    for e_call, j_call in zip(eager, jitted):
        for a, b in zip(e_call, j_call):
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("case", ["inf_and_nan_logits", "every_target_ignored", "spatial_logits"])
def test_cross_entropy_edge_cases_match_eager_to_the_bit(case):
    def make():
        x = ember.randn(5, 4, requires_grad=True)
        y = ember.tensor([0, 1, 3, 2, 1])
        if case == "inf_and_nan_logits":
            v = x.detach().numpy()
            v[1, 2], v[2, :], v[3, 0], v[4, 1] = np.inf, -np.inf, np.nan, -np.inf
            fn = lambda: F.cross_entropy(x, y, reduction="none")          # noqa: E731
        elif case == "every_target_ignored":                  # mean over no targets: nan, as PyTorch
            fn = lambda: F.cross_entropy(x, ember.full((5,), -100, dtype=ember.int64)).reshape(1)   # noqa: E731
        else:                                                 # (N, C, d) logits take CrossEntropy's own path
            x = ember.randn(5, 4, 3, requires_grad=True)
            fn = lambda: F.cross_entropy(x, ember.tensor([[0, 1, 2]] * 5), reduction="sum")   # noqa: E731
        return _grads_step(fn, [x]), [x]
    with np.errstate(invalid="ignore"):
        (eager, jitted), names = _eager_and_jit(make, calls=2)
    assert ("CompiledCrossEntropy" in names) == NUMPY_GRAPHS
    for e_call, j_call in zip(eager, jitted):
        for a, b in zip(e_call, j_call):
            np.testing.assert_array_equal(b, a)
    if case == "every_target_ignored":
        assert np.isnan(eager[0][0]).all()
    if case == "inf_and_nan_logits":
        assert np.isnan(eager[0][0][3]) and np.isinf(eager[0][0][4])


@pytest.mark.parametrize("case", ["layer_norm_no_rows", "dropout_empty", "attention_no_queries"])
def test_empty_inputs_match_eager(case):
    """Empty arrays take the ops' own paths."""
    def make():
        if case == "layer_norm_no_rows":
            x = ember.randn(0, 4, requires_grad=True)
            return _grads_step(lambda: F.layer_norm(x, (4,)), [x]), [x]
        if case == "dropout_empty":
            x = ember.randn(3, 0, requires_grad=True)
            return _grads_step(lambda: F.dropout(x, 0.5, training=True), [x]), [x]
        q, k = ember.randn(2, 0, 4, requires_grad=True), ember.randn(2, 5, 4, requires_grad=True)
        return _grads_step(lambda: F.scaled_dot_product_attention(q, k, k, dropout_p=0.2), [q, k]), [q, k]
    (eager, jitted), _ = _eager_and_jit(make, calls=2)
    for e_call, j_call in zip(eager, jitted):
        for a, b in zip(e_call, j_call):
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("length", [4, 40])                  # 2*40*40 draws: ember.graph.pcg64's, booleans kept
def test_compiled_attention_keeps_p_times_keep_only_when_it_is_not_handed_out(need_weights, length):
    """The kept ``p * keep`` saves the backward a pass; handed out as the weights, the caller could change it,
    so then the backward recomputes it as eager does."""
    q, k, v = (np.random.default_rng(i).standard_normal((2, length, 4)).astype(np.float32) for i in range(3))
    grads = []
    for cls in (compiled_ops.ScaledDotProductAttention, compiled_ops.CompiledAttention):
        ember.manual_seed(0)
        op = cls.__new__(cls)
        op.xp, op.attrs = np, dict(scale=0.5, causal=False, dropout_p=0.4, need_weights=need_weights)
        out = op.forward(q, k, v, **op.attrs)
        if cls is compiled_ops.CompiledAttention:
            assert (op.pd is None) == need_weights
            if need_weights:
                out[1][...] = 0                      # the caller's weights: not what the backward reads
        if not need_weights:                         # what Op.apply records for a single-output op
            op.out_data, op.out_vc, op.out_version = out, [0], 0
        g = np.ones((2, length, 4), np.float32)
        op.edges = (True, True, True, None)
        grads.append(op._backward_arrays(ember.tensor(g), None, q, k, v, None))
    for a, b in zip(*grads):
        if a is not None:
            np.testing.assert_array_equal(b.numpy(), a.numpy())


def test_shift_rows_kernel_keeps_numpy_semantics_for_inf_and_nan():
    s = np.array([[1.0, 3.0, -np.inf, 2.0], [-np.inf] * 4, [0.0, np.nan, 5.0, 1.0], [np.nan, 1.0, 2.0, 3.0],
                  [np.inf, 1.0, 0.0, -np.inf], [1.0, 2.0, 3.0, np.nan]], np.float32)
    want, got = s.copy(), s.copy()
    with np.errstate(invalid="ignore"):
        want_dead = _shift_rows(np, want)
        dead = compiled_ops._shift_rows(got, got, True)
        plain, want_plain = s.copy(), s - s.max(axis=1, keepdims=True)
        compiled_ops._shift_rows(s, plain, False)                           # cross-entropy's form
    np.testing.assert_array_equal(plain, want_plain)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dead, want_dead[:, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_row_max_is_numpys_maximum(dtype):
    """The row maxima are compiled assuming no NaN: exact on rows of every length and magnitude, and a row
    with a NaN anywhere (found from the bits) is flagged."""
    rng = np.random.default_rng(0)
    ints, magnitude, inf = compiled_ops._BITS[np.dtype(dtype)]
    for n in [1, 2, 7, 8, 15, 16, 17, 63, 64, 65, 130, 1000]:
        x = (rng.standard_normal((50, n)) * 10.0 ** rng.uniform(-30, 30, (50, 1))).astype(dtype)
        x[0] = -np.inf
        x[1, n // 2] = np.inf
        x[2, n - 1] = np.nan
        x[3, 0] = -np.nan
        m, nan = np.empty(50, dtype), np.empty(50, bool)
        kernels.kernel(kernels.row_max)(x, x.view(ints), ints(magnitude), ints(inf), m, nan)
        np.testing.assert_array_equal(nan, np.isnan(x).any(axis=1))
        np.testing.assert_array_equal(m[~nan], x[~nan].max(axis=1))


def test_the_pass_is_a_no_op_without_numba(monkeypatch):
    q = ember.randn(2, 4, 8)
    monkeypatch.setattr(kernels, "available", False)
    g = compiled_ops.use_compiled_kernels(
        ember.graph.trace(lambda q: F.scaled_dot_product_attention(q, q, q, dropout_p=0.5), q))
    assert [n.op.__name__ for n in g.nodes] == ["ScaledDotProductAttention"]


def test_the_variants_fall_back_on_arrays_the_kernels_do_not_take(monkeypatch):
    """float16 scores and a kernel-less backend (the strict one, or CuPy) take the op's own path."""
    x = ember.randn(4, 6).to(ember.float16)
    g = compiled_ops.use_compiled_kernels(ember.graph.trace(lambda x: F.scaled_dot_product_attention(x, x, x), x))
    want = F.scaled_dot_product_attention(x, x, x).numpy()
    np.testing.assert_array_equal(g.run(x.numpy())[0], want)
    monkeypatch.setattr(compiled_ops, "STRICT", True)
    called = []
    monkeypatch.setattr(kernels, "kernel", lambda fn: called.append(fn) or (lambda *a: None))
    x32 = ember.randn(4, 6)
    g = compiled_ops.use_compiled_kernels(ember.graph.trace(lambda x: F.scaled_dot_product_attention(x, x, x), x32))
    np.testing.assert_array_equal(g.run(x32.numpy())[0], F.scaled_dot_product_attention(x32, x32, x32).numpy())
    assert called == []
