"""A training step the graph-mode tests share: the same step runs eagerly and through ``ember.jit``."""
from __future__ import annotations

import ember


def cross_entropy_step(model, opt, x=None, y=None):
    """zero_grad, cross entropy of ``model(x)`` against ``y``, backward, optimizer step; returns the loss.
    Called with no arguments, the step trains on the ``x`` and ``y`` given here."""
    def step(*batch):
        bx, by = batch or (x, y)
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(model(bx), by)
        loss.backward()
        opt.step()
        return loss
    return step
