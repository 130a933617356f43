"""Convolutions: ``conv2d``, ``conv1d`` and ``conv_transpose2d`` (PyTorch names, NCHW layout).

All three rest on three bilinear ops that are each other's gradients, so every derivative,
second order included, is again one of them:

* ``Conv2d(x, w)``: im2col (a strided view of the padded input, copied once into a
  ``(groups, N*OH*OW, C/groups*KH*KW)`` matrix) times the weight, one batched matmul;
* ``ConvTranspose2d(g, w)``: the adjoint in ``x``: ``g @ w`` then col2im (an add per kernel offset);
* ``Conv2dWeightGrad(x, g)``: the adjoint in ``w``: ``g.T @ im2col(x)``.

With ``y = conv(x, w)``: ``dx = ConvTranspose2d(g, w)``, ``dw = Conv2dWeightGrad(x, g)``; the
gradients of those two follow from bilinearity (see their ``backward``).
"""
from __future__ import annotations

from ..backend import conv_windows
from ._util import Op, OpError, Tensor, describe

__all__ = ["conv1d", "conv2d", "conv_transpose2d"]


# ---------------------------------------------------------------- array kernels
def _out_size(size: int, lo: int, hi: int, k: int, s: int, d: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _im2col(xp, x, kernel, stride, pad, dilation, groups, out_hw):
    """``(G, N*OH*OW, C/G*KH*KW)`` patch matrix of ``x`` (N, C, H, W).

    Memory: the padded copy of ``x`` (when padding) plus ``N*OH*OW*C*KH*KW`` elements for the patches.
    """
    pt, pb, pl, pr = pad
    if pt or pb or pl or pr:
        x = xp.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c = x.shape[:2]
    oh, ow = out_hw
    kh, kw = kernel
    win = conv_windows(xp, x, kernel, stride, dilation, out_hw)            # (N, C, OH, OW, KH, KW) view
    win = win.reshape(n, groups, c // groups, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    return xp.ascontiguousarray(win).reshape(groups, n * oh * ow, (c // groups) * kh * kw)


def _grad_rows(xp, g, groups):
    """``g`` (N, O, OH, OW) as ``(G, N*OH*OW, O/G)`` rows, the layout the patch matrix uses (one copy)."""
    n, o, oh, ow = g.shape
    g = g.reshape(n, groups, o // groups, oh, ow).transpose(1, 0, 3, 4, 2)
    return xp.ascontiguousarray(g).reshape(groups, n * oh * ow, o // groups)


def _conv2d(xp, x, w, stride, pad, dilation, groups, out_hw):
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh, ow = out_hw
    cols = _im2col(xp, x, (kh, kw), stride, pad, dilation, groups, out_hw)
    wm = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    out = xp.matmul(cols, wm)                                               # (G, N*OH*OW, O/G)
    out = out.reshape(groups, n, oh, ow, o // groups).transpose(1, 0, 4, 2, 3)
    return xp.ascontiguousarray(out).reshape(n, o, oh, ow)


def _conv_transpose2d(xp, g, w, x_shape, stride, pad, dilation, groups):
    """The adjoint of ``_conv2d`` in ``x``: ``g @ w`` gives every window's contribution, col2im sums them.

    The sum runs over the KH*KW kernel offsets, each one strided add over the whole batch (overlapping
    windows write the same pixel, which a single strided view cannot express without ``add.at``).
    """
    n, c, h, wd = x_shape
    o, cg, kh, kw = w.shape
    oh, ow = g.shape[2:]
    pt, pb, pl, pr = pad
    sh, sw = stride
    dh, dw = dilation
    cols = xp.matmul(_grad_rows(xp, g, groups), w.reshape(groups, o // groups, cg * kh * kw))
    cols = cols.reshape(groups, n, oh, ow, cg, kh, kw).transpose(5, 6, 1, 0, 4, 2, 3)   # (KH, KW, N, G, Cg, OH, OW)
    out = xp.zeros((n, groups, cg, h + pt + pb, wd + pl + pr), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[..., i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[i, j]
    return out.reshape(n, c, h + pt + pb, wd + pl + pr)[:, :, pt:pt + h, pl:pl + wd]


def _conv2d_weight_grad(xp, x, g, kernel, stride, pad, dilation, groups):
    """The adjoint of ``_conv2d`` in ``w``: ``rows(g).T @ im2col(x)``, one batched matmul over groups."""
    o = g.shape[1]
    cols = _im2col(xp, x, kernel, stride, pad, dilation, groups, g.shape[2:])
    gw = xp.matmul(_grad_rows(xp, g, groups).transpose(0, 2, 1), cols)          # (G, O/G, Cg*KH*KW)
    return gw.reshape(o, x.shape[1] // groups, *kernel)


# ---------------------------------------------------------------- ops
class Conv2d(Op):
    """``y = conv(x, w) + b``.

    Memory: the patch matrix, ``N*OH*OW*C*KH*KW`` elements (plus a padded copy of ``x``), freed after the
    forward; the output ``N*O*OH*OW``. Only ``x`` and ``w`` are kept for the gradient.
    """

    name_ = "conv2d"
    save_inputs = (0, 1)

    def forward(self, x, w, b=None, *, stride, pad, dilation, groups, out_hw):
        out = _conv2d(self.xp, x, w, stride, pad, dilation, groups, out_hw)
        if b is not None:
            out += b.reshape(1, -1, 1, 1)
        return out

    def backward(self, g):
        from .reduce import sum as _sum
        x, w = self.saved_tensors
        p = _geometry(self.attrs)
        ex, ew = self.edges[0], self.edges[1]
        eb = self.edges[2] if len(self.edges) > 2 else None
        gx = ConvTranspose2d.apply(g, w, x_shape=tuple(x.data.shape), **p) if ex else None
        gw = Conv2dWeightGrad.apply(x, g, kernel=tuple(w.data.shape[2:]), **p) if ew else None
        gb = _sum(g, (0, 2, 3)) if eb else None
        return gx, gw, gb


class ConvTranspose2d(Op):
    """``x_grad = conv_transpose(g, w)``, the adjoint of :class:`Conv2d` in its input.

    Memory: ``N*OH*OW*C*KH*KW`` elements for the window contributions plus the padded output.
    """

    name_ = "conv_transpose2d"
    save_inputs = (0, 1)

    def forward(self, g, w, *, x_shape, stride, pad, dilation, groups):
        return _conv_transpose2d(self.xp, g, w, x_shape, stride, pad, dilation, groups)

    def backward(self, h):
        # <h, T(g, w)> = <g, conv(h, w)>: linear in g through conv, in w through the weight gradient
        g, w = self.saved_tensors
        p = _geometry(self.attrs)
        eg, ew = self.edges
        gg = Conv2d.apply(h, w, out_hw=tuple(g.data.shape[2:]), **p) if eg else None
        gw = Conv2dWeightGrad.apply(h, g, kernel=tuple(w.data.shape[2:]), **p) if ew else None
        return gg, gw


class Conv2dWeightGrad(Op):
    """``w_grad = rows(g).T @ im2col(x)``, the adjoint of :class:`Conv2d` in its weight.

    Memory: the patch matrix of ``x``, ``N*OH*OW*C*KH*KW`` elements, plus a copy of ``g``.
    """

    name_ = "conv2d_weight_grad"
    save_inputs = (0, 1)

    def forward(self, x, g, *, kernel, stride, pad, dilation, groups):
        return _conv2d_weight_grad(self.xp, x, g, kernel, stride, pad, dilation, groups)

    def backward(self, h):
        # <h, W(x, g)> = <g, conv(x, h)>
        x, g = self.saved_tensors
        p = _geometry(self.attrs)
        ex, eg = self.edges
        gx = ConvTranspose2d.apply(g, h, x_shape=tuple(x.data.shape), **p) if ex else None
        gg = Conv2d.apply(x, h, out_hw=tuple(g.data.shape[2:]), **p) if eg else None
        return gx, gg


# ---------------------------------------------------------------- argument handling
def _pair(v, name: str, op: str, n: int = 2) -> tuple:
    t = tuple(int(e) for e in v) if isinstance(v, (list, tuple)) else (int(v),) * n
    if len(t) != n:
        raise OpError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return t


def _check(op: str, input: Tensor, weight: Tensor, bias, groups: int, dims: int, transposed: bool = False) -> None:
    shapes = f"input {tuple(input.data.shape)} and weight {tuple(weight.data.shape)}"
    if weight.data.ndim != dims + 2:
        raise OpError(f"{op}: expected a {dims + 2}-D weight, got {shapes}")
    if input.data.ndim != dims + 2:
        raise OpError(f"{op}: expected a {dims + 2}-D (batched) or {dims + 1}-D (unbatched) input, got {shapes}")
    if groups < 1:
        raise OpError(f"{op}: groups must be a positive integer, got {groups}")
    cin = input.data.shape[1]
    if transposed:
        if weight.data.shape[0] != cin:
            raise OpError(f"{op}: {shapes}: expected the input to have weight.shape[0]={weight.data.shape[0]} "
                          f"channels, got {cin}")
        if cin % groups:
            raise OpError(f"{op}: groups={groups} must divide the input channels ({cin}); {shapes}")
    else:
        if weight.data.shape[0] % groups:
            raise OpError(f"{op}: groups={groups} must divide the output channels (weight.shape[0]="
                          f"{weight.data.shape[0]}); {shapes}")
        if cin % groups:
            raise OpError(f"{op}: groups={groups} must divide the input channels ({cin}); {shapes}")
        if weight.data.shape[1] * groups != cin:
            raise OpError(f"{op}: {shapes}: expected the input to have weight.shape[1]*groups="
                          f"{weight.data.shape[1] * groups} channels, got {cin}")
    nout = weight.data.shape[1] * groups if transposed else weight.data.shape[0]
    if bias is not None and tuple(bias.data.shape) != (nout,):
        raise OpError(f"{op}: expected a bias of shape ({nout},), got {describe((bias,))} for {shapes}")
    for t in (weight, bias):
        if t is not None and t.data.dtype != input.data.dtype:
            raise OpError(f"{op}: input dtype {input.dtype} does not match {describe((t,))}; convert one of them")


def _padding(padding, kernel, stride, dilation, op: str) -> tuple:
    """``(top, bottom, left, right)``; ``'same'`` puts the odd extra row/column at the bottom/right as PyTorch."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise OpError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise OpError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = _pair(padding, "padding", op)
    if ph < 0 or pw < 0:
        raise OpError(f"{op}: padding must be non-negative, got {padding!r}")
    return (ph, ph, pw, pw)


def _params(op, input, weight, stride, padding, dilation):
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    if min(stride) < 1 or min(dilation) < 1:
        raise OpError(f"{op}: stride and dilation must be positive, got stride={stride}, dilation={dilation}")
    pad = _padding(padding, tuple(weight.data.shape[2:]), stride, dilation, op)
    return stride, pad, dilation


# ---------------------------------------------------------------- public functions
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) over an NCHW input, as ``torch.nn.functional.conv2d``.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
        weight: ``(C_out, C_in / groups, KH, KW)``.
        bias: optional ``(C_out,)``.
        stride, dilation: int or ``(h, w)``.
        padding: int, ``(h, w)``, ``'valid'`` (no padding) or ``'same'`` (output size = input size, stride 1).
        groups: split the channels into this many independent convolutions (``C_in`` for depthwise).

    Returns ``(N, C_out, OH, OW)`` with ``OH = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``.
    Memory: one im2col matrix of ``N*OH*OW*C_in*KH*KW`` elements during the forward.

    >>> import ember
    >>> ember.conv2d(ember.ones(1, 1, 3, 3), ember.ones(1, 1, 2, 2)).shape
    ember.Size([1, 1, 2, 2])
    """
    from .shape import squeeze, unsqueeze
    if input.data.ndim == 3:
        return squeeze(conv2d(unsqueeze(input, 0), weight, bias, stride, padding, dilation, groups), 0)
    groups = int(groups)
    _check("conv2d", input, weight, bias, groups, 2)
    stride, pad, dilation = _params("conv2d", input, weight, stride, padding, dilation)
    kh, kw = weight.data.shape[2:]
    h, w = input.data.shape[2:]
    out_hw = (_out_size(h, pad[0], pad[1], kh, stride[0], dilation[0]),
              _out_size(w, pad[2], pad[3], kw, stride[1], dilation[1]))
    if min(out_hw) < 1:
        raise OpError(f"conv2d: input {tuple(input.data.shape)} (padded by {pad[:2]}, {pad[2:]}) is smaller than the "
                      f"dilated kernel {tuple(weight.data.shape)} with dilation {dilation}: the output would be empty")
    args = (input, weight) if bias is None else (input, weight, bias)
    return Conv2d.apply(*args, stride=stride, pad=pad, dilation=dilation, groups=groups, out_hw=out_hw)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D convolution over ``(N, C_in, L)`` (or ``(C_in, L)``) with a ``(C_out, C_in / groups, K)`` weight.

    Runs as :func:`conv2d` on a unit height; the arguments are as there, with single ints.

    >>> import ember
    >>> ember.conv1d(ember.ones(1, 2, 5), ember.ones(3, 2, 3), padding='same').shape
    ember.Size([1, 3, 5])
    """
    from .shape import squeeze, unsqueeze
    if input.data.ndim == 2:
        return squeeze(conv1d(unsqueeze(input, 0), weight, bias, stride, padding, dilation, groups), 0)
    _check("conv1d", input, weight, bias, int(groups), 1)
    if not isinstance(padding, str):
        padding = (0, _pair(padding, "padding", "conv1d", 1)[0])
    out = conv2d(unsqueeze(input, 2), unsqueeze(weight, 2), bias, (1, _pair(stride, "stride", "conv1d", 1)[0]),
                 padding, (1, _pair(dilation, "dilation", "conv1d", 1)[0]), groups)
    return squeeze(out, 2)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution (the gradient of :func:`conv2d` in its input), as PyTorch's.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
        weight: ``(C_in, C_out / groups, KH, KW)``.
        bias: optional ``(C_out,)``.
        output_padding: extra rows/columns at the bottom/right, smaller than stride or dilation.

    Returns ``(N, C_out, OH, OW)`` with ``OH = (H-1)*sh - 2*ph + dh*(KH-1) + output_padding + 1``.
    Memory: ``N*H*W*C_out*KH*KW`` elements for the window contributions, summed by one add per kernel offset.

    >>> import ember
    >>> ember.conv_transpose2d(ember.ones(1, 1, 2, 2), ember.ones(1, 1, 2, 2), stride=2).shape
    ember.Size([1, 1, 4, 4])
    """
    from .shape import reshape, squeeze, unsqueeze
    if input.data.ndim == 3:
        return squeeze(conv_transpose2d(unsqueeze(input, 0), weight, bias, stride, padding, output_padding, groups,
                                        dilation), 0)
    groups = int(groups)
    op = "conv_transpose2d"
    if isinstance(padding, str):
        raise OpError(f"{op}: padding must be an int or a tuple of 2 ints, got {padding!r}")
    _check(op, input, weight, bias, groups, 2, transposed=True)
    stride, pad, dilation = _params(op, input, weight, stride, padding, dilation)
    opad = _pair(output_padding, "output_padding", op)
    for o, s, d in zip(opad, stride, dilation):
        if not 0 <= o < max(s, d):
            raise OpError(f"{op}: output_padding={opad} must be smaller than either stride={stride} or "
                          f"dilation={dilation}")
    n, _, h, w = input.data.shape
    cin, cg, kh, kw = weight.data.shape
    oh = (h - 1) * stride[0] - pad[0] - pad[1] + dilation[0] * (kh - 1) + opad[0] + 1
    ow = (w - 1) * stride[1] - pad[2] - pad[3] + dilation[1] * (kw - 1) + opad[1] + 1
    if oh < 1 or ow < 1:
        raise OpError(f"{op}: input {tuple(input.data.shape)} with weight {tuple(weight.data.shape)}, padding "
                      f"{padding!r} gives an empty output ({oh}, {ow})")
    out = ConvTranspose2d.apply(input, weight, x_shape=(n, cg * groups, oh, ow), stride=stride, pad=pad,
                                dilation=dilation, groups=groups)
    if bias is not None:
        out = out + reshape(bias, (1, -1, 1, 1))
    return out


def _geometry(attrs: dict) -> dict:
    """The stride, padding, dilation and groups that a conv op and its adjoints share."""
    return {k: attrs[k] for k in ("stride", "pad", "dilation", "groups")}
