"""Graph mode: trace once, optimise, run fast (the lazy, static graph).

* :func:`jit` (also ``ember.jit``): compile a function or module to graphs traced per input signature
  (:mod:`.function`);
* :func:`trace`: the graph of one call (:mod:`.trace`); :class:`Graph` and its values and nodes (:mod:`.ir`);
* :func:`lazy` / :func:`realize` (also ``ember.lazy``, ``ember.realize``): define-then-run (:mod:`.lazy`);
* :mod:`.passes`: the optimisations a traced graph goes through.
"""
from . import fusion, passes
from .function import JitFunction, JitMismatchError, jit
from .ir import Graph, Node, Value
from .lazy import LazyArray, lazy, realize
from .trace import Tracer, TracerWarning, trace

__all__ = ["jit", "trace", "lazy", "realize", "LazyArray", "passes", "fusion", "JitFunction", "JitMismatchError",
           "Graph", "Node", "Value", "Tracer", "TracerWarning"]
