"""Small helpers shared by the functional losses and the layer modules of :mod:`ember.nn`."""
from __future__ import annotations

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, who: str, allowed: tuple = _REDUCTIONS) -> None:
    """Reject an unknown ``reduction`` argument, naming the loss and the accepted values."""
    if reduction not in allowed:
        names = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{who}: reduction must be one of {names}, got {reduction!r}")


def functional():
    """:mod:`ember.nn.functional`, imported on first use (it imports the modules package itself)."""
    from . import functional as F
    return F
