"""ONNX import of neural-network ops (``ember/onnx/ops_nn.py`` and its sibling modules).

Three kinds of checks: the ``onnx`` package's own node test cases for every op type we register (run through
``ember.onnx.load``), single-node models with attribute combinations those cases miss compared with onnxruntime,
and gradients of imported ops against PyTorch.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto

import ember
from ember.onnx import registry

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

NN_OPS = """Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool LpPool GlobalLpPool
BatchNormalization InstanceNormalization LayerNormalization GroupNormalization MeanVarianceNormalization LRN
RMSNormalization Gemm Relu LeakyRelu PRelu Elu Selu Celu Gelu Sigmoid HardSigmoid HardSwish Softplus Softsign Mish
ThresholdedRelu Shrink Swish Softmax LogSoftmax Hardmax Dropout LSTM GRU RNN Resize Upsample DepthToSpace
SpaceToDepth NegativeLogLikelihoodLoss SoftmaxCrossEntropyLoss Attention RotaryEmbedding""".split()

# cases that cannot pass, and why
KNOWN = {
    "bf16": "bfloat16 attention: one bfloat16 ulp (8e-3 relative) away from the reference, above rtol 1e-3",
    "test_training_dropout": "training-mode dropout draws from Ember's RNG, not the reference's seeded NumPy one",
}


def _known(name: str):
    return next((why for key, why in KNOWN.items() if key in name and (key != "test_training_dropout"
                                                                        or "zero_ratio" not in name)), None)


@functools.lru_cache(maxsize=1)
def _cases():
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases() if {n.op_type for n in c.model.graph.node} & set(NN_OPS)]


def _compare(got, want, name):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-3, atol=1e-5,
                                   err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def _run_case(case) -> str:
    """'pass', 'known' (failed, listed in KNOWN), 'missing' (an op another module must provide) or raises."""
    try:
        module = ember.onnx.load(case.model)
    except registry.UnsupportedOpError:
        return "missing"
    try:
        with ember.no_grad():
            for inputs, outputs in case.data_sets:
                res = module(*inputs)
                res = res if isinstance(res, tuple) else (res,)
                assert len(res) == len(outputs), f"{case.name}: {len(res)} outputs, expected {len(outputs)}"
                for r, w in zip(res, outputs):
                    _compare(r.numpy(), w, case.name)
    except Exception:   # noqa: BLE001
        if _known(case.name):
            return "known"
        raise
    return "pass"


@pytest.mark.parametrize("op", NN_OPS)
def test_onnx_node_cases(op):
    """Every onnx node case using ``op`` passes, apart from the KNOWN ones and ones needing ops not yet imported."""
    cases = [c for c in _cases() if op in {n.op_type for n in c.model.graph.node}]
    failures = []
    for c in cases:
        try:
            _run_case(c)
        except Exception as e:   # noqa: BLE001  (collect every failure of the op, then report them together)
            failures.append(f"{c.name}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)


def test_onnx_node_cases_pass_rate():
    """Over the single-op cases of our op types, at least 95% pass (the rest are KNOWN)."""
    counts = {"pass": 0, "known": 0, "missing": 0, "fail": 0}
    for c in _cases():
        if not {n.op_type for n in c.model.graph.node} <= set(NN_OPS):
            continue
        try:
            counts[_run_case(c)] += 1
        except Exception:   # noqa: BLE001
            counts["fail"] += 1
    total = sum(counts.values())
    assert counts["pass"] / total >= 0.95, counts


# ---------------------------------------------------------------- single-node models against onnxruntime
_ONNX_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(bool): TensorProto.BOOL,
              np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.int32): TensorProto.INT32}


def node_model(op, inputs: dict, attrs: dict | None = None, outputs=("y",), out_types=None, opset: int = 17):
    """A one-node model: ``inputs`` maps names to arrays (None: an omitted optional input)."""
    names = [n if v is not None else "" for n, v in inputs.items()]
    node = oh.make_node(op, names, list(outputs), **(attrs or {}))
    ins = [oh.make_tensor_value_info(n, _ONNX_TYPE[np.asarray(v).dtype], np.asarray(v).shape)
           for n, v in inputs.items() if v is not None]
    out_types = out_types or [TensorProto.FLOAT] * len(outputs)
    outs = [oh.make_tensor_value_info(n, t, None) for n, t in zip(outputs, out_types) if n]
    graph = oh.make_graph([node], "g", ins, outs)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


def ort_run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check_ort(op, inputs: dict, attrs=None, outputs=("y",), out_types=None, opset=17, atol=1e-4, want=None):
    """Ember's import of a one-node model matches onnxruntime (or ``want``, when given)."""
    model = node_model(op, inputs, attrs, outputs, out_types, opset)
    feeds = {n: np.asarray(v) for n, v in inputs.items() if v is not None}
    if want is None:
        want = ort_run(model, feeds)
    with ember.no_grad():
        got = ember.onnx.load(model, check=False)(**feeds)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = g.numpy()
        assert g.shape == w.shape, (op, attrs, g.shape, w.shape)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=atol, err_msg=f"{op} {attrs}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{op} {attrs}")


RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape,wshape,attrs", [
    ((2, 4, 9), (6, 2, 3), {"group": 2, "pads": [2, 1], "strides": [2], "dilations": [2]}),
    ((1, 3, 8, 7), (4, 3, 3, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 3]}),
    ((1, 4, 7, 6), (4, 1, 3, 3), {"group": 4, "pads": [0, 2, 1, 0], "dilations": [2, 1]}),
    ((2, 2, 5, 6, 7), (4, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0], "strides": [2, 1, 2], "dilations": [1, 2, 1]}),
    ((1, 4, 4, 5, 5), (2, 2, 2, 3, 3), {"group": 2, "auto_pad": "SAME_LOWER"}),
])
def test_conv_vs_ort(shape, wshape, attrs):
    check_ort("Conv", {"x": randn(*shape), "w": randn(*wshape), "b": randn(wshape[0])}, attrs)


@pytest.mark.parametrize("shape,wshape,attrs", [
    ((2, 4, 5), (4, 3, 3), {"group": 2, "strides": [3], "output_padding": [1], "pads": [1, 2]}),
    ((1, 2, 4, 3), (2, 3, 3, 2), {"strides": [2, 2], "dilations": [2, 1], "pads": [1, 0, 2, 1]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 3], "output_shape": [8, 12], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 4, 2), (2, 3, 2, 3, 2), {"strides": [2, 1, 2], "output_padding": [1, 0, 0], "pads": [0, 1, 1, 1, 0, 0]}),
    ((2, 4, 2, 3, 3), (4, 1, 3, 2, 2), {"group": 2, "dilations": [2, 1, 1], "strides": [3, 2, 1]}),
])
def test_conv_transpose_vs_ort(shape, wshape, attrs):
    cout = wshape[1] * attrs.get("group", 1)
    check_ort("ConvTranspose", {"x": randn(*shape), "w": randn(*wshape), "b": randn(cout)}, attrs)


@pytest.mark.parametrize("op,shape,attrs", [
    ("MaxPool", (2, 3, 9, 8), {"kernel_shape": [3, 2], "pads": [1, 0, 2, 1], "strides": [2, 2], "ceil_mode": 1}),
    ("MaxPool", (1, 2, 11), {"kernel_shape": [3], "dilations": [3], "strides": [2], "pads": [1, 1]}),
    ("MaxPool", (1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 2, 1], "pads": [0, 1, 0, 1, 1, 1]}),
    ("AveragePool", (2, 3, 9, 8), {"kernel_shape": [3, 3], "pads": [1, 1, 2, 0], "strides": [2, 2],
                                   "count_include_pad": 1}),
    ("AveragePool", (1, 2, 10), {"kernel_shape": [4], "strides": [3], "pads": [2, 2], "ceil_mode": 1}),
    ("AveragePool", (1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2, 2]}),
    ("LpPool", (1, 3, 7, 7), {"kernel_shape": [3, 3], "p": 3, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("GlobalLpPool", (2, 3, 4, 5), {"p": 3}),
    ("GlobalMaxPool", (2, 3, 4, 5, 2), {}),
])
def test_pool_vs_ort(op, shape, attrs):
    check_ort(op, {"x": randn(*shape)}, attrs, opset=19)


@pytest.mark.parametrize("shape,attrs", [
    ((2, 3, 7, 6), {"kernel_shape": [3, 3], "pads": [1, 0, 1, 2], "strides": [2, 1]}),
    ((1, 2, 4, 5, 6), {"kernel_shape": [2, 2, 3], "strides": [2, 2, 2]}),
    ((1, 1, 6, 6), {"kernel_shape": [2, 2], "storage_order": 1, "strides": [2, 2]}),
])
def test_max_pool_indices_vs_ort(shape, attrs):
    x = RNG.permutation(np.prod(shape)).reshape(shape).astype(np.float32)       # no ties
    check_ort("MaxPool", {"x": x}, attrs, outputs=("y", "i"), out_types=[TensorProto.FLOAT, TensorProto.INT64])


@pytest.mark.parametrize("kind,attrs,opset", [
    ("LSTM", {"direction": "bidirectional", "hidden_size": 4}, 14),
    ("LSTM", {"direction": "reverse", "hidden_size": 3, "layout": 1}, 14),
    ("LSTM", {"hidden_size": 3, "clip": 0.7, "activations": ["HardSigmoid", "Tanh", "Softsign"]}, 14),
    ("LSTM", {"hidden_size": 3, "input_forget": 1, "direction": "bidirectional"}, 14),
    ("GRU", {"direction": "bidirectional", "hidden_size": 4, "linear_before_reset": 1}, 14),
    ("GRU", {"hidden_size": 4, "layout": 1, "direction": "reverse"}, 14),
    ("GRU", {"hidden_size": 3, "activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3],
             "activation_beta": [0.4]}, 14),
    ("RNN", {"direction": "bidirectional", "hidden_size": 5, "activations": ["Relu", "Tanh"]}, 14),
    ("RNN", {"hidden_size": 4, "activations": ["LeakyRelu"], "activation_alpha": [0.2], "clip": 1.5}, 14),
])
def test_recurrent_vs_ort(kind, attrs, opset):
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    H, D = attrs["hidden_size"], 2 if attrs.get("direction") == "bidirectional" else 1
    T, N, inp = 5, 3, 4
    layout = attrs.get("layout", 0)
    x = randn(N, T, inp) if layout else randn(T, N, inp)
    state = (N, D, H) if layout else (D, N, H)
    ins = {"x": x, "w": randn(D, g * H, inp) * 0.5, "r": randn(D, g * H, H) * 0.5, "b": randn(D, 2 * g * H) * 0.5,
           "lens": np.array([5, 2, 4], dtype=np.int32), "h0": randn(*state)}
    outs = ("y", "yh")
    if kind == "LSTM":
        ins["c0"] = randn(*state)
        ins["p"] = randn(D, 3 * H) * 0.5
        outs = ("y", "yh", "yc")
    want = None
    if layout:              # onnxruntime runs only layout 0: the reference is the time-major model, transposed
        tm = {k: (np.swapaxes(v, 0, 1) if k in ("x", "h0", "c0") else v) for k, v in ins.items()}
        ref = ort_run(node_model(kind, tm, {**attrs, "layout": 0}, outs, None, opset), tm)
        want = [ref[0].transpose(2, 0, 1, 3)] + [r.transpose(1, 0, 2) for r in ref[1:]]
    check_ort(kind, ins, attrs, outputs=outs, opset=opset, want=want)


def test_lstm_sequence_lens_forward_only_vs_ort():
    """The fused scan path (no peepholes) with per-sequence lengths and both layouts of the default LSTM."""
    H = 3
    x = randn(6, 4, 2)
    ins = {"x": x, "w": randn(2, 4 * H, 2), "r": randn(2, 4 * H, H), "b": randn(2, 8 * H),
           "lens": np.array([6, 1, 3, 5], dtype=np.int32)}
    check_ort("LSTM", ins, {"hidden_size": H, "direction": "bidirectional"}, outputs=("y", "yh", "yc"), opset=14)


@pytest.mark.parametrize("shape,inputs,attrs,opset", [
    ((1, 2, 3, 4), {"scales": np.array([1, 1, 2.5, 1.5], np.float32)}, {"mode": "nearest"}, 10),
    ((1, 2, 3, 4), {"scales": np.array([1, 1, 1.7, 0.6], np.float32)}, {"mode": "linear"}, 10),
    ((1, 2, 5, 4), {"sizes": np.array([1, 2, 3, 9], np.int64)},
     {"mode": "nearest", "nearest_mode": "round_prefer_ceil", "coordinate_transformation_mode": "half_pixel"}, 13),
    ((2, 1, 6, 7), {"sizes": np.array([2, 1, 4, 11], np.int64)},
     {"mode": "cubic", "coordinate_transformation_mode": "pytorch_half_pixel", "exclude_outside": 1}, 13),
    ((1, 1, 4, 6), {"scales": np.array([1, 1, 2.0, 0.5], np.float32)},
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, 13),
    ((1, 3, 4, 6, 5), {"scales": np.array([1, 1, 1.5, 0.5, 2], np.float32)},
     {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, 13),
    ((1, 1, 8, 8), {"scales": np.array([1, 1, 0.6, 0.4], np.float32)}, {"mode": "linear", "antialias": 1}, 18),
])
def test_resize_vs_ort(shape, inputs, attrs, opset):
    ins = {"x": randn(*shape)}
    if opset >= 11:
        ins["roi"] = None
    ins.update(inputs if opset >= 11 or "scales" in inputs else {})
    if opset >= 11 and "sizes" in inputs:
        ins = {"x": ins["x"], "roi": None, "scales": None, "sizes": inputs["sizes"]}
    check_ort("Resize", ins, attrs, opset=opset)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, 2), (11, -3), (13, 1), (13, -2)])
def test_softmax_family_axis_semantics_vs_ort(op, opset, axis):
    check_ort(op, {"x": randn(2, 3, 4, 5)}, {"axis": axis}, opset=opset)


@pytest.mark.parametrize("attrs,c_shape", [
    ({"transA": 1, "alpha": 0.7}, (5,)), ({"transB": 1}, (5,)), ({"transB": 1, "beta": 0.0}, (3, 5)),
    ({"transA": 1, "transB": 1, "beta": 2.0}, (1, 5)),
])
def test_gemm_vs_ort(attrs, c_shape):
    a = randn(4, 3) if attrs.get("transA") else randn(3, 4)
    b = randn(5, 4) if attrs.get("transB") else randn(4, 5)
    check_ort("Gemm", {"a": a, "b": b, "c": randn(*c_shape)}, attrs)


def test_normalization_variants_vs_ort():
    x = randn(2, 4, 3, 5)
    check_ort("LayerNormalization", {"x": x, "s": randn(3, 5), "b": randn(3, 5)}, {"axis": 2},
              outputs=("y", "mean", "inv"), opset=17)
    check_ort("LayerNormalization", {"x": x, "s": randn(5)}, {"axis": 2}, opset=17)      # broadcast scale, no bias
    check_ort("GroupNormalization", {"x": x, "s": randn(4), "b": randn(4)}, {"num_groups": 2}, opset=21)
    check_ort("InstanceNormalization", {"x": randn(2, 3, 1, 1) + 1, "s": randn(3), "b": randn(3)}, {}, opset=17,
              atol=1e-3)
    check_ort("MeanVarianceNormalization", {"x": x}, {"axes": [1, 3]}, opset=13)
    check_ort("LRN", {"x": x}, {"size": 5, "alpha": 0.01, "beta": 0.6, "bias": 1.5}, opset=13)
    check_ort("BatchNormalization", {"x": x, "s": randn(4), "b": randn(4), "m": randn(4),
                                     "v": np.abs(randn(4)) + 0.5}, {"epsilon": 1e-3}, opset=15)


def test_activations_vs_ort():
    x = randn(3, 4, 5) * 3
    for op, attrs in [("Selu", {"alpha": 1.2, "gamma": 0.9}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
                      ("ThresholdedRelu", {"alpha": 0.5}), ("Shrink", {"lambd": 1.0, "bias": 0.3}),
                      ("Elu", {"alpha": 0.4}), ("LeakyRelu", {"alpha": 0.2}), ("Celu", {"alpha": 2.0}),
                      ("Gelu", {"approximate": "tanh"})]:
        check_ort(op, {"x": x}, attrs, opset=20)
    check_ort("PRelu", {"x": x, "slope": randn(5)}, opset=16)
    check_ort("DepthToSpace", {"x": randn(2, 8, 3, 2)}, {"blocksize": 2, "mode": "CRD"}, opset=13)
    check_ort("SpaceToDepth", {"x": randn(2, 2, 4, 6)}, {"blocksize": 2}, opset=13)


def test_dropout_inference_and_training():
    x = randn(4, 5)
    check_ort("Dropout", {"x": x, "r": np.array(0.3, np.float32)}, outputs=("y", "mask"),
              out_types=[TensorProto.FLOAT, TensorProto.BOOL], opset=13)
    model = node_model("Dropout", {"x": x, "r": np.array(0.5, np.float32), "t": np.array(True)},
                       outputs=("y", "mask"), out_types=[TensorProto.FLOAT, TensorProto.BOOL], opset=13)
    y, mask = ember.onnx.load(model, check=False)(x=x, r=np.array(0.5, np.float32), t=np.array(True))
    m = mask.numpy()
    assert m.dtype == bool and 0 < m.sum() < m.size
    np.testing.assert_allclose(y.numpy(), np.where(m, x * 2, 0), rtol=1e-6)


def test_losses_vs_ort():
    scores, target = randn(3, 5, 2), np.array([[1, 4], [0, -1], [2, 3]], np.int64)
    for reduction in ("mean", "sum", "none"):
        attrs = {"reduction": reduction, "ignore_index": -1}
        check_ort("SoftmaxCrossEntropyLoss", {"s": scores, "t": target, "w": np.abs(randn(5))}, attrs,
                  outputs=("loss", "logp"), opset=13)
        check_ort("NegativeLogLikelihoodLoss", {"s": scores, "t": np.abs(target)}, {"reduction": reduction}, opset=13)


def test_unsupported_feature_names_the_node():
    model = node_model("Resize", {"x": randn(1, 1, 2, 2), "roi": None, "scales": np.array([1, 1, 2, 2], np.float32)},
                       {"coordinate_transformation_mode": "tf_half_pixel_for_nn"}, opset=11)
    with pytest.raises(Exception, match="tf_half_pixel_for_nn"):
        ember.onnx.load(model, check=False)(x=randn(1, 1, 2, 2), scales=np.array([1, 1, 2, 2], np.float32))


# ---------------------------------------------------------------- gradients against PyTorch
def _param_model(op, x_shape, params: dict, attrs=None, opset=17, outputs=("y",)):
    """A one-node model whose inputs after ``x`` are initializers (so they import as Parameters)."""
    node = oh.make_node(op, ["x"] + list(params), list(outputs), **(attrs or {}))
    inits = [onnx.numpy_helper.from_array(v, n) for n, v in params.items()]
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [oh.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    return ember.onnx.load(oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)]), check=False)


def _grads(module, x, upstream):
    xt = ember.tensor(x, requires_grad=True)
    out = module(xt)
    out = out[0] if isinstance(out, tuple) else out
    (out * ember.tensor(upstream)).sum().backward()
    return (out.detach().numpy(), xt.grad.numpy(),
            {n: p.grad.numpy() for n, p in module.named_parameters() if p.grad is not None})


def _torch_grads(fn, x, params: dict, upstream):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ps = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in params.items()}
    y = fn(xt, **ps)
    (y * torch.tensor(upstream, dtype=torch.float64)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), {n: p.grad.numpy() for n, p in ps.items()}


def _t64(a):
    return torch.tensor(a, dtype=torch.float64)


def _assert_grads(ours, theirs, atol=1e-4):
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4, atol=atol)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=atol)
    for n, g in theirs[2].items():
        np.testing.assert_allclose(ours[2][n], g, rtol=1e-4, atol=atol, err_msg=n)


@pytest.mark.parametrize("nd", [2, 3])
def test_conv_gradients_match_torch(nd):
    x = randn(2, 4, *([6] * nd))
    params = {"w": randn(6, 2, *([3] * nd)), "b": randn(6)}
    attrs = {"group": 2, "strides": [2] * nd, "pads": [1] * nd + [0] * nd}
    m = _param_model("Conv", x.shape, params, attrs)
    conv = torch.nn.functional.conv2d if nd == 2 else torch.nn.functional.conv3d

    def ref(x, w, b):
        xp = torch.nn.functional.pad(x, [1, 0] * nd)
        return conv(xp, w, b, stride=2, groups=2)
    up = randn(*ref(_t64(x), *map(_t64, params.values())).shape)
    _assert_grads(_grads(m, x, up), _torch_grads(ref, x, params, up))


def test_conv_transpose_3d_gradients_match_torch():
    x = randn(1, 2, 3, 4, 3)
    params = {"w": randn(2, 3, 2, 3, 2), "b": randn(3)}
    m = _param_model("ConvTranspose", x.shape, params, {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]})

    def ref(x, w, b):
        return torch.nn.functional.conv_transpose3d(x, w, b, stride=(2, 1, 2))[:, :, 1:, :-1, :-1]
    up = randn(*ref(_t64(x), *map(_t64, params.values())).shape)
    _assert_grads(_grads(m, x, up), _torch_grads(ref, x, params, up))


def test_gemm_gradients_match_torch():
    x = randn(3, 4)
    params = {"b": randn(5, 4), "c": randn(5)}
    m = _param_model("Gemm", x.shape, params, {"transB": 1, "alpha": 0.5, "beta": 2.0})
    up = randn(3, 5)
    _assert_grads(_grads(m, x, up), _torch_grads(lambda x, b, c: 0.5 * x @ b.T + 2 * c, x, params, up))


def test_layer_norm_gradients_match_torch():
    x = randn(2, 3, 4, 5)
    params = {"s": randn(4, 5), "b": randn(4, 5)}
    m = _param_model("LayerNormalization", x.shape, params, {"axis": 2, "epsilon": 1e-3})
    up = randn(*x.shape)

    def ref(x, s, b):
        return torch.nn.functional.layer_norm(x, (4, 5), s, b, 1e-3)
    _assert_grads(_grads(m, x, up), _torch_grads(ref, x, params, up))


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_gradients_match_torch(peepholes):
    """Forward and backward of a bidirectional ONNX LSTM against the same equations in PyTorch."""
    T, N, F, H = 4, 2, 3, 3
    x = randn(T, N, F)
    params = {"w": randn(2, 4 * H, F) * 0.5, "r": randn(2, 4 * H, H) * 0.5, "b": randn(2, 8 * H) * 0.5}
    names = ["w", "r", "b"]
    if peepholes:
        params.update({"lens": np.array([4, 3], np.int32), "h0": randn(2, N, H), "c0": randn(2, N, H),
                       "p": randn(2, 3 * H)})
        names += ["lens", "h0", "c0", "p"]
    node_params = {n: params[n] for n in names}
    m = _param_model("LSTM", x.shape, node_params, {"hidden_size": H, "direction": "bidirectional"}, opset=14)

    def ref(x, w, r, b, h0=None, c0=None, p=None, lens=None):
        ys, hs = [], []
        for d in range(2):
            h = torch.zeros(N, H, dtype=x.dtype) if h0 is None else h0[d]
            c = torch.zeros(N, H, dtype=x.dtype) if c0 is None else c0[d]
            pi, po, pf = (torch.zeros(H, dtype=x.dtype),) * 3 if p is None else p[d].split(H)
            out = [None] * T
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                g = x[t] @ w[d].T + h @ r[d].T + b[d][:4 * H] + b[d][4 * H:]
                i, o, f, cc = g.split(H, 1)
                i, f = torch.sigmoid(i + pi * c), torch.sigmoid(f + pf * c)
                cn = f * c + i * torch.tanh(cc)
                hn = torch.sigmoid(o + po * cn) * torch.tanh(cn)
                if lens is not None:
                    keep = torch.tensor([t < n for n in lens]).reshape(N, 1)
                    hn, cn = torch.where(keep, hn, h), torch.where(keep, cn, c)
                    out[t] = hn * keep
                else:
                    out[t] = hn
                h, c = hn, cn
            ys.append(torch.stack(out)), hs.append(h)
        return torch.stack(ys, 1)
    torch_params = {n: v for n, v in node_params.items() if n != "lens"}
    lens = node_params.get("lens")
    up = randn(T, 2, N, H)
    ours = _grads(m, x, up)
    theirs = _torch_grads(lambda x, **kw: ref(x, lens=None if lens is None else lens.tolist(), **kw), x,
                          torch_params, up)
    _assert_grads(ours, theirs)


def test_attention_gradients_match_torch():
    q = randn(2, 3, 4, 8)
    params = {"k": randn(2, 3, 6, 8), "v": randn(2, 3, 6, 8)}
    m = _param_model("Attention", q.shape, params, {"is_causal": 1, "softcap": 2.0}, opset=23)

    def ref(q, k, v):
        s = torch.tanh(q @ k.transpose(-1, -2) / np.sqrt(8) / 2) * 2
        s = s.masked_fill(torch.ones(4, 6, dtype=torch.bool).triu(1), float("-inf"))
        return torch.softmax(s, -1) @ v
    up = randn(2, 3, 4, 8)
    _assert_grads(_grads(m, q, up), _torch_grads(ref, q, params, up))


def test_resize_linear_gradient_matches_torch():
    x = randn(1, 2, 5, 4)
    m = _param_model("Resize", x.shape, {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)},
                     {"mode": "linear"}, opset=13)
    up = randn(1, 2, 10, 8)
    ours = _grads(m, x, up)
    theirs = _torch_grads(lambda x: torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear"), x, {}, up)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-5)


def test_torch_exported_model_trains_like_torch():
    """A small CNN + bidirectional LSTM exported by torch.onnx: same outputs, input and parameter gradients."""
    import io

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, groups=2)
            self.fc = torch.nn.Linear(8, 5)
            self.lstm = torch.nn.LSTM(8, 6, batch_first=True, bidirectional=True)
            self.ln = torch.nn.LayerNorm(12)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2, ceil_mode=True)
            y = torch.nn.functional.gelu(self.c2(y))
            out, _ = self.lstm(y.flatten(2).transpose(1, 2))
            return torch.log_softmax(self.fc(y.mean((2, 3))), -1), self.ln(out).mean(1)

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(2, 3, 12, 12)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, dynamo=False, opset_version=17, input_names=["x"])
    model = ember.onnx.load(f.getvalue())
    xe = ember.tensor(x.numpy(), requires_grad=True)
    ye, ze = model(xe)
    xt = x.clone().requires_grad_(True)
    yt, zt = net(xt)
    np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ze.detach().numpy(), zt.detach().numpy(), rtol=1e-4, atol=1e-5)
    up_y, up_z = randn(*yt.shape), randn(*zt.shape)
    ((ye * ember.tensor(up_y)).sum() + (ze * ember.tensor(up_z)).sum()).backward()
    ((yt * torch.tensor(up_y)).sum() + (zt * torch.tensor(up_z)).sum()).backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    params = dict(model.named_parameters())
    for name, p in [("c2_weight", net.c2.weight), ("fc_weight", net.fc.weight), ("ln_weight", net.ln.weight),
                    ("ln_bias", net.ln.bias)]:
        np.testing.assert_allclose(params[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_edge_forms_vs_ort():
    """Linear resize of a uint8 image (within one step of onnxruntime's rounding), Upsample at opset 9."""
    img = RNG.integers(0, 256, (1, 1, 4, 5)).astype(np.uint8)
    model = node_model("Resize", {"x": img, "roi": None, "scales": np.array([1, 1, 1.5, 2.5], np.float32)},
                       {"mode": "linear"}, out_types=[TensorProto.UINT8], opset=13)
    feeds = {"x": img, "scales": np.array([1, 1, 1.5, 2.5], np.float32)}
    got = ember.onnx.load(model, check=False)(**feeds).numpy()
    want = ort_run(model, feeds)[0]
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - want.astype(int)).max() <= 1
    check_ort("Upsample", {"x": randn(1, 2, 3, 4), "s": np.array([1, 1, 2, 3], np.float32)}, {"mode": "linear"},
              opset=9)


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_gradients_match_torch(lbr):
    """ONNX GRU (both linear_before_reset forms, reverse direction, initial state) against its equations in PyTorch."""
    T, N, F, H = 4, 2, 3, 3
    x = randn(T, N, F)
    params = {"w": randn(1, 3 * H, F) * 0.5, "r": randn(1, 3 * H, H) * 0.5, "b": randn(1, 6 * H) * 0.5,
              "lens": np.array([4, 4], np.int32), "h0": randn(1, N, H)}
    m = _param_model("GRU", x.shape, params, {"hidden_size": H, "direction": "reverse", "linear_before_reset": lbr},
                     opset=14)

    def ref(x, w, r, b, h0):
        h, out = h0[0], [None] * T
        wb, rb = b[0].split(3 * H)
        for t in range(T - 1, -1, -1):
            xz, xr, xh = (x[t] @ w[0].T + wb).split(H, 1)
            hz, hr, hh = (h @ r[0].T).split(H, 1)
            rz, rr, rh = rb.split(H)
            z, rg = torch.sigmoid(xz + hz + rz), torch.sigmoid(xr + hr + rr)
            n = torch.tanh(xh + rg * (hh + rh)) if lbr else torch.tanh(xh + (rg * h) @ r[0][2 * H:].T + rh)
            h = out[t] = (1 - z) * n + z * h
        return torch.stack(out).unsqueeze(1)
    up = randn(T, 1, N, H)
    theirs = _torch_grads(ref, x, {k: v for k, v in params.items() if k != "lens"}, up)
    _assert_grads(_grads(m, x, up), theirs)
