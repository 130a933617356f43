"""``Parameter``: a Tensor that a Module registers as one of its learnable weights."""
from __future__ import annotations

from ..backend import ndarray_types
from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default; assigning one to a Module attribute registers it.

    >>> import ember
    >>> p = ember.nn.Parameter(ember.ones(2))
    >>> p.requires_grad, p.is_leaf
    (True, True)
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        if isinstance(data, Tensor):
            data = data.data   # share the array, as torch.nn.Parameter does
        elif not isinstance(data, ndarray_types):
            from ..creation import _to_array
            data = _to_array(data)
        self.data = data
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(self.data.copy(), requires_grad=self.requires_grad)
        if self.grad is not None:
            out.grad = Tensor(self.grad.data.copy())
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self.data, self.requires_grad))


def _rebuild_parameter(data, requires_grad):
    return Parameter(data, requires_grad=requires_grad)
