"""ember.onnx.load: single nodes and small models against onnxruntime, gradients through imported ops
(finite differences and PyTorch), fine-tuning an imported MLP, and malformed files (clear errors)."""
from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import ember  # noqa: E402
from ember.autograd import gradcheck  # noqa: E402
from ember.onnx.importer import OnnxRuntimeError, UnsupportedOpError  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(0)
F32, I64 = np.float32, np.int64


def _vi(name, arr_or_dtype, shape=None):
    dt = arr_or_dtype.dtype if isinstance(arr_or_dtype, np.ndarray) else np.dtype(arr_or_dtype)
    shape = arr_or_dtype.shape if isinstance(arr_or_dtype, np.ndarray) else shape
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dt), shape)


def make_model(nodes, inputs: dict, outputs, inits: dict | None = None, opset: int = 18):
    """A model of ``nodes``; ``outputs`` is a list of names or of (name, dtype)."""
    outs = [_vi(*((o, F32) if isinstance(o, str) else o)) for o in outputs]
    graph = helper.make_graph(nodes, "test", [_vi(k, v) for k, v in inputs.items()], outs,
                              [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    missing = [o for o in model.graph.output if not o.type.tensor_type.HasField("shape")]
    if missing:   # value-dependent shapes: take the rank from onnxruntime's result
        outs = dict(zip([o.name for o in model.graph.output], run_ort(model, inputs)))
        for o in missing:
            o.type.tensor_type.shape.dim.extend(
                [onnx.TensorShapeProto.Dimension(dim_param=f"d{i}") for i in range(outs[o.name].ndim)])
    return model


def run_ort(model, inputs: dict):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)


def run_ember(model, inputs: dict):
    m = ember.onnx.load(model)
    with ember.no_grad():
        out = m(**inputs)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def x(*shape, dtype=F32, positive=False):
    a = RNG.standard_normal(shape)
    return (np.abs(a) + 0.5 if positive else a).astype(dtype)


def node(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), **attrs)


def i64(*v):
    return np.array(v, dtype=I64)


# (id, nodes, inputs, initializers, outputs)
CASES = [
    ("add_broadcast", [node("Add", ["a", "b"])], {"a": x(2, 3), "b": x(3)}, {}, ["y"]),
    ("div_int", [node("Div", ["a", "b"])], {"a": i64(7, -7, 9), "b": i64(2, 2, -4)}, {}, [("y", I64)]),
    ("pow", [node("Pow", ["a", "b"])], {"a": x(4, positive=True), "b": x(4)}, {}, ["y"]),
    ("mod_fmod", [node("Mod", ["a", "b"], fmod=1)], {"a": x(5), "b": x(5, positive=True)}, {}, ["y"]),
    ("mod_int", [node("Mod", ["a", "b"])], {"a": i64(-7, 7, 5), "b": i64(3, -3, 2)}, {}, [("y", I64)]),
    ("erf_sqrt_exp", [node("Erf", ["a"], ["t"]), node("Exp", ["t"], ["u"]), node("Sqrt", ["u"])], {"a": x(3, 2)},
     {}, ["y"]),
    ("acosh_atanh", [node("Acosh", ["a"], ["t"]), node("Atanh", ["b"], ["y2"]), node("Asinh", ["t"])],
     {"a": x(4, positive=True) + 1, "b": (x(4) / 4).astype(F32)}, {}, ["y", "y2"]),
    ("round_sign", [node("Round", ["a"], ["t"]), node("Sign", ["t"])], {"a": x(6) * 3}, {}, ["y"]),
    ("cast_f2i", [node("Cast", ["a"], to=TensorProto.INT32)], {"a": x(5) * 4}, {}, [("y", np.int32)]),
    ("compare_logic", [node("Greater", ["a", "b"], ["g"]), node("Less", ["a", "b"], ["l"]),
                       node("Or", ["g", "l"])], {"a": x(5), "b": x(5)}, {}, [("y", bool)]),
    ("reduce_sum_axes_input", [node("ReduceSum", ["a", "ax"], keepdims=0)], {"a": x(2, 3, 4)}, {"ax": i64(0, 2)},
     ["y"]),
    ("reduce_family", [node("ReduceMax", ["a", "ax"], ["m"]), node("ReduceL2", ["a", "ax"], ["l"]),
                       node("ReduceLogSumExp", ["a", "ax"], ["s"]), node("Sum", ["m", "l", "s"])],
     {"a": x(3, 4)}, {"ax": i64(1)}, ["y"]),
    ("argmax_last", [node("ArgMax", ["a"], axis=1, select_last_index=1)], {"a": np.array([[1, 3, 3]], F32)}, {},
     [("y", I64)]),
    ("matmul_einsum", [node("MatMul", ["a", "b"], ["t"]), node("Einsum", ["t", "b"], equation="ij,jk->ik")],
     {"a": x(2, 3), "b": x(3, 3)}, {}, ["y"]),
    ("reshape_transpose", [node("Reshape", ["a", "s"], ["t"]), node("Transpose", ["t"], perm=[2, 0, 1])],
     {"a": x(2, 6)}, {"s": i64(0, 3, -1)}, ["y"]),
    ("split_concat", [node("Split", ["a", "sp"], ["p", "q"], axis=1), node("Concat", ["q", "p"], axis=1)],
     {"a": x(2, 5)}, {"sp": i64(2, 3)}, ["y"]),
    ("slice_negative_step", [node("Slice", ["a", "st", "en", "ax", "sp"])], {"a": x(4, 6)},
     {"st": i64(-1, 1), "en": i64(-100, 5), "ax": i64(1, 0), "sp": i64(-2, 2)}, ["y"]),
    ("pad_reflect", [node("Pad", ["a", "p"], mode="reflect")], {"a": x(3, 4)}, {"p": i64(1, 2, 2, 1)}, ["y"]),
    ("pad_edge_neg", [node("Pad", ["a", "p"], mode="edge")], {"a": x(3, 4)}, {"p": i64(2, -1, 0, 1)}, ["y"]),
    ("tile_expand", [node("Tile", ["a", "r"], ["t"]), node("Expand", ["t", "s"])], {"a": x(1, 2)},
     {"r": i64(1, 2), "s": i64(3, 1, 4)}, ["y"]),
    ("shape_size", [node("Shape", ["a"], ["s"], start=1), node("Size", ["a"], ["n"])], {"a": x(2, 3, 4)}, {},
     [("s", I64), ("n", I64)]),
    ("gather_neg", [node("Gather", ["a", "i"], axis=1)], {"a": x(3, 4)}, {"i": np.array([[0, -1], [2, 1]], I64)},
     ["y"]),
    ("gather_elements_nd", [node("GatherElements", ["a", "i"], ["t"], axis=0), node("GatherND", ["t", "j"])],
     {"a": x(3, 3)}, {"i": np.array([[2, 0, 1], [0, 0, 2]], I64), "j": np.array([[1, 2], [0, 0]], I64)}, ["y"]),
    ("scatter_elements_add", [node("ScatterElements", ["a", "i", "u"], axis=1, reduction="add")], {"a": x(2, 4)},
     {"i": np.array([[0, 0], [3, 1]], I64), "u": x(2, 2)}, ["y"]),
    ("scatter_nd", [node("ScatterND", ["a", "i", "u"])], {"a": x(4, 3)}, {"i": np.array([[3], [0]], I64),
                                                                         "u": x(2, 3)}, ["y"]),
    ("where_clip_optional", [node("Greater", ["a", "b"], ["c"]), node("Where", ["c", "a", "b"], ["w"]),
                             node("Clip", ["w", "", "mx"])], {"a": x(6), "b": x(6)}, {"mx": np.array(0.3, F32)},
     ["y"]),
    ("topk", [node("TopK", ["a", "k"], ["v", "i"], axis=1)], {"a": x(3, 6)}, {"k": i64(2)}, ["v", ("i", I64)]),
    ("cumsum_excl_rev", [node("CumSum", ["a", "ax"], exclusive=1, reverse=1)], {"a": x(3, 4)}, {"ax": i64(1)},
     ["y"]),
    ("trilu_eyelike", [node("Trilu", ["a"], ["t"], upper=0), node("EyeLike", ["a"], ["e"], k=1),
                       node("Add", ["t", "e"])], {"a": x(4, 4)}, {}, ["y"]),
    ("range_constofshape", [node("Range", ["s", "l", "d"], ["r"]), node("ConstantOfShape", ["sh"], ["c"],
                            value=numpy_helper.from_array(np.array([2.0], F32))), node("Mul", ["r", "c"])],
     {"s": np.array(1.0, F32), "l": np.array(5.0, F32), "d": np.array(1.5, F32)}, {"sh": i64(3)}, ["y"]),
    ("onehot_nonzero", [node("OneHot", ["i", "d", "v"], ["o"], axis=0), node("NonZero", ["o"])],
     {"i": i64(1, 0, 2)}, {"d": i64(3), "v": np.array([0, 1], F32)}, [("y", I64)]),
    ("unique_unsorted", [node("Unique", ["a"], ["u", "i", "inv", "c"], sorted=0)],
     {"a": np.array([2, 1, 1, 3, 4, 3], F32)}, {}, ["u", ("i", I64), ("inv", I64), ("c", I64)]),
    ("squeeze_unsqueeze_flatten", [node("Unsqueeze", ["a", "ax"], ["t"]), node("Squeeze", ["t", "ax"], ["q"]),
                                   node("Flatten", ["q"], axis=-1)], {"a": x(2, 3, 4)}, {"ax": i64(0, 3)}, ["y"]),
    ("bitwise_shift", [node("BitShift", ["a", "b"], ["s"], direction="LEFT"), node("BitwiseXor", ["s", "a"])],
     {"a": np.array([1, 2, 7], np.uint8), "b": np.array([1, 2, 3], np.uint8)}, {}, [("y", np.uint8)]),
    ("if_branch", [node("ReduceSum", ["a"], ["s"], keepdims=0), node("Greater", ["s", "z"], ["c"]),
                   helper.make_node("If", ["c"], ["y"], then_branch=helper.make_graph(
                       [node("Neg", ["a"], ["t"])], "then", [], [_vi("t", F32, [3])]),
                       else_branch=helper.make_graph([node("Abs", ["a"], ["e"])], "else", [], [_vi("e", F32, [3])]))],
     {"a": np.array([1.0, -2.0, 3.0], F32)}, {"z": np.array(0.0, F32)}, ["y"]),
]


@pytest.mark.parametrize("nodes,inputs,inits,outputs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_against_onnxruntime(nodes, inputs, inits, outputs):
    model = make_model(nodes, inputs, outputs, inits)
    ref, got = run_ort(model, inputs), run_ember(model, inputs)
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert g.dtype == r.dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ gradients
GRAD_CASES = [
    ("Add", {}, [(2, 3), (3,)], {}), ("Mul", {}, [(2, 3), (2, 1)], {}), ("Div", {}, [(3,), "pos3"], {}),
    ("Pow", {}, ["pos3", (3,)], {}), ("Tanh", {}, [(4,)], {}), ("Erf", {}, [(4,)], {}), ("Asinh", {}, [(4,)], {}),
    ("Atanh", {}, ["small4"], {}), ("Sqrt", {}, ["pos3"], {}), ("Reciprocal", {}, ["pos3"], {}),
    ("MatMul", {}, [(2, 3), (3, 4)], {}), ("Einsum", {"equation": "bij,bjk->bik"}, [(2, 2, 3), (2, 3, 2)], {}),
    ("ReduceMean", {"keepdims": 0}, [(3, 4)], {"axes": i64(1)}), ("ReduceL2", {}, [(3, 4)], {"axes": i64(0)}),
    ("ReduceLogSumExp", {}, [(3, 4)], {"axes": i64(1)}), ("ReduceProd", {}, ["pos34"], {"axes": i64(0, 1)}),
    ("ReduceMax", {"keepdims": 0}, [(3, 4)], {"axes": i64(1)}),
    ("Transpose", {"perm": [1, 0, 2]}, [(2, 3, 2)], {}), ("Reshape", {}, [(2, 6)], {"s": i64(3, -1)}),
    ("Slice", {}, [(4, 5)], {"st": i64(3), "en": i64(0), "ax": i64(1), "sp": i64(-2)}),
    ("Pad", {"mode": "reflect"}, [(3, 4)], {"p": i64(1, 2, 1, 1)}),
    ("Pad", {"mode": "constant"}, [(3, 4)], {"p": i64(1, 0, -1, 2)}),
    ("Tile", {}, [(2, 2)], {"r": i64(2, 1)}), ("Expand", {}, [(3, 1)], {"s": i64(2, 3, 4)}),
    ("Gather", {"axis": 0}, [(4, 3)], {"i": np.array([[0, 3], [3, -1]], I64)}),
    ("GatherElements", {"axis": 1}, [(2, 3)], {"i": np.array([[2, 2], [0, 1]], I64)}),
    ("GatherND", {"batch_dims": 1}, [(2, 3, 2)], {"i": np.array([[[1], [2]], [[0], [0]]], I64)}),
    ("Where", {}, [(4,), (4,)], {"c": np.array([True, False, True, False])}),
    ("Clip", {}, [(6,)], {"lo": np.array(-0.5), "hi": np.array(0.5)}),
    ("CumSum", {"exclusive": 1, "reverse": 1}, [(3, 4)], {"ax": i64(1)}),
    ("TopK", {"axis": 1}, [(2, 5)], {"k": i64(3)}), ("Trilu", {"upper": 1}, [(3, 3)], {"k": i64(1)}),
    ("Max", {}, [(3,), (2, 3)], {}), ("Mean", {}, [(3,), (3,)], {}), ("Concat", {"axis": 0}, [(1, 2), (2, 2)], {}),
    ("ScatterElements", {"axis": 0}, [(3, 2)], {"i": np.array([[2, 0]], I64), "u": None}),
    ("ScatterND", {}, [(3, 2)], {"i": np.array([[1]], I64), "u": None}),
    ("CumProd", {"exclusive": 1, "reverse": 1}, [(3, 4)], {"ax": i64(1)}),
    ("CumProd", {}, [(2, 5)], {"ax": i64(-1)}),
    ("DFT", {"axis": 1, "onesided": 1}, [(2, 8, 1)], {}), ("DFT", {"axis": 1, "inverse": 1}, [(1, 6, 2)], {}),
    ("STFT", {}, [(1, 16, 1)], {"st": i64(4), "w": np.hanning(8)}), ("Det", {}, [(2, 3, 3)], {}),
]
GRAD_OPSETS = {"CumProd": 26}


def _grad_input(spec):
    if spec == "pos3":
        return np.abs(RNG.standard_normal(3)) + 0.5
    if spec == "pos34":
        return np.abs(RNG.standard_normal((3, 4))) + 0.5
    if spec == "small4":
        return RNG.uniform(-0.6, 0.6, 4)
    return RNG.standard_normal(spec)


@pytest.mark.parametrize("op,attrs,specs,consts", GRAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(GRAD_CASES)])
def test_gradients_finite_differences(op, attrs, specs, consts):
    """Gradients through each imported op match float64 central finite differences."""
    xs = [_grad_input(s) for s in specs]
    consts = dict(consts)
    if "u" in consts:   # scatter updates are a differentiable input too
        n = consts["i"].shape[0]
        xs.append(RNG.standard_normal((n, 2) if op == "ScatterElements" else (n, 2)))
        consts.pop("u")
        names = ["a", "i", "u"]
    elif op == "Where":
        names = ["c", "a", "b"]
    elif op == "Clip":
        names = ["a", "lo", "hi"]
    else:
        names = [f"x{i}" for i in range(len(xs))] + list(consts)
    data_names = [n for n in names if n not in consts]
    inputs = dict(zip(data_names, xs))
    extra = ["yi"] if op == "TopK" else []
    nodes = [helper.make_node(op, names, ["y"] + extra, **attrs)]
    model = make_model(nodes, inputs, [("y", np.float64)] + [(e, I64) for e in extra],
                       {k: v for k, v in consts.items()}, opset=GRAD_OPSETS.get(op, 18))
    m = ember.onnx.load(model, check=False)
    ts = [ember.tensor(v, dtype=ember.float64, requires_grad=True) for v in xs]

    def f(*args):
        out = m(**dict(zip(data_names, args)))
        return out[0] if isinstance(out, tuple) else out
    assert gradcheck(f, ts, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradients_of_unique_values_and_dequantize_scales():
    """Unique's values are a gather of the input (the gradient lands on first occurrences); DequantizeLinear
    keeps a trainable scale in the graph (d y / d scale = q - zero point)."""
    xv = np.array([2.0, 1.0, 2.0, 3.0, 1.0], F32)
    m = ember.onnx.load(make_model([node("Unique", ["a"], ["y", "i", "inv", "c"], sorted=0)], {"a": xv},
                                   ["y", ("i", I64), ("inv", I64), ("c", I64)]))
    a = ember.tensor(xv, requires_grad=True)
    y, first, _, _ = m(a)
    g = np.array([1.0, 10.0, 100.0], F32)
    (y * ember.tensor(g)).sum().backward()
    expected = np.zeros_like(xv)
    expected[first.numpy()] = g
    np.testing.assert_array_equal(a.grad.numpy(), expected)

    q, zp = np.array([[3, -7, 120], [0, 5, -128]], np.int8), np.array([1, 0, -2], np.int8)
    scale = np.array([0.5, 0.25, 0.1], F32)
    model = make_model([node("DequantizeLinear", ["q", "s", "zp"], axis=1)], {"q": q}, ["y"], {"s": scale, "zp": zp})
    m = ember.onnx.load(model)
    out = m(q)
    np.testing.assert_allclose(out.detach().numpy(), run_ort(model, {"q": q})[0], rtol=1e-6)
    w = RNG.standard_normal(out.shape).astype(F32)
    (out * ember.tensor(w)).sum().backward()
    np.testing.assert_allclose(m.s.grad.numpy(), (w * (q.astype(F32) - zp.astype(F32))).sum(0), rtol=1e-5)


def _mlp_model(dtype=F32, n_in=4, hidden=8, n_out=3, seed=0):
    r = np.random.default_rng(seed)
    inits = {"fc1.weight": (r.standard_normal((n_in, hidden)) * 0.5).astype(dtype), "fc1.bias": np.zeros(hidden, dtype),
             "fc2.weight": (r.standard_normal((hidden, n_out)) * 0.5).astype(dtype), "fc2.bias": np.zeros(n_out, dtype)}
    nodes = [node("MatMul", ["x", "fc1.weight"], ["h0"]), node("Add", ["h0", "fc1.bias"], ["h1"]),
             node("Tanh", ["h1"], ["h2"]), node("MatMul", ["h2", "fc2.weight"], ["h3"]),
             node("Add", ["h3", "fc2.bias"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [_vi("x", dtype, ["N", n_in])], [_vi("y", dtype, ["N", n_out])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), inits


def test_mlp_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    model, inits = _mlp_model()
    m = ember.onnx.load(model)
    xv = RNG.standard_normal((5, 4)).astype(F32)
    y = m(ember.tensor(xv))
    (y * y).sum().backward()
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in inits.items()}
    ty = torch.tanh(torch.tensor(xv) @ tp["fc1.weight"] + tp["fc1.bias"]) @ tp["fc2.weight"] + tp["fc2.bias"]
    (ty * ty).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    for attr, onnx_name in m.onnx_names.items():
        np.testing.assert_allclose(getattr(m, attr).grad.numpy(), tp[onnx_name].grad.numpy(), rtol=1e-4, atol=1e-5)


def test_roundtrip_parameters_buffers_and_names():
    """Float initializers become Parameters (attribute-safe names, original names kept), others buffers."""
    model, inits = _mlp_model()
    shape_init = numpy_helper.from_array(i64(-1, 3), "final.shape")
    model.graph.initializer.append(shape_init)
    model.graph.node.append(node("Reshape", ["y", "final.shape"], ["z"]))
    model.graph.output[0].CopyFrom(_vi("z", F32, ["N", 3]))
    m = ember.onnx.load(model.SerializeToString())
    params = dict(m.named_parameters())
    assert sorted(params) == ["fc1_bias", "fc1_weight", "fc2_bias", "fc2_weight"]
    assert all(p.requires_grad for p in params.values())
    assert m.onnx_names["fc1_weight"] == "fc1.weight" and m.onnx_names["final_shape"] == "final.shape"
    assert dict(m.named_buffers())["final_shape"].numpy().tolist() == [-1, 3]
    np.testing.assert_array_equal(params["fc2_weight"].detach().numpy(), inits["fc2.weight"])
    assert set(m.state_dict()) == {"fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias", "final_shape"}
    xv = RNG.standard_normal((2, 4)).astype(F32)
    np.testing.assert_allclose(run_ember(model, {"x": xv})[0], run_ort(model, {"x": xv})[0], rtol=1e-5, atol=1e-6)


def test_multiple_inputs_outputs_and_constants():
    c = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array([2.0, 3.0], F32)))
    cf = helper.make_node("Constant", [], ["cf"], value_float=0.5)
    nodes = [c, cf, node("Mul", ["a", "c"], ["p"]), node("Add", ["p", "b"], ["s"]), node("Sub", ["s", "cf"], ["d"])]
    inputs = {"a": x(3, 2), "b": x(2)}
    model = make_model(nodes, inputs, ["s", "d"])
    m = ember.onnx.load(model)
    s_pos, d_pos = m(inputs["a"], inputs["b"])                      # NumPy inputs, positional
    s_kw, _ = m(b=ember.tensor(inputs["b"]), a=ember.tensor(inputs["a"]))
    ref = run_ort(model, inputs)
    np.testing.assert_allclose(s_pos.numpy(), ref[0], rtol=1e-6)
    np.testing.assert_allclose(d_pos.numpy(), ref[1], rtol=1e-6)
    np.testing.assert_allclose(s_kw.numpy(), ref[0], rtol=1e-6)
    with pytest.raises(TypeError, match="missing model input"):
        m(inputs["a"])


def test_fine_tuning_an_imported_mlp_reduces_the_loss():
    model, _ = _mlp_model(seed=1)
    m = ember.onnx.load(model)
    r = np.random.default_rng(2)
    xs = r.standard_normal((64, 4)).astype(F32)
    target = np.stack([xs[:, 0] * 0.5, xs[:, 1] - xs[:, 2], np.sin(xs[:, 3])], axis=1).astype(F32)
    opt = ember.optim.Adam(m.parameters(), lr=0.02)
    before = [p.detach().numpy().copy() for p in m.parameters()]

    def loss_fn():
        return ((m(ember.tensor(xs)) - ember.tensor(target)) ** 2).mean()
    first = loss_fn().item()
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    last = loss_fn().item()
    assert last < 0.5 * first
    assert all(not np.array_equal(b, p.detach().numpy()) for b, p in zip(before, m.parameters()))


def test_backend_runs_a_model():
    from ember.onnx import backend
    model, _ = _mlp_model()
    xv = RNG.standard_normal((3, 4)).astype(F32)
    assert backend.supports_device("CPU")
    out = backend.prepare(model).run([xv])
    np.testing.assert_allclose(out[0], run_ort(model, {"x": xv})[0], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ malformed inputs
def test_truncated_file_is_a_clear_error(tmp_path):
    model, _ = _mlp_model()
    data = model.SerializeToString()
    for cut in (len(data) // 3, len(data) - 7, 5):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.onnx"):
            ember.onnx.load(path)
    (tmp_path / "junk.onnx").write_bytes(b"\x00not an onnx file at all\xff" * 3)
    with pytest.raises(ValueError, match="junk.onnx"):
        ember.onnx.load(tmp_path / "junk.onnx")


def test_invalid_graph_fails_validation():
    graph = helper.make_graph([node("Add", ["a", "missing"])], "g", [_vi("a", F32, [2])], [_vi("y", F32, [2])])
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ValueError, match="onnx.checker"):
        ember.onnx.load(bad)


def test_unsupported_ops_are_listed_with_node_names_before_running():
    nodes = [helper.make_node("Frobnicate", ["a"], ["t"], name="frob_1", domain="com.example"),
             helper.make_node("Frobnicate", ["t"], ["u"], name="frob_2", domain="com.example"),
             helper.make_node("Zap", ["u"], ["y"], name="zap", domain="com.example")]
    graph = helper.make_graph(nodes, "g", [_vi("a", F32, [2])], [_vi("y", F32, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedOpError) as e:
        ember.onnx.load(model)
    msg = str(e.value)
    assert "Frobnicate" in msg and "frob_1" in msg and "frob_2" in msg and "Zap" in msg and "zap" in msg
    assert "2 op types" in msg


def test_runtime_errors_name_the_node():
    model = make_model([helper.make_node("Reshape", ["a", "s"], ["y"], name="bad_reshape")], {"a": x(2, 3)}, ["y"],
                       {"s": i64(4, 4)})
    with pytest.raises(OnnxRuntimeError, match="bad_reshape"):
        run_ember(model, {"a": x(2, 3)})


def _external_model(tmp_path):
    model, inits = _mlp_model()
    onnx.save_model(model, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return inits


def test_external_data_inside_the_folder_loads(tmp_path):
    inits = _external_model(tmp_path)
    m = ember.onnx.load(tmp_path / "m.onnx")
    np.testing.assert_array_equal(m.fc1_weight.detach().numpy(), inits["fc1.weight"])


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "link.bin"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.ones(64, F32).tobytes())
    if location == "link.bin":
        os.symlink(tmp_path / "secret.bin", folder / "link.bin")
    model, _ = _mlp_model()
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    (folder / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ValueError, match="outside the model's folder"):
        ember.onnx.load(folder / "m.onnx")


def test_pytorch_exported_cnn_matches_and_trains():
    """A CNN exported by torch.onnx (Conv, MaxPool, Flatten, Gemm, LayerNormalization, Softmax) imports, matches
    onnxruntime and PyTorch, and its imported weights get PyTorch's gradients."""
    torch = pytest.importorskip("torch")
    import io
    import warnings

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 4 * 4, 10)
            self.ln = torch.nn.LayerNorm(10)

        def forward(self, x):
            h = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1)
            return torch.softmax(self.ln(self.fc(h)), -1)

    torch.manual_seed(0)
    net = Net().eval()
    xt = torch.randn(3, 1, 8, 8)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (xt,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}}, opset_version=17)
    except Exception as e:  # noqa: BLE001  the exporter's own optional dependencies
        pytest.skip(f"torch.onnx.export unavailable: {e}")
    m = ember.onnx.load(buf.getvalue())
    y = m(xt.numpy())
    ref = run_ort(onnx.load_from_string(buf.getvalue()), {"x": xt.numpy()})[0]
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    tw = torch.randn(3, 10)
    (net(xt) * tw).sum().backward()
    (y * ember.tensor(tw.numpy())).sum().backward()
    grads = {m.onnx_names[n]: p.grad.numpy() for n, p in m.named_parameters()}
    for name, p in net.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_model_local_functions_with_attribute_references():
    """A model-local FunctionProto (as exporters emit) runs with its attributes bound per call, matches
    onnxruntime, and passes gradients to the weights it is given."""
    alpha = helper.make_attribute_ref("value_float", onnx.AttributeProto.FLOAT, ref_attr_name="alpha")
    const = helper.make_node("Constant", [], ["a"])
    const.attribute.append(alpha)
    body = [const, node("MatMul", ["x", "w"], ["h"]), node("Tanh", ["h"], ["t"]), node("Mul", ["t", "a"], ["y"])]
    fn = helper.make_function("com.local", "ScaledDense", ["x", "w"], ["y"], body,
                              [helper.make_opsetid("", 18)], attributes=[])
    fn.attribute_proto.append(helper.make_attribute("alpha", 0.5))
    calls = [helper.make_node("ScaledDense", ["x", "w1"], ["h1"], domain="com.local", alpha=2.0),
             helper.make_node("ScaledDense", ["h1", "w2"], ["y"], domain="com.local")]
    w1, w2 = x(3, 4), x(4, 2)
    graph = helper.make_graph(calls, "g", [_vi("x", F32, [2, 3])], [_vi("y", F32, [2, 2])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, functions=[fn],
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.local", 1)])
    xv = x(2, 3)
    m = ember.onnx.load(model)
    y = m(xv)
    np.testing.assert_allclose(y.detach().numpy(), run_ort(model, {"x": xv})[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), 0.5 * np.tanh(2.0 * np.tanh(xv @ w1) @ w2), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert m.w1.grad is not None and m.w2.grad is not None and np.abs(m.w1.grad.numpy()).sum() > 0


def test_sequences_round_trip_with_gradients():
    """SplitToSequence / SequenceInsert / SequenceAt / ConcatFromSequence match onnxruntime and pass gradients."""
    nodes = [node("SplitToSequence", ["a", "s"], ["seq"], axis=1), node("SequenceAt", ["seq", "i"], ["mid"]),
             node("SequenceInsert", ["seq", "mid"], ["seq2"]), node("ConcatFromSequence", ["seq2"], ["y"], axis=1),
             node("SequenceLength", ["seq2"], ["n"])]
    inputs = {"a": x(2, 5)}
    model = make_model(nodes, inputs, ["y", ("n", I64)], {"s": i64(2, 3), "i": i64(-1)})
    ref, got = run_ort(model, inputs), run_ember(model, inputs)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)
    assert got[1] == ref[1] == 3
    m = ember.onnx.load(make_model(nodes, {"a": inputs["a"].astype(np.float64)}, [("y", np.float64), ("n", I64)],
                                   {"s": i64(2, 3), "i": i64(-1)}))
    a = ember.tensor(inputs["a"].astype(np.float64), requires_grad=True)
    assert gradcheck(lambda t: m(t)[0], (a,))
