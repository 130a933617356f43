"""``ember.Tensor``: an n-dimensional array on a backend, with reverse-mode gradients.

The Tensor holds its backend array in ``.data`` and, when it was produced by a recorded
op, the graph node that made it (``.grad_fn``). Arithmetic and most methods are bound
here from :mod:`ember.ops`, where each op's forward and gradient are defined together.
"""
from __future__ import annotations

import numpy as _np_for_types  # only for isinstance checks of NumPy scalars handed in by users

from . import dtypes as _dt
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
    _version = 0          # bumped by in-place ops, checked by ops that saved this tensor
    _base = None          # tensor this one views (in-place on a view updates it)
    __array_ufunc__ = None   # make ``ndarray op tensor`` defer to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if not isinstance(data, ndarray_types):
            from .creation import _to_array
            data = _to_array(data, dtype)
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
        return self.data.dtype.kind == "f"

    @property
    def xp(self):
        """The array module (NumPy or CuPy) that holds this tensor's data."""
        return array_module(self.data)

    # ------------------------------------------------------------ conversion
    def numpy(self):
        """The data as a NumPy array (shares memory on the CPU). Refuses tensors that require grad."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self.data

    def __array__(self, dtype=None, copy=None):
        a = self.data
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): a tensor with {self.data.size} elements cannot be converted to a Python "
                             f"scalar (shape {tuple(self.data.shape)}); expected exactly one element")
        return self.data.reshape(()).item()

    def tolist(self):
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
        """Return a tensor with another dtype and/or device: ``t.to(ember.float64)``, ``t.to('cpu')``."""
        for a in args:
            if isinstance(a, (str,)) or type(a).__name__ == "device":
                device = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
            else:
                dtype = a
        out = self
        if device is not None:
            from .backend import device as _device
            _device(device)   # only the CPU exists in this build; raises a clear error otherwise
        if dtype is not None and _dt.as_dtype(dtype).np != self.data.dtype:
            from .ops.elementwise import cast
            out = cast(self, _dt.as_dtype(dtype))
        elif copy:
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

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool_)

    def cpu(self):
        return self

    def detach(self) -> "Tensor":
        """A tensor sharing this data, cut from the graph."""
        return _wrap(self.data)

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Mark a leaf tensor so that ``backward()`` fills its ``.grad``."""
        if requires_grad and self.data.dtype.kind not in "fc":
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

    # ------------------------------------------------------------ in-place updates (no graph)
    def _inplace_check(self, op: str):
        from .autograd.grad_mode import _state
        if _state.enabled and self.requires_grad and self._node is None:
            raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place operation; "
                               "wrap the update in `with ember.no_grad():`")

    def _bump(self):
        self._version += 1
        return self

    def zero_(self):
        self._inplace_check("zero_")
        self.data[...] = 0
        return self._bump()

    def fill_(self, value):
        self._inplace_check("fill_")
        self.data[...] = value.data if isinstance(value, Tensor) else value
        return self._bump()

    def copy_(self, src):
        self._inplace_check("copy_")
        src = src.data if isinstance(src, Tensor) else src
        self.data[...] = src
        return self._bump()

    def set_(self, src):
        """Replace the data array itself (shape may change); no graph is recorded."""
        self.data = src.data if isinstance(src, Tensor) else src
        return self._bump()

    def _inplace(self, name, ufunc, other):
        self._inplace_check(name)
        other = other.data if isinstance(other, Tensor) else other
        if self.data.dtype.kind != "f" and ufunc.__name__ == "divide":
            raise RuntimeError(f"{name}: result type float can't be cast to the integer tensor's dtype {self.dtype}")
        ufunc(self.data, other, out=self.data, casting="unsafe")
        return self._bump()

    def add_(self, other, alpha=1):
        if alpha != 1:
            other = (other.data if isinstance(other, Tensor) else other) * alpha
        return self._inplace("add_", self.xp.add, other)

    def sub_(self, other, alpha=1):
        if alpha != 1:
            other = (other.data if isinstance(other, Tensor) else other) * alpha
        return self._inplace("sub_", self.xp.subtract, other)

    def mul_(self, other):
        return self._inplace("mul_", self.xp.multiply, other)

    def div_(self, other):
        return self._inplace("div_", self.xp.true_divide, other)

    def clamp_(self, min=None, max=None):
        self._inplace_check("clamp_")
        self.xp.clip(self.data, min, max, out=self.data)
        return self._bump()

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
        return tensor_repr(self)

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
