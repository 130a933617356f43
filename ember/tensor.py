"""``ember.Tensor``: an n-dimensional array on a backend, with reverse-mode gradients.

The Tensor holds its backend array in ``.data`` and, when it was produced by a recorded
op, the graph node that made it (``.grad_fn``). Arithmetic and most methods are bound
here from :mod:`ember.ops`, where each op's forward and gradient are defined together.
"""
from __future__ import annotations

import numpy as _np_for_types  # only for isinstance checks of NumPy scalars handed in by users

from . import dtypes as _dt
from .autograd.grad_mode import _state as _grad_state
from .backend import array_module, device_of, ndarray_types

__all__ = ["Tensor"]


class Tensor:
    """A multi-dimensional array that can record the ops applied to it for ``backward()``.

    Create tensors with :func:`ember.tensor`, :func:`ember.zeros`, ... rather than this class.

    >>> import ember
    >>> x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    # class-level defaults keep creation cheap: a new tensor sets only ``data``
    requires_grad = False
    grad = None
    _node = None          # the op that produced this tensor (None for leaves)
    _idx = 0              # which output of that op
    _accum = None         # AccumulateGrad node of a leaf, created on first use
    _hooks = None         # gradient hooks of a leaf
    _vc = None            # version cell [n], shared with views: bumped by in-place ops, checked by saved tensors
    __array_ufunc__ = None   # make ``ndarray op tensor`` defer to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if not isinstance(data, ndarray_types):
            from .creation import _to_array
            data = _to_array(data, dtype)
            if _grad_state.tracer is not None:   # a new array: a constant of a graph being traced
                _grad_state.tracer.made(data)
        elif dtype is not None:
            data = data.astype(_dt.as_dtype(dtype).np, copy=False)
        self.data = data
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------ metadata
    @property
    def shape(self):
        return Size(self.data.shape)

    @property
    def dtype(self) -> _dt.dtype:
        return _dt.from_np(self.data.dtype)

    @property
    def device(self):
        return device_of(self.data)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self.data.shape)
        nd = self.data.ndim
        if not -nd <= dim < nd:
            raise IndexError(f"size(): dimension {dim} is out of range for a tensor with {nd} dims"
                             + (f" (expected a value in [{-nd}, {nd - 1}])" if nd else ""))
        return self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return self.data.itemsize

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def is_floating_point(self) -> bool:
        return _dt.is_float(self.data.dtype)

    @property
    def xp(self):
        """The array module (NumPy or CuPy) that holds this tensor's data."""
        return array_module(self.data)

    # ------------------------------------------------------------ conversion
    def _realized(self):
        """This tensor, with lazy-mode data computed first (``ember.lazy``)."""
        if _grad_state.lazy_type is not None and type(self.data) is _grad_state.lazy_type:
            from .graph.lazy import realize
            realize(self)
        return self

    def numpy(self):
        """The data as a NumPy array (shares memory on the CPU). Refuses tensors that require grad."""
        self._realized()
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        if _grad_state.tracer is not None:
            _grad_state.tracer.leak(self, "numpy()")
        if type(self.data) is not _np_for_types.ndarray:
            if self.device.type != "cpu":
                raise TypeError(f"can't convert a {self.device} tensor to NumPy; copy it to the host first with "
                                "tensor.cpu()")
            from .backend import to_host
            return to_host(self.data)
        return self.data

    def __array__(self, dtype=None, copy=None):
        a = self._realized().data
        if type(a) is not _np_for_types.ndarray:
            from .backend import to_host
            a = to_host(a)
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        """The value of a one-element tensor as a Python number."""
        self._realized()
        if self.data.size != 1:
            raise ValueError(f"item(): a tensor with {self.data.size} elements cannot be converted to a Python "
                             f"scalar (shape {tuple(self.data.shape)}); expected exactly one element")
        if _grad_state.tracer is not None:
            _grad_state.tracer.leak(self, "item()")
        return self.data.reshape(()).item()

    def tolist(self):
        self._realized()
        if _grad_state.tracer is not None:
            _grad_state.tracer.leak(self, "tolist()")
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __hash__(self):
        return id(self)

    def to(self, *args, dtype=None, device=None, copy: bool = False):
        """Return a tensor with another dtype and/or device: ``t.to(ember.float64)``, ``t.to('cuda')``.

        Differentiable: the gradient flows back to this tensor's device and dtype.
        """
        for a in args:
            if isinstance(a, (str, int)) and not isinstance(a, bool) or type(a).__name__ == "device":
                device = a
            elif isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            else:
                dtype = a
        out = self
        if device is not None:
            from .backend import device as _device
            dev = _device(device)
            if dev != self.device:
                from .ops.elementwise import to_device
                out = to_device(self, dev)
        if dtype is not None and _dt.as_dtype(dtype).np != out.data.dtype:
            from .ops.elementwise import cast
            out = cast(out, _dt.as_dtype(dtype))
        elif copy and out is self:
            out = out.clone()
        return out

    def type(self, dtype=None):
        if dtype is None:
            return f"ember.{type(self).__name__}[{self.dtype.name}]"
        return self.to(dtype)

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def bfloat16(self):
        return self.to(_dt.bfloat16)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool_)

    def cpu(self) -> "Tensor":
        """This tensor on the CPU (itself when it is already there)."""
        return self.to("cpu")

    def cuda(self, device=None) -> "Tensor":
        """This tensor on CUDA device ``device`` (an index, ``'cuda:N'``; the current GPU by default)."""
        return self.to("cuda" if device is None else device if not isinstance(device, int) else f"cuda:{device}")

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def detach(self) -> "Tensor":
        """A tensor sharing this data (and its version counter), cut from the graph."""
        t = _wrap(self.data)
        t._vc = self._version_cell()
        return t

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Mark a leaf tensor so that ``backward()`` fills its ``.grad``."""
        if requires_grad and not (_dt.is_float(self.data.dtype) or self.data.dtype.kind == "c"):
            raise RuntimeError(f"only tensors of floating point dtype can require gradients, got {self.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach() to cut it from the graph")
        self.requires_grad = bool(requires_grad)
        return self

    # ------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see :func:`ember.autograd.backward`)."""
        from .autograd.engine import backward
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it."""
        from .autograd.node import register_tensor_hook
        return register_tensor_hook(self, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after ``backward()``."""
        from .autograd.node import retain_tensor_grad
        retain_tensor_grad(self)

    @property
    def retains_grad(self) -> bool:
        node = self._node
        return node is not None and bool(node.retained) and self._idx in node.retained

    # ------------------------------------------------------------ in-place updates
    # An in-place op computes its result with the ordinary (out-of-place) op, so promotion, broadcasting
    # and errors are the same, then writes it into this tensor: into ``.data`` when no gradient is
    # recorded, or by taking over the result's graph node when one is (as PyTorch's in-place ops do).
    def _inplace_check(self, op: str):
        from .autograd.grad_mode import _state
        if _state.enabled and self.requires_grad and self._node is None:
            raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place operation; "
                               "wrap the update in `with ember.no_grad():`")

    @property
    def _version(self) -> int:
        """How many times this tensor's memory was changed in place (shared with its views)."""
        vc = self._vc
        return 0 if vc is None else vc[0]

    @_version.setter
    def _version(self, value: int):
        self._version_cell()[0] = value

    def _version_cell(self) -> list:
        vc = self._vc
        if vc is None:
            vc = self._vc = [0]
        return vc

    def _bump(self):
        self._version_cell()[0] += 1
        return self

    def _commit(self, name: str, out: "Tensor") -> "Tensor":
        """Write the result ``out`` of an in-place op into this tensor (checked like PyTorch)."""
        from .autograd.node import OpError
        from .ops.index import _rebase
        if out.data.shape != self.data.shape:
            raise OpError(f"{name}: the result has shape {tuple(out.data.shape)}, which can't be written into a "
                          f"tensor of shape {tuple(self.data.shape)} (the other operand must broadcast to it)")
        if _dt.from_np(out.data.dtype).category > _dt.from_np(self.data.dtype).category:
            raise OpError(f"{name}: result type {out.dtype} can't be cast to the desired output type {self.dtype}")
        if out.data.dtype != self.data.dtype:
            from .ops.elementwise import cast
            out = cast(out, self.dtype)
        return _rebase(self, out)

    def _apply_inplace(self, name: str, fn, *args):
        self._inplace_check(name)
        src = self
        if self.requires_grad:
            # the op must see (and save for its gradient) the value before the write: a stand-in for it
            src = _wrap(self.data, requires_grad=True)
            src._node, src._idx = self._node, self._idx
            args = tuple(src if a is self else a for a in args)
        return self._commit(name, fn(src, *args))

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        """Fill with ``value`` (a number or a one-element tensor)."""
        from .autograd.grad_mode import _state
        if _state.enabled and (self.requires_grad or getattr(value, "requires_grad", False)):
            return self._apply_inplace("fill_", lambda s, v: s * 0 + v, value)
        self._inplace_check("fill_")
        self.data[...] = value.data if isinstance(value, Tensor) else value
        return self._bump()

    def copy_(self, src):
        """Copy ``src`` (broadcast, cast to this dtype) into this tensor."""
        from .autograd.grad_mode import _state
        if _state.enabled and (self.requires_grad or getattr(src, "requires_grad", False)):
            return self._apply_inplace("copy_", lambda s, v: s * 0 + v, src)
        self._inplace_check("copy_")
        from .autograd.node import OpError
        try:
            self.data[...] = src.data if isinstance(src, Tensor) else src
        except ValueError as e:
            raise OpError(f"copy_: can't copy a source of shape {tuple(getattr(src, 'shape', ()))} into a tensor "
                          f"of shape {tuple(self.data.shape)}: {e}") from None
        return self._bump()

    def set_(self, src):
        """Replace the data array itself (shape may change); no graph is recorded."""
        self.data = src.data if isinstance(src, Tensor) else src
        return self._bump()

    def add_(self, other, alpha=1):
        from .ops.elementwise import add
        return self._apply_inplace("add_", add, other, alpha)

    def sub_(self, other, alpha=1):
        from .ops.elementwise import sub
        return self._apply_inplace("sub_", sub, other, alpha)

    def mul_(self, other):
        from .ops.elementwise import mul
        return self._apply_inplace("mul_", mul, other)

    def div_(self, other, rounding_mode=None):
        from .ops.elementwise import div
        return self._apply_inplace("div_", div, other, rounding_mode)

    def pow_(self, exponent):
        from .ops.elementwise import pow as _pow
        return self._apply_inplace("pow_", _pow, exponent)

    def clamp_(self, min=None, max=None):
        from .ops.unary import clamp
        return self._apply_inplace("clamp_", clamp, min, max)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def uniform_(self, a=0.0, b=1.0):
        from .backend import rng
        self._inplace_check("uniform_")
        self.data[...] = rng().uniform(a, b, size=self.data.shape)
        return self._bump()

    def normal_(self, mean=0.0, std=1.0):
        from .backend import rng
        self._inplace_check("normal_")
        self.data[...] = rng().normal(mean, std, size=self.data.shape)
        return self._bump()

    # ------------------------------------------------------------ printing
    def __repr__(self):
        from .utils.printing import tensor_repr
        return tensor_repr(self._realized())

    __str__ = __repr__


class Size(tuple):
    """A tensor's shape: a tuple that prints as ``ember.Size([2, 3])``."""

    def __repr__(self):
        return f"ember.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


def zero_grads(tensors, set_to_none: bool = True) -> None:
    """Reset ``.grad`` of each tensor: drop it (``set_to_none``) or fill it with zeros in place.

    The one implementation behind ``Module.zero_grad`` and ``Optimizer.zero_grad``.
    """
    for t in tensors:
        if t.grad is None:
            continue
        if set_to_none:
            t.grad = None
        else:
            t.grad.data[...] = 0


def _wrap(data, requires_grad=False):
    """Fast internal constructor: wrap a backend array without checks."""
    t = Tensor.__new__(Tensor)
    t.data = data
    if requires_grad:
        t.requires_grad = True
    return t


def _is_scalar(x) -> bool:
    return isinstance(x, (int, float, bool, _np_for_types.number, _np_for_types.bool_))
