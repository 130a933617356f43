"""Convolutions: ``conv2d``, ``conv1d`` and ``conv_transpose2d`` (PyTorch names, NCHW layout).

All three rest on three bilinear ops that are each other's gradients, so every derivative,
second order included, is again one of them:

* ``Conv2d(x, w)``: ``W (O, C*KH*KW) @ im2col(x)``, the patch matrix laid out ``(C*KH*KW, N*OH*OW)``
  (one strided slice copy per kernel offset from a channels-first padded copy of ``x``), so that the
  convolution is a single 2-D GEMM with contiguous operands (a G-batched one with groups);
* ``ConvTranspose2d(g, w)``: the adjoint in ``x``: ``W.T @ rows(g)`` then col2im (an add per kernel offset);
* ``Conv2dWeightGrad(x, g)``: the adjoint in ``w``: ``rows(g) @ im2col(x).T``.

With ``y = conv(x, w)``: ``dx = ConvTranspose2d(g, w)``, ``dw = Conv2dWeightGrad(x, g)``; the
gradients of those two follow from bilinearity (see their ``backward``). With float32 NumPy arrays and
the oneDNN library installed (:mod:`ember.backend.onednn`), the three ops run oneDNN's direct convolutions
instead (no patch matrix; memory: blocked copies of the operands and the result), keeping the same ops
and gradients; on CuPy arrays the same three run cuDNN (:mod:`ember.backend.cudnn`) where it accepts the
geometry; everything else (float64 NumPy, geometries either library declines) takes the im2col path.
A plain (not recorded) backward takes a fused path: ``rows(g)`` is built once, and the weight gradient reuses the patch
matrix that the forward kept, instead of rebuilding it. Workspace arrays that never leave an op come
from :func:`ember.backend.scratch`, which recycles them between steps.
"""
from __future__ import annotations

from ..autograd.grad_mode import _state
from ..backend import cudnn, onednn, scratch
from ._util import Op, OpError, Tensor, _wrap, describe

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]


# ---------------------------------------------------------------- array kernels
def _out_size(size: int, lo: int, hi: int, k: int, s: int, d: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _padded_cn(xp, x, pad):
    """``x`` (N, C, H, W) as a zero-padded channels-first ``(C, N, H + pt + pb, W + pl + pr)`` copy.

    Memory: one padded copy of ``x``.
    """
    n, c, h, w = x.shape
    pt, pb, pl, pr = pad
    buf = scratch(xp, (c, n, h + pt + pb, w + pl + pr), x.dtype)
    if pt or pb or pl or pr:
        buf.fill(0)
    buf[:, :, pt:pt + h, pl:pl + w] = x.transpose(1, 0, 2, 3)
    return buf


def _window(i: int, j: int, stride, dilation, out_hw) -> tuple:
    """The (rows, columns) slices that kernel offset ``(i, j)`` reads from the padded input, over all outputs."""
    return (slice(i * dilation[0], i * dilation[0] + stride[0] * (out_hw[0] - 1) + 1, stride[0]),
            slice(j * dilation[1], j * dilation[1] + stride[1] * (out_hw[1] - 1) + 1, stride[1]))


def _im2col(xp, x, kernel, stride, pad, dilation, out_hw):
    """``(C*KH*KW, N*OH*OW)`` patch matrix of ``x`` (N, C, H, W); row ``(c, i, j)``, column ``(n, y, x)``.

    One strided slice copy per kernel offset from the channels-first padded input, so that the
    convolution is one plain 2-D GEMM with contiguous operands (per group: the rows of group ``g`` are
    the ``g``-th block). A pointwise (1x1) kernel is just the (strided) channels-first input.
    Memory: the padded copy of ``x`` plus ``N*OH*OW*C*KH*KW`` elements for the patches.
    """
    kh, kw = kernel
    xc = _padded_cn(xp, x, pad)
    c, n = xc.shape[:2]
    oh, ow = out_hw
    if kh == kw == 1:
        rows, cols = _window(0, 0, stride, dilation, out_hw)
        return xp.ascontiguousarray(xc[:, :, rows, cols]).reshape(c, n * oh * ow)
    out = scratch(xp, (c, kh, kw, n, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cols = _window(i, j, stride, dilation, out_hw)
            out[:, i, j] = xc[:, :, rows, cols]
    return out.reshape(c * kh * kw, n * oh * ow)


def _col2im(xp, cols, x_shape, kernel, stride, pad, dilation, out_hw):
    """The adjoint of :func:`_im2col`: every patch entry added back at the input pixel it was read from.

    A loop over the KH*KW kernel offsets, each one strided add over the whole batch into a channels-first
    padded buffer (overlapping windows write the same pixel, which one strided view cannot express).
    Memory: the padded ``(C, N, H', W')`` buffer plus the ``(N, C, H, W)`` result.
    """
    n, c, h, w = x_shape
    kh, kw = kernel
    pt, pb, pl, pr = pad
    cols = cols.reshape(c, kh, kw, n, *out_hw)
    buf = scratch(xp, (c, n, h + pt + pb, w + pl + pr), cols.dtype)
    buf.fill(0)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, stride, dilation, out_hw)
            buf[:, :, rows, cs] += cols[:, i, j]
    return xp.ascontiguousarray(buf[:, :, pt:pt + h, pl:pl + w].transpose(1, 0, 2, 3))


def _grad_rows(xp, g):
    """``g`` (N, O, OH, OW) as the ``(O, N*OH*OW)`` matrix that matches the patch columns (one copy)."""
    rows = scratch(xp, (g.shape[1], g.shape[0], *g.shape[2:]), g.dtype)
    rows[...] = g.transpose(1, 0, 2, 3)
    return rows.reshape(g.shape[1], -1)


def _group_matmul(xp, a, b, groups: int, ta: bool = False, private: bool = False):
    """``a @ b`` (``a.T @ b`` when ``ta``) per group: the row blocks of ``a`` and ``b`` are the groups.
    One plain 2-D GEMM when ``groups == 1`` (BLAS reads a transposed operand in place).
    ``private``: the result never leaves the op, so it may go to a recycled :func:`~ember.backend.scratch` buffer."""
    if groups == 1:
        a = a.T if ta else a
        return xp.matmul(a, b, out=scratch(xp, (a.shape[0], b.shape[1]), a.dtype) if private else None)
    a = a.reshape(groups, -1, a.shape[1])
    b = b.reshape(groups, -1, b.shape[1])
    out = xp.matmul(a.transpose(0, 2, 1) if ta else a, b)
    return out.reshape(-1, out.shape[2])


def _weight_gemm(xp, rows, cols, groups: int, shape):
    """``rows(g) @ cols.T`` per group, reshaped to the weight's ``shape``.

    Computed as ``(cols @ rows.T).T``: with the long ``N*OH*OW`` dimension shared, BLAS runs about 1.4x faster
    when the larger operand (the patch matrix) is the row-major left one. Memory: the weight-sized result.
    """
    if groups == 1:
        return xp.ascontiguousarray((cols @ rows.T).T).reshape(shape)
    m = rows.shape[1]
    out = xp.matmul(cols.reshape(groups, -1, m), rows.reshape(groups, -1, m).transpose(0, 2, 1))
    return xp.ascontiguousarray(out.transpose(0, 2, 1)).reshape(shape)


def _conv_out(xp, cols, w, groups: int, n: int, out_hw):
    """The convolution's ``(N, O, OH, OW)`` output from the patch matrix: one GEMM, then one NCHW copy."""
    o = w.shape[0]
    out = _group_matmul(xp, w.reshape(o, -1), cols, groups, private=True)
    return xp.ascontiguousarray(out.reshape(o, n, *out_hw).transpose(1, 0, 2, 3))


def _conv_transpose2d(xp, g, w, x_shape, stride, pad, dilation, groups, rows=None):
    """The adjoint of the convolution in ``x`` (N, C, H, W) for the output gradient ``g`` (N, O, OH, OW).

    Usually ``W.T @ rows(g)`` gives every window's contribution and col2im sums them (memory:
    ``N*OH*OW*C*KH*KW`` elements plus the padded result). With stride 1, when the patch matrix of ``g`` is no
    larger (``O*H*W <= C*OH*OW``, e.g. 'same' padding), it is instead the forward convolution of ``g``, padded
    by ``dilation*(K-1) - pad``, with the flipped, channel-swapped kernel: im2col's plain copies are cheaper
    than col2im's strided adds (memory: ``N*H*W*O*KH*KW`` elements). ``rows``: ``rows(g)`` if already built.
    """
    if onednn.usable(xp, g, w):
        out = onednn.conv_backward_data(g, w, x_shape, stride, pad, dilation, groups)
        if out is not None:
            return out
    elif cudnn.usable(xp, g, w):
        out = cudnn.conv_backward_data(g, w, x_shape, stride, pad, dilation, groups)
        if out is not None:
            return out
    o, cg, kh, kw = w.shape
    n, c, h, wd = x_shape
    oh, ow = g.shape[2:]
    pg = (dilation[0] * (kh - 1) - pad[0], dilation[0] * (kh - 1) - pad[1],
          dilation[1] * (kw - 1) - pad[2], dilation[1] * (kw - 1) - pad[3])
    if stride == (1, 1) and min(pg) >= 0 and o * h * wd <= c * oh * ow:
        flipped = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        flipped = xp.ascontiguousarray(flipped).reshape(c, o // groups, kh, kw)
        return _conv_out(xp, _im2col(xp, g, (kh, kw), (1, 1), pg, dilation, (h, wd)), flipped, groups, n, (h, wd))
    if rows is None:
        rows = _grad_rows(xp, g)
    cols = _group_matmul(xp, w.reshape(o, -1), rows, groups, ta=True, private=True)
    return _col2im(xp, cols, x_shape, (kh, kw), stride, pad, dilation, (oh, ow))


def _conv2d_weight_grad(xp, x, g, kernel, stride, pad, dilation, groups):
    """The adjoint of the convolution in ``w``: ``rows(g) @ im2col(x).T``, one GEMM (G-batched with groups).
    Memory: the patch matrix of ``x`` plus a copy of ``g``."""
    if onednn.usable(xp, x, g):
        out = onednn.conv_backward_weights(x, g, kernel, stride, pad, dilation, groups)
        if out is not None:
            return out
    elif cudnn.usable(xp, x, g):
        out = cudnn.conv_backward_weights(x, g, kernel, stride, pad, dilation, groups)
        if out is not None:
            return out
    cols = _im2col(xp, x, kernel, stride, pad, dilation, g.shape[2:])
    return _weight_gemm(xp, _grad_rows(xp, g), cols, groups, (g.shape[1], x.shape[1] // groups, *kernel))


# ---------------------------------------------------------------- ops
class Conv2d(Op):
    """``y = conv(x, w) + b``.

    Memory: the patch matrix, ``N*OH*OW*C*KH*KW`` elements (plus a padded copy of ``x``); when the op is
    recorded for a gradient the patch matrix is kept until the backward (the weight gradient reuses it
    instead of rebuilding it), otherwise it is freed after the forward. The output is ``N*O*OH*OW``.
    On oneDNN: no patch matrix, only channel-blocked copies of ``x``, ``w`` and the output during the call.
    """

    name_ = "conv2d"
    save_inputs = (0, 1)

    def forward(self, x, w, b=None, *, stride, pad, dilation, groups, out_hw):
        xp = self.xp
        out = onednn.conv_forward(x, w, b, stride, pad, dilation, groups, out_hw) if onednn.usable(xp, x, w) else None
        if out is None and cudnn.usable(xp, x, w, *(() if b is None else (b,))):
            out = cudnn.conv_forward(x, w, b, stride, pad, dilation, groups, out_hw)
        if out is not None:                 # a direct convolution, no patch matrix: the backward runs the ops
            return out
        cols = _im2col(xp, x, w.shape[2:], stride, pad, dilation, out_hw)
        if _state.enabled:
            self.cols = cols
        out = _conv_out(xp, cols, w, groups, x.shape[0], out_hw)
        if b is not None:
            out += b.reshape(1, -1, 1, 1)
        return out

    def backward(self, g):
        from .reduce import sum as _sum
        x, w = self.saved_tensors
        p = _geometry(self.attrs)
        ex, ew = self.edges[0], self.edges[1]
        eb = self.edges[2] if len(self.edges) > 2 else None
        kernel = tuple(w.data.shape[2:])
        cols = getattr(self, "cols", None)
        if _state.enabled or cols is None:      # a recorded backward: differentiable ops all the way down
            gx = ConvTranspose2d.apply(g, w, x_shape=tuple(x.data.shape), **p) if ex else None
            gw = Conv2dWeightGrad.apply(x, g, kernel=kernel, **p) if ew else None
        else:                                   # plain backward: one copy of g serves both GEMMs
            xp, groups = self.xp, p["groups"]
            rows = _grad_rows(xp, g.data) if ew else None
            gx = gw = None
            if ex:
                gx = _wrap(_conv_transpose2d(xp, g.data, w.data, x.data.shape, p["stride"], p["pad"], p["dilation"],
                                             groups, rows))
            if ew:
                gw = _wrap(_weight_gemm(xp, rows, cols, groups, w.data.shape))
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
        # plain backward (no oneDNN, no cuDNN): one patch matrix of h serves both gradients
        if eg and ew and not _state.enabled and not onednn.usable(self.xp, h.data) and \
                not cudnn.usable(self.xp, h.data, w.data):
            xp, kernel, out_hw = self.xp, w.data.shape[2:], g.data.shape[2:]
            cols = _im2col(xp, h.data, kernel, p["stride"], p["pad"], p["dilation"], out_hw)
            gw = _weight_gemm(xp, _grad_rows(xp, g.data), cols, p["groups"], w.data.shape)
            return _wrap(_conv_out(xp, cols, w.data, p["groups"], h.data.shape[0], out_hw)), _wrap(gw)
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
        if t is not None and t.data.dtype != input.data.dtype and _state.autocast is None:
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
    Memory: one im2col matrix of ``N*OH*OW*C_in*KH*KW`` elements, kept until the backward when the weight needs
    a gradient (the weight gradient reuses it), else freed after the forward.

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
    out = Conv2d.apply(*args, stride=stride, pad=pad, dilation=dilation, groups=groups, out_hw=out_hw)
    node = out._node
    if node is not None and not weight.requires_grad:
        node.cols = None                        # only the weight gradient reads the kept patch matrix
    return out


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


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 1-D convolution over ``(N, C_in, L)`` (or ``(C_in, L)``) with a ``(C_in, C_out / groups, K)``
    weight: output length ``(L-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1``.

    Runs as :func:`conv_transpose2d` on a unit height (same memory cost); the arguments are single ints.

    >>> import ember
    >>> ember.conv_transpose1d(ember.ones(1, 3, 5), ember.ones(3, 2, 4), stride=2).shape
    ember.Size([1, 2, 12])
    """
    from .shape import squeeze, unsqueeze
    if input.data.ndim == 2:
        return squeeze(conv_transpose1d(unsqueeze(input, 0), weight, bias, stride, padding, output_padding, groups,
                                        dilation), 0)
    _check("conv_transpose1d", input, weight, bias, int(groups), 1, transposed=True)

    def one(v, name):
        return _pair(v, name, "conv_transpose1d", 1)[0]
    out = conv_transpose2d(unsqueeze(input, 2), unsqueeze(weight, 2), bias, (1, one(stride, "stride")),
                           (0, one(padding, "padding")), (0, one(output_padding, "output_padding")), groups,
                           (1, one(dilation, "dilation")))
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
