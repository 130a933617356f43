"""Normalization ops: batch_norm, layer_norm, group_norm, instance_norm, rms_norm.

All but ``rms_norm`` reduce to one fused op, ``Normalize``: ``y = (x - mean) / sqrt(var + eps) * w + b``
on the input viewed as (A, G, K), with the (biased) statistics per g over A and K (batch norm) or per
(a, g) over K (layer, group, instance norm). Its gradient is a second fused kernel when only first
derivatives are wanted, and the same formula in differentiable Ember ops when the backward itself is
recorded (``create_graph=True``), so derivatives of any order work.

Why it is shaped this way (NumPy on the CPU): per-channel values are applied as a contiguous (G, K)
"plane" broadcast over A, because NumPy's broadcasting over short inner runs (a (1, C, 1, 1) view
against N, C, H, W) is several times slower than over long ones; sums go through ``einsum`` or batched
``matmul`` rather than ``ndarray.sum`` over several axes; the normalized input kept for the gradient and
the temporaries come from the backend's recycled scratch buffers (fresh large arrays cost page faults).
On a BatchNorm2d (32, 64, 16, 16) training step this is about 2.4x faster than the same math as a chain
of Ember ops.
"""
from __future__ import annotations

import math

from ..autograd.grad_mode import _state, no_grad
from ..backend import scratch
from ..dtypes import is_float
from ._util import Op, OpError, Tensor, _wrap

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"]


def _prod(shape) -> int:
    return math.prod(int(s) for s in shape)


class Normalize(Op):
    """``y = (x - mean) * rstd * w + b`` with ``rstd = 1 / sqrt(var + eps)``, on x viewed as (A, G, K).

    ``view = (A, G, K)`` is a reshape of x. With ``per_sample`` the statistics are taken per (a, g) over
    K (layer, group and instance norm), otherwise per g over A and K (batch norm, G = channels). ``w``
    and ``b`` (either may be None) hold C values that, each repeated ``rep`` times, fill a (G, K) plane
    applied to every a (so a per-channel weight of group norm needs no broadcast over small spatial
    dims). ``stats``, a dict or None, receives the ``mean`` and biased ``var`` ((G,) or (A, G)), which
    batch and instance norm fold into their running statistics.

    Memory: the output plus one input-sized array (the normalized input, kept for the gradient, from
    the backend's recycled scratch buffers) and the statistics.
    """

    inline_backward = False     # graph mode replays the fused array backward, not the recorded composite

    name_ = "normalize"
    save_inputs = (0, 1, 2)

    def forward(self, x, w, b, view, per_sample, rep, eps, stats):
        xp = self.xp
        a, g, k = view
        x3 = x.reshape(view)
        if per_sample:
            mean = xp.einsum("agk->ag", x3) / k        # einsum: several times faster than NumPy's mean here
            xhat = xp.subtract(x3, mean[:, :, None], out=scratch(xp, view, x.dtype))
            var = _dots(xp, xhat, xhat, True) / k
            rstd = 1.0 / xp.sqrt(var + eps)
            y = self._scale_shift(xp, xhat, rstd, w, b, view, rep)
            if y is None:
                xhat *= rstd[:, :, None]
        else:       # per-channel vectors repeated over K: broadcasting over a contiguous (G, K) plane is fast
            n = a * k
            mean = xp.einsum("agk->g", x3) / n
            xhat = xp.subtract(x3, _plane(xp, mean, view), out=scratch(xp, view, x.dtype))
            var = _dots(xp, xhat, xhat, False) / n
            rstd = 1.0 / xp.sqrt(var + eps)
            xhat *= _plane(xp, rstd, view)
            y = None
        if stats is not None:
            stats["mean"], stats["var"] = mean, var
        self.xhat, self.rstd = xhat, rstd
        if y is None:
            y = xhat * _plane(xp, w, view, rep) if w is not None else xhat.copy()
            if b is not None:
                y += _plane(xp, b, view, rep)
        return y.reshape(x.shape)

    def _scale_shift(self, xp, xhat, rstd, w, b, view, rep):
        """For per-sample statistics: ``xhat *= rstd`` in place and ``y = xhat * w + b`` in one pass, or None
        to have :meth:`forward` do it step by step (graph mode's compiled variant overrides this)."""
        return None

    def _finish_dx(self, xp, gh, xhat, rstd, c1, c2):
        """The last steps of the per-sample input gradient (:func:`_finish_dx_steps`; graph mode's compiled
        variant does them in one pass)."""
        return _finish_dx_steps(xp, gh, xhat, rstd, c1, c2)

    def backward(self, g):
        x, w, b = self.saved_tensors
        at = self.attrs
        if _state.enabled:      # the backward is being recorded: differentiable Ember ops
            return _normalize_grads_composite(g, x, w, b, at["view"], at["per_sample"], at["rep"], at["eps"])
        dx, dw, db = _normalize_grads_fused(self.xp, g.data, None if w is None else w.data, self.edges[1] is not None,
                                            self.edges[2] is not None, self.xhat, self.rstd, at["view"],
                                            at["per_sample"], at["rep"], self._finish_dx)
        return (_wrap(dx.reshape(x.data.shape)), None if dw is None else _wrap(dw.reshape(w.data.shape)),
                None if db is None else _wrap(db.reshape(b.data.shape)))


def _plane(xp, v, view, rep=None):
    """A per-g vector (or C values each repeated ``rep`` times) as the (G, K) plane, or (A, G, 1) per sample."""
    _, g, k = view
    if rep is None:
        if v.ndim == 2:                 # per-sample statistics
            return v[:, :, None]
        rep = k
    v = v.reshape(-1)
    return (xp.repeat(v, rep) if rep > 1 else v).reshape(g, k)


def _dots(xp, u, v, per_sample: bool):
    """Sums of ``u * v`` over K per (a, g) (``per_sample``) or over A and K per g, for (A, G, K) arrays.

    Batched matrix products beat ``einsum`` severalfold on long rows; ``einsum`` wins on short ones.
    """
    if u.shape[2] >= 64:
        d = xp.matmul(u[:, :, None, :], v[:, :, :, None])[:, :, 0, 0]
        return d if per_sample else d.sum(axis=0)
    return xp.einsum("agk,agk->ag" if per_sample else "agk,agk->g", u, v)


def _plane_sum(p, rep):
    """The adjoint of ``_plane``: a (G, K) plane summed back to C values."""
    return p.reshape(-1, rep).sum(axis=1) if rep > 1 else p.reshape(-1)


def _finish_dx_steps(xp, gh, xhat, rstd, c1, c2):
    """``dx = gh * rstd - xhat * c1 - c2`` in place on ``gh`` (per-sample statistics: (A, G, K) arrays and
    (A, G) coefficients), one NumPy pass per step."""
    gh *= rstd[:, :, None]
    gh -= xp.multiply(xhat, c1[:, :, None], out=scratch(xp, gh.shape, gh.dtype))
    gh -= c2[:, :, None]
    return gh


def _normalize_grads_fused(xp, g, w, need_w, need_b, xhat, rstd, view, per_sample, rep, finish=_finish_dx_steps):
    """The gradients (dx, dw, db) of ``Normalize`` as arrays, from the saved normalized input and ``rstd``.

    ``dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))`` with ``gh = g * w``. For batch norm the
    per-channel sums of g and g * xhat serve dw, db and dx at once. Only used when the backward is not
    recorded, so it needs no gradient of its own. Memory: dx plus one recycled input-sized scratch buffer.
    """
    a, _, k = view
    g3 = g.reshape(view)
    if not per_sample:
        n = a * k
        sg = xp.einsum("agk->g", g3)
        sgx = _dots(xp, g3, xhat, False)
        scale = rstd if w is None else rstd * w
        dx = g3 * _plane(xp, scale, view)
        dx -= xp.multiply(xhat, _plane(xp, scale * sgx / n, view), out=scratch(xp, view, dx.dtype))
        dx -= _plane(xp, scale * sg / n, view)
        return dx, sgx if need_w else None, sg if need_b else None
    dw = _plane_sum(xp.einsum("agk,agk->gk", g3, xhat), rep) if need_w else None
    db = _plane_sum(g3.sum(axis=0), rep) if need_b else None
    gh = g3 * _plane(xp, w, view, rep) if w is not None else g3.copy()
    c1 = _dots(xp, gh, xhat, True) * (rstd / k)
    c2 = xp.einsum("agk->ag", gh) * (rstd / k)
    # dx = rstd * gh - rstd * mean(gh * xhat) * xhat - rstd * mean(gh)
    return finish(xp, gh, xhat, rstd, c1, c2), dw, db


def _normalize_grads_composite(g, x, w, b, view, per_sample, rep, eps):
    """The gradients of ``Normalize`` in differentiable Ember ops (for higher-order derivatives)."""
    _, gg, k = view
    axes = (2,) if per_sample else (0, 2)
    x3 = x.reshape(view)
    g3 = g.reshape(view)
    mean = x3.mean(dim=axes, keepdim=True)
    d = x3 - mean
    rstd = ((d * d).mean(dim=axes, keepdim=True) + eps).rsqrt()
    xhat = d * rstd

    def plane(v):
        v = v.reshape(-1, 1)
        return (v.expand(v.shape[0], rep) if rep > 1 else v).reshape(gg, k)

    def plane_sum(p, like):
        return p.reshape(-1, rep).sum(dim=1).reshape(like.shape)
    gh = g3 * plane(w) if w is not None else g3
    dx = (gh - gh.mean(dim=axes, keepdim=True) - xhat * (gh * xhat).mean(dim=axes, keepdim=True)) * rstd
    dw = None if w is None else plane_sum((g3 * xhat).sum(dim=0), w)
    db = None if b is None else plane_sum(g3.sum(dim=0), b)
    return dx.reshape(x.shape), dw, db


def _normalize(x: Tensor, w, b, view, per_sample: bool, rep: int, eps: float, stats=None) -> Tensor:
    return Normalize.apply(x, w, b, view=tuple(int(v) for v in view), per_sample=bool(per_sample), rep=int(rep),
                           eps=float(eps), stats=stats)


def _channel_norm(x: Tensor, w, b, axis: int, eps: float, stats=None) -> Tensor:
    """Batch statistics per index of ``axis`` (over every other axis), affine per channel."""
    shape = tuple(x.data.shape)
    c = shape[axis]
    rest = _prod(shape[axis + 1:])
    return _normalize(x, w, b, (_prod(shape[:axis]), c, rest), False, rest, eps, stats)


class ChannelAffine(Op):
    """``y = x * scale + shift`` per channel: x viewed as (A, C, K), ``scale``/``shift`` (C,) (shift may be None).

    Batch norm in evaluation mode (running statistics folded into scale and shift). The gradient of x is
    this op again; those of scale and shift are per-channel sums. Memory: the output only.
    """

    name_ = "channel_affine"
    save_inputs = (0, 1)

    def forward(self, x, scale, shift, view):
        xp = self.xp
        y = x.reshape(view) * _plane(xp, scale, view)
        if shift is not None:
            y += _plane(xp, shift, view)
        return y.reshape(x.shape)

    def backward(self, g):
        x, scale = self.saved_tensors
        view = self.attrs["view"]
        need_scale, need_shift = (self.edges[i] is not None for i in (1, 2))
        dx = ChannelAffine.apply(g, scale, None, view=view) if self.edges[0] is not None else None
        if _state.enabled:      # recorded backward: differentiable Ember ops
            g3 = g.reshape(view)
            return (dx, (g3 * x.reshape(view)).sum(dim=(0, 2)) if need_scale else None,
                    g3.sum(dim=(0, 2)) if need_shift else None)
        xp = self.xp
        g3 = g.data.reshape(view)
        return (dx, _wrap(_dots(xp, g3, x.data.reshape(view), False)) if need_scale else None,
                _wrap(xp.einsum("agk->g", g3)) if need_shift else None)


def _channel_affine(x: Tensor, scale: Tensor, shift, axis: int) -> Tensor:
    shape = tuple(x.data.shape)
    view = (_prod(shape[:axis]), shape[axis], _prod(shape[axis + 1:]))
    return ChannelAffine.apply(x, scale, shift, view=view)


# ---------------------------------------------------------------- argument checks
def _check_float(input, op: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected input to be an ember.Tensor, got {type(input).__name__}")
    if not is_float(input.data.dtype):
        raise OpError(f"{op}: expected a floating-point input, got dtype {input.data.dtype} "
                      f"(shape {tuple(input.data.shape)}); convert it with .float()")


def _check_param(t, shape, what: str, op: str, input: Tensor | None = None) -> None:
    """``t`` is None or a Tensor of ``shape`` (and, given ``input``, of the input's dtype, as PyTorch requires)."""
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {what} must be an ember.Tensor or None, got {type(t).__name__}")
    if tuple(t.data.shape) != tuple(shape):
        raise OpError(f"{op}: expected {what} of shape {tuple(shape)}, got {tuple(t.data.shape)}")
    if input is not None and t.data.dtype != input.data.dtype and not (
            t.data.dtype == "float32" and input.data.dtype.itemsize == 2):  # f16/bf16 input, f32 params
        raise OpError(f"{op}: {what} has dtype {t.data.dtype} but the input has dtype {input.data.dtype}; convert "
                      f"the module (.float() / .double()) or the input so that they match")


# ---------------------------------------------------------------- layer norm
def _trailing_shape(input: Tensor, normalized_shape, weight, op: str):
    """``(normalized_shape, input shape, its length)`` after checking that the input ends in
    ``normalized_shape`` and that ``weight`` (if any) has that shape; the checks of layer_norm and rms_norm."""
    _check_float(input, op)
    ns = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(int(s) for s in normalized_shape)
    shape = tuple(input.data.shape)
    k = len(ns)
    if k == 0 or k > len(shape) or shape[len(shape) - k:] != ns:
        raise OpError(f"{op}: given normalized_shape={list(ns)}, expected input with shape [*, "
                      f"{', '.join(map(str, ns))}], but got input of size {list(shape)}")
    _check_param(weight, ns, "weight", op, input)
    return ns, shape, k


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dims, as ``torch.nn.functional.layer_norm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance of each sample's last
    ``len(normalized_shape)`` dims; ``weight`` and ``bias`` have shape ``normalized_shape``.
    Memory: the output plus one input-sized array kept for the gradient.

    >>> import ember
    >>> ember.nn.functional.layer_norm(ember.tensor([[1., 2., 3.], [2., 2., 2.]]), (3,))
    tensor([[-1.2247,  0.0000,  1.2247],
            [ 0.0000,  0.0000,  0.0000]])
    """
    op = "layer_norm"
    ns, shape, k = _trailing_shape(input, normalized_shape, weight, op)
    _check_param(bias, ns, "bias", op, input)
    return _normalize(input, weight, bias, (_prod(shape[:len(shape) - k]), 1, _prod(ns)), True, 1, eps)


# ---------------------------------------------------------------- batch norm
def _check_nc(input: Tensor, op: str) -> int:
    _check_float(input, op)
    if input.data.ndim < 2:
        raise OpError(f"{op}: expected an input of shape (N, C, *) with at least 2 dims, got shape "
                      f"{tuple(input.data.shape)}")
    return int(input.data.shape[1])


def _update_running(running, batch, momentum, traced=None) -> None:
    """``running = (1 - momentum) * running + momentum * batch``, in place (as PyTorch's buffers).

    Under graph-mode tracing the batch statistic, an array kept inside the normalization op, is not a graph
    value: ``traced()`` recomputes it with Ember ops, and the update becomes a graph effect, so that every
    replay of a jitted training step updates the running statistics (``momentum`` may then be a 0-d tensor).
    """
    tracer = _state.tracer
    if tracer is not None:
        if traced is None:
            raise RuntimeError("ember.jit: this running-statistics update has no graph form; run it outside jit")
        with no_grad():
            tracer.assign(running, running * (1 - momentum) + traced().to(running.dtype) * momentum)
        running._bump()
        return
    r = running.data
    r *= 1.0 - momentum
    r += (momentum * batch).astype(r.dtype, copy=False)
    running._bump()


def _batch_moment(x: Tensor, axis: int, kind: str, correction: int = 0) -> Tensor:
    """The per-channel (``axis``) batch mean or variance of ``x`` from Ember ops, without gradient."""
    axes = tuple(i for i in range(x.data.ndim) if i != axis)
    with no_grad():
        x = x.detach()
        return x.mean(axes) if kind == "mean" else x.var(axes, correction=correction)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization of an (N, C, *) input per channel, as ``torch.nn.functional.batch_norm``.

    In training mode the statistics are the batch's (over N and all spatial dims; biased variance), and
    ``running_mean``/``running_var`` (if given) are updated in place with ``momentum`` and the *unbiased*
    batch variance. In evaluation mode the running statistics normalize. ``weight``/``bias`` have shape (C,).
    Memory: the output plus one input-sized array kept for the gradient (training); the output (eval).

    >>> import ember
    >>> x = ember.tensor([[1., 10.], [3., 30.]])
    >>> rm, rv = ember.zeros(2), ember.ones(2)
    >>> ember.nn.functional.batch_norm(x, rm, rv, training=True)
    tensor([[-1.0000, -1.0000],
            [ 1.0000,  1.0000]])
    >>> rm, rv
    (tensor([0.2000, 2.0000]), tensor([ 1.1000, 20.9000]))
    """
    op = "batch_norm"
    c = _check_nc(input, op)
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var")):
        _check_param(t, (c,), what, op)
    _check_param(weight, (c,), "weight", op, input)
    _check_param(bias, (c,), "bias", op, input)
    if training:
        n = input.data.size // c
        if n <= 1:
            raise OpError(f"{op}: expected more than 1 value per channel when training, got input of shape "
                          f"{tuple(input.data.shape)}")
        track = running_mean is not None or running_var is not None
        stats = {} if track else None
        y = _channel_norm(input, weight, bias, 1, eps, stats)
        if running_mean is not None:
            _update_running(running_mean, stats["mean"], momentum, lambda: _batch_moment(input, 1, "mean"))
        if running_var is not None:
            _update_running(running_var, stats["var"] * (n / (n - 1)), momentum,
                            lambda: _batch_moment(input, 1, "var", 1))
        return y
    if running_mean is None or running_var is None:
        raise OpError(f"{op}: running_mean and running_var must be given in evaluation mode (training=False); "
                      "pass training=True to normalize with the batch's statistics")
    return _affine_stats(input, running_mean, running_var, weight, bias, eps)


def _affine_stats(input: Tensor, mean: Tensor, var: Tensor, weight, bias, eps) -> Tensor:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` per channel with given (C,) statistics."""
    scale = (var.detach() + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    shift = -mean.detach() * scale
    if bias is not None:
        shift = shift + bias
    return _channel_affine(input, scale, shift, 1)


# ---------------------------------------------------------------- instance norm
def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of each sample over its spatial dims, as ``torch.nn.functional.instance_norm``.

    The input is (N, C, *) with at least one spatial dim. With ``use_input_stats`` the running
    statistics (if given) are updated in place with the batch mean of the per-instance means and
    unbiased variances; otherwise they normalize. Memory: the output plus one input-sized array.

    >>> import ember
    >>> ember.nn.functional.instance_norm(ember.tensor([[[1., 3.], [0., 4.]]]))
    tensor([[[-1.0000,  1.0000],
             [-1.0000,  1.0000]]])
    """
    op = "instance_norm"
    c = _check_nc(input, op)
    if input.data.ndim < 3:
        raise OpError(f"{op}: expected an input of shape (N, C, L) or (N, C, H, W) with spatial dims, got shape "
                      f"{tuple(input.data.shape)}")
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var")):
        _check_param(t, (c,), what, op)
    _check_param(weight, (c,), "weight", op, input)
    _check_param(bias, (c,), "bias", op, input)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise OpError(f"{op}: running_mean and running_var must be given when use_input_stats=False")
        return _affine_stats(input, running_mean, running_var, weight, bias, eps)
    shape = tuple(input.data.shape)
    n = _prod(shape[2:])
    if n <= 1:
        raise OpError(f"{op}: expected more than 1 spatial element per channel, got input of shape "
                      f"{tuple(input.data.shape)}")
    track = running_mean is not None or running_var is not None
    stats = {} if track else None
    y = _normalize(input, weight, bias, (shape[0], c, n), True, n, eps, stats)
    if running_mean is not None:
        spatial = tuple(range(2, input.data.ndim))
        _update_running(running_mean, stats["mean"].mean(axis=0), momentum,
                        lambda: input.detach().mean(spatial).mean(0))
    if running_var is not None:
        _update_running(running_var, stats["var"].mean(axis=0) * (n / (n - 1)), momentum,
                        lambda: input.detach().var(spatial, correction=1).mean(0))
    return y


# ---------------------------------------------------------------- group norm
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize groups of channels of each sample, as ``torch.nn.functional.group_norm``.

    The (N, C, *) input's C channels form ``num_groups`` groups of C / num_groups; each sample's group is
    normalized over its channels and spatial dims, then ``weight``/``bias`` (shape (C,)) scale and shift
    each channel. Memory: the output plus one input-sized array kept for the gradient.

    >>> import ember
    >>> ember.nn.functional.group_norm(ember.tensor([[1., 3., 0., 4.]]), 2)
    tensor([[-1.0000,  1.0000, -1.0000,  1.0000]])
    """
    op = "group_norm"
    c = _check_nc(input, op)
    g = int(num_groups)
    if g < 1 or c % g:
        raise OpError(f"{op}: expected the number of channels in the input ({c}, input shape "
                      f"{tuple(input.data.shape)}) to be divisible by num_groups={num_groups}")
    _check_param(weight, (c,), "weight", op, input)
    _check_param(bias, (c,), "bias", op, input)
    shape = tuple(input.data.shape)
    s = _prod(shape[2:])
    return _normalize(input, weight, bias, (shape[0], g, c // g * s), True, s, eps)


# ---------------------------------------------------------------- RMS norm
def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing dims, as ``torch.nn.functional.rms_norm``.

    ``eps`` defaults to the machine epsilon of the input's dtype. Memory: the output plus two
    input-sized temporaries kept for the gradient (a composite of Ember ops).

    >>> import ember
    >>> ember.nn.functional.rms_norm(ember.tensor([[3., 4.]]), (2,))
    tensor([[0.8485, 1.1314]])
    """
    op = "rms_norm"
    ns, shape, k = _trailing_shape(input, normalized_shape, weight, op)
    if eps is None:
        eps = float(input.xp.finfo(input.data.dtype).eps)
    axes = tuple(range(len(shape) - k, len(shape)))
    y = input * ((input * input).mean(dim=axes, keepdim=True) + eps).rsqrt()
    return y * weight if weight is not None else y
