"""Recurrent modules and layers: parity with PyTorch (weights copied), float64 gradchecks, lengths, errors."""
import os
import sys

import numpy as np
import pytest
import torch

import ember
from ember.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from helpers.modcheck import check_module

pytestmark = pytest.mark.usefixtures("each_device")   # each test on the CPU and on cuda (conftest)

TNN = torch.nn.utils.rnn


def _pair(cls, *args, **kw):
    torch.manual_seed(0)
    return getattr(ember.nn, cls)(*args, **kw), getattr(torch.nn, cls)(*args, **kw)


def _with_state(lstm):
    if lstm:
        return lambda m, x, h, c: m(x, (h, c))
    return lambda m, x, h: m(x, h)


# (name, constructor kwargs, input shape, gradcheck) — every case runs for RNN (tanh), LSTM and GRU
CASES = [
    ("basic", {}, (5, 3, 4), True),
    ("two_layers", {"num_layers": 2}, (4, 2, 4), True),
    ("bidirectional", {"bidirectional": True}, (4, 2, 4), True),
    ("two_layers_bi_batch_first", {"num_layers": 2, "bidirectional": True, "batch_first": True}, (2, 4, 4), False),
    ("batch_first", {"batch_first": True}, (3, 5, 4), False),
    ("no_bias", {"bias": False}, (5, 3, 4), True),
    ("batch1", {}, (6, 1, 4), False),
    ("seq1", {"num_layers": 2}, (1, 3, 4), False),
    ("unbatched", {}, (5, 4), True),
    ("unbatched_batch_first_bi", {"batch_first": True, "bidirectional": True}, (5, 4), False),
    ("eval_dropout", {"num_layers": 3, "dropout": 0.5}, (4, 2, 4), False),
]
CELLS = ["RNN", "LSTM", "GRU"]


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("name,kw,shape,gc", CASES, ids=[c[0] for c in CASES])
def test_module_parity(cls, name, kw, shape, gc):
    hidden = 3
    e, t = _pair(cls, 4, hidden, **kw)
    check_module(e, t, [shape], train=name != "eval_dropout", gradcheck=gc)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("kw,shape", [({}, (5, 3, 4)), ({"num_layers": 2, "bidirectional": True}, (4, 2, 4)),
                                      ({"batch_first": True, "num_layers": 2}, (2, 4, 4))],
                         ids=["basic", "2layer_bi", "batch_first"])
def test_initial_state(cls, kw, shape):
    e, t = _pair(cls, 4, 5, **kw)
    n = shape[0] if kw.get("batch_first") else shape[1]
    hs = (kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1), n, 5)
    specs = [shape, hs, hs] if cls == "LSTM" else [shape, hs]
    check_module(e, t, specs, call=_with_state(cls == "LSTM"), gradcheck=not kw)


@pytest.mark.parametrize("cls", CELLS)
def test_initial_state_unbatched(cls):
    e, t = _pair(cls, 4, 3, num_layers=2)
    specs = [(5, 4), (2, 3), (2, 3)] if cls == "LSTM" else [(5, 4), (2, 3)]
    check_module(e, t, specs, call=_with_state(cls == "LSTM"))


def test_rnn_relu_and_odd_sizes():
    e, t = _pair("RNN", 7, 5, nonlinearity="relu", num_layers=2, bidirectional=True)
    check_module(e, t, [(9, 3, 7)], gradcheck=False)
    e, t = _pair("LSTM", 1, 1)
    check_module(e, t, [(3, 2, 1)], gradcheck=True)


PROJ_CASES = [
    ("basic", {}, (5, 3, 4), True),
    ("two_layers_bi", {"num_layers": 2, "bidirectional": True}, (4, 2, 4), False),
    ("batch_first_unbatched", {"batch_first": True}, (5, 4), False),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("name,kw,shape,gc", PROJ_CASES, ids=[c[0] for c in PROJ_CASES])
def test_lstm_proj_size(name, kw, shape, gc):
    e, t = _pair("LSTM", 4, 5, proj_size=2, **kw)
    assert list(e.state_dict()) == list(t.state_dict()) and repr(e) == repr(t)
    check_module(e, t, [shape], gradcheck=gc)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_proj_size_with_state_and_lengths():
    e, t = _pair("LSTM", 4, 5, proj_size=3, bidirectional=True)
    lengths = [4, 2, 3]
    specs = [(4, 3, 4), (2, 3, 3), (2, 3, 5)]
    check_module(e, t, specs, call=lambda m, x, h, c: m(x, (h, c), lengths=lengths),
                 torch_call=_torch_packed(False, lengths, 4), gradcheck=True)


# ---------------------------------------------------------------- variable lengths
def _torch_packed(batch_first, lengths, T):
    def call(m, x, *hx):
        packed = TNN.pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out, h = m(packed, *(((hx[0], hx[1]),) if len(hx) == 2 else hx))
        return TNN.pad_packed_sequence(out, batch_first=batch_first, total_length=T)[0], h
    return call


LENGTH_CASES = [
    ("basic", {}, [5, 2, 3, 5]),
    ("bidirectional", {"bidirectional": True}, [3, 5, 1, 4]),
    ("two_layers_bi_batch_first", {"num_layers": 2, "bidirectional": True, "batch_first": True}, [2, 5, 4]),
    ("all_full", {"bidirectional": True}, [5, 5]),
]


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("name,kw,lengths", LENGTH_CASES, ids=[c[0] for c in LENGTH_CASES])
def test_lengths_match_packed_torch(cls, name, kw, lengths):
    T, n = 5, len(lengths)
    bf = kw.get("batch_first", False)
    e, t = _pair(cls, 4, 3, **kw)
    shape = (n, T, 4) if bf else (T, n, 4)
    check_module(e, t, [shape], call=lambda m, x: m(x, lengths=lengths), torch_call=_torch_packed(bf, lengths, T),
                 gradcheck=name == "bidirectional")


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_lengths_with_initial_state(cls):
    lengths = [4, 1, 3]
    e, t = _pair(cls, 4, 3, bidirectional=True)
    specs = [(4, 3, 4), (2, 3, 3), (2, 3, 3)] if cls == "LSTM" else [(4, 3, 4), (2, 3, 3)]

    def call(m, x, *hx):
        return m(x, (hx[0], hx[1]) if len(hx) == 2 else hx[0], lengths=lengths)
    check_module(e, t, specs, call=call, torch_call=_torch_packed(False, lengths, 4))


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_input(enforce_sorted):
    lengths = [5, 3, 2] if enforce_sorted else [3, 5, 2]
    e, t = _pair("LSTM", 4, 3, num_layers=2, bidirectional=True, batch_first=True)
    e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ep = pack_padded_sequence(ex, lengths, batch_first=True, enforce_sorted=enforce_sorted)
    tp = TNN.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True, enforce_sorted=enforce_sorted)
    np.testing.assert_allclose(ep.data.detach().numpy(), tp.data.detach().numpy())
    assert ep.batch_sizes.tolist() == tp.batch_sizes.tolist()
    eo, (eh, ec) = e(ep)
    to, (th, tc) = t(tp)
    np.testing.assert_allclose(eo.data.detach().numpy(), to.data.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(eh.detach().numpy(), th.detach().numpy(), atol=1e-5)
    epad, elen = pad_packed_sequence(eo, batch_first=True)
    tpad, tlen = TNN.pad_packed_sequence(to, batch_first=True)
    np.testing.assert_allclose(epad.detach().numpy(), tpad.detach().numpy(), atol=1e-5)
    assert elen.tolist() == tlen.tolist()
    (epad.sum() + eh.sum()).backward()
    (tpad.sum() + th.sum()).backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-5)


def test_pad_and_pack_sequence_helpers():
    from ember.nn.utils.rnn import pack_sequence, pad_sequence, unpack_sequence
    seqs = [np.arange(6.0).reshape(3, 2), np.arange(2.0).reshape(1, 2), np.arange(4.0).reshape(2, 2)]
    e = pad_sequence([ember.tensor(s) for s in seqs], batch_first=True, padding_value=-1.0)
    t = TNN.pad_sequence([torch.tensor(s) for s in seqs], batch_first=True, padding_value=-1.0)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    ep = pack_sequence([ember.tensor(s) for s in seqs], enforce_sorted=False)
    tp = TNN.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(ep.data.numpy(), tp.data.numpy())
    for a, b in zip(unpack_sequence(ep), seqs):
        np.testing.assert_array_equal(a.numpy(), b)
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        pack_padded_sequence(ember.zeros(4, 2, 3), [2, 4])


# ---------------------------------------------------------------- cells
CELL_CASES = [
    ("RNNCell", {}, False), ("RNNCell", {"nonlinearity": "relu"}, False), ("RNNCell", {"bias": False}, False),
    ("LSTMCell", {}, True), ("LSTMCell", {"bias": False}, True),
    ("GRUCell", {}, False), ("GRUCell", {"bias": False}, False),
]


@pytest.mark.parametrize("cls,kw,lstm", CELL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CELL_CASES)])
def test_cells(cls, kw, lstm):
    e, t = _pair(cls, 4, 3, **kw)
    check_module(e, t, [(2, 4)], gradcheck=True)
    specs = [(2, 4), (2, 3), (2, 3)] if lstm else [(2, 4), (2, 3)]
    check_module(e, t, specs, call=(lambda m, x, h, c: m(x, (h, c))) if lstm else None, gradcheck=True)
    check_module(e, t, [(4,)] + [(3,)] * (2 if lstm else 1),
                 call=(lambda m, x, h, c: m(x, (h, c))) if lstm else None)   # unbatched


def test_cell_loop_equals_layer():
    e = ember.nn.LSTM(4, 3)
    cell = ember.nn.LSTMCell(4, 3)
    cell.load_state_dict({k[:-3]: v for k, v in e.state_dict().items()})
    x = ember.randn(6, 2, 4)
    out, (h, c) = e(x)
    hc = None
    for t in range(6):
        hc = cell(x[t], hc)
    np.testing.assert_allclose(hc[0].detach().numpy(), h[0].detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(hc[1].detach().numpy(), c[0].detach().numpy(), atol=1e-6)


# ---------------------------------------------------------------- fused (numba) kernels and the NumPy path
from ember.backend import rnn_kernels as _rnn_kernels  # noqa: E402

PATHS = ["numba", "numpy"]


@pytest.fixture(params=PATHS)
def kernel_path(request, monkeypatch):
    """Run a test once through the numba step kernels (when numba is installed) and once through NumPy."""
    if request.param == "numba" and not _rnn_kernels.available:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(_rnn_kernels, "enabled", request.param == "numba")
    return request.param


FUSED_CASES = [  # (cls, kwargs, lengths or None, with initial state, gradcheck)
    ("LSTM", {}, None, False, True),
    ("LSTM", {"bidirectional": True}, [4, 1, 3], True, True),
    ("LSTM", {"num_layers": 2, "batch_first": True}, None, True, False),
    ("LSTM", {"proj_size": 2, "bidirectional": True}, [2, 4, 3], True, True),
    ("GRU", {}, None, False, True),
    ("GRU", {"bidirectional": True}, [4, 1, 3], True, True),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("cls,kw,lengths,state,gc", FUSED_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FUSED_CASES)])
def test_kernel_paths_match_torch(kernel_path, cls, kw, lengths, state, gc):
    e, t = _pair(cls, 4, 5, **kw)
    n, T = 3, 4
    shape = (n, T, 4) if kw.get("batch_first") else (T, n, 4)
    hs = (kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1), n, kw.get("proj_size") or 5)
    cs = hs[:2] + (5,)
    specs = [shape] + ([hs, cs] if cls == "LSTM" else [hs]) * state
    if cls == "LSTM" and state:
        def call(m, x, h, c):
            return m(x, (h, c)) if lengths is None else m(x, (h, c), lengths=lengths)
    elif state:
        def call(m, x, h):
            return m(x, h) if lengths is None else m(x, h, lengths=lengths)
    else:
        def call(m, x):
            return m(x) if lengths is None else m(x, lengths=lengths)
    torch_call = None if lengths is None else _torch_packed(kw.get("batch_first", False), lengths, T)
    check_module(e, t, specs, call=call, torch_call=torch_call, gradcheck=gc)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_kernel_paths_agree_at_benchmark_scale(cls, monkeypatch):
    """Both paths on a bigger layer (float32): same outputs and gradients, within float32 rounding."""
    if not _rnn_kernels.available:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 6, 8)).astype(np.float32) * 2
    h0 = rng.standard_normal((1, 6, 32)).astype(np.float32)
    res = {}
    for path in PATHS:
        monkeypatch.setattr(_rnn_kernels, "enabled", path == "numba")
        ember.manual_seed(0)
        m = getattr(ember.nn, cls)(8, 32)
        ex = ember.tensor(x, requires_grad=True)
        hx = (ember.tensor(h0), ember.tensor(h0)) if cls == "LSTM" else ember.tensor(h0)
        out, _ = m(ex, hx, lengths=[12, 3, 7, 12, 1, 9])
        (out * ember.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape).astype(np.float32))).sum().backward()
        res[path] = [out.detach().numpy(), ex.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]
    for a, b in zip(res["numba"], res["numpy"]):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)


def test_kernel_tanh_approximation_accuracy():
    """The float32 kernels' tanh (Eigen's rational form) stays within 4e-7 of the exact function."""
    if not _rnn_kernels.available:
        pytest.skip("numba is not installed")
    ks = _rnn_kernels.kernels(np.zeros(1, np.float32))
    if ks is None:
        pytest.skip("the numba kernels are off (EMBER_STRICT_BACKEND=1 stands for CuPy)")
    H = 8001
    z = np.tile(np.linspace(-12, 12, H, dtype=np.float32), 4)[None]    # every gate sees every value
    a = z.copy()
    c = np.linspace(-3, 3, H, dtype=np.float32)[None]
    cn, tc, hn = (np.empty((1, H), np.float32) for _ in range(3))
    ks["lstm_forward"](a, np.zeros_like(a), c, cn, tc, hn)
    zd = z.astype(np.float64)
    sig = 1 / (1 + np.exp(-zd))
    ref = np.concatenate([sig[:, :2 * H], np.tanh(zd[:, 2 * H:3 * H]), sig[:, 3 * H:]], axis=1)
    assert np.abs(a - ref).max() < 4e-7
    np.testing.assert_allclose(tc, np.tanh(cn.astype(np.float64)), atol=4e-7, rtol=0)


def test_kernels_fall_back_when_unusable(monkeypatch):
    assert _rnn_kernels.kernels(np.zeros(2, np.int64)) is None
    assert _rnn_kernels.kernels(np.zeros(2, np.float32), np.zeros(2, np.float64)) is None
    monkeypatch.setattr(_rnn_kernels, "enabled", False)
    assert _rnn_kernels.kernels(np.zeros(2, np.float32)) is None


# ---------------------------------------------------------------- autograd, training mode, init, errors
@pytest.mark.parametrize("cls", CELLS)
def test_double_backward(cls):
    ember.manual_seed(0)
    m = getattr(ember.nn, cls)(2, 2, bidirectional=True).double()
    x = ember.randn(3, 2, 2, dtype=ember.float64, requires_grad=True)

    def f(x):
        return m(x, lengths=[3, 2])[0]
    assert ember.autograd.gradgradcheck(f, [x])
    w = m.weight_hh_l0
    (g,) = ember.autograd.grad((m(x)[0] ** 2).sum(), w, create_graph=True)
    (gg,) = ember.autograd.grad(g.sum(), x)
    assert gg.shape == x.shape


def test_dropout_between_layers():
    ember.manual_seed(0)
    m = ember.nn.LSTM(4, 8, num_layers=2, dropout=0.5)
    x = ember.randn(5, 3, 4)
    m.eval()
    a = m(x)[0]
    np.testing.assert_array_equal(a.detach().numpy(), m(x)[0].detach().numpy())
    m.train()
    ember.manual_seed(1)
    b = m(x)[0]
    ember.manual_seed(1)
    c = m(x)[0]
    np.testing.assert_array_equal(b.detach().numpy(), c.detach().numpy())
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    with pytest.warns(UserWarning, match="dropout"):
        ember.nn.GRU(2, 2, dropout=0.2)


def test_names_shapes_and_init():
    e, t = _pair("LSTM", 5, 7, num_layers=2, bidirectional=True)
    es, ts = e.state_dict(), t.state_dict()
    assert list(es) == list(ts)
    assert all(tuple(es[k].shape) == tuple(ts[k].shape) for k in ts)
    bound = 1 / np.sqrt(7)
    for p in e.parameters():
        v = p.detach().numpy()
        assert v.min() >= -bound and v.max() <= bound and v.std() > bound / 3
    assert repr(e) == repr(t)
    g, tg = _pair("GRU", 3, 4, batch_first=True, bias=False)
    assert repr(g) == repr(tg) and list(g.state_dict()) == list(tg.state_dict())
    assert len(e.all_weights) == 4 and len(e.all_weights[0]) == 4
    e.flatten_parameters()


def test_errors():
    lstm = ember.nn.LSTM(4, 3, num_layers=2)
    with pytest.raises(ValueError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 5"):
        lstm(ember.randn(3, 2, 5))
    with pytest.raises(ValueError, match="2D \\(unbatched\\) or 3D"):
        lstm(ember.randn(3, 2, 1, 4))
    with pytest.raises(ValueError, match="Expected hidden size \\(2, 2, 3\\), got \\[1, 2, 3\\]"):
        lstm(ember.randn(3, 2, 4), (ember.zeros(1, 2, 3), ember.zeros(2, 2, 3)))
    with pytest.raises(ValueError, match="Expected cell size"):
        lstm(ember.randn(3, 2, 4), (ember.zeros(2, 2, 3), ember.zeros(2, 3, 3)))
    with pytest.raises(ValueError, match="tuple"):
        lstm(ember.randn(3, 2, 4), ember.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="hidden size"):
        ember.nn.GRU(4, 3)(ember.randn(3, 4), ember.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="every length must be in \\[1, 3\\]"):
        ember.nn.GRU(4, 3)(ember.randn(3, 2, 4), lengths=[3, 4])
    with pytest.raises(ValueError, match="lengths"):
        ember.nn.GRU(4, 3)(ember.randn(3, 2, 4), lengths=[3])
    with pytest.raises(ValueError, match="nonlinearity"):
        ember.nn.RNN(4, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        ember.nn.RNN(4, 3, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size"):
        ember.nn.LSTM(4, 0)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        ember.nn.LSTM(4, 3, proj_size=3)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        ember.nn.RNNBase("GRU", 4, 3, proj_size=2)
    with pytest.raises(ValueError, match="Expected hidden size \\(1, 2, 2\\)"):
        ember.nn.LSTM(4, 3, proj_size=2)(ember.randn(3, 2, 4), (ember.zeros(1, 2, 3), ember.zeros(1, 2, 3)))
    with pytest.raises(ValueError, match="input_size"):
        ember.nn.LSTMCell(4, 3)(ember.randn(2, 5))
    with pytest.raises(ValueError, match="hx"):
        ember.nn.GRUCell(4, 3)(ember.randn(2, 4), ember.zeros(3, 3))
    with pytest.raises(TypeError, match="floating point"):
        ember.nn.RNN(4, 3)(ember.tensor([[1, 2, 3, 4]]))


# ---------------------------------------------------------------- the example
@pytest.mark.slow
def test_lstm_reverse_example():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    try:
        import lstm_reverse
    finally:
        sys.path.pop(0)
    assert lstm_reverse.main() >= 0.95


# ---------------------------------------------------------------- Keras-style layers
L = ember.layers
GRU_PERM = None


def _gru_perm(u):
    return np.concatenate([np.arange(u, 2 * u), np.arange(u), np.arange(2 * u, 3 * u)])


def _keras_to_torch(layer, tmod, suffix="_l0"):
    """Copy a built Keras-style layer's weights into the equivalent torch module (transposed, gates reordered)."""
    k = layer.kernel.detach().numpy()
    r = layer.recurrent_kernel.detach().numpy()
    u = layer.units
    perm = _gru_perm(u) if isinstance(layer, L.GRU) else np.arange(k.shape[1])
    sd = {f"weight_ih{suffix}": k[:, perm].T, f"weight_hh{suffix}": r[:, perm].T}
    if layer.use_bias:
        b = layer.bias.detach().numpy()
        if isinstance(layer, L.GRU):
            sd[f"bias_ih{suffix}"], sd[f"bias_hh{suffix}"] = b[0][perm], b[1][perm]
        else:
            sd[f"bias_ih{suffix}"], sd[f"bias_hh{suffix}"] = b, np.zeros_like(b)
    with torch.no_grad():
        for name, v in sd.items():
            getattr(tmod, name).copy_(torch.tensor(v))


def _torch_twin(layer, n_in, bidirectional=False):
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}[type(layer).__name__]
    kw = {"nonlinearity": "relu"} if getattr(layer.activation, "__name__", "") == "relu" else {}
    return cls(n_in, layer.units, batch_first=True, bias=layer.use_bias, bidirectional=bidirectional, **kw)


def _rand_layer_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)


KERAS_CASES = [
    ("lstm", lambda: L.LSTM(5)),
    ("lstm_seq_state", lambda: L.LSTM(5, return_sequences=True, return_state=True)),
    ("lstm_backwards", lambda: L.LSTM(5, return_sequences=True, go_backwards=True)),
    ("lstm_no_bias", lambda: L.LSTM(4, use_bias=False, return_state=True)),
    ("gru", lambda: L.GRU(5, return_sequences=True)),
    ("gru_state_backwards", lambda: L.GRU(3, return_state=True, go_backwards=True)),
    ("gru_no_bias", lambda: L.GRU(3, use_bias=False)),
    ("simple_rnn", lambda: L.SimpleRNN(4, return_sequences=True, return_state=True)),
    ("simple_rnn_relu", lambda: L.SimpleRNN(4, activation="relu")),
]


@pytest.mark.parametrize("name,make", KERAS_CASES, ids=[c[0] for c in KERAS_CASES])
def test_keras_layer_matches_torch(name, make):
    layer = make()
    x = np.random.default_rng(1).standard_normal((3, 6, 4)).astype(np.float32)
    ex = ember.tensor(x, requires_grad=True)
    layer(ex)                               # builds
    _rand_layer_weights(layer)
    tm = _torch_twin(layer, 4)
    _keras_to_torch(layer, tm)
    tx = torch.tensor(x[:, ::-1].copy() if layer.go_backwards else x, requires_grad=True)
    eo = layer(ex)
    to, th = tm(tx)
    tc = th[1][0] if isinstance(th, tuple) else None
    th = th[0][0] if isinstance(th, tuple) else th[0]
    t_main = to if layer.return_sequences else to[:, -1]
    t_outs = [t_main, th] + ([tc] if tc is not None else []) if layer.return_state else [t_main]
    e_outs = eo if layer.return_state else [eo]
    assert len(e_outs) == len(t_outs)
    for a, b in zip(e_outs, t_outs):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
    sum((o * (k + 1)).sum() for k, o in enumerate(e_outs)).backward()
    sum((o * (k + 1)).sum() for k, o in enumerate(t_outs)).backward()
    g = tx.grad.numpy()
    np.testing.assert_allclose(ex.grad.numpy(), g[:, ::-1] if layer.go_backwards else g, atol=1e-5)
    perm = _gru_perm(layer.units) if isinstance(layer, L.GRU) else np.arange(layer.kernel.shape[1])
    np.testing.assert_allclose(layer.kernel.grad.numpy()[:, perm], tm.weight_ih_l0.grad.numpy().T, atol=1e-4)
    np.testing.assert_allclose(layer.recurrent_kernel.grad.numpy()[:, perm], tm.weight_hh_l0.grad.numpy().T,
                               atol=1e-4)


@pytest.mark.parametrize("make", [lambda: L.LSTM(4, return_state=True), lambda: L.GRU(4, return_state=True),
                                  lambda: L.SimpleRNN(4, return_state=True)], ids=["lstm", "gru", "rnn"])
def test_keras_mask_matches_packed_torch(make):
    layer = make()
    lengths = [6, 2, 4]
    x = np.random.default_rng(2).standard_normal((3, 6, 5)).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    layer(ember.tensor(x))
    _rand_layer_weights(layer)
    tm = _torch_twin(layer, 5)
    _keras_to_torch(layer, tm)
    eo = layer(ember.tensor(x), mask=ember.tensor(mask))
    packed = TNN.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    _, th = tm(packed)
    th = th[0][0] if isinstance(th, tuple) else th[0]
    np.testing.assert_allclose(eo[0].detach().numpy(), th.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(eo[1].detach().numpy(), th.detach().numpy(), atol=1e-5)
    # Keras carries the last valid output through the masked steps
    seq = make().__class__(4, return_sequences=True)
    seq(ember.tensor(x))
    seq.load_state_dict(layer.state_dict())
    out = seq(ember.tensor(x), mask=ember.tensor(mask)).detach().numpy()
    np.testing.assert_allclose(out[1, 2:], np.broadcast_to(out[1, 1], (4, 4)), atol=1e-6)


def test_keras_embedding_mask_flows_into_lstm():
    ember.manual_seed(0)
    emb, lstm = L.Embedding(10, 4, mask_zero=True), L.LSTM(3)
    ids = ember.tensor([[3, 5, 0, 0], [1, 2, 7, 0]])
    out = lstm(emb(ids))
    ref = lstm(emb(ids)[:1, :2])
    np.testing.assert_allclose(out[:1].detach().numpy(), ref.detach().numpy(), atol=1e-6)
    assert tuple(emb.embeddings.shape) == (10, 4)
    w = emb.embeddings.detach().numpy()
    assert w.min() >= -0.05 and w.max() <= 0.05


def test_keras_gru_reset_before_reference():
    layer = L.GRU(3, reset_after=False, return_sequences=True)
    x = np.random.default_rng(3).standard_normal((2, 4, 2))
    layer(ember.tensor(x, dtype=ember.float32))
    _rand_layer_weights(layer)
    out = layer(ember.tensor(x, dtype=ember.float32)).detach().numpy()
    k, r, b = (p.detach().numpy().astype(np.float64) for p in (layer.kernel, layer.recurrent_kernel, layer.bias))
    u = 3
    h = np.zeros((2, u))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(4):
        xk = x[:, t] @ k + b
        z = sig(xk[:, :u] + h @ r[:, :u])
        rr = sig(xk[:, u:2 * u] + h @ r[:, u:2 * u])
        hh = np.tanh(xk[:, 2 * u:] + (rr * h) @ r[:, 2 * u:])
        h = z * h + (1 - z) * hh
        np.testing.assert_allclose(out[:, t], h, atol=1e-5)
    assert tuple(layer.bias.shape) == (9,)


def test_keras_custom_activation_path_matches_fused():
    x = ember.randn(2, 5, 3)
    fused = L.LSTM(4, return_sequences=True)
    fused(x)
    slow = L.LSTM(4, return_sequences=True, activation=lambda v: ember.tanh(v))
    slow(x)
    slow.load_state_dict(fused.state_dict())
    np.testing.assert_allclose(slow(x).detach().numpy(), fused(x).detach().numpy(), atol=1e-6)
    hs = L.GRU(4, recurrent_activation="hard_sigmoid")
    assert tuple(hs(x).shape) == (2, 4)


def test_keras_init_and_weights_layout():
    ember.manual_seed(0)
    lstm = L.LSTM(6)
    lstm(ember.ones(2, 3, 5))
    assert [tuple(p.shape) for p in lstm.weights] == [(5, 24), (6, 24), (24,)]
    b = lstm.bias.detach().numpy()
    np.testing.assert_array_equal(b, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])
    rk = lstm.recurrent_kernel.detach().numpy()
    np.testing.assert_allclose(rk @ rk.T, np.eye(6), atol=1e-5)       # orthogonal rows
    gru = L.GRU(6)
    gru(ember.ones(2, 3, 5))
    assert [tuple(p.shape) for p in gru.weights] == [(5, 18), (6, 18), (2, 18)]
    assert not np.any(L.LSTM(2, unit_forget_bias=False, input_shape=(3, 4)).bias.detach().numpy())


def test_keras_dropout_and_training_flag():
    ember.manual_seed(0)
    layer = L.LSTM(4, dropout=0.5, recurrent_dropout=0.3)
    x = ember.randn(3, 5, 2)
    a = layer(x).detach().numpy()
    np.testing.assert_array_equal(a, layer(x, training=False).detach().numpy())
    b = layer(x, training=True)
    assert not np.allclose(a, b.detach().numpy())
    b.sum().backward()
    assert layer.kernel.grad is not None


def test_bidirectional_matches_torch():
    for merge in ("concat", "sum", "ave", "mul"):
        bi = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=merge)
        x = np.random.default_rng(4).standard_normal((2, 5, 4)).astype(np.float32)
        bi(ember.tensor(x))
        _rand_layer_weights(bi.forward_layer, 0)
        _rand_layer_weights(bi.backward_layer, 1)
        tm = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True)
        _keras_to_torch(bi.forward_layer, tm)
        _keras_to_torch(bi.backward_layer, tm, "_l0_reverse")
        to = tm(torch.tensor(x))[0]
        f, bwd = to[..., :3], to[..., 3:]
        want = {"concat": to, "sum": f + bwd, "ave": (f + bwd) / 2, "mul": f * bwd}[merge]
        np.testing.assert_allclose(bi(ember.tensor(x)).detach().numpy(), want.detach().numpy(), atol=1e-5)
    bi = L.Bidirectional(L.GRU(3, return_state=True), merge_mode=None)
    out = bi(ember.randn(2, 5, 4))
    assert len(out) == 4 and [tuple(o.shape) for o in out] == [(2, 3)] * 4
    assert bi.forward_layer.name.startswith("forward_") and bi.backward_layer.go_backwards
    back = L.SimpleRNN(3, go_backwards=True, return_sequences=True)
    bi2 = L.Bidirectional(L.SimpleRNN(3, return_sequences=True), backward_layer=back)
    assert tuple(bi2(ember.randn(2, 5, 4)).shape) == (2, 5, 6) and bi2.backward_layer is back
    with pytest.raises(ValueError, match="go_backwards"):
        L.Bidirectional(L.SimpleRNN(3), backward_layer=L.SimpleRNN(3))
    with pytest.raises(ValueError, match="merge_mode"):
        L.Bidirectional(L.SimpleRNN(3), merge_mode="max")
    with pytest.raises(ValueError, match="recurrent layer"):
        L.Bidirectional(L.Dense(3))


def test_time_distributed_matches_torch():
    td = L.TimeDistributed(L.Dense(4))
    x = np.random.default_rng(5).standard_normal((2, 5, 3)).astype(np.float32)
    ex = ember.tensor(x, requires_grad=True)
    out = td(ex)
    k, b = td.layer.kernel.detach().numpy(), td.layer.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), x @ k + b, atol=1e-5)
    out.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), np.broadcast_to(k.sum(1), x.shape), atol=1e-5)
    with pytest.raises(ValueError, match="at least 3 dims"):
        td(ember.ones(2, 3))


def test_keras_configs_round_trip():
    from ember.saving.config import deserialize_layer, serialize_layer
    layers = [L.LSTM(5, return_sequences=True, dropout=0.1, unit_forget_bias=False),
              L.GRU(3, reset_after=False, go_backwards=True), L.SimpleRNN(2, activation="relu", return_state=True),
              L.Embedding(7, 3, mask_zero=True), L.TimeDistributed(L.Dense(2)),
              L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum"),
              L.Bidirectional(L.GRU(2), backward_layer=L.GRU(2, go_backwards=True))]
    for layer in layers:
        cfg = layer.get_config()
        again = type(layer).from_config(cfg)
        assert again.get_config() == cfg, type(layer).__name__
        assert deserialize_layer(serialize_layer(layer)).get_config() == cfg


def test_keras_errors():
    with pytest.raises(ValueError, match="units"):
        L.GRU(0)
    with pytest.raises(ValueError, match="batch, timesteps, features"):
        L.LSTM(3)(ember.ones(2, 3))
    layer = L.LSTM(3)
    layer(ember.ones(2, 4, 5))
    with pytest.raises(ValueError, match="expected 5 input features"):
        layer(ember.ones(2, 4, 6))
    with pytest.raises(ValueError, match="initial_state"):
        layer(ember.ones(2, 4, 5), initial_state=[ember.zeros(2, 3)])
    with pytest.raises(ValueError, match="mask must have shape"):
        layer(ember.ones(2, 4, 5), mask=ember.ones(2, 3).bool())
    with pytest.raises(ValueError, match="input_dim"):
        L.Embedding(0, 3)


def test_keras_models_fit_and_json():
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, size=(64, 6))
    y = (x[:, 0] > 5).astype(np.int64)
    model = ember.Sequential([L.Embedding(10, 8), L.LSTM(16), L.Dense(2)])
    model.compile(optimizer="adam", loss=ember.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    inp = L.Input(shape=(6,), dtype="int64")
    h = L.Embedding(10, 4, mask_zero=True)(inp)
    h = L.Bidirectional(L.GRU(3, return_sequences=True))(h)
    out = L.TimeDistributed(L.Dense(2))(h)
    fm = ember.models.Model(inp, out)
    assert tuple(fm(ember.tensor(x[:3])).shape) == (3, 6, 2)
    again = ember.models.model_from_json(fm.to_json())
    for a, b in zip(again.parameters(), fm.parameters(), strict=True):
        a.data[...] = b.data
    np.testing.assert_allclose(again(ember.tensor(x[:3])).detach().numpy(), fm(ember.tensor(x[:3])).detach().numpy(),
                               atol=1e-6)


# ---------------------------------------------------------------- stateful=True (Keras 3 semantics)
def _stateful_twin(cls, seed=0, **kw):
    """A stateful layer and a stateless twin with the same weights, both built for inputs (3, ., 4)."""
    a, b = cls(5, stateful=True, **kw), cls(5, **kw)
    a(ember.zeros(3, 1, 4))
    b(ember.zeros(3, 1, 4))
    a.reset_states()
    _rand_layer_weights(a, seed)
    for p, q in zip(b.parameters(), a.parameters(), strict=True):
        p.data[...] = q.data
    return a, b


def _np(t):
    return t.detach().numpy()


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU], ids=lambda c: c.__name__)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
def test_stateful_halves_equal_whole(cls, go_backwards):
    a, b = _stateful_twin(cls, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = ember.tensor(np.random.default_rng(2).standard_normal((3, 7, 4)).astype(np.float32))
    full = b(x)
    # Keras' go_backwards reads each call's chunk back to front and carries the state on: the chunks of a
    # long sequence then come last-first, and the outputs come in processing order
    chunks = [x[:, 4:], x[:, :4]] if go_backwards else [x[:, :3], x[:, 3:]]
    parts = [a(c) for c in chunks]
    np.testing.assert_allclose(np.concatenate([_np(p[0]) for p in parts], 1), _np(full[0]), atol=1e-5)
    for got, want, kept in zip(parts[1][1:], full[1:], a.states, strict=True):
        np.testing.assert_allclose(_np(got), _np(want), atol=1e-5)
        np.testing.assert_allclose(_np(kept), _np(want), atol=1e-5)
    assert not any(s.requires_grad for s in a.states)


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU], ids=lambda c: c.__name__)
def test_stateful_reset_restores_fresh_behaviour(cls):
    a, b = _stateful_twin(cls)
    x = ember.tensor(np.random.default_rng(3).standard_normal((3, 4, 4)).astype(np.float32))
    first = _np(a(x))
    np.testing.assert_allclose(first, _np(b(x)), atol=1e-6)
    assert np.abs(_np(a(x)) - first).max() > 1e-4          # the second call starts from the kept states
    a.reset_states()
    np.testing.assert_allclose(_np(a(x)), first, atol=1e-6)
    a.reset_state()
    assert all(float(s.abs().sum()) == 0 for s in a.states)
    np.testing.assert_allclose(_np(a(x)), first, atol=1e-6)
    # an explicit initial_state wins over the kept one, and its final states are kept
    h0 = ember.tensor(np.full((3, 5), 0.3, np.float32))
    a.reset_states()
    if cls is L.LSTM:
        out = a(x, initial_state=[h0, h0])
        np.testing.assert_allclose(_np(out), _np(b(x, initial_state=[h0, h0])), atol=1e-6)
    else:
        out = a(x, initial_state=h0)
        np.testing.assert_allclose(_np(out), _np(b(x, initial_state=h0)), atol=1e-6)
    np.testing.assert_allclose(_np(a.states[0]), _np(out), atol=1e-6)


def test_stateful_non_stateful_reset_is_noop_and_states_not_weights():
    layer = L.LSTM(3)
    layer(ember.ones(2, 4, 5))
    layer.reset_states()
    assert layer.states is None
    s = L.LSTM(3, stateful=True)
    s(ember.ones(2, 4, 5))
    assert len(s.weights) == len(layer.weights) == 3
    assert set(s.state_dict()) == set(layer.state_dict())
    assert [tuple(t.shape) for t in s.states] == [(2, 3), (2, 3)]


def test_stateful_gradients_stop_at_call_boundary():
    a, b = _stateful_twin(L.LSTM)
    rng = np.random.default_rng(4)
    x1 = ember.tensor(rng.standard_normal((3, 4, 4)).astype(np.float32), requires_grad=True)
    x2 = ember.tensor(rng.standard_normal((3, 4, 4)).astype(np.float32), requires_grad=True)
    a(x1)
    h, c = (s.detach() for s in a.states)
    a(x2).sum().backward()
    assert x1.grad is None and x2.grad is not None
    grads = [p.grad.numpy().copy() for p in a.parameters()]
    # the same as a stateless call started from the (constant) states of the first call
    x2b = ember.tensor(x2.detach().numpy(), requires_grad=True)
    b(x2b, initial_state=[h, c]).sum().backward()
    np.testing.assert_allclose(x2b.grad.numpy(), x2.grad.numpy(), atol=1e-5)
    for g, p in zip(grads, b.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), atol=1e-5)


def test_stateful_batch_size_errors():
    layer = L.GRU(3, stateful=True)
    layer(ember.ones(4, 2, 5))
    with pytest.raises(ValueError, match=r"stateful=True.*batch of 4.*shape \(3, 2, 5\)"):
        layer(ember.ones(3, 2, 5))
    with pytest.raises(ValueError, match="fixed batch size"):
        L.LSTM(3, stateful=True)(L.Input(shape=(6, 4)))
    with pytest.raises(ValueError, match="fixed batch size"):
        L.SimpleRNN(3, stateful=True, input_shape=(6, 4))
    with pytest.raises(ValueError, match="fixed batch size"):
        L.Bidirectional(L.LSTM(3, stateful=True))(L.Input(shape=(6, 4)))
    with pytest.raises(ValueError, match="stateful"):
        L.Bidirectional(L.GRU(2, stateful=True), backward_layer=L.GRU(2, go_backwards=True))
    with pytest.raises(AttributeError, match="stateful"):
        L.Bidirectional(L.GRU(2)).reset_states()
    # a batch size given up front fixes the states before any call
    fixed = L.LSTM(3, stateful=True, batch_size=2, input_shape=(6, 4))
    assert [tuple(s.shape) for s in fixed.states] == [(2, 3), (2, 3)]
    with pytest.raises(ValueError, match="batch of 2"):
        fixed(ember.ones(5, 6, 4))


def test_stateful_functional_graph_and_bidirectional():
    ember.manual_seed(0)
    inp = L.Input(shape=(6, 4), batch_size=3)
    bi = L.Bidirectional(L.LSTM(5, stateful=True, return_sequences=True), merge_mode=None)
    out = bi(inp)
    model = ember.models.Model(inp, out)
    assert all(float(s.abs().sum()) == 0 for s in bi.states) and len(bi.states) == 4   # shape probes kept none
    fwd, bwd = bi.forward_layer, bi.backward_layer
    assert fwd.stateful and bwd.stateful and bwd.go_backwards
    twin_f = L.LSTM(5, return_sequences=True)
    twin_b = L.LSTM(5, return_sequences=True, go_backwards=True)
    x = ember.tensor(np.random.default_rng(5).standard_normal((3, 6, 4)).astype(np.float32))
    twin_f(x), twin_b(x)
    for twin, sub in ((twin_f, fwd), (twin_b, bwd)):
        for p, q in zip(twin.parameters(), sub.parameters(), strict=True):
            p.data[...] = q.data
    y1 = model(x)
    np.testing.assert_allclose(_np(y1[0]), _np(twin_f(x)), atol=1e-6)
    np.testing.assert_allclose(_np(y1[1]), _np(twin_b(x).flip(1)), atol=1e-6)
    y2 = model(x)       # each direction starts from its own kept states
    assert np.abs(_np(y2[0]) - _np(y1[0])).max() > 1e-4
    kept = [_np(s) for s in bi.states]
    bi(L.Input(shape=(6, 4), batch_size=3))             # symbolic calls and shape probes leave the states alone
    assert tuple(fwd.compute_output_shape((3, 6, 4))) == (3, 6, 5)
    for a, b in zip(kept, bi.states, strict=True):
        np.testing.assert_array_equal(a, _np(b))
    bi.reset_states()
    np.testing.assert_allclose(_np(model(x)[0]), _np(y1[0]), atol=1e-6)


def test_stateful_config_round_trip():
    from ember.saving.config import deserialize_layer, serialize_layer
    layers = [L.LSTM(4, stateful=True, return_sequences=True), L.GRU(3, stateful=True, go_backwards=True),
              L.SimpleRNN(2, stateful=True, batch_size=5, input_shape=(7, 3)),
              L.Bidirectional(L.LSTM(4, stateful=True))]
    for layer in layers:
        cfg = layer.get_config()
        again = type(layer).from_config(cfg)
        assert again.get_config() == cfg
        assert deserialize_layer(serialize_layer(layer)).get_config() == cfg
        assert again.stateful
    assert cfg["layer"]["config"]["stateful"]
    rebuilt = L.SimpleRNN.from_config(layers[2].get_config())
    assert tuple(rebuilt.states[0].shape) == (5, 2)


@pytest.mark.slow
def test_stateful_sequential_fit():
    ember.manual_seed(0)
    rng = np.random.default_rng(6)
    # 4 long sequences cut into 3 windows each: window k of every sequence sits in batch k (shuffle=False)
    seq = rng.standard_normal((4, 3 * 5, 2)).astype(np.float32)
    x = np.concatenate([seq[:, k * 5:(k + 1) * 5] for k in range(3)])
    y = x[:, -1, :1] * 0.5
    model = ember.Sequential([L.Input(shape=(5, 2), batch_size=4), L.LSTM(8, stateful=True), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    losses = []
    for _ in range(6):
        losses.append(model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history["loss"][-1])
        model.reset_states()                            # the model resets every stateful layer inside
        assert not np.any(_np(model.layers[0].states[0]))
    assert losses[-1] < losses[0]
    assert tuple(model.layers[0].states[0].shape) == (4, 8)
    assert model.predict(x, batch_size=4, verbose=0).shape == (12, 1)
    with pytest.raises(ValueError, match="batch of 4"):
        model.predict(x[:6], batch_size=6, verbose=0)
    # without a batch size anywhere, a Sequential built from data takes the first batch's size (as Keras 3)
    lazy = ember.Sequential([L.GRU(3, stateful=True), L.Dense(1)])
    lazy.compile(optimizer="sgd", loss="mse")
    lazy.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert tuple(lazy.layers[0].states[0].shape) == (4, 3)
