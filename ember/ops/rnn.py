"""Recurrent ops: one fused scan per RNN/LSTM/GRU layer direction (``RecurrentScan``) and its composite twin.

The per-step gate arithmetic runs in numba kernels when available (:mod:`ember.backend.rnn_kernels`),
else as in-place array expressions on ``xp``.
"""
from __future__ import annotations

from ..backend import matmul as _matmul
from ..backend import rnn_kernels as _k
from ..backend import scratch as _scratch      # recycled workspaces: fresh big arrays cost page faults
from ._util import Op, OpError, Tensor, _wrap

__all__: list[str] = []


# ---------------------------------------------------------------- recurrences
# Every recurrence runs time-major on ``x`` = the input projection of the whole sequence, (T, N, G*H),
# computed before the scan with one matmul. Per step the only matmul is ``h @ W_hh^T`` for all gates.
# Outputs are the *state* after each step ("carry" semantics): where ``mask`` is False the state is
# left unchanged and the output repeats it; PyTorch's packed-sequence zeros are that output times the mask.
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _steps(T: int, reverse: bool):
    return range(T - 1, -1, -1) if reverse else range(T)


def _shifted(xp, states, init, reverse: bool):
    """The state *before* each step: ``init`` then the states, in processing order."""
    prev = _scratch(xp, states.shape, states.dtype)
    if reverse:
        prev[:-1], prev[-1] = states[1:], init
    else:
        prev[1:], prev[0] = states[:-1], init
    return prev


def _nonzero_steps(g) -> list:
    """Which steps of an output gradient (T, N, H) are nonzero: a loss on the last output leaves the rest zero."""
    return g.reshape(g.shape[0], -1).any(axis=1).tolist()


def _zeros_state(xp, x, h):
    return xp.zeros((x.shape[1], h), dtype=x.dtype)


def _lstm_forward(xp, x, w, h, c, mask, reverse, whr=None):
    T, N, G = x.shape
    H, P = G // 4, w.shape[1]          # P: the size of h (proj_size with a projection, else H)
    wt = xp.ascontiguousarray(w.T)
    # workspace that lives with the graph node (recycled once the node is freed); ``out`` is the op's output
    acts = _scratch(xp, (T, N, G), x.dtype)
    out = xp.empty((T, N, P), dtype=x.dtype)
    cst = _scratch(xp, (T, N, H), x.dtype)
    tcs = _scratch(xp, (T, N, H), x.dtype)
    hraw = None if whr is None else _scratch(xp, (T, N, H), x.dtype)
    whrt = None if whr is None else xp.ascontiguousarray(whr.T)
    keep = None if mask is None else ~mask
    fused = _k.kernels(x, w, h, c)
    if fused is not None:
        fused = fused["lstm_forward"]
        h, c = xp.ascontiguousarray(h), xp.ascontiguousarray(c)
    else:
        # gates i, f, g, o (PyTorch's order); sigmoid(a) = (tanh(a/2) + 1) / 2, so halving the sigmoid gates'
        # pre-activations lets one tanh over all four gates give every activation after two in-place ops each
        scale = xp.full((G,), 0.5, dtype=x.dtype)
        scale[2 * H:3 * H] = 1
    for t in _steps(T, reverse):
        a = acts[t]
        _matmul(xp, h, wt, out=a)
        cn, hn, tc = cst[t], out[t], tcs[t]
        hr = hn if whr is None else hraw[t]
        if fused is not None:
            fused(a, x[t], c, cn, tc, hr)
        else:
            a += x[t]
            a *= scale
            xp.tanh(a, out=a)
            for s in (a[:, :2 * H], a[:, 3 * H:]):
                s *= 0.5
                s += 0.5
            xp.multiply(a[:, H:2 * H], c, out=cn)
            cn += a[:, :H] * a[:, 2 * H:3 * H]
            xp.tanh(cn, out=tc)
            xp.multiply(a[:, 3 * H:], tc, out=hr)
        if whr is not None:
            _matmul(xp, hr, whrt, out=hn)
        if keep is not None:
            xp.copyto(hn, h, where=keep[t])
            xp.copyto(cn, c, where=keep[t])
        h, c = hn, cn
    return out, cst, acts, tcs, hraw


def _lstm_factors(xp, acts, cprev, tcs, mask):
    """The per-step factors of the LSTM backward for every step at once (the NumPy path)."""
    T, N, G = acts.shape
    H = G // 4
    i, f, g, o = (acts[..., k * H:(k + 1) * H] for k in range(4))
    # dc_new = dc + dh*Kc; d(i,f,g) = dc_new*K3; do = dh*Ko (computed in place, no temporaries)
    k3 = _scratch(xp, (T, N, 3, H), acts.dtype)
    ki, kf, kg = k3[:, :, 0], k3[:, :, 1], k3[:, :, 2]
    xp.subtract(1, i, out=ki)
    ki *= i
    ki *= g
    xp.subtract(1, f, out=kf)
    kf *= f
    kf *= cprev
    xp.multiply(g, g, out=kg)
    xp.subtract(1, kg, out=kg)
    kg *= i
    kc = xp.multiply(tcs, tcs, out=_scratch(xp, tcs.shape, tcs.dtype))
    xp.subtract(1, kc, out=kc)
    kc *= o
    ko = xp.subtract(1, o, out=_scratch(xp, tcs.shape, tcs.dtype))
    ko *= o
    ko *= tcs
    fc = f
    if mask is not None:
        k3 *= mask[:, :, None]
        kc *= mask
        ko *= mask
        fc = xp.where(mask, f, 1)
    return k3, kc, ko, fc


def _lstm_backward(xp, w, h0, c0, mask, reverse, saved, gout, ghn, gcn, whr=None):
    out, cst, acts, tcs, _ = saved
    T, N, P = out.shape
    H = acts.shape[-1] // 4
    dA = xp.empty((T, N, 4 * H), dtype=out.dtype)
    dA4 = dA.reshape(T, N, 4, H)
    dh = xp.zeros((N, P), dtype=out.dtype) if ghn is None else xp.array(ghn, order="C")
    dc = xp.zeros((N, H), dtype=out.dtype) if gcn is None else xp.array(gcn, order="C")
    nh = None if mask is None else xp.empty_like(dh)
    fused = _k.kernels(acts, w, c0, dh, dc)
    if fused is not None:
        fused = fused["lstm_backward"]
        c0 = xp.ascontiguousarray(c0)
        rows = xp.ones((T, N), dtype=bool) if mask is None else xp.ascontiguousarray(mask[:, :, 0])
    else:
        k3, kc, ko, fc = _lstm_factors(xp, acts, _shifted(xp, cst, c0, reverse), tcs, mask)
    dhp = None if whr is None else _scratch(xp, (T, N, P), out.dtype)    # gradient of each projected h
    live = _nonzero_steps(gout)
    first = T - 1 if reverse else 0
    for t in _steps(T, not reverse):
        if live[t]:
            dh += gout[t]
        dhr = dh
        if whr is not None:
            if mask is None:
                dhp[t] = dh
            else:
                xp.multiply(dh, mask[t], out=dhp[t])
            dhr = _matmul(xp, dhp[t], whr)
        if fused is not None:
            fused(dhr, dc, acts[t], c0 if t == first else cst[t + 1 if reverse else t - 1], tcs[t], dA[t], rows[t])
        else:
            dcn = dhr * kc[t]
            dcn += dc
            xp.multiply(dcn[:, None, :], k3[t], out=dA4[t, :, :3])
            xp.multiply(dhr, ko[t], out=dA4[t, :, 3])
            dc = xp.multiply(dcn, fc[t], out=dcn)
        if mask is None:
            _matmul(xp, dA[t], w, out=dh)
        else:
            _matmul(xp, dA[t], w, out=nh)
            xp.copyto(dh, nh, where=mask[t])
    return dA, dh, dc, dhp


def _gru_forward(xp, x, w, b, h, mask, reverse):
    T, N, G = x.shape
    H = G // 3
    wt = xp.ascontiguousarray(w.T)
    ah = _scratch(xp, (T, N, G), x.dtype)
    rz = _scratch(xp, (T, N, 2 * H), x.dtype)
    nn = _scratch(xp, (T, N, H), x.dtype)
    out = xp.empty((T, N, H), dtype=x.dtype)
    fused = _k.kernels(x, w, b, h)
    if fused is not None:
        fused = fused["gru_forward"]
        h = xp.ascontiguousarray(h)
        bz = xp.zeros((G,), dtype=x.dtype) if b is None else xp.ascontiguousarray(b)
    for t in _steps(T, reverse):
        a = ah[t]
        _matmul(xp, h, wt, out=a)
        s, n, hn = rz[t], nn[t], out[t]
        if fused is not None:
            fused(a, x[t], bz, h, s, n, hn)
        else:
            if b is not None:
                a += b
            xp.add(x[t, :, :2 * H], a[:, :2 * H], out=s)
            s *= 0.5
            xp.tanh(s, out=s)
            s *= 0.5
            s += 0.5
            xp.multiply(s[:, :H], a[:, 2 * H:], out=n)
            n += x[t, :, 2 * H:]
            xp.tanh(n, out=n)
            xp.subtract(h, n, out=hn)
            hn *= s[:, H:]
            hn += n
        if mask is not None:
            xp.copyto(hn, h, where=~mask[t])
        h = hn
    return out, ah, rz, nn


def _gru_backward(xp, w, h0, mask, reverse, saved, gout, ghn):
    out, ah, rz, n = saved
    T, N, H = out.shape
    dh = xp.zeros((N, H), dtype=out.dtype) if ghn is None else xp.array(ghn, order="C")
    live = _nonzero_steps(gout)
    fused = _k.kernels(ah, w, h0, dh)
    if fused is not None:
        return _gru_backward_fused(xp, fused["gru_backward"], w, h0, mask, reverse, saved, gout, dh, live)
    r, z = rz[..., :H], rz[..., H:]
    hprev = _shifted(xp, out, h0, reverse)
    kn = (1 - z) * (1 - n * n)
    kx = _scratch(xp, (T, N, 3, H), out.dtype)
    kx[:, :, 0] = kn * ah[..., 2 * H:] * r * (1 - r)
    kx[:, :, 1] = (hprev - n) * z * (1 - z)
    kx[:, :, 2] = kn
    zc = z
    if mask is not None:
        kx *= mask[:, :, None]
        zc = xp.where(mask, z, 1)
    kh = _scratch(xp, kx.shape, kx.dtype)
    kh[...] = kx
    kh[:, :, 2] *= r
    dAh = _scratch(xp, (T, N, 3 * H), out.dtype)
    dAh4 = dAh.reshape(T, N, 3, H)
    dhs = _scratch(xp, (T, N, H), out.dtype)
    for t in _steps(T, not reverse):
        if live[t]:
            dh += gout[t]
        dhs[t] = dh
        xp.multiply(dh[:, None, :], kh[t], out=dAh4[t])
        carry = dh * zc[t]
        dh = _matmul(xp, dAh[t], w)
        dh += carry
    dAx = (dhs[:, :, None, :] * kx).reshape(T, N, 3 * H)
    return dAx, dAh, dh


def _gru_backward_fused(xp, kernel, w, h0, mask, reverse, saved, gout, dh, live):
    """The GRU backward loop with the numba step kernel: gradients of both pre-activation sides per step."""
    out, ah, rz, n = saved
    T, N, H = out.shape
    h0 = xp.ascontiguousarray(h0)
    rows = xp.ones((T, N), dtype=bool) if mask is None else xp.ascontiguousarray(mask[:, :, 0])
    dAx = xp.empty((T, N, 3 * H), dtype=out.dtype)
    dAh = _scratch(xp, (T, N, 3 * H), out.dtype)
    nh = xp.empty_like(dh)
    first = T - 1 if reverse else 0
    for t in _steps(T, not reverse):
        if live[t]:
            dh += gout[t]
        kernel(dh, ah[t], rz[t], n[t], h0 if t == first else out[t + 1 if reverse else t - 1], dAh[t], dAx[t],
               rows[t])
        dh += _matmul(xp, dAh[t], w, out=nh)
    return dAx, dAh, dh


def _rnn_forward(xp, x, w, h, mask, reverse, relu):
    T, N, H = x.shape
    wt = xp.ascontiguousarray(w.T)
    out = hn = xp.empty((T, N, H), dtype=x.dtype)
    if mask is not None:     # the output differs from the pre-mask states: keep those in workspace
        hn = _scratch(xp, (T, N, H), x.dtype)
    for t in _steps(T, reverse):
        a = hn[t]
        _matmul(xp, h, wt, out=a)
        a += x[t]
        if relu:
            xp.maximum(a, 0, out=a)
        else:
            xp.tanh(a, out=a)
        if mask is not None:
            out[t] = xp.where(mask[t], a, h)
        h = out[t]
    return out, hn


def _rnn_backward(xp, w, mask, reverse, relu, saved, gout, ghn):
    out, hn = saved
    T, N, H = out.shape
    d = (hn > 0).astype(out.dtype) if relu else 1 - hn * hn
    if mask is not None:
        d *= mask
    dA = xp.empty((T, N, H), dtype=out.dtype)
    dh = xp.zeros((N, H), dtype=out.dtype) if ghn is None else ghn.copy()
    live = _nonzero_steps(gout)
    for t in _steps(T, not reverse):
        if live[t]:
            dh += gout[t]
        xp.multiply(dh, d[t], out=dA[t])
        nh = _matmul(xp, dA[t], w)
        if mask is None:
            dh = nh
        else:
            xp.copyto(dh, nh, where=mask[t])
    return dA, dh


def _state_grad(xp, dA, states, h0, has_h0: bool, reverse: bool):
    """``sum_t dA[t]^T h_{t-1}``: the gradient of ``W_hh``, one matmul over the steps after the first (whose
    previous states are the outputs, read in place) plus the first step's term when ``h0`` is not zero."""
    T, N, G = dA.shape
    H = states.shape[-1]
    first = T - 1 if reverse else 0
    later, prev = (dA[:-1], states[1:]) if reverse else (dA[1:], states[:-1])
    dw = _matmul(xp, later.reshape(-1, G).T, prev.reshape(-1, H)) if T > 1 else xp.zeros((G, H), dtype=dA.dtype)
    if has_h0:
        dw += _matmul(xp, dA[first].T, h0)
    return dw


class RecurrentScan(Op):
    """A whole recurrent layer (one direction) over a sequence: ``(out, h_n[, c_n])`` from the input projection.

    Inputs: ``x`` (T, N, G*H) = ``input @ W_ih^T + biases`` for every step at once, ``w_hh`` (G*H, H),
    ``b_hh`` (G*H,) for GRU only (it sits inside ``r * (W_hn h + b_hn)``), ``h0`` and ``c0`` (N, H) or None
    (zeros), ``w_hr`` (P, H) or None: LSTM's projection (PyTorch's ``proj_size``; ``w_hh`` is then (4H, P)
    and ``h0`` (N, P)). Attributes: ``mode`` ('lstm', 'gru', 'rnn_tanh', 'rnn_relu'), ``mask`` ((T, N, 1) bool or None:
    the state is left unchanged at False steps), ``reverse`` (scan from the last step to the first).

    Forward and backward are NumPy/CuPy loops over time with one ``(N, H) @ (H, G*H)`` matmul per step and
    a handful of in-place elementwise ops; the gradient of ``W_hh`` is one matmul over all steps. On NumPy
    arrays with numba installed, each LSTM/GRU step's gate arithmetic is one compiled pass instead
    (:mod:`ember.backend.rnn_kernels`; float32 ``tanh``/``sigmoid`` there are within 4e-7 of exact). When a
    graph of the gradient is wanted (``create_graph=True``) the backward recomputes the layer with
    differentiable Ember ops (:func:`recurrent_composite`) and differentiates that, so every order works.

    Memory: saved for the gradient, LSTM ``8*T*N*H`` elements (gate activations, cell states, tanh(c),
    outputs), GRU ``7*T*N*H``, RNN ``2*T*N*H``; the backward allocates about as much again.
    """

    inline_backward = False     # graph mode replays the array scan backward, not the recorded composite

    name_ = "recurrent_scan"
    save_inputs = (0, 1, 2, 3, 4, 5)

    def forward(self, x, w, b, h0, c0, whr=None, *, mode, mask, reverse):
        xp = self.xp
        H = w.shape[1]
        h = _zeros_state(xp, x, H) if h0 is None else h0
        if mode == "lstm":
            c = _zeros_state(xp, x, x.shape[-1] // 4) if c0 is None else c0
            self.cache = _lstm_forward(xp, x, w, h, c, mask, reverse, whr)
            out, cst = self.cache[0], self.cache[1]
            last = 0 if reverse else -1
            return out, out[last].copy(), cst[last].copy()
        if mode == "gru":
            self.cache = _gru_forward(xp, x, w, b, h, mask, reverse)
        else:
            self.cache = _rnn_forward(xp, x, w, h, mask, reverse, mode == "rnn_relu")
        out = self.cache[0]
        return out, out[0 if reverse else -1].copy()

    def backward(self, gout, ghn, gcn=None):
        from ..autograd.grad_mode import _state
        if _state.enabled:
            return self._graph_backward(gout, ghn, gcn)
        xp = self.xp
        x, w, b, h0, c0, whr = self.saved_tensors
        a = self.attrs
        mode, mask, reverse = a["mode"], a["mask"], a["reverse"]
        wd = w.data
        H = wd.shape[1]
        h0d = _zeros_state(xp, x.data, H) if h0 is None else h0.data
        go, gh = gout.data, ghn.data
        db = dwhr = None
        e = self.edges
        if mode == "lstm":
            c0d = _zeros_state(xp, x.data, x.data.shape[-1] // 4) if c0 is None else c0.data
            dA, dh0, dc0, dhp = _lstm_backward(xp, wd, h0d, c0d, mask, reverse, self.cache, go, gh, gcn.data,
                                               None if whr is None else whr.data)
            dAh = dA
            if whr is not None and e[5]:
                hraw = self.cache[4]
                dwhr = _matmul(xp, dhp.reshape(-1, dhp.shape[-1]).T, hraw.reshape(-1, hraw.shape[-1]))
        elif mode == "gru":
            dA, dAh, dh0 = _gru_backward(xp, wd, h0d, mask, reverse, self.cache, go, gh)
            db = dAh.sum(axis=(0, 1)) if b is not None and self.edges[2] else None
            dc0 = None
        else:
            dA, dh0 = _rnn_backward(xp, wd, mask, reverse, mode == "rnn_relu", self.cache, go, gh)
            dAh, dc0 = dA, None
        dw = None
        if e[1]:
            dw = _state_grad(xp, dAh, self.cache[0], h0d, h0 is not None, reverse)
        grads = (dA if e[0] else None, dw, db, dh0 if e[3] else None, dc0 if e[4] else None, dwhr)
        return tuple(None if v is None else _wrap(v) for v in grads)

    def _graph_backward(self, gout, ghn, gcn):
        from ..autograd.engine import grad
        from ..autograd.grad_mode import enable_grad
        saved = self.saved_tensors
        a = self.attrs
        idx = [k for k, e in enumerate(self.edges) if e is not None and saved[k] is not None]
        with enable_grad():
            outs = recurrent_composite(a["mode"], *saved, mask=a["mask"], reverse=a["reverse"])
            gouts = (gout, ghn, gcn) if a["mode"] == "lstm" else (gout, ghn)
            gs = grad(outs, [saved[k] for k in idx], grad_outputs=gouts, create_graph=True, allow_unused=True)
        res = [None] * 6
        for k, gk in zip(idx, gs):
            res[k] = gk
        return tuple(res)


def recurrent_composite(mode: str, x: Tensor, w: Tensor, b: Tensor | None, h: Tensor | None, c: Tensor | None,
                        w_hr: Tensor | None = None, *, mask=None, reverse: bool = False, activation=None,
                        recurrent_activation=None, recurrent_mask: Tensor | None = None):
    """The recurrence of :class:`RecurrentScan` written step by step in differentiable Ember ops.

    The reference the fused op is tested against, the graph its double backward differentiates, and the
    path for what the fused kernels don't do: other activations (Keras' ``activation`` and
    ``recurrent_activation``), ``recurrent_mask`` (N, H) multiplied into the state fed to ``W_hh``
    (Keras' recurrent dropout) and mode ``'gru_v1'`` (Keras' ``reset_after=False``:
    ``n = act(x_n + (r*h) W_hn^T)``). ``w_hr`` (P, H): LSTM's projection ``h = (o*tanh(c)) W_hr^T``.
    Memory: the autograd graph of every step (several ``N*G*H`` tensors).
    """
    from .activation import relu
    from .join import split, stack, unbind
    from .linalg import matmul
    from .shape import t as _t
    from .unary import sigmoid, tanh
    from .where import where
    act = activation or (relu if mode == "rnn_relu" else tanh)
    ract = recurrent_activation or sigmoid
    xs = unbind(x, 0)
    T = len(xs)
    N, H = x.shape[1], w.shape[1]
    xp = x.xp
    if h is None:
        h = Tensor(xp.zeros((N, H), dtype=x.data.dtype))
    if mode == "lstm" and c is None:
        c = Tensor(xp.zeros((N, x.shape[2] // 4), dtype=x.data.dtype))
    wt = _t(w)
    if mode == "gru_v1":
        w_rz, w_n = split(wt, (2 * H, H), 1)
    outs = [None] * T
    for k in _steps(T, reverse):
        hr = h if recurrent_mask is None else h * recurrent_mask
        if mode == "lstm":
            i, f, g, o = split(xs[k] + matmul(hr, wt), x.shape[2] // 4, 1)
            cn = ract(f) * c + ract(i) * act(g)
            hn = ract(o) * act(cn)
            if w_hr is not None:
                hn = matmul(hn, _t(w_hr))
        elif mode in ("gru", "gru_v1"):
            xr, xz, xn = split(xs[k], H, 1)
            if mode == "gru":
                ah = matmul(hr, wt)
                if b is not None:
                    ah = ah + b
                ar, az, an = split(ah, H, 1)
                r, z = ract(xr + ar), ract(xz + az)
                n = act(xn + r * an)
            else:
                ar, az = split(matmul(hr, w_rz), H, 1)
                r, z = ract(xr + ar), ract(xz + az)
                n = act(xn + matmul(r * hr, w_n))
            hn = (1 - z) * n + z * h
        else:
            hn = act(xs[k] + matmul(hr, wt))
        if mask is not None:
            m = Tensor(mask[k])
            hn = where(m, hn, h)
            if mode == "lstm":
                cn = where(m, cn, c)
        h = outs[k] = hn
        if mode == "lstm":
            c = cn
    out = stack(outs, 0)
    return (out, h, c) if mode == "lstm" else (out, h)


def recurrent_scan(mode: str, x: Tensor, w: Tensor, b: Tensor | None = None, h0: Tensor | None = None,
                   c0: Tensor | None = None, w_hr: Tensor | None = None, *, mask=None, reverse: bool = False,
                   activation=None, recurrent_activation=None, recurrent_mask: Tensor | None = None):
    """One direction of a recurrent layer from the projected input ``x`` (T, N, G*H): ``(out, h_n[, c_n])``.

    Uses the fused :class:`RecurrentScan` unless custom activations, a recurrent mask or ``'gru_v1'`` are
    asked for (then :func:`recurrent_composite`). ``out`` holds the state after every step; see
    :class:`RecurrentScan` for the arguments.
    """
    if mode not in _GATES and mode != "gru_v1":
        raise OpError(f"recurrent_scan: unknown mode {mode!r}; expected one of {sorted(_GATES) + ['gru_v1']}")
    if activation is not None or recurrent_activation is not None or recurrent_mask is not None or mode == "gru_v1":
        return recurrent_composite(mode, x, w, b, h0, c0, w_hr, mask=mask, reverse=reverse, activation=activation,
                                   recurrent_activation=recurrent_activation, recurrent_mask=recurrent_mask)
    if mode != "gru":
        b = None
    if mode != "lstm":
        c0 = w_hr = None
    return RecurrentScan.apply(x, w, b, h0, c0, w_hr, mode=mode, mask=mask, reverse=reverse)
