"""cuDNN kernels for CuPy arrays: convolution forward, backward-data, backward-weights, and max pooling.

The CUDA twin of :mod:`ember.backend.onednn`: :mod:`ember.ops.conv` and :mod:`ember.ops.pool` call these
where they call oneDNN for NumPy arrays, and take their portable im2col / strided-window path whenever a
kernel here returns None (no cuDNN, a dtype cuDNN does not take, a geometry it declines). Two ways in:

* the cuDNN frontend (``pip install nvidia-cudnn-frontend``, ``import cudnn``): one small cuDNN graph per
  convolution kind and geometry (``conv_fprop`` / ``conv_dgrad`` / ``conv_wgrad``, asymmetric padding as
  pre/post padding), built once and cached, executed on CuPy's current stream with the arrays' device
  pointers and a workspace from CuPy's memory pool. This is the path for CuPy 14, which removed cuDNN;
* CuPy's own wrappers (CuPy 13 and older with cuDNN installed): ``cupyx.cudnn.convolution_forward``,
  ``convolution_backward_data``, ``convolution_backward_filter`` (symmetric padding only) and
  ``pooling_forward`` (max pooling has no frontend path here).

Set ``enabled = False`` (or ``EMBER_CUDNN=0``) to force the portable path; ``autotune = True`` (or
``EMBER_CUDNN_AUTOTUNE=1``) lets CuPy's wrappers time their algorithms once per shape (``cudnnFind*``), as
PyTorch's ``cudnn.benchmark``. The calls into cuDNN are unverified without a GPU: the CPU tests check the
dispatch and the arguments with stand-ins for both modules that compute with PyTorch.
"""
from __future__ import annotations

import os
import sys

__all__ = ["enabled", "autotune", "available", "usable", "conv_forward", "conv_backward_data",
           "conv_backward_weights", "max_pool_forward"]

enabled = os.environ.get("EMBER_CUDNN", "1") != "0"
autotune = os.environ.get("EMBER_CUDNN_AUTOTUNE", "0") == "1"
_FLOATS = ("float16", "float32", "float64")
_libs_cache: list = []
_frontend_cache: list = []
_plans: dict = {}          # frontend graphs: (kind, shapes, dtype, geometry, device) -> (graph, tensors, workspace)
_handles: dict = {}        # frontend handle per device


def _libs():
    """``(cupyx.cudnn, cupy.cuda.cudnn)``, or None when CuPy was built without cuDNN or it cannot load."""
    if not _libs_cache:
        try:
            from cupy.cuda import cudnn as constants
            from cupyx import cudnn as kernels
            _libs_cache.append((kernels, constants))
        except Exception:          # ImportError, or the cuDNN library failing to load
            _libs_cache.append(None)
    return _libs_cache[0]


def _frontend():
    """The cuDNN frontend's Python module (``nvidia-cudnn-frontend``), or None when it is absent or cannot load."""
    if not _frontend_cache:
        try:
            import cudnn as fe      # the frontend's top-level package (this module is ember.backend.cudnn)
            _frontend_cache.append(fe if hasattr(fe, "pygraph") else None)
        except Exception:           # ImportError, or the cuDNN library failing to load
            _frontend_cache.append(None)
    return _frontend_cache[0]


def available() -> bool:
    """Whether a way into cuDNN is installed: the cuDNN frontend, or CuPy's own cuDNN wrappers."""
    return _frontend() is not None or _libs() is not None


def usable(xp, *arrays) -> bool:
    """Whether the kernels here can take these arrays: enabled, CuPy, one float dtype cuDNN knows, cuDNN present."""
    if not (enabled and getattr(xp, "__name__", "") == "cupy" and arrays):
        return False
    dtype = arrays[0].dtype
    return dtype.name in _FLOATS and all(a.dtype == dtype for a in arrays) and available()


def _symmetric(pad) -> tuple | None:
    """Ember's ``(top, bottom, left, right)`` padding as cuDNN's ``(pad_h, pad_w)``, or None if asymmetric."""
    if len(pad) == 2:
        return tuple(int(p) for p in pad)
    top, bottom, left, right = pad
    return (int(top), int(left)) if top == bottom and left == right else None


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _geometry_ok(in_hw, kernel, stride, pad2, dilation, out_hw) -> bool:
    """Whether cuDNN's output size for this geometry is ``out_hw`` (it has no ceil mode nor output padding)."""
    return all(_out_size(in_hw[i], kernel[i], stride[i], pad2[i], dilation[i]) == out_hw[i] for i in range(2))


def conv_forward(x, w, b, stride, pad, dilation, groups: int, out_hw):
    """``conv(x, w) + b`` (NCHW, OIHW), or None when cuDNN declines. Memory: the output and cuDNN's workspace."""
    if _frontend() is not None:
        y = _frontend_conv("fprop", x, w, (x.shape[0], w.shape[0], *out_hw), pad, stride, dilation)
        if y is not None:
            if b is not None:
                y += b.reshape(1, -1, 1, 1)
            return y
    pad2 = _symmetric(pad)
    if _libs() is None or pad2 is None or not _geometry_ok(x.shape[2:], w.shape[2:], stride, pad2, dilation, out_hw):
        return None
    kernels, _ = _libs()
    y = _empty_like_shape(x, (x.shape[0], w.shape[0], *out_hw))
    kernels.convolution_forward(x, w, b, y, pad2, tuple(stride), tuple(dilation), int(groups),
                                auto_tune=autotune, tensor_core="auto")
    return y


def conv_backward_data(g, w, x_shape, stride, pad, dilation, groups: int):
    """The input gradient of the convolution for output gradient ``g``, or None when cuDNN declines."""
    if _frontend() is not None:
        gx = _frontend_conv("dgrad", g, w, tuple(x_shape), pad, stride, dilation)
        if gx is not None:
            return gx
    pad2 = _symmetric(pad)
    if _libs() is None or pad2 is None or \
            not _geometry_ok(x_shape[2:], w.shape[2:], stride, pad2, dilation, g.shape[2:]):
        return None
    kernels, _ = _libs()
    gx = _empty_like_shape(g, tuple(x_shape))
    kernels.convolution_backward_data(w, g, None, gx, pad2, tuple(stride), tuple(dilation), int(groups),
                                      deterministic=False, auto_tune=autotune, tensor_core="auto")
    return gx


def conv_backward_weights(x, g, kernel, stride, pad, dilation, groups: int):
    """The weight gradient of the convolution of ``x`` for output gradient ``g``, or None when cuDNN declines."""
    if _frontend() is not None:
        gw = _frontend_conv("wgrad", x, g, (g.shape[1], x.shape[1] // groups, *kernel), pad, stride, dilation)
        if gw is not None:
            return gw
    pad2 = _symmetric(pad)
    if _libs() is None or pad2 is None or not _geometry_ok(x.shape[2:], kernel, stride, pad2, dilation, g.shape[2:]):
        return None
    kernels, _ = _libs()
    gw = _empty_like_shape(x, (g.shape[1], x.shape[1] // groups, *kernel))
    kernels.convolution_backward_filter(x, g, gw, pad2, tuple(stride), tuple(dilation), int(groups),
                                        deterministic=False, auto_tune=autotune, tensor_core="auto")
    return gw


def max_pool_forward(x, k, s, p, d, out):
    """Window maxima of an NCHW array, or None when cuDNN declines (dilation, ceil-mode output sizes, padding
    wider than half a window). cuDNN neither propagates NaN nor returns window offsets: the caller uses it only
    for finite inputs and when no gradient is recorded. Memory: the output."""
    if _libs() is None or tuple(d) != (1, 1) or any(2 * p[i] > k[i] for i in range(2)) or \
            not _geometry_ok(x.shape[2:], k, s, p, (1, 1), out):
        return None
    kernels, constants = _libs()
    y = _empty_like_shape(x, (*x.shape[:2], *out))
    kernels.pooling_forward(x, y, tuple(k), tuple(s), tuple(p), constants.CUDNN_POOLING_MAX)
    return y


# ---------------------------------------------------------------- the cuDNN frontend
_FE_TYPES = {"float16": "HALF", "float32": "FLOAT", "float64": "DOUBLE"}


def _contiguous_strides(shape) -> list:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= int(n)
    return strides[::-1]


def _ptr(a) -> int:
    """The device address of a CuPy array (what the frontend's variant pack takes)."""
    return a.data.ptr


def _stream_ptr() -> int:
    """CuPy's current stream, on which the frontend's plans run (so they order with CuPy's own kernels)."""
    import cupy
    return cupy.cuda.get_current_stream().ptr


def _device_id(a) -> int:
    device = getattr(a, "device", None)
    return int(getattr(device, "id", 0) or 0)


def _build_frontend(fe, kind, a_shape, b_shape, out_shape, dtype, pad, stride, dilation, device: int):
    """One cuDNN graph of a single convolution kind; None when cuDNN does not support the geometry."""
    dt = getattr(fe.data_type, _FE_TYPES[dtype])
    compute = fe.data_type.DOUBLE if dtype == "float64" else fe.data_type.FLOAT
    handle = _handles.get(device)
    if handle is None:                  # made while the arrays' device is CuPy's current one
        handle = _handles[device] = fe.create_handle()
    try:
        g = fe.pygraph(io_data_type=dt, intermediate_data_type=compute, compute_data_type=compute, handle=handle)
        a = g.tensor(name="A", dim=list(a_shape), stride=_contiguous_strides(a_shape), data_type=dt)
        b = g.tensor(name="B", dim=list(b_shape), stride=_contiguous_strides(b_shape), data_type=dt)
        top, bottom, left, right = pad
        geometry = {"pre_padding": [top, left], "post_padding": [bottom, right], "stride": list(stride),
                    "dilation": list(dilation)}
        if kind == "fprop":
            y = g.conv_fprop(image=a, weight=b, **geometry)
        elif kind == "dgrad":
            y = g.conv_dgrad(loss=a, filter=b, **geometry)
        else:
            y = g.conv_wgrad(image=a, loss=b, **geometry)
        y.set_output(True).set_dim(list(out_shape)).set_stride(_contiguous_strides(out_shape)).set_data_type(dt)
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans([fe.heur_mode.A, fe.heur_mode.FALLBACK])
        g.check_support()
        g.build_plans()
    except Exception:                # cudnnGraphNotSupportedError and friends: the portable path takes it
        return None
    return g, (a, b, y), int(g.get_workspace_size()), handle


def _frontend_conv(kind: str, a, b, out_shape, pad, stride, dilation):
    """Run (building once per geometry) a frontend convolution graph: ``fprop(x, w)``, ``dgrad(dy, w)`` or
    ``wgrad(x, dy)``; its output array, or None when cuDNN declines. Memory: the output and the workspace."""
    fe = _frontend()
    if a.dtype.name not in _FE_TYPES:
        return None
    pad = tuple(int(p) for p in (pad if len(pad) == 4 else (pad[0], pad[0], pad[1], pad[1])))
    key = (kind, a.shape, b.shape, tuple(out_shape), a.dtype.str, pad, tuple(stride), tuple(dilation), _device_id(a))
    if key not in _plans:
        _plans[key] = _build_frontend(fe, kind, a.shape, b.shape, out_shape, a.dtype.name, pad, stride, dilation,
                                      key[-1])
    plan = _plans[key]
    if plan is None:
        return None
    graph, (ta, tb, ty), workspace_size, handle = plan
    xp = sys.modules[type(a).__module__.partition(".")[0]]
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    out = _empty_like_shape(a, tuple(out_shape))
    workspace = xp.empty((max(workspace_size, 1),), dtype=xp.uint8)
    fe.set_stream(handle=handle, stream=_stream_ptr())
    graph.execute({ta: _ptr(a), tb: _ptr(b), ty: _ptr(out)}, _ptr(workspace), handle=handle)
    return out


def _empty_like_shape(a, shape):
    """An uninitialised C-contiguous array of ``a``'s library (CuPy) and dtype, for cuDNN to write into."""
    return sys.modules[type(a).__module__.partition(".")[0]].empty(shape, dtype=a.dtype)
