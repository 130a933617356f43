"""ONNX: export Ember models for other runtimes, import ONNX models as trainable Ember modules, and the
ONNX backend that runs the ``onnx`` package's conformance suite. Needs the ``onnx`` extra
(``pip install ember-dl[onnx]``); nothing is imported until a function is called.
"""
from __future__ import annotations

__all__ = ["export", "load"]


def export(model, example_inputs, path=None, **kwargs):
    """Export ``model`` to ONNX, written to ``path`` when given (see :func:`ember.onnx.exporter.export`)."""
    from .exporter import export as _export
    return _export(model, example_inputs, path, **kwargs)


def load(path, **kwargs):
    """Load an ONNX model as a trainable ``ember.nn.Module`` (see :func:`ember.onnx.importer.load`)."""
    from .importer import load as _load
    return _load(path, **kwargs)
