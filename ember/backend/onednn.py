"""Optional oneDNN convolution kernels for float32 NumPy arrays: direct convolutions in blocked layouts.

oneDNN is the CPU kernel library that PyTorch's own CPU convolutions run on. Its JIT-generated direct
convolutions work on channel-blocked layouts (``nChw16c``) and never build an im2col patch matrix, which
makes them 2-4x faster than im2col + BLAS for the narrow (16-64 channel) layers of small CNNs. This module
drives its C API through ctypes from the ``onednn-cpu-gomp`` wheel (``pip install 'ember-dl[fast]'``):
nothing is compiled here. :mod:`ember.ops.conv` calls the three kernels below when :func:`usable` says
so, and otherwise (float64, CuPy, no library, or a geometry oneDNN declines: the kernels return None)
runs its portable im2col path.

Each kernel takes and returns plain NCHW / OIHW arrays: inputs are reordered into the layout oneDNN
chooses for that shape, and the result is reordered back. Memory: one blocked copy of each operand and
of the result (channels rounded up to the block of 8 or 16), freed when the call returns.
Threads: oneDNN's OpenMP pool, sized by ``OMP_NUM_THREADS`` (or threadpoolctl's "openmp" limit).
Set ``enabled = False`` (or ``EMBER_ONEDNN=0`` in the environment) to force the portable path;
``EMBER_ONEDNN_LIBRARY`` names a ``libdnnl.so.3`` to load instead of the wheel's.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import sysconfig
import threading

import numpy

__all__ = ["available", "enabled", "usable", "version", "conv_forward", "conv_backward_data",
           "conv_backward_weights", "matmul", "max_pool_forward", "max_pool_backward"]

enabled = os.environ.get("EMBER_ONEDNN", "1") != "0"

# oneDNN v3 C API constants (dnnl_types.h / dnnl_common_types.h)
_F32, _ANY, _CPU, _IN_ORDER = 3, 1, 1, 1
_TAG_PLAIN = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6}              # ndims -> dnnl_a, dnnl_ab, ..., dnnl_abcde
_FORWARD_TRAINING, _BACKWARD_DATA, _BACKWARD_WEIGHTS = 64, 160, 192
_CONVOLUTION_DIRECT = 1
_QUERY_EXEC_ARG_MD = 255
_SRC, _DST, _WEIGHTS, _BIAS, _DIFF_SRC, _DIFF_DST, _DIFF_WEIGHTS = 1, 17, 33, 41, 129, 145, 161
_WORKSPACE, _POOLING_MAX, _ELTWISE_RELU = 64, 0x1ff, 0x20
_Dims = ctypes.c_int64 * 12
_vp = ctypes.c_void_p


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _vp)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


class _Library:
    """The loaded ``libdnnl``, its CPU engine and stream, and the cache of built primitives."""

    def __init__(self, lib):
        self.lib = lib
        lib.dnnl_version.restype = ctypes.POINTER(_Version)
        lib.dnnl_primitive_desc_query_md.restype = _vp
        lib.dnnl_primitive_desc_query_md.argtypes = [_vp, ctypes.c_int, ctypes.c_int]
        lib.dnnl_memory_desc_equal.argtypes = [_vp, _vp]
        lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        lib.dnnl_memory_desc_get_size.argtypes = [_vp]
        lib.dnnl_memory_set_data_handle.argtypes = [_vp, _vp]
        lib.dnnl_primitive_execute.argtypes = [_vp, _vp, ctypes.c_int, _vp]
        lib.dnnl_stream_wait.argtypes = [_vp]
        v = lib.dnnl_version().contents
        self.version = (v.major, v.minor, v.patch)
        if v.major != 3:
            raise OSError(f"oneDNN {v.major}.{v.minor} found; Ember drives the v3 C API")
        self.engine, self.stream = _vp(), _vp()
        self.check(lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU, 0), "dnnl_engine_create")
        self.check(lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, _IN_ORDER), "dnnl_stream_create")
        self.lock = threading.Lock()     # one stream, and primitives share a library-managed scratchpad
        self.plans: dict = {}
        self._relu_attr = None

    @staticmethod
    def check(status: int, call: str) -> None:
        if status != 0:
            raise RuntimeError(f"oneDNN: {call} failed with status {status}")

    def md(self, shape, tag=None, strides=None):
        """A float32 memory descriptor: plain row-major by default, ``tag`` (e.g. any), or element ``strides``."""
        m = _vp()
        if strides is not None:
            self.check(self.lib.dnnl_memory_desc_create_with_strides(ctypes.byref(m), len(shape), _Dims(*shape), _F32,
                                                                     _Dims(*strides)),
                       "dnnl_memory_desc_create_with_strides")
            return m
        tag = _TAG_PLAIN[len(shape)] if tag is None else tag
        self.check(self.lib.dnnl_memory_desc_create_with_tag(ctypes.byref(m), len(shape), _Dims(*shape), _F32, tag),
                   "dnnl_memory_desc_create_with_tag")
        return m

    def primitive(self, pd):
        p = _vp()
        self.check(self.lib.dnnl_primitive_create(ctypes.byref(p), pd), "dnnl_primitive_create")
        return p

    def query(self, pd, arg: int):
        return _vp(self.lib.dnnl_primitive_desc_query_md(pd, _QUERY_EXEC_ARG_MD, arg))

    def relu_attr(self):
        """Primitive attributes with one post-op, ReLU on the result (an epilogue: no second pass over it)."""
        if self._relu_attr is None:
            attr, post = _vp(), _vp()
            self.check(self.lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "dnnl_primitive_attr_create")
            self.check(self.lib.dnnl_post_ops_create(ctypes.byref(post)), "dnnl_post_ops_create")
            self.check(self.lib.dnnl_post_ops_append_eltwise(post, _ELTWISE_RELU, ctypes.c_float(0.0),
                                                             ctypes.c_float(0.0)), "dnnl_post_ops_append_eltwise")
            self.check(self.lib.dnnl_primitive_attr_set_post_ops(attr, post), "dnnl_primitive_attr_set_post_ops")
            self._relu_attr = attr
        return self._relu_attr

    def plan(self, key, build):
        """The primitive cached under ``key``, made by ``build()`` on first use; None when ``build`` says so or
        oneDNN declines it (the caller takes its portable path). The 256 most recent are kept."""
        if key not in self.plans:
            if len(self.plans) >= 256:              # shapes seen in a long session: forget the oldest
                self.plans.pop(next(iter(self.plans)))
            try:
                self.plans[key] = build()
            except RuntimeError:
                self.plans[key] = None
        return self.plans[key]

    def bind(self, prim, args):
        """A primitive ready to run on NumPy arrays: ``args`` are its (argument id, memory descriptor) pairs."""
        return _Bound(self, prim, args)


class _Bound:
    """A primitive with one memory object per argument, made once; a call points them at this call's arrays.
    Call with the library's lock held."""

    def __init__(self, dnn: _Library, prim, args):
        self.dnn, self.prim = dnn, prim
        self.mems = []
        for _, md in args:
            m = _vp()
            dnn.check(dnn.lib.dnnl_memory_create(ctypes.byref(m), md, dnn.engine, None), "dnnl_memory_create")
            self.mems.append(m)
        self.args = (_Arg * len(args))(*[_Arg(arg, m) for (arg, _), m in zip(args, self.mems)])

    def __call__(self, *arrays) -> None:
        lib, check = self.dnn.lib, self.dnn.check
        for m, a in zip(self.mems, arrays):
            check(lib.dnnl_memory_set_data_handle(m, a.ctypes.data), "dnnl_memory_set_data_handle")
        check(lib.dnnl_primitive_execute(self.prim, self.dnn.stream, len(self.mems), self.args),
              "dnnl_primitive_execute")
        check(lib.dnnl_stream_wait(self.dnn.stream), "dnnl_stream_wait")


class _Operand:
    """One argument of a primitive: its plain (user) layout, the layout the primitive chose, and the
    reorder between them (None when they are the same)."""

    def __init__(self, dnn: _Library, shape, chosen, to_chosen: bool):
        self.shape, self.plain, self.chosen = tuple(shape), dnn.md(shape), chosen
        self.size = dnn.lib.dnnl_memory_desc_get_size(chosen) // 4
        self.reorder = None
        if not dnn.lib.dnnl_memory_desc_equal(self.plain, chosen):
            src, dst = (self.plain, chosen) if to_chosen else (chosen, self.plain)
            pd = _vp()
            dnn.check(dnn.lib.dnnl_reorder_primitive_desc_create(ctypes.byref(pd), src, dnn.engine, dst, dnn.engine,
                                                                 None), "dnnl_reorder_primitive_desc_create")
            self.reorder = dnn.bind(dnn.primitive(pd), [(_SRC, src), (_DST, dst)])

    def load(self, array):
        """``array`` in the chosen layout (itself when no reorder is needed)."""
        if self.reorder is None:
            return array
        out = numpy.empty(self.size, numpy.float32)
        self.reorder(array, out)
        return out

    def buffer(self, out):
        """Where the primitive writes a result that must end up in the plain array ``out``."""
        return out if self.reorder is None else numpy.empty(self.size, numpy.float32)

    def store(self, blocked, out) -> None:
        if self.reorder is not None:
            self.reorder(blocked, out)


_state: dict = {}


def _library() -> _Library | None:
    """The loaded library, or None (with the reason in ``_state['error']``) when it can't be had."""
    if "dnn" in _state:
        return _state["dnn"]
    names = [os.environ.get("EMBER_ONEDNN_LIBRARY")]
    names += [os.path.join(root, "lib", "libdnnl.so.3")
              for root in dict.fromkeys((sys.prefix, sysconfig.get_path("data")))]
    names.append(ctypes.util.find_library("dnnl"))
    _state["dnn"], errors = None, []
    for name in filter(None, names):
        if os.path.sep not in name or os.path.exists(name):
            try:
                _state["dnn"] = _Library(ctypes.CDLL(name))
                break
            except (OSError, AttributeError, RuntimeError) as e:
                errors.append(f"{name}: {e}")
    _state["error"] = "; ".join(errors) or "libdnnl.so.3 not found (pip install onednn-cpu-gomp)"
    return _state["dnn"]


def available() -> bool:
    """Whether the oneDNN library loads on this machine (loading it on the first call)."""
    return sys.platform.startswith("linux") and _library() is not None


def version() -> tuple | None:
    """The loaded oneDNN's ``(major, minor, patch)``, or None."""
    dnn = _library() if available() else None
    return dnn.version if dnn else None


def usable(xp, *arrays) -> bool:
    """Whether the oneDNN kernels can take these arrays: enabled, NumPy, all float32, library present."""
    return (enabled and xp is numpy and all(a.dtype == numpy.float32 for a in arrays) and available())


def _conv_plan(kind: int, x_shape, w_shape, y_shape, stride, pad, dilation, groups, bias: bool, relu: bool):
    """The primitive of one convolution geometry and direction, built once and cached."""
    dnn = _state["dnn"]
    return dnn.plan((kind, x_shape, w_shape, y_shape, stride, pad, dilation, groups, bias, relu),
                    lambda: _build_plan(dnn, kind, x_shape, w_shape, y_shape, stride, pad, dilation, groups, bias,
                                        relu))


def _build_plan(dnn, kind, x_shape, w_shape, y_shape, stride, pad, dilation, groups, bias, relu=False):
    lib = dnn.lib
    if groups > 1:
        w_shape = (groups, w_shape[0] // groups, *w_shape[1:])
    x_any, w_any, y_any = dnn.md(x_shape, _ANY), dnn.md(w_shape, _ANY), dnn.md(y_shape, _ANY)
    b_md = dnn.md((y_shape[1],)) if bias else None
    # oneDNN wants the far padding that lands exactly on the last output, negative when input rows past the
    # last window are never read (the floor division of the output size drops them)
    far = [(o - 1) * s + (k - 1) * d + 1 - i - near
           for o, s, k, d, i, near in zip(y_shape[2:], stride, w_shape[-2:], dilation, x_shape[2:], pad[::2])]
    geometry = (_Dims(*stride), _Dims(*(d - 1 for d in dilation)), _Dims(*pad[::2]), _Dims(*far))
    fwd = _vp()
    dnn.check(lib.dnnl_convolution_forward_primitive_desc_create(
        ctypes.byref(fwd), dnn.engine, _FORWARD_TRAINING, _CONVOLUTION_DIRECT, x_any, w_any, b_md, y_any,
        *geometry, dnn.relu_attr() if relu else None), "dnnl_convolution_forward_primitive_desc_create")
    if kind == _FORWARD_TRAINING:
        pd, roles = fwd, ((_SRC, x_shape, True), (_WEIGHTS, w_shape, True), (_DST, y_shape, False))
    elif kind == _BACKWARD_DATA:
        pd = _vp()
        dnn.check(lib.dnnl_convolution_backward_data_primitive_desc_create(
            ctypes.byref(pd), dnn.engine, _CONVOLUTION_DIRECT, x_any, w_any, y_any, *geometry, fwd, None),
            "dnnl_convolution_backward_data_primitive_desc_create")
        roles = ((_DIFF_DST, y_shape, True), (_WEIGHTS, w_shape, True), (_DIFF_SRC, x_shape, False))
    else:
        pd = _vp()
        dnn.check(lib.dnnl_convolution_backward_weights_primitive_desc_create(
            ctypes.byref(pd), dnn.engine, _CONVOLUTION_DIRECT, x_any, w_any, None, y_any, *geometry, fwd, None),
            "dnnl_convolution_backward_weights_primitive_desc_create")
        roles = ((_SRC, x_shape, True), (_DIFF_DST, y_shape, True), (_DIFF_WEIGHTS, w_shape, False))
    operands = [_Operand(dnn, shape, dnn.query(pd, arg), to_chosen) for arg, shape, to_chosen in roles]
    args = [(arg, op.chosen) for (arg, _, _), op in zip(roles, operands)] + ([(_BIAS, b_md)] if bias else [])
    return dnn.bind(dnn.primitive(pd), args), operands


def _run(kind: int, a, b, out_shape, x_shape, w_shape, y_shape, geometry, bias=None, relu=False):
    """Reorder ``a`` and ``b`` in, run the primitive, reorder its result into a new plain array; None when
    oneDNN declines the geometry."""
    dnn = _library()
    with dnn.lock:
        plan = _conv_plan(kind, x_shape, w_shape, y_shape, *geometry, bias is not None, relu)
        if plan is None:
            return None
        run, (op_a, op_b, op_out) = plan
        out = numpy.empty(out_shape, numpy.float32)
        result = op_out.buffer(out)
        arrays = [op_a.load(numpy.ascontiguousarray(a)), op_b.load(numpy.ascontiguousarray(b)), result]
        run(*arrays, *([numpy.ascontiguousarray(bias)] if bias is not None else []))
        op_out.store(result, out)
    return out


def conv_forward(x, w, b, stride, pad, dilation, groups: int, out_hw, relu: bool = False):
    """``conv2d(x, w) + b`` for NCHW ``x`` and OIHW ``w`` (``pad`` = top, bottom, left, right): ``(N, O, OH, OW)``,
    or None if oneDNN declines the geometry; ``relu=True`` applies ReLU as the kernel's epilogue.
    Memory: blocked copies of ``x``, ``w`` and the output."""
    y_shape = (x.shape[0], w.shape[0], *out_hw)
    return _run(_FORWARD_TRAINING, x, w, y_shape, x.shape, w.shape, y_shape, (stride, pad, dilation, groups), b,
                relu)


def conv_backward_data(g, w, x_shape, stride, pad, dilation, groups: int):
    """The input gradient of ``conv2d`` for the output gradient ``g``: ``(N, C, H, W)`` = ``x_shape`` (or None).
    Memory: blocked copies of ``g``, ``w`` and the result."""
    x_shape = tuple(x_shape)
    return _run(_BACKWARD_DATA, g, w, x_shape, x_shape, w.shape, g.shape, (stride, pad, dilation, groups))


def conv_backward_weights(x, g, kernel, stride, pad, dilation, groups: int):
    """The weight gradient of ``conv2d``: ``(O, C / groups, KH, KW)`` for input ``x`` and output gradient ``g``
    (or None). Memory: blocked copies of ``x``, ``g`` and the result."""
    w_shape = (g.shape[1], x.shape[1] // groups, *kernel)
    return _run(_BACKWARD_WEIGHTS, x, g, w_shape, x.shape, w_shape, g.shape, (stride, pad, dilation, groups))


def _matrix_strides(a):
    """Element strides of ``a`` when oneDNN's GEMM kernels can read it in place: no broadcast (zero) or
    negative strides, and one of the two matrix dimensions unit-stride. Else None."""
    st = [v // 4 for v in a.strides]
    if min(st, default=1) <= 0 or any(v % 4 for v in a.strides) or 1 not in st[-2:]:
        return None
    return st


def _matmul_plan(dnn, a, b, bias: bool = False, relu: bool = False):
    """The bound matmul primitive for these shapes and strides (plus a bias row and a ReLU epilogue) and the
    result's shape, or None."""
    if a.ndim < 2 or b.ndim < 2:
        return None
    sa, sb = _matrix_strides(a), _matrix_strides(b)
    if sa is None or sb is None:
        return None
    nd = max(a.ndim, b.ndim)
    da, db = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    sa, sb = [sa[0]] * (nd - a.ndim) + sa, [sb[0]] * (nd - b.ndim) + sb
    batch = []
    for x, y in zip(da[:-2], db[:-2]):
        if x != y and 1 not in (x, y):
            return None
        batch.append(max(x, y))
    full = (*batch, da[-2], db[-1])
    a_md, b_md, c_md = dnn.md(da, strides=sa), dnn.md(db, strides=sb), dnn.md(full)
    bias_md = dnn.md((1,) * (nd - 1) + full[-1:]) if bias else None
    pd = _vp()
    dnn.check(dnn.lib.dnnl_matmul_primitive_desc_create(ctypes.byref(pd), dnn.engine, a_md, b_md, bias_md, c_md,
                                                        dnn.relu_attr() if relu else None),
              "dnnl_matmul_primitive_desc_create")
    shape = numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + full[-2:]
    args = [(_SRC, a_md), (_WEIGHTS, b_md), (_DST, c_md)] + ([(_BIAS, bias_md)] if bias else [])
    return dnn.bind(dnn.primitive(pd), args), shape


def matmul(a, b, out=None, bias=None, relu: bool = False):
    """``a @ b`` for float32 arrays of 2 or more dimensions (batch dimensions broadcast, as ``numpy.matmul``),
    read in place (transposed views included), into ``out`` when given (a C-contiguous float32 array of the
    result's shape); None when the layout can't be read in place or the batch dimensions don't broadcast.
    ``bias`` (a float32 vector of the result's last dimension) is added and ``relu`` applied inside the
    kernel (epilogues, no extra pass). Memory: only the result."""
    dnn = _library()
    key = (a.shape, a.strides, b.shape, b.strides, bias is not None, relu)
    with dnn.lock:
        plan = dnn.plan(key, lambda: _matmul_plan(dnn, a, b, bias is not None, relu))
        if plan is None:
            return None
        run, shape = plan
        if out is None:
            out = numpy.empty(shape, numpy.float32)
        elif out.shape != shape or out.dtype != numpy.float32 or not out.flags.c_contiguous:
            return None
        if bias is None:
            run(a, b, out)
        else:
            run(a, b, out, numpy.ascontiguousarray(bias, numpy.float32))
    return out


def _max_pool_plan(dnn, x_shape, k, s, p, d, out):
    """Forward (with workspace) and backward max-pooling primitives on plain NCHW arrays, or None when the
    workspace is not one byte per output (the kernel-offset form :mod:`ember.ops.pool` keeps)."""
    lib = dnn.lib
    y_shape = (*x_shape[:2], *out)
    x_md, y_md = dnn.md(x_shape), dnn.md(y_shape)
    far = [(o - 1) * si + (ki - 1) * di + 1 - n - pi for o, si, ki, di, n, pi in zip(out, s, k, d, x_shape[2:], p)]
    geometry = (_Dims(*s), _Dims(*k), _Dims(*(di - 1 for di in d)), _Dims(*p), _Dims(*far))
    fwd, bwd = _vp(), _vp()
    dnn.check(lib.dnnl_pooling_forward_primitive_desc_create(ctypes.byref(fwd), dnn.engine, _FORWARD_TRAINING,
                                                             _POOLING_MAX, x_md, y_md, *geometry, None),
              "dnnl_pooling_forward_primitive_desc_create")
    ws = dnn.query(fwd, _WORKSPACE)
    if lib.dnnl_memory_desc_get_size(ws) != numpy.prod(y_shape) or k[0] * k[1] > 255:
        return None
    dnn.check(lib.dnnl_pooling_backward_primitive_desc_create(ctypes.byref(bwd), dnn.engine, _POOLING_MAX, x_md, y_md,
                                                              *geometry, fwd, None),
              "dnnl_pooling_backward_primitive_desc_create")
    return (dnn.bind(dnn.primitive(fwd), [(_SRC, x_md), (_DST, y_md), (_WORKSPACE, ws)]),
            dnn.bind(dnn.primitive(bwd), [(_DIFF_DST, y_md), (_WORKSPACE, dnn.query(bwd, _WORKSPACE)),
                                          (_DIFF_SRC, x_md)]))


def max_pool_forward(x, k, s, p, d, out):
    """Max pooling of a float32 NCHW array: ``(maxima, offsets)``, the offsets (uint8, one per output) being
    ``i * KW + j`` of each window's first maximum, as :func:`ember.ops.pool._window_max_arg` gives them; or
    None when oneDNN declines. NaN is not propagated and -inf windows give -FLT_MAX: the caller checks.
    Memory: the two results."""
    dnn = _library()
    key = ("max_pool", x.shape, k, s, p, d, out)
    with dnn.lock:
        plan = dnn.plan(key, lambda: _max_pool_plan(dnn, x.shape, k, s, p, d, out))
        if plan is None:
            return None
        y = numpy.empty((*x.shape[:2], *out), numpy.float32)
        arg = numpy.empty(y.shape, numpy.uint8)
        plan[0](numpy.ascontiguousarray(x), y, arg)
    return y, arg


def max_pool_backward(g, arg, in_shape, k, s, p, d):
    """The input gradient of max pooling: each ``g`` added at the cell its window offset ``arg`` (uint8, from
    :func:`max_pool_forward`) names; None when oneDNN declines. Memory: the result."""
    dnn = _library()
    key = ("max_pool", tuple(in_shape), k, s, p, d, g.shape[2:])
    with dnn.lock:
        plan = dnn.plan(key, lambda: _max_pool_plan(dnn, tuple(in_shape), k, s, p, d, g.shape[2:]))
        if plan is None:
            return None
        dx = numpy.empty(in_shape, numpy.float32)
        plan[1](numpy.ascontiguousarray(g), numpy.ascontiguousarray(arg), dx)
    return dx
