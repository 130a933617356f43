"""ONNX converters for recurrent layers: LSTM, GRU and RNN (forward, reverse, bidirectional; both layouts;
initial states; ``sequence_lens``; custom activations; GRU's ``linear_before_reset``).

The common forms run on Ember's fused recurrent scan (:func:`ember.ops.rnn.recurrent_scan`, one op per layer
direction); what it does not cover (LSTM peepholes, ``clip``, ``input_forget``, LSTM with different cell and
hidden activations) runs as a loop over time steps in differentiable Ember ops.
"""
from __future__ import annotations

import numpy as np

import ember as E

from ..ops.rnn import recurrent_scan
from .ops_nn import node_error, optional, outputs, unsupported
from .registry import converter

__all__: list[str] = []

# ONNX's gate blocks, reordered to Ember's (PyTorch's): LSTM i,o,f,c -> i,f,c,o; GRU z,r,h -> r,z,h
_ORDER = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2), "rnn": (0,)}
_DEFAULT_ACTS = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"], "rnn": ["Tanh"]}
_ALPHA = {"Affine": 1.0, "LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "ScaledTanh": 1.0, "HardSigmoid": 0.2,
          "Elu": 1.0}
_BETA = {"Affine": 0.0, "ScaledTanh": 1.0, "HardSigmoid": 0.5}


def _act_fn(ctx, name: str, alpha, beta):
    """The Ember function for an ONNX RNN activation name (with its alpha/beta)."""
    fns = {
        "relu": E.relu, "tanh": E.tanh, "sigmoid": E.sigmoid, "softsign": E.softsign, "softplus": E.softplus,
        "affine": lambda x: x * alpha + beta,
        "leakyrelu": lambda x: E.leaky_relu(x, alpha),
        "thresholdedrelu": lambda x: E.threshold(x, alpha, 0.0),
        "scaledtanh": lambda x: E.tanh(x * beta) * alpha,
        "hardsigmoid": lambda x: E.clamp(x * alpha + beta, 0.0, 1.0),
        "elu": lambda x: E.elu(x, alpha),
    }
    fn = fns.get(name.lower())
    if fn is None:
        raise unsupported(ctx, f"the recurrent activation {name!r}")
    return fn


def _activations(ctx, attrs, kind: str, ndir: int):
    """Per direction, the list of (name, function) activations, consuming activation_alpha/beta in order."""
    names = list(attrs.get("activations") or _DEFAULT_ACTS[kind] * ndir)
    per = len(_DEFAULT_ACTS[kind])
    if len(names) == per and ndir == 2:
        names = names * 2
    if len(names) != per * ndir:
        raise node_error(ctx, f"expected {per * ndir} activations for {ndir} direction(s), got {names}")
    alphas, betas = list(attrs.get("activation_alpha") or []), list(attrs.get("activation_beta") or [])
    out = []
    for n in names:
        key = next((k for k in _ALPHA if k.lower() == n.lower()), None)
        a = alphas.pop(0) if key in _ALPHA and alphas else _ALPHA.get(key, 1.0)
        bkey = next((k for k in _BETA if k.lower() == n.lower()), None)
        b = betas.pop(0) if bkey in _BETA and betas else _BETA.get(bkey, 0.0)
        out.append((n.lower(), _act_fn(ctx, n, float(a), float(b))))
    return [out[d * per:(d + 1) * per] for d in range(ndir)]


def _blocks(t, order, h: int):
    """The gate blocks of ``t`` (rows on dim 0) in Ember's order."""
    if len(order) == 1:
        return t
    return E.cat([t[k * h:(k + 1) * h] for k in order], 0)


def _prepare(ctx, inputs, attrs, kind: str):
    x, w, r = inputs[0], inputs[1], inputs[2]
    b, lens, h0, c0, p = (optional(inputs, i) for i in (3, 4, 5, 6, 7))
    layout = int(attrs.get("layout", 0))
    if x.ndim != 3:
        raise node_error(ctx, f"expected a 3-D input X, got shape {tuple(x.shape)}")
    if layout:
        x = x.permute(1, 0, 2)
        h0 = None if h0 is None else h0.permute(1, 0, 2)
        c0 = None if c0 is None else c0.permute(1, 0, 2)
    direction = attrs.get("direction", "forward")
    ndir = 2 if direction == "bidirectional" else 1
    hidden = int(attrs.get("hidden_size", r.shape[-1]))
    if tuple(w.shape[:1]) != (ndir,) or r.shape[-1] != hidden:
        raise node_error(ctx, f"W {tuple(w.shape)} and R {tuple(r.shape)} do not match direction={direction!r}, "
                              f"hidden_size={hidden}")
    T, N = x.shape[0], x.shape[1]
    mask = None
    if lens is not None:
        ln = np.asarray(ctx.const(lens)).astype(np.int64).reshape(-1)
        if (ln < T).any():
            mask = (np.arange(T)[:, None] < ln[None, :])[:, :, None]
    return x, w, r, b, h0, c0, p, mask, direction, ndir, hidden, layout, (T, N)


def _finish(ctx, ys, hs, cs, mask, layout):
    """Stack directions into ONNX's Y (T, D, N, H) [layout 1: (N, T, D, H)], Y_h and Y_c (D, N, H) [(N, D, H)]."""
    y = E.stack(ys, 1)
    if mask is not None:
        y = y * E.tensor(mask[:, None].astype(y.data.dtype))
    yh = E.stack(hs, 0)
    yc = E.stack(cs, 0) if cs else None
    if layout:
        y, yh = y.permute(2, 0, 1, 3), yh.permute(1, 0, 2)
        yc = None if yc is None else yc.permute(1, 0, 2)
    return outputs(ctx, y, yh, yc)


def _loop(kind, x, w, r, wb, rb, h, c, p, acts, clip, input_forget, lbr, mask, reverse, hidden):
    """One direction as a loop over time steps in Ember ops, ONNX's equations verbatim (gates in ONNX order)."""
    H = hidden
    T = x.shape[0]
    xw = E.matmul(x, w.t()) + (wb if wb is not None else 0.0)
    fns = [f for _, f in acts]
    clipped = (lambda v: E.clamp(v, -clip, clip)) if clip is not None else (lambda v: v)
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        hr = E.matmul(h, r.t())
        if kind == "lstm":
            g = xw[t] + hr + (rb if rb is not None else 0.0)
            gi, go, gf, gc = (g[:, k * H:(k + 1) * H] for k in range(4))
            if p is not None:                   # peepholes join the gates before the clip (as onnxruntime)
                gi, gf = gi + p[:H] * c, gf + p[2 * H:] * c
            i = fns[0](clipped(gi))
            f = 1 - i if input_forget else fns[0](clipped(gf))
            cn = f * c + i * fns[1](clipped(gc))
            if p is not None:
                go = go + p[H:2 * H] * cn
            hn = fns[0](clipped(go)) * fns[2](cn)
        elif kind == "gru":
            xz, xr, xh = (xw[t][:, k * H:(k + 1) * H] for k in range(3))
            rbz = [None] * 3 if rb is None else [rb[k * H:(k + 1) * H] for k in range(3)]
            hz, hrr, hh = (hr[:, k * H:(k + 1) * H] for k in range(3))
            z = fns[0](clipped(xz + hz + (rbz[0] if rbz[0] is not None else 0.0)))
            rr = fns[0](clipped(xr + hrr + (rbz[1] if rbz[1] is not None else 0.0)))
            if lbr:
                n = fns[1](clipped(xh + rr * (hh + (rbz[2] if rbz[2] is not None else 0.0))))
            else:
                n = fns[1](clipped(xh + E.matmul(rr * h, r[2 * H:].t()) + (rbz[2] if rbz[2] is not None else 0.0)))
            hn = (1 - z) * n + z * h
        else:
            hn = fns[0](clipped(xw[t] + hr + (rb if rb is not None else 0.0)))
        if mask is not None:
            m = E.tensor(mask[t])
            hn = E.where(m, hn, h)
            if kind == "lstm":
                cn = E.where(m, cn, c)
        h = outs[t] = hn
        if kind == "lstm":
            c = cn
    return E.stack(outs, 0), h, c


def _recurrent(ctx, inputs, attrs, kind: str):
    x, w, r, b, h0, c0, p, mask, direction, ndir, H, layout, (T, N) = _prepare(ctx, inputs, attrs, kind)
    acts = _activations(ctx, attrs, kind, ndir)
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    clip = attrs.get("clip")
    input_forget = bool(attrs.get("input_forget", 0))
    lbr = bool(attrs.get("linear_before_reset", 0))
    ys, hs, cs = [], [], []
    for d in range(ndir):
        reverse = direction == "reverse" or d == 1
        wd, rd = w[d], r[d]
        wb = rb = None
        if b is not None:
            wb, rb = b[d][:gates * H], b[d][gates * H:]
        hd = None if h0 is None else h0[d]
        cd = None if c0 is None else c0[d]
        pd = None if p is None else p[d]
        names = [n for n, _ in acts[d]]
        standard = names == [a.lower() for a in _DEFAULT_ACTS[kind]]
        loop = (clip is not None or input_forget or pd is not None or (kind == "lstm" and names[1] != names[2])
                or (kind == "rnn" and not standard and names[0] not in ("tanh", "relu")))
        if loop:
            if kind == "lstm" and hd is not None and cd is None:
                cd = E.zeros_like(hd)
            if hd is None:
                hd = E.zeros(N, H, dtype=x.dtype)
            if kind == "lstm" and cd is None:
                cd = E.zeros(N, H, dtype=x.dtype)
            out, hn, cn = _loop(kind, x, wd, rd, wb, rb, hd, cd, pd, acts[d], clip, input_forget, lbr, mask,
                                reverse, H)
            ys.append(out), hs.append(hn)
            if kind == "lstm":
                cs.append(cn)
            continue
        order = _ORDER[kind]
        w_ih, w_hh = _blocks(wd, order, H), _blocks(rd, order, H)
        proj = E.matmul(x, w_ih.t())
        b_hh = None
        if b is not None:
            wbo, rbo = _blocks(wb, order, H), _blocks(rb, order, H)
            if kind == "gru" and lbr:
                proj, b_hh = proj + wbo, rbo
            else:
                proj = proj + (wbo + rbo)
        if kind == "lstm":
            mode = "lstm"
        elif kind == "gru":
            mode = "gru" if lbr else "gru_v1"
        else:
            mode = "rnn_relu" if names[0] == "relu" else "rnn_tanh"
        kw = {}
        if not standard and kind != "rnn":
            kw = {"recurrent_activation": acts[d][0][1], "activation": acts[d][1][1]}
        res = recurrent_scan(mode, proj, w_hh, b_hh, hd, cd, mask=mask, reverse=reverse, **kw)
        ys.append(res[0]), hs.append(res[1])
        if kind == "lstm":
            cs.append(res[2])
    return _finish(ctx, ys, hs, cs, mask, layout)


@converter("LSTM")
def lstm(ctx, inputs, attrs):
    return _recurrent(ctx, inputs, attrs, "lstm")


@converter("GRU")
def gru(ctx, inputs, attrs):
    return _recurrent(ctx, inputs, attrs, "gru")


@converter("RNN")
def rnn(ctx, inputs, attrs):
    return _recurrent(ctx, inputs, attrs, "rnn")
