"""Grad mode: whether ops record the graph. Thread-local; usable as context manager or decorator."""
from __future__ import annotations

import functools
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode"]


class _State(threading.local):
    enabled = True
    tracer = None      # graph mode: the ember.jit tracer that records every op call, when one is active
    lazy = None        # lazy mode: the recorder of an ``ember.lazy()`` block
    lazy_type = None   # ember.graph.lazy.LazyArray, once that module is loaded
    autocast = None    # ember.autocast: the active casting state (None when off, so Op.apply pays one lookup)


_state = _State()


def is_grad_enabled() -> bool:
    """True when new ops record the graph for ``backward()``."""
    return _state.enabled


class _GradModeContext:
    """Base of the grad-mode switches: a context manager that also decorates functions."""

    _target = True

    def __new__(cls, *args):
        if len(args) == 1 and callable(args[0]) and cls is not set_grad_enabled:
            return cls()(args[0])          # bare decorator: @ember.no_grad
        return super().__new__(cls)

    def __enter__(self):
        self._prev = _state.enabled
        _state.enabled = self._target
        return self

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, fn):
        target = self._target

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _state.enabled
            _state.enabled = target
            try:
                return fn(*args, **kwargs)
            finally:
                _state.enabled = prev
        return wrapper


class no_grad(_GradModeContext):
    """Disable graph recording (evaluation, weight updates).

    >>> import ember
    >>> x = ember.ones(2, requires_grad=True)
    >>> with ember.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _target = False


class enable_grad(_GradModeContext):
    """Re-enable graph recording inside a ``no_grad`` block."""

    _target = True


class inference_mode(no_grad):
    """Alias of :class:`no_grad` (PyTorch's name for inference-only code)."""

    def __init__(self, mode: bool = True):
        self._target = not mode


class set_grad_enabled(_GradModeContext):
    """Turn recording on or off: ``set_grad_enabled(False)`` as a call, context manager or decorator."""

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = _state.enabled
        _state.enabled = self._target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, fn):
        _state.enabled = self._prev        # used as a decorator: the call itself must not switch
        return super().__call__(fn)
