"""Utilities for training modules: gradient clipping (``clip_grad``) and padded/packed sequences (``rnn``)."""
from . import rnn  # noqa: F401
from .clip_grad import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_", "rnn"]
