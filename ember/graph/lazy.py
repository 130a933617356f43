"""Lazy mode: ``with ember.lazy():`` ops build a graph without computing; reading a value runs it.

Inside the block each op call is recorded (define), and its result is a tensor whose ``data`` is a
:class:`LazyArray`: a shape and dtype, no values. ``ember.realize(*tensors)``, ``.numpy()``, ``.item()``,
``.tolist()``, printing, or handing the tensor to NumPy or to an op that runs eagerly runs the recorded graph
up to those values (run), through the same passes and fusion as ``ember.jit``; realized values become
constants of the graph, so nothing is computed twice.

The result's shape comes from a shape rule: elementwise, unary, activation and softmax ops (broadcast shapes,
the dtype found by running the op on one-element stand-ins), sum/mean/amax/amin, matmul, linear, reshape,
permute, indexing and expand (run on zero-strided stand-ins: views, no arithmetic), convolutions, pooling,
normalizations, dropout, embedding, attention, cross entropy, cat, split and pad. Any other op realizes its inputs
and runs at once, so programs still work, just less lazily. Lazy mode records no gradients (use
``ember.jit`` to compile training).

>>> import ember
>>> with ember.lazy():
...     y = (ember.ones(3) * 2 + 1).exp().sum()
>>> type(y.data).__name__
'LazyArray'
>>> round(y.item(), 3)
60.257
"""
from __future__ import annotations

import numpy

from ..autograd.grad_mode import _state
from ..backend import broadcast_shapes
from ..tensor import Tensor, _wrap
from .ir import Graph, Value

__all__ = ["lazy", "realize", "LazyArray"]


class LazyArray:
    """The data of a lazy tensor: its ``shape`` and ``dtype``, and the graph value that will compute it.
    NumPy conversion (``numpy.asarray``), indexing or any other array attribute computes it."""

    __slots__ = ("shape", "dtype", "value", "recorder")

    def __init__(self, shape, dtype, value, recorder):
        self.shape, self.dtype, self.value, self.recorder = tuple(shape), numpy.dtype(dtype), value, recorder

    base = None                      # never a view of another array (read by the view bookkeeping of reshape)
    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(numpy.prod(self.shape, dtype=numpy.int64)))
    itemsize = property(lambda self: self.dtype.itemsize)

    def __array__(self, dtype=None, copy=None):
        a = self.recorder.compute([self])[0]
        return a if dtype is None else a.astype(dtype)

    def __getattr__(self, name):
        # any other use of the array (strides, flags, methods) computes it: correct, just no longer lazy
        return getattr(self.__array__(), name)

    def __getitem__(self, index):
        return self.__array__()[index]

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"LazyArray(shape={self.shape}, dtype={self.dtype.name})"


def _is_elementwise(op) -> bool:
    from ..ops.softmax import LogSoftmax, Softmax
    return op.__module__ in ("ember.ops.elementwise", "ember.ops.unary", "ember.ops.activation") or \
        op in (Softmax, LogSoftmax)


def _stand_in(a):
    return numpy.zeros((1,) * a.ndim, a.dtype) if hasattr(a, "ndim") else a


def _meta(op, attrs: dict, args) -> list | None:
    """``[(shape, dtype)]`` of the op's results from its arguments' shapes, or None (no rule)."""
    from ..ops.linalg import Linear, MatMul
    from ..ops.reduce import AMax, AMin, Mean, Sum
    from ..ops.shape import Permute, Reshape
    arrays = [a for a in args if hasattr(a, "shape") and hasattr(a, "dtype")]
    if not arrays:
        return None
    if _is_elementwise(op):
        inst = op.__new__(op)
        inst.attrs, inst.xp = attrs, numpy
        try:
            with numpy.errstate(all="ignore"):
                out = inst.forward(*[_stand_in(a) for a in args], **attrs)
        except Exception:
            return None
        if type(out) is tuple:
            return None
        return [(broadcast_shapes(*[a.shape for a in arrays]), numpy.asarray(out).dtype)]
    x = arrays[0]
    if op in (Sum, Mean, AMax, AMin):
        axes = attrs.get("axes")
        axes = range(x.ndim) if axes is None else [a % x.ndim for a in (axes if isinstance(axes, (tuple, list))
                                                                        else (axes,))]
        keep = attrs.get("keepdim", False)
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape) if keep or i not in axes)
        dtype = attrs.get("dtype") or (numpy.float64 if op is Mean and x.dtype.kind in "iub" else None)
        if op is Sum and x.dtype.kind in "iub":
            dtype = numpy.int64
        return [(shape, numpy.dtype(dtype) if dtype is not None else x.dtype)]
    if op is _split():
        a = _named(op, args, attrs)
        dim = a["dim"] % x.ndim
        return [(x.shape[:dim] + (int(n),) + x.shape[dim + 1:], x.dtype) for n in a["sizes"]]
    if op in _views():
        try:
            return [(tuple(_view_shape(op, attrs, args)), x.dtype)]
        except Exception:
            return None
    if op is Reshape:
        return [(_reshaped(x.shape, attrs["shape"]), x.dtype)]
    if op is Permute:
        return [(tuple(x.shape[a] for a in attrs["axes"]), x.dtype)]
    if op is MatMul and len(arrays) == 2 and min(a.ndim for a in arrays) >= 2:
        a, b = arrays
        return [(broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                 numpy.result_type(a.dtype, b.dtype))]
    if op is Linear:
        return [(x.shape[:-1] + (arrays[1].shape[0],), numpy.result_type(*[a.dtype for a in arrays]))]
    rule = _rules().get(op)
    if rule is None:
        return None
    a = _named(op, args, attrs)
    try:
        out = rule(a, x)
    except Exception:            # an unexpected argument layout: no rule (the op runs eagerly)
        return None
    return None if out is None else [(tuple(int(n) for n in out), x.dtype)]


def _named(op, args, attrs) -> dict:
    """The op's ``forward`` arguments by name (positional and keyword alike)."""
    import inspect
    bound = inspect.signature(op.forward).bind(None, *args, **attrs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _view_shape(op, attrs, args):
    """The result shape of a view op, from running it on zero-strided stand-ins (no memory, no arithmetic)."""
    inst = op.__new__(op)
    inst.attrs, inst.xp = attrs, numpy
    stand = [numpy.broadcast_to(numpy.zeros((), a.dtype), a.shape) if isinstance(a, LazyArray) else a for a in args]
    return inst.forward(*stand, **attrs).shape


_RULES: dict = {}


def _rules() -> dict:
    """Shape rules of the ops beyond elementwise and reductions: ``rule(named args, first array) -> shape``."""
    if _RULES:
        return _RULES
    from ..nn._cross_entropy import CrossEntropy
    from ..ops.attention import ScaledDotProductAttention
    from ..ops.conv import Conv2d, ConvTranspose2d
    from ..ops.embedding import Embedding
    from ..ops.join import Cat, ConstantPad
    from ..ops.normalization import ChannelAffine, Normalize
    from ..ops.pool import _AvgPool, _MaxPool
    from ..ops.random import Dropout
    from ..ops.shape import Clone, Flip, Roll
    same = lambda a, x: x.shape  # noqa: E731
    _RULES.update({
        Normalize: same, ChannelAffine: same, Dropout: same, Clone: same, Flip: same, Roll: same,
        Conv2d: lambda a, x: (x.shape[0], a["w"].shape[0], *a["out_hw"]),
        ConvTranspose2d: lambda a, x: a["x_shape"],
        _MaxPool: lambda a, x: (*x.shape[:2], *a["out"]),
        _AvgPool: lambda a, x: (*x.shape[:2], *a["out"]),
        Embedding: lambda a, x: (*a["indices"].shape, a["weight"].shape[1]),
        ScaledDotProductAttention: lambda a, x: None if a["need_weights"] else (*a["q"].shape[:-1],
                                                                                a["v"].shape[-1]),
        CrossEntropy: lambda a, x: (x.shape[:1] + x.shape[2:]) if a["reduction"] == "none" else (),
        Cat: lambda a, x: _cat_shape([v.shape for v in a["arrays"]], a["axis"]),
        ConstantPad: lambda a, x: _padded_shape(x.shape, a["pads"]),
    })
    return _RULES


def _cat_shape(shapes, axis: int) -> tuple:
    axis %= len(shapes[0])
    return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]


def _padded_shape(shape, pads) -> tuple:
    """``pads`` as NumPy's ``((before, after), ...)`` per dimension, or PyTorch's flat last-dimension-first."""
    pads = list(pads)
    if pads and isinstance(pads[0], (tuple, list)):
        return tuple(n + int(b) + int(e) for n, (b, e) in zip(shape, pads))
    out = list(shape)
    for i in range(len(pads) // 2):
        out[-1 - i] += int(pads[2 * i]) + int(pads[2 * i + 1])
    return tuple(out)


def _split():
    from ..ops.join import Split
    return Split


def _views() -> tuple:
    from ..ops.index import GetItem
    from ..ops.shape import Expand
    return (GetItem, Expand)


def _reshaped(shape, target) -> tuple:
    target = tuple(target)
    if -1 in target:
        known = int(numpy.prod([t for t in target if t != -1], dtype=numpy.int64)) or 1
        total = int(numpy.prod(shape, dtype=numpy.int64))
        target = tuple(total // known if t == -1 else t for t in target)
    return target


class LazyRecorder:
    """The graph of a ``lazy()`` block: op calls recorded by :meth:`defer`, run by :meth:`compute`."""

    def __init__(self):
        self.graph = Graph()
        self.captured: dict = {}    # id(array) -> Value of a real tensor read by the graph

    def value_of(self, t: Tensor) -> Value:
        a = t.data
        if isinstance(a, LazyArray):
            return a.value
        v = self.captured.get(id(a))
        if v is None:
            v = self.captured[id(a)] = Value("captured", a.shape, a.dtype, tensor=t)
        return v

    def defer(self, op, attrs: dict, inputs):
        """The op's result as lazy tensors, or None when it has no shape rule (it then runs eagerly)."""
        datas = [t.data if isinstance(t, Tensor) else t for t in inputs]
        specs = _meta(op, attrs, datas)
        if specs is None:
            return None
        args = [self.value_of(t) if isinstance(t, Tensor) else t for t in inputs]
        outs = self.graph.add(op, attrs, args, specs)
        results = tuple(_wrap(LazyArray(v.shape, v.dtype, v, self)) for v in outs)
        return results if len(results) > 1 or op is _split() else results[0]

    def compute(self, lazies) -> list:
        """Run the recorded graph for these LazyArrays; their values become constants of the graph."""
        from .fusion import fuse_elementwise
        from .function import _copy
        from .passes import optimize
        todo = [z for z in lazies if z.value.kind != "const"]
        if todo:
            g = Graph(nodes=self.graph.nodes, outputs=[z.value for z in todo])
            g.out_tree = None
            run = fuse_elementwise(optimize(_copy(g)))
            prev, _state.lazy = _state.lazy, None
            try:
                arrays = run.run()
            finally:
                _state.lazy = prev
            for z, a in zip(todo, arrays):
                v = z.value
                v.kind, v.const, v.producer = "const", numpy.asarray(a) if numpy.isscalar(a) else a, None
        return [z.value.const for z in lazies]


def realize(*tensors):
    """Compute lazy tensors (in place: their ``data`` becomes the array); returns the first, or all as a tuple.

    >>> import ember
    >>> with ember.lazy():
    ...     a = ember.arange(4.0) * 2
    >>> ember.realize(a).tolist()
    [0.0, 2.0, 4.0, 6.0]
    """
    lazies = [t.data for t in tensors if isinstance(t.data, LazyArray)]
    by_recorder: dict = {}
    for z in lazies:
        by_recorder.setdefault(id(z.recorder), (z.recorder, []))[1].append(z)
    for recorder, zs in by_recorder.values():
        recorder.compute(zs)
    for t in tensors:
        if isinstance(t.data, LazyArray):
            t.data = t.data.value.const
    return tensors[0] if len(tensors) == 1 else tensors


class lazy:
    """``with ember.lazy():``: ops inside record a graph instead of computing (see :mod:`ember.graph.lazy`)."""

    def __enter__(self):
        if _state.tracer is not None:
            raise RuntimeError("ember.lazy: not inside ember.jit tracing (the trace already records the graph)")
        self._prev, self._prev_grad = _state.lazy, _state.enabled
        _state.lazy, _state.enabled = LazyRecorder(), False
        return _state.lazy

    def __exit__(self, *exc):
        _state.lazy, _state.enabled = self._prev, self._prev_grad
        return False


type(_state).lazy_type = LazyArray       # lets Op.apply and Tensor realize lazy data they meet
