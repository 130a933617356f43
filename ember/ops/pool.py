"""Pooling: max/average pooling 1-D and 2-D, adaptive pooling (resizing is :mod:`ember.ops.resize`).

Windows are strided views of the (padded) input, never Python loops over output positions (a loop over
the KH*KW kernel offsets, each one strided slice over the whole batch, is the most there is). Max pooling
keeps each window's first maximum (as PyTorch) by a running compare over the offsets and remembers the
offset; its gradient scatters to those offsets, gathering is the scatter's adjoint, and the two are
each other's gradient, so double backward works. Average pooling is a linear map whose adjoint spreads each
gradient evenly over its window; again the two are each other's gradient.
"""
from __future__ import annotations

from ..autograd.grad_mode import _state
from ..backend import cudnn, onednn
from ..dtypes import is_float
from ._util import Op, OpError, Tensor, _wrap

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_max_pool1d", "adaptive_max_pool2d"]


def _pair(v, n: int, name: str, op: str) -> tuple:
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise OpError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's ``pooling_output_shape``: with ceil_mode the last window must start inside input or left pad."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _as4d(input: Tensor, spatial: int, op: str):
    """``input`` as an (N, C, H, W) tensor (1-D ops get H = 1) and a function restoring the caller's layout."""
    from .shape import reshape
    nd = input.data.ndim
    if nd not in (spatial + 1, spatial + 2) or any(s == 0 for s in input.data.shape[-spatial - 1:]):
        want = "(C, L) or (N, C, L)" if spatial == 1 else "(C, H, W) or (N, C, H, W)"
        raise OpError(f"{op}: expected a {spatial + 1}-D or {spatial + 2}-D input {want} with non-zero channel and "
                      f"spatial sizes, got shape {tuple(input.data.shape)}")
    shape = tuple(input.data.shape)
    lead = shape[:-spatial]
    x = reshape(input, ((-1,) + shape[-spatial - 1:-spatial] + (1,) * (2 - spatial) + shape[-spatial:]))

    def restore(t: Tensor) -> Tensor:
        return reshape(t, lead + tuple(t.data.shape[4 - spatial:]))
    return x, restore


def _geometry(input: Tensor, x: Tensor, spatial: int, kernel_size, stride, padding, dilation, ceil_mode, op):
    """Validated kernel, stride, padding, dilation and output size, all as (H, W) pairs."""
    k = _pair(kernel_size, spatial, "kernel_size", op)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else \
        _pair(stride, spatial, "stride", op)
    p = _pair(padding, spatial, "padding", op)
    d = _pair(dilation, spatial, "dilation", op)
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise OpError(f"{op}: kernel_size, stride and dilation must be positive and padding non-negative, got "
                      f"kernel_size={k}, stride={s}, padding={p}, dilation={d}")
    for ki, pi, di in zip(k, p, d):
        if pi > ki / 2:
            raise OpError(f"{op}: padding should be at most half of the kernel size (as in PyTorch), got "
                          f"padding={p}, kernel_size={k}")
    if spatial == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    hw = x.data.shape[2:]
    out = tuple(_out_size(n, ki, si, pi, di, ceil_mode) for n, ki, si, pi, di in zip(hw, k, s, p, d))
    if min(out) < 1:
        raise OpError(f"{op}: the {'padded ' if max(p) else ''}input of shape {tuple(input.data.shape)} is smaller "
                      f"than the {'dilated ' if max(d) > 1 else ''}kernel {k[2 - spatial:]}: output size would be "
                      f"{out[2 - spatial:]}; use a smaller kernel_size or more padding")
    return k, s, p, d, out


def _padded(xp, x, k, s, p, d, out, fill):
    """``x`` padded by ``p`` with ``fill`` on the left and enough on the right for every window (ceil_mode)."""
    right = [max(pi, (o - 1) * si + di * (ki - 1) + 1 - n - pi) for n, ki, si, pi, di, o in
             zip(x.shape[2:], k, s, p, d, out)]
    if not any(p) and not any(right):
        return x
    return xp.pad(x, ((0, 0), (0, 0), (p[0], right[0]), (p[1], right[1])), constant_values=fill)


# ---------------------------------------------------------------- gather / scatter at flat spatial indices
class _Gather(Op):
    """``out[n, c, i, j] = x[n, c].flat[idx[n, c, i, j]]`` (``idx``: an integer input); memory: the output only."""

    name_ = "pool_gather"
    save_inputs = (1,)

    def forward(self, x, idx):
        self.in_shape = x.shape
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        return self.xp.take_along_axis(flat, idx.reshape(n, c, -1), axis=-1).reshape(idx.shape)

    def backward(self, g):
        (idx,) = self.saved_tensors
        return _Scatter.apply(g, idx, shape=self.in_shape), None


class _Scatter(Op):
    """The adjoint of ``_Gather``: each gradient added at its flat index (repeats accumulate).

    Memory: the input-shaped result plus one int64 index per output element (``bincount``).
    """

    name_ = "pool_scatter"
    save_inputs = (1,)

    def forward(self, g, idx, *, shape):
        xp = self.xp
        m = shape[0] * shape[1]
        hw = shape[2] * shape[3]
        flat = (idx.reshape(m, -1) + xp.arange(m, dtype=idx.dtype)[:, None] * hw).reshape(-1)
        out = xp.bincount(flat, weights=g.reshape(-1), minlength=m * hw)
        return out.astype(g.dtype, copy=False).reshape(shape)

    def backward(self, g):
        (idx,) = self.saved_tensors
        return _Gather.apply(g, idx), None


def _offset_slices(k, s, d, out):
    """``(offset, rows, cols)`` for each kernel offset: the strided slices of the padded input that offset reads."""
    return [(i * k[1] + j, slice(i * d[0], i * d[0] + s[0] * (out[0] - 1) + 1, s[0]),
             slice(j * d[1], j * d[1] + s[1] * (out[1] - 1) + 1, s[1])) for i in range(k[0]) for j in range(k[1])]


def _overlaps(k, s, d) -> bool:
    """Whether two windows can share an input cell (then the scatter must accumulate)."""
    return any(si < di * (ki - 1) + 1 for ki, si, di in zip(k, s, d))


def _first_inside(xp, k, s, p, d, out):
    """The window offset of each output's first in-bounds cell (PyTorch's index when no cell beats -inf)."""
    first = []
    for ki, si, pi, di, o in zip(k, s, p, d, out):
        start = xp.arange(o) * si - pi
        first.append(xp.maximum(0, -(start // di)).clip(max=ki - 1))   # smallest i with start + i*d >= 0
    return (first[0][:, None] * k[1] + first[1][None, :]).astype(xp.int16)


def _fill(xp, dtype):
    """What padding counts as: -inf for floats, the smallest value for integers."""
    return -xp.inf if is_float(dtype) else xp.iinfo(dtype).min


def _window_max(xp, x, k, s, p, d, out):
    """Each window's maximum (NaN propagates, as in PyTorch): a running ``maximum`` over the KH*KW kernel
    offsets, each a strided slice of the (-inf) padded input. Memory: the output (plus the padded copy)."""
    xpad = _padded(xp, x, k, s, p, d, out, _fill(xp, x.dtype))
    best = None
    for _, rows, cols in _offset_slices(k, s, d, out):
        v = xpad[:, :, rows, cols]
        if best is None:
            best = xp.array(v)
        else:
            xp.maximum(best, v, out=best)
    return best


def _window_max_arg(xp, x, k, s, p, d, out):
    """Each window's maximum and the offset ``i*KW + j`` of its first maximum (NaN wins, as in PyTorch).

    A running compare over the KH*KW kernel offsets, each a strided slice of the (-inf) padded input.
    Memory: the output, one int16 offset per output and one boolean mask per step.
    """
    fill = _fill(xp, x.dtype)
    xpad = _padded(xp, x, k, s, p, d, out, fill)
    best = xp.full(x.shape[:2] + tuple(out), fill, dtype=x.dtype)
    arg = xp.full(best.shape, -1, dtype=xp.int16)
    for off, rows, cols in _offset_slices(k, s, d, out):
        v = xpad[:, :, rows, cols]
        upd = v > best
        if is_float(x.dtype):
            upd |= v != v
        xp.maximum(best, v, out=best)                   # NaN propagates, as in PyTorch
        step = off - arg                                # arg += upd * (off - arg): ufuncs beat masked writes
        step *= upd
        arg += step
    if (arg < 0).any():                                 # windows holding only -inf: the first in-bounds cell
        arg = xp.where(arg < 0, _first_inside(xp, k, s, p, d, out), arg)
    return best, arg


class _MaxPool(Op):
    """Window maxima; with gradients recorded, also each output's window offset of its maximum
    (:func:`_window_max_arg`), else the maxima alone (:func:`_window_max`, several times faster).

    Memory: the output, one int16 offset per output and one boolean mask per step when recording (plus a
    padded copy of the input when padding or ceil_mode needs one); no copy of the windows.
    """

    name_ = "max_pool"

    def forward(self, x, k, s, p, d, out):
        self.in_shape = x.shape
        xp = self.xp
        # oneDNN's kernel returns the same maxima and first-maximum offsets, several times faster; it does not
        # propagate NaN nor keep -inf, so an input holding either (its sum is not finite) takes the portable path
        if onednn.usable(xp, x) and xp.isfinite(x.sum()):
            res = onednn.max_pool_forward(x, k, s, p, d, out)
            if res is not None:
                best, self.arg = res
                return best
        # cuDNN gives the maxima but not the offsets a gradient needs: used when none is recorded
        if not _state.enabled and cudnn.usable(xp, x) and xp.isfinite(x.sum()):
            best = cudnn.max_pool_forward(x, k, s, p, d, out)
            if best is not None:
                self.arg = None
                return best
        if _state.enabled:
            best, self.arg = _window_max_arg(self.xp, x, k, s, p, d, out)
            return best
        self.arg = None
        return _window_max(self.xp, x, k, s, p, d, out)

    def backward(self, g):
        a = self.attrs
        return _PoolScatter.apply(g, arg=self.arg, k=a["k"], s=a["s"], p=a["p"], d=a["d"], in_shape=self.in_shape)


class _PoolScatter(Op):
    """Each gradient added at the input cell its window offset ``arg`` names (the adjoint of ``_PoolGather``).

    One strided slice per kernel offset; an assignment when windows don't overlap, else an add.
    Memory: one zero-filled (padded) input-sized buffer.
    """

    name_ = "max_pool_backward"

    def forward(self, g, arg, k, s, p, d, in_shape):
        xp = self.xp
        if arg.dtype == xp.uint8 and onednn.usable(xp, g):        # offsets from oneDNN's forward
            dx = onednn.max_pool_backward(g, arg, in_shape, k, s, p, d)
            if dx is not None:
                return dx
        out = g.shape[2:]
        height, width = in_shape[2:]
        bh = max(height + 2 * p[0], (out[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1)
        bw = max(width + 2 * p[1], (out[1] - 1) * s[1] + d[1] * (k[1] - 1) + 1)
        buf = xp.zeros(g.shape[:2] + (bh, bw), dtype=g.dtype)
        overlap = _overlaps(k, s, d)
        g = xp.ascontiguousarray(g)
        bits = g.view(f"i{g.itemsize}")
        for off, rows, cols in _offset_slices(k, s, d, out):
            # g where arg == off, else 0: an AND with an all-ones/all-zeros bit mask keeps inf and nan exact
            # (g * mask would turn 0 * inf into nan) and runs several times faster than where()
            mask = (arg == off).astype(bits.dtype)
            xp.negative(mask, out=mask)
            part = (bits & mask).view(g.dtype)
            if overlap:
                buf[:, :, rows, cols] += part
            else:
                buf[:, :, rows, cols] = part
        if buf.shape[2:] == (height, width):
            return buf
        return xp.ascontiguousarray(buf[:, :, p[0]:p[0] + height, p[1]:p[1] + width])

    def backward(self, h):
        a = self.attrs
        return _PoolGather.apply(h, arg=a["arg"], k=a["k"], s=a["s"], p=a["p"], d=a["d"])


class _PoolGather(Op):
    """``out[n, c, y, x]`` = the cell of window ``(y, x)`` at offset ``arg``: the adjoint of ``_PoolScatter``.

    Memory: the output (plus a zero-padded copy of the input when padding needs one).
    """

    name_ = "max_pool_gather"

    def forward(self, h, arg, k, s, p, d):
        xp = self.xp
        out = arg.shape[2:]
        hpad = _padded(xp, h, k, s, p, d, out, 0)
        res = xp.zeros(arg.shape, dtype=h.dtype)
        for off, rows, cols in _offset_slices(k, s, d, out):
            xp.copyto(res, hpad[:, :, rows, cols], where=arg == off)
        self.in_shape = h.shape
        return res

    def backward(self, g):
        a = self.attrs
        return _PoolScatter.apply(g, arg=a["arg"], k=a["k"], s=a["s"], p=a["p"], d=a["d"], in_shape=self.in_shape)


def _max_pool(input, spatial, kernel_size, stride, padding, dilation, ceil_mode, return_indices, op):
    x, restore = _as4d(input, spatial, op)
    k, s, p, d, out = _geometry(input, x, spatial, kernel_size, stride, padding, dilation, ceil_mode, op)
    y = _MaxPool.apply(x, k=k, s=s, p=p, d=d, out=out)
    if not return_indices:
        return restore(y)
    xp = x.xp
    arg = y._node.arg if y._node is not None else _window_max_arg(xp, x.data, k, s, p, d, out)[1]
    arg = arg.astype(xp.int64)
    rows = xp.arange(out[0])[:, None] * s[0] - p[0] + (arg // k[1]) * d[0]
    cols = xp.arange(out[1]) * s[1] - p[1] + (arg % k[1]) * d[1]
    return restore(y), restore(_wrap(rows * x.data.shape[3] + cols))


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling over an (N, C, H, W) or (C, H, W) input, as ``torch.nn.functional.max_pool2d``.

    ``stride`` defaults to ``kernel_size``; padding counts as -inf. The gradient goes to each window's
    first maximum. ``return_indices=True`` also returns the flat ``h * W + w`` index of each maximum.
    Memory: the output (plus a padded copy when padding), and one int16 offset per output when recording.

    >>> import ember
    >>> ember.max_pool2d(ember.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool2d")


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-D max pooling over an (N, C, L) or (C, L) input, as ``torch.nn.functional.max_pool1d``.

    Memory: as :func:`max_pool2d`.
    """
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool1d")


# ---------------------------------------------------------------- average pooling
def _divisor(xp, dtype, hw, k, s, p, out, count_include_pad, divisor_override):
    """The (OH, OW) divisor of each window, as PyTorch: windows are clipped to the padded input, and with
    ``count_include_pad=False`` to the input itself."""
    if divisor_override is not None:
        return xp.asarray(float(divisor_override), dtype=dtype)
    sizes = []
    for n, ki, si, pi, o in zip(hw, k, s, p, out):
        start = xp.arange(o) * si - pi
        end = xp.minimum(start + ki, n + pi)
        if not count_include_pad:
            start, end = xp.maximum(start, 0), xp.minimum(end, n)
        sizes.append(end - start)
    return (sizes[0][:, None] * sizes[1][None, :]).astype(dtype)


class _AvgPool(Op):
    """Window sums (one strided slice add per kernel offset over the zero-padded input) divided by each
    window's divisor; a reduction over a windows view's two tiny trailing axes would be several times slower.

    Memory: the output (plus a padded copy of the input when padding or ceil_mode needs one).
    """

    name_ = "avg_pool"

    def forward(self, x, k, s, p, out, div):
        xp = self.xp
        self.in_hw = x.shape[2:]
        xpad = _padded(xp, x, k, s, p, (1, 1), out, 0)
        acc = None
        for _, rows, cols in _offset_slices(k, s, (1, 1), out):
            acc = xpad[:, :, rows, cols].copy() if acc is None else xp.add(acc, xpad[:, :, rows, cols], out=acc)
        return acc / div

    def backward(self, g):
        return _AvgPoolT.apply(g, **self.attrs, in_hw=self.in_hw)


class _AvgPoolT(Op):
    """The adjoint of ``_AvgPool``: each gradient divided by its divisor and added over its window.

    A loop over the KH*KW kernel offsets (each a strided slice add over all positions at once): overlapping
    windows need accumulation, which a strided view cannot write. Memory: one zero-padded input-sized buffer.
    """

    name_ = "avg_pool_backward"

    def forward(self, g, k, s, p, out, div, in_hw):
        xp = self.xp
        gd = g / div
        height, width = in_hw
        bh = max(height + 2 * p[0], (out[0] - 1) * s[0] + k[0])
        bw = max(width + 2 * p[1], (out[1] - 1) * s[1] + k[1])
        buf = xp.zeros(g.shape[:2] + (bh, bw), dtype=g.dtype)
        overlap = _overlaps(k, s, (1, 1))
        for _, rows, cols in _offset_slices(k, s, (1, 1), out):
            if overlap:
                buf[:, :, rows, cols] += gd
            else:
                buf[:, :, rows, cols] = gd
        if buf.shape[2:] == (height, width):
            return buf
        return xp.ascontiguousarray(buf[:, :, p[0]:p[0] + height, p[1]:p[1] + width])

    def backward(self, g):
        a = self.attrs
        return _avg_pool_apply(g, a["k"], a["s"], a["p"], a["out"], a["div"])


def _avg_pool_apply(x: Tensor, k, s, p, out, div) -> Tensor:
    return _AvgPool.apply(x, k=k, s=s, p=p, out=out, div=div)


def _avg_pool(input, spatial, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, op):
    x, restore = _as4d(input, spatial, op)
    k, s, p, _, out = _geometry(input, x, spatial, kernel_size, stride, padding, 1, ceil_mode, op)
    if divisor_override is not None and divisor_override == 0:
        raise OpError(f"{op}: divisor_override must be non-zero")
    div = _divisor(x.xp, x.data.dtype, x.data.shape[2:], k, s, p, out, count_include_pad, divisor_override)
    return restore(_avg_pool_apply(x, k, s, p, out, div))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """2-D average pooling over an (N, C, H, W) or (C, H, W) input, as ``torch.nn.functional.avg_pool2d``.

    Zero padding counts in the divisor unless ``count_include_pad=False``; ``divisor_override`` replaces it.
    Memory: the output (plus a padded copy of the input when padding or ceil_mode needs one).

    >>> import ember
    >>> ember.avg_pool2d(ember.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     "avg_pool2d")


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-D average pooling over an (N, C, L) or (C, L) input, as ``torch.nn.functional.avg_pool1d``."""
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None, "avg_pool1d")


# ---------------------------------------------------------------- adaptive pooling
def _adaptive_sizes(input: Tensor, x: Tensor, output_size, spatial: int, op: str) -> tuple:
    out = list(output_size) if isinstance(output_size, (list, tuple)) else [output_size] * spatial
    if len(out) != spatial:
        raise OpError(f"{op}: output_size must be an int or a tuple of {spatial}, got {output_size!r}")
    hw = x.data.shape[2 + (2 - spatial):]
    out = [hw[i] if o is None else int(o) for i, o in enumerate(out)]
    if min(out) < 1:
        raise OpError(f"{op}: output_size must be positive, got {output_size!r} for input {tuple(input.data.shape)}")
    return (1,) * (2 - spatial) + tuple(out)


def _bounds(xp, n: int, o: int):
    """PyTorch's adaptive windows: ``start = floor(i * n / o)``, ``end = ceil((i + 1) * n / o)``."""
    i = xp.arange(o)
    return (i * n) // o, ((i + 1) * n + o - 1) // o


def _adaptive_avg(input, output_size, spatial, op):
    from .linalg import matmul
    from .reduce import mean
    from .shape import transpose
    x, restore = _as4d(input, spatial, op)
    out = _adaptive_sizes(input, x, output_size, spatial, op)
    xp, dtype = x.xp, x.data.dtype
    if out == (1, 1):
        return restore(mean(x, (-2, -1), keepdim=True))
    mats = []
    for n, o in zip(x.data.shape[2:], out):
        start, end = _bounds(xp, n, o)
        j = xp.arange(n)
        inside = (j >= start[:, None]) & (j < end[:, None])
        mats.append(_wrap((inside / (end - start)[:, None]).astype(dtype)))
    y = x if out[0] == x.data.shape[2] else matmul(mats[0], x)
    y = y if out[1] == x.data.shape[3] else matmul(y, transpose(mats[1], 0, 1))
    return restore(y)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed (OH, OW) output, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Window ``i`` covers ``[floor(i*H/OH), ceil((i+1)*H/OH))``, so sizes need not divide. Computed as two
    small averaging-matrix products ``A_h @ x @ A_w.T``: memory OH*H + OW*W for the matrices plus the
    N*C*OH*W intermediate; time N*C*(OH*H*W + OH*OW*W). Output (1, 1) is a plain mean.

    >>> import ember
    >>> ember.adaptive_avg_pool2d(ember.arange(6.).reshape(1, 1, 2, 3), 1)
    tensor([[[[2.5000]]]])
    """
    return _adaptive_avg(input, output_size, 2, "adaptive_avg_pool2d")


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output length, as ``torch.nn.functional.adaptive_avg_pool1d``."""
    return _adaptive_avg(input, output_size, 1, "adaptive_avg_pool1d")


class _AdaptiveMaxIndex(Op):
    """The flat ``h * W + w`` index of each adaptive window's first maximum (int64): an op, so that a traced
    graph finds the maxima of each new input, not the traced one's."""

    name_ = "adaptive_max_index"
    differentiable = False

    def forward(self, a, *, out):
        xp = self.xp
        pos = []
        for n, o in zip(a.shape[2:], out):
            start, end = _bounds(xp, n, o)
            kmax = int((end - start).max())
            # every window padded to the longest by repeating its last cell (never changes the first maximum)
            pos.append(xp.minimum(start[:, None] + xp.arange(kmax), end[:, None] - 1))
        ph, pw = pos
        win = a[:, :, ph[:, None, :, None], pw[None, :, None, :]]          # (N, C, OH, OW, KH, KW) copy
        kk = win.reshape(win.shape[:4] + (-1,)).argmax(axis=-1)
        kw = pw.shape[1]
        rows = ph[xp.arange(out[0])[:, None], kk // kw]
        cols = pw[xp.arange(out[1]), kk % kw]
        return (rows * a.shape[3] + cols).astype("int64", copy=False)


def _adaptive_max(input, output_size, return_indices, spatial, op):
    x, restore = _as4d(input, spatial, op)
    out = _adaptive_sizes(input, x, output_size, spatial, op)
    idx = _AdaptiveMaxIndex.apply(x, out=tuple(out))
    y = restore(_Gather.apply(x, idx))
    return (y, restore(idx)) if return_indices else y


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max pooling to a fixed (OH, OW) output, as ``torch.nn.functional.adaptive_max_pool2d``.

    Windows as in :func:`adaptive_avg_pool2d`. Memory: one gathered copy of all windows,
    N*C*OH*OW*KH*KW with KH, KW the largest window sizes.
    """
    return _adaptive_max(input, output_size, return_indices, 2, "adaptive_max_pool2d")


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """Max pooling to a fixed output length, as ``torch.nn.functional.adaptive_max_pool1d``."""
    return _adaptive_max(input, output_size, return_indices, 1, "adaptive_max_pool1d")
