"""ONNX lowerings of Ember's neural-network ops: activations, convolution, pooling, normalization, embedding,
dropout, attention and the recurrent scans (registered in :data:`ember.onnx.export_ops.LOWERINGS`)."""
from __future__ import annotations

from importlib import import_module

import math

import numpy

from .exporter import ExportError, SymDim, _onnx_dtype, sym_prod
from .export_ops import LOWERINGS, lowers, reduce

A = import_module("ember.ops.activation")
EP = import_module("ember.graph.epilogue")
AT = import_module("ember.ops.attention")
C = import_module("ember.ops.conv")
EM = import_module("ember.ops.embedding")
N = import_module("ember.ops.normalization")
P = import_module("ember.ops.pool")
RD = import_module("ember.ops.random")
RN = import_module("ember.ops.rnn")

__all__: list = []


def _x(ctx, a, key="x"):
    return ctx.name(a[key]), a[key].dtype


# ---------------------------------------------------------------- activations
@lowers(A.Relu)
def _relu(ctx, a):
    return ctx.op("Relu", [ctx.name(a["x"])])


@lowers(A.Hardtanh)
def _hardtanh(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Clip", [x, ctx.scalar(a["lo"], dt), ctx.scalar(a["hi"], dt)])


@lowers(A.LeakyRelu)
def _leaky_relu(ctx, a):
    return ctx.op("LeakyRelu", [ctx.name(a["x"])], alpha=float(a["slope"]))


@lowers(A.Elu)
def _elu(ctx, a):
    x, dt = _x(ctx, a)
    alpha, scale, iscale = float(a["alpha"]), float(a["scale"]), float(a["input_scale"])
    neg = ctx.op("Min", [x, ctx.scalar(0, dt)])
    if iscale != 1:
        neg = ctx.op("Mul", [neg, ctx.scalar(iscale, dt)])
    neg = ctx.op("Mul", [ctx.op("Sub", [ctx.op("Exp", [neg]), ctx.scalar(1, dt)]), ctx.scalar(alpha * scale, dt)])
    pos = x if scale == 1 else ctx.op("Mul", [x, ctx.scalar(scale, dt)])
    return ctx.op("Where", [ctx.op("Greater", [x, ctx.scalar(0, dt)]), pos, neg])


@lowers(A.Gelu)
def _gelu(ctx, a):
    x, dt = _x(ctx, a)
    if a["approximate"] == "tanh":
        cube = ctx.op("Mul", [ctx.op("Mul", [x, x]), x])
        inner = ctx.op("Add", [x, ctx.op("Mul", [cube, ctx.scalar(0.044715, dt)])])
        t = ctx.op("Tanh", [ctx.op("Mul", [inner, ctx.scalar(math.sqrt(2 / math.pi), dt)])])
    else:
        t = ctx.op("Erf", [ctx.op("Mul", [x, ctx.scalar(math.sqrt(0.5), dt)])])
    half = ctx.op("Mul", [x, ctx.scalar(0.5, dt)])
    return ctx.op("Mul", [half, ctx.op("Add", [t, ctx.scalar(1, dt)])])


@lowers(A.Silu)
def _silu(ctx, a):
    x = ctx.name(a["x"])
    return ctx.op("Mul", [x, ctx.op("Sigmoid", [x])])


def _softplus_stable(ctx, z, dt):
    """``log(1 + exp(z))`` as ``max(z, 0) + log(1 + exp(-|z|))``: no overflow for large ``z``."""
    e = ctx.op("Exp", [ctx.op("Neg", [ctx.op("Abs", [z])])])
    return ctx.op("Add", [ctx.op("Relu", [z]), ctx.op("Log", [ctx.op("Add", [e, ctx.scalar(1, dt)])])])


@lowers(A.Softplus)
def _softplus(ctx, a):
    x, dt = _x(ctx, a)
    beta, threshold = float(a["beta"]), float(a["threshold"])
    z = x if beta == 1 else ctx.op("Mul", [x, ctx.scalar(beta, dt)])
    soft = _softplus_stable(ctx, z, dt)
    if beta != 1:
        soft = ctx.op("Div", [soft, ctx.scalar(beta, dt)])
    return ctx.op("Where", [ctx.op("Greater", [z, ctx.scalar(threshold, dt)]), x, soft])


@lowers(A.Softsign)
def _softsign(ctx, a):
    return ctx.op("Softsign", [ctx.name(a["x"])])


@lowers(A.Hardsigmoid)
def _hardsigmoid(ctx, a):
    return ctx.op("HardSigmoid", [ctx.name(a["x"])], alpha=1 / 6, beta=0.5)


@lowers(A.Hardswish)
def _hardswish(ctx, a):
    return ctx.op("HardSwish", [ctx.name(a["x"])])


@lowers(A.Mish)
def _mish(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Mul", [x, ctx.op("Tanh", [_softplus_stable(ctx, x, dt)])])


@lowers(A.Logsigmoid)
def _logsigmoid(ctx, a):
    x, dt = _x(ctx, a)
    e = ctx.op("Exp", [ctx.op("Neg", [ctx.op("Abs", [x])])])
    log = ctx.op("Log", [ctx.op("Add", [e, ctx.scalar(1, dt)])])
    return ctx.op("Sub", [ctx.op("Min", [x, ctx.scalar(0, dt)]), log])


@lowers(A.Tanhshrink)
def _tanhshrink(ctx, a):
    x = ctx.name(a["x"])
    return ctx.op("Sub", [x, ctx.op("Tanh", [x])])


@lowers(A.Softshrink, A.Hardshrink)
def _shrink(ctx, a):
    lambd = float(a["lambd"])
    return ctx.op("Shrink", [ctx.name(a["x"])], lambd=lambd, bias=lambd if ctx.node.op is A.Softshrink else 0.0)


@lowers(A.Threshold)
def _threshold(ctx, a):
    x, dt = _x(ctx, a)
    return ctx.op("Where", [ctx.op("Greater", [x, ctx.scalar(a["threshold"], dt)]), x, ctx.scalar(a["value"], dt)])


@lowers(RD.Dropout)
def _dropout(ctx, a):
    return ctx.op("Identity", [ctx.name(a["x"])])


# ---------------------------------------------------------------- convolution
@lowers(C.Conv2d)
def _conv2d(ctx, a):
    pt, pb, pl, pr = a["pad"]
    ins = [ctx.name(a["x"]), ctx.name(a["w"])] + ([ctx.name(a["b"])] if a.get("b") is not None else [])
    return ctx.op("Conv", ins, strides=list(a["stride"]), pads=[pt, pl, pb, pr], dilations=list(a["dilation"]),
                  group=int(a["groups"]), kernel_shape=list(a["w"].shape[2:]))


@lowers(C.ConvTranspose2d)
def _conv_transpose2d(ctx, a):
    g, w = a["g"], a["w"]
    pt, pb, pl, pr = a["pad"]
    (sh, sw), (dh, dw), (kh, kw) = a["stride"], a["dilation"], w.shape[2:]
    h, wd = g.shape[2:]
    oh, ow = a["x_shape"][2:]
    opad = [oh - ((h - 1) * sh - pt - pb + dh * (kh - 1) + 1), ow - ((wd - 1) * sw - pl - pr + dw * (kw - 1) + 1)]
    return ctx.op("ConvTranspose", [ctx.name(g), ctx.name(w)], strides=[sh, sw], pads=[pt, pl, pb, pr],
                  dilations=[dh, dw], group=int(a["groups"]), output_padding=opad, kernel_shape=[kh, kw])


# ---------------------------------------------------------------- pooling
def _pool_pads(x_hw, k, s, p, d, out):
    """``(left pads, right pads)`` that make every window of Ember's pooling (ceil_mode included) lie inside."""
    right = [max(pi, (o - 1) * si + di * (ki - 1) + 1 - n - pi) for n, ki, si, pi, di, o in zip(x_hw, k, s, p, d, out)]
    return list(p), right


def _pad_spatial(ctx, x, dt, left, right, fill):
    if not any(left) and not any(right):
        return x
    pads = [0, 0, *left, 0, 0, *right]
    return ctx.op("Pad", [x, ctx.ints(pads), ctx.scalar(fill, dt)], mode="constant")


@lowers(P._MaxPool)
def _max_pool(ctx, a):
    x, dt = _x(ctx, a)
    left, right = _pool_pads(a["x"].shape[2:], a["k"], a["s"], a["p"], a["d"], a["out"])
    x = _pad_spatial(ctx, x, dt, left, right, -numpy.inf)
    return ctx.op("MaxPool", [x], kernel_shape=list(a["k"]), strides=list(a["s"]), dilations=list(a["d"]))


@lowers(P._AvgPool)
def _avg_pool(ctx, a):
    x, dt = _x(ctx, a)
    k = list(a["k"])
    left, right = _pool_pads(a["x"].shape[2:], k, a["s"], a["p"], (1, 1), a["out"])
    x = _pad_spatial(ctx, x, dt, left, right, 0)
    out = ctx.op("AveragePool", [x], kernel_shape=k, strides=list(a["s"]))
    div = numpy.asarray(a["div"].const if hasattr(a["div"], "const") and a["div"].const is not None else a["div"])
    area = k[0] * k[1]
    if numpy.all(div == area):
        return out
    scale = (area / div).astype(dt)
    return ctx.op("Mul", [out, ctx.const(scale)])


@lowers(EP.LinearRelu, EP.Conv2dRelu)
def _product_relu(ctx, a):
    """Graph mode's fused epilogues (made by its passes, not by a trace): the product, then a Relu."""
    base = ctx.node.op.__mro__[1]                      # Linear or Conv2d
    return ctx.op("Relu", [LOWERINGS[base](ctx, a)])


@lowers(P._AdaptiveMaxIndex)
def _adaptive_max_index(ctx, a):
    """Read only by ``pool_gather``, whose lowering rebuilds the windows from the shapes: nothing to emit. The
    indices themselves (``return_indices=True``) have no ONNX form here."""
    out = ctx.node.outputs[0]
    readers = [n for n in ctx.graph.nodes if any(v is out for v in n.value_args())]
    if any(n.op is not P._Gather for n in readers) or any(v is out for v in ctx.graph.outputs):
        raise ExportError("ember.onnx.export: the indices of adaptive max pooling (return_indices=True) can't be "
                          f"exported{' (layer ' + ctx.layer + ')' if ctx.layer else ''}; export the pooled values "
                          "only, or use MaxPool2d with a fixed kernel, whose indices ONNX MaxPool gives")
    return ctx.name(a["a"])


@lowers(P._Gather)
def _pool_gather(ctx, a):
    """Adaptive max pooling (the only forward user of ``pool_gather``). Its indices (``adaptive_max_index``) are
    not exported: the windows are rebuilt from the shapes, ``[floor(i*n/o), ceil((i+1)*n/o))``
    per axis, as one MaxPool when they tile evenly, else a ReduceMax per window row, then per window column."""
    x = a["x"]
    name = ctx.name(x)
    (h, w), (oh, ow) = x.shape[2:], ctx.node.outputs[0].shape[2:]
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return ctx.op("MaxPool", [name], kernel_shape=k, strides=k)
    for axis, n, o in ((2, h, oh), (3, w, ow)):
        if n == o:
            continue
        pieces = []
        for i in range(o):
            lo, hi = (i * n) // o, -(-((i + 1) * n) // o)
            piece = ctx.op("Slice", [name, ctx.ints([lo]), ctx.ints([hi]), ctx.ints([axis])])
            pieces.append(reduce(ctx, "Max", piece, [axis], True))
        name = ctx.op("Concat", pieces, axis=axis)
    return name


# ---------------------------------------------------------------- normalization
def _lead(x, view) -> int:
    """How many leading dims of ``x`` make up A of the (A, G, K) view: the most whose product is A, so that
    size-1 dims (a batch of one) count with A, as the per-channel axis that follows them expects."""
    traced, lead = x.shape, 0
    for i in range(len(traced) + 1):
        if math.prod(traced[:i]) == view[0]:
            lead = i
    return lead


def _view(ctx, x, view):
    """The (A, G, K) view of ``x`` as a Reshape target: -1 for the one part that follows dynamic axes (A when
    they are among the leading dims whose product is A, else K)."""
    parts = [int(p) for p in view]
    shape, i = ctx.shape(x), _lead(x, view)
    dyn_a = any(isinstance(d, SymDim) for d in shape[:i])
    dyn_rest = any(isinstance(d, SymDim) for d in shape[i:])
    if dyn_a and dyn_rest:
        ctx.fail(f"the normalization view {view} of a {shape} input mixes several dynamic axes")
    if dyn_a:
        parts[0] = -1
    elif dyn_rest:
        parts[2] = -1
    return parts


@lowers(N.Normalize)
def _normalize(ctx, a):
    """The statistics on the (A, G, K) view; the affine part there too when the weight fills the (G, K) plane
    as it is (``rep == 1``), else per channel on the input's own layout, so a dynamic K needs no plane."""
    x, (_, g, k) = a["x"], a["view"]
    dt = x.dtype
    x3 = ctx.op("Reshape", [ctx.name(x), ctx.ints(_view(ctx, x, a["view"]))])
    axes = [2] if a["per_sample"] else [0, 2]
    mean = reduce(ctx, "Mean", x3, axes, True)
    d = ctx.op("Sub", [x3, mean])
    var = reduce(ctx, "Mean", ctx.op("Mul", [d, d]), axes, True)
    y = ctx.op("Div", [d, ctx.op("Sqrt", [ctx.op("Add", [var, ctx.scalar(a["eps"], dt)])])])
    rep = int(a["rep"]) if a["per_sample"] else k
    if rep == 1:
        for key, kind in (("w", "Mul"), ("b", "Add")):
            if a.get(key) is not None:
                y = ctx.op(kind, [y, ctx.op("Reshape", [ctx.name(a[key]), ctx.ints([g, k])])])
    y = ctx.reshape(y, _view_shape(ctx, x, a["view"]), ctx.shape(x))
    if rep != 1:
        channel_axis = _lead(x, a["view"])
        tail = [1] * (len(x.shape) - channel_axis - 1)
        for key, kind in (("w", "Mul"), ("b", "Add")):
            if a.get(key) is not None:
                y = ctx.op(kind, [y, ctx.op("Reshape", [ctx.name(a[key]), ctx.ints([-1] + tail)])])
    return y


def _view_shape(ctx, x, view):
    """The (A, G, K) view's shape with :class:`SymDim` where it follows dynamic axes."""
    v = _view(ctx, x, view)
    if -1 not in v:
        return tuple(v)
    j = v.index(-1)
    static = math.prod(d for q, d in enumerate(v) if q != j)
    total = sym_prod(ctx.shape(x))
    out = list(v)
    out[j] = SymDim(total.coef // static, total.syms)
    return tuple(out)


@lowers(N.ChannelAffine)
def _channel_affine(ctx, a):
    x = a["x"]
    view = _view(ctx, x, a["view"])
    y = ctx.op("Reshape", [ctx.name(x), ctx.ints(view)])
    y = ctx.op("Mul", [y, ctx.op("Unsqueeze", [ctx.name(a["scale"]), ctx.ints([1])])])
    if a.get("shift") is not None:
        y = ctx.op("Add", [y, ctx.op("Unsqueeze", [ctx.name(a["shift"]), ctx.ints([1])])])
    return ctx.reshape(y, _view_shape(ctx, x, a["view"]), ctx.shape(x))


# ---------------------------------------------------------------- embedding
@lowers(EM.Embedding)
def _embedding(ctx, a):
    return ctx.op("Gather", [ctx.name(a["weight"]), ctx.name(a["indices"])], axis=0)


# ---------------------------------------------------------------- attention
@lowers(AT.ScaledDotProductAttention)
def _sdpa(ctx, a):
    """``softmax(q k^T * scale + bias + mask) v`` as MatMul/Softmax nodes; ``bias`` is the boolean mask as 0/-inf,
    else the causal mask (a -inf upper triangle, built at run time so the sequence length may be dynamic).
    Attention dropout is left out: an exported graph is for inference."""
    q, k, v = a["q"], a["k"], a["v"]
    dt = q.dtype
    nk = len(k.shape)
    perm = list(range(nk - 2)) + [nk - 1, nk - 2]
    qs = ctx.op("Mul", [ctx.name(q), ctx.scalar(a["scale"], dt)])
    s = ctx.op("MatMul", [qs, ctx.op("Transpose", [ctx.name(k)], perm=perm)])
    masked = False
    if a["causal"] and a.get("allowed") is None:          # as Ember: a boolean mask replaces the causal one
        lq, sk = ctx.shape(q)[-2], ctx.shape(k)[-2]
        fill = ctx.helper.make_tensor("value", _onnx_dtype(dt), [1], [-numpy.inf])
        full = ctx.op("ConstantOfShape", [ctx.shape_tensor([lq, sk])], value=fill)
        s = ctx.op("Add", [s, ctx.op("Trilu", [full, ctx.const(numpy.asarray(1, dtype=numpy.int64))],
                                     upper=1)])
        masked = True
    if a.get("allowed") is not None:
        bias = ctx.op("Where", [ctx.name(a["allowed"]), ctx.scalar(0, dt), ctx.scalar(-numpy.inf, dt)])
        s = ctx.op("Add", [s, bias])
        masked = True
    if a.get("mask") is not None:
        s = ctx.op("Add", [s, ctx.name(a["mask"])])
        masked = True
    p = ctx.op("Softmax", [s], axis=-1)
    if masked:              # a row whose keys are all masked: zeros as Ember (ONNX's softmax gives NaN)
        p = ctx.op("Where", [ctx.op("IsNaN", [p]), ctx.scalar(0, dt), p])
    out = ctx.op("MatMul", [p, ctx.name(v)])
    return [out, p] if a["need_weights"] else out


# ---------------------------------------------------------------- recurrent layers
_ORDER = {"lstm": ([0, 3, 1, 2], "LSTM"),     # Ember (PyTorch) i f g o -> ONNX i o f c
          "gru": ([1, 0, 2], "GRU"),           # r z n -> z r h
          "rnn_tanh": ([0], "RNN"), "rnn_relu": ([0], "RNN")}


@lowers(RN.RecurrentScan)
def _recurrent_scan(ctx, a):
    """One ONNX LSTM/GRU/RNN node over the projected input: ``W`` is the gate permutation (so ``X W^T`` is the
    projection in ONNX's gate order), ``R`` the recurrent weight with its gate blocks reordered."""
    mode = a["mode"]
    if a.get("mask") is not None:
        ctx.fail("recurrent layers over packed (masked) sequences are not supported")
    if a.get("whr") is not None:
        ctx.fail("LSTM with proj_size has no ONNX equivalent")
    x, w = a["x"], a["w"]
    dt = x.dtype
    order, kind = _ORDER[mode]
    gh, h = w.shape
    gates = len(order)
    hs = gh // gates
    perm = numpy.concatenate([numpy.arange(g * hs, (g + 1) * hs) for g in order])
    W = numpy.eye(gh, dtype=dt)[perm][None]
    rows = ctx.const(perm.astype(numpy.int64))
    R = ctx.op("Unsqueeze", [ctx.op("Gather", [ctx.name(w), rows], axis=0), ctx.ints([0])])
    B = ""
    if mode == "gru" and a.get("b") is not None:
        rb = ctx.op("Gather", [ctx.name(a["b"]), rows], axis=0)
        B = ctx.op("Unsqueeze", [ctx.op("Concat", [ctx.const(numpy.zeros(gh, dt)), rb], axis=0), ctx.ints([0])])
    elif mode == "gru":
        B = ctx.const(numpy.zeros((1, 2 * gh), dt))
    h0 = "" if a.get("h0") is None else ctx.op("Unsqueeze", [ctx.name(a["h0"]), ctx.ints([0])])
    c0 = "" if a.get("c0") is None else ctx.op("Unsqueeze", [ctx.name(a["c0"]), ctx.ints([0])])
    attrs = {"hidden_size": int(h), "direction": "reverse" if a["reverse"] else "forward"}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        attrs["activations"] = ["Relu" if mode == "rnn_relu" else "Tanh"]
    ins = [ctx.name(x), ctx.const(W, "gate_permutation"), R, B, "", h0]
    if kind == "LSTM":
        ins.append(c0)
    n_out = 3 if kind == "LSTM" else 2
    outs = ctx.op(kind, ins, n_out=n_out, **attrs)
    y = ctx.op("Squeeze", [outs[0], ctx.ints([1])])
    return [y] + [ctx.op("Squeeze", [o, ctx.ints([0])]) for o in outs[1:]]


# ---------------------------------------------------------------- losses (a model that returns its loss)
_CE = import_module("ember.nn._cross_entropy")
_LOSSES = import_module("ember.nn._losses")


def _index_loss(ctx, a, onnx_op: str, x_key: str):
    """cross_entropy / nll_loss as ONNX's SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss (op-set 13+):
    the same reductions, class weights and ignore_index; label smoothing has no ONNX form."""
    if a.get("label_smoothing"):
        ctx.fail("label_smoothing has no ONNX form (SoftmaxCrossEntropyLoss has no smoothing)")
    x = a[x_key]
    ins = [ctx.name(x), ctx.op("Cast", [ctx.name(a["t"])], to=7)]       # targets as int64
    if a.get("weight") is not None:
        ins.append(ctx.const(numpy.asarray(a["weight"], dtype=x.dtype)))
    return ctx.op(onnx_op, ins, reduction=a.get("reduction", "mean"), ignore_index=int(a.get("ignore_index", -100)))


@lowers(_CE.CrossEntropy)
def _cross_entropy(ctx, a):
    return _index_loss(ctx, a, "SoftmaxCrossEntropyLoss", "x")


@lowers(_CE.NLLLoss)
def _nll_loss(ctx, a):
    return _index_loss(ctx, a, "NegativeLogLikelihoodLoss", "logp")


@lowers(_LOSSES.BinaryCrossEntropy)
def _binary_cross_entropy(ctx, a):
    """``-(y log x + (1 - y) log(1 - x))`` with both logs clamped at -100, as Ember and PyTorch compute it."""
    x, dt = _x(ctx, a)
    y = ctx.name(a["y"])
    floor = ctx.scalar(-100.0, dt)
    one = ctx.scalar(1.0, dt)
    lx = ctx.op("Max", [ctx.op("Log", [x]), floor])
    l1x = ctx.op("Max", [ctx.op("Log", [ctx.op("Sub", [one, x])]), floor])
    s = ctx.op("Add", [ctx.op("Mul", [y, lx]), ctx.op("Mul", [ctx.op("Sub", [one, y]), l1x])])
    return ctx.op("Neg", [s])
