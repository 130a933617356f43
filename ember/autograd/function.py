"""Custom differentiable functions, PyTorch style: ``ember.autograd.Function``.

>>> import ember
>>> class Square(ember.autograd.Function):
...     @staticmethod
...     def forward(ctx, x):
...         ctx.save_for_backward(x)
...         return x * x
...     @staticmethod
...     def backward(ctx, g):
...         (x,) = ctx.saved_tensors
...         return 2 * x * g
>>> x = ember.tensor([3.0], requires_grad=True)
>>> Square.apply(x).backward(ember.ones(1))
>>> x.grad
tensor([6.])
"""
from __future__ import annotations

from ..dtypes import is_float
from ..tensor import Tensor, _wrap
from .grad_mode import _state
from .node import Node, _leaf_edge, _raise_freed

__all__ = ["Function", "FunctionCtx"]


class FunctionCtx(Node):
    """The ``ctx`` handed to a custom Function: save tensors and flags for ``backward``."""

    kept_when_freed = Node.kept_when_freed + ("fn_cls", "in_shapes", "materialize_grads", "out_meta", "xp")

    def __init__(self, fn_cls):
        self.fn_cls = fn_cls
        self.to_save = ()
        self.needs_input_grad = ()
        self.non_differentiable = set()
        self.materialize_grads = True

    def name(self) -> str:
        return f"<{self.fn_cls.__name__}Backward>"

    def save_for_backward(self, *tensors):
        self.to_save = tensors

    @property
    def saved_tensors(self):
        if self.freed:
            _raise_freed(self)
        return self.to_save

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = bool(value)

    def backward(self, *grads):
        out = self.fn_cls.backward(self, *grads)
        out = out if isinstance(out, tuple) else (out,)
        name = self.fn_cls.__name__
        if len(out) != len(self.in_shapes):
            raise RuntimeError(f"{name}.backward returned {len(out)} gradients, but forward took "
                               f"{len(self.in_shapes)} arguments: return one gradient (or None) per argument")
        for i, (g, shape) in enumerate(zip(out, self.in_shapes)):
            if g is not None and shape is not None and tuple(getattr(g, "shape", ())) != shape:
                raise RuntimeError(f"{name}.backward returned a gradient of shape {tuple(g.shape)} for argument {i}, "
                                   f"which has shape {shape}")
        return out


class Function:
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``; call ``.apply(*args)``.

    ``backward`` returns one gradient per ``forward`` argument (None for non-tensors).
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError("Function subclasses define a static forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover
        raise NotImplementedError("Function subclasses define a static backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx(cls)
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        prev = _state.enabled
        _state.enabled = False
        try:
            outputs = cls.forward(ctx, *args, **kwargs)
        finally:
            _state.enabled = prev
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        if not (prev and any(ctx.needs_input_grad)) or not any(isinstance(o, Tensor) for o in outs):
            return outputs
        ctx.in_shapes = [tuple(a.data.shape) if isinstance(a, Tensor) else None for a in args]
        ctx.edges = [((a._node, a._idx) if a._node is not None else _leaf_edge(a)) if needs else None
                     for a, needs in zip(args, ctx.needs_input_grad)]
        ctx.n_outputs = len(outs)
        ctx.xp = next(o.xp for o in outs if isinstance(o, Tensor))
        ctx.out_meta = [(o.data.shape, o.data.dtype) if isinstance(o, Tensor) else ((), None) for o in outs]
        wrapped = []
        for i, o in enumerate(outs):
            if isinstance(o, Tensor) and is_float(o.data.dtype) and id(o) not in ctx.non_differentiable:
                t = _wrap(o.data)
                t.requires_grad = True
                t._node, t._idx = ctx, i
                wrapped.append(t)
            else:
                wrapped.append(o)
        return wrapped[0] if single else tuple(wrapped)
