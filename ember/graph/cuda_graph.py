"""CUDA Graph replay of a jitted fixed-shape step (``ember.jit(fn, cuda_graph=True)`` on CuPy arrays).

A training step of a small model launches hundreds of kernels, each paying a few microseconds of Python and
driver overhead; captured once into a CUDA Graph, the whole step is one launch. :class:`CudaGraphStep` runs
the graph's compiled function (:func:`ember.graph.codegen.compile_graph`) once normally, which compiles every
kernel and sets up cuBLAS/cuDNN, then captures a second, non-executing, run of it (and of the ``"copy"``
effects that write new parameters and optimizer state in place) on a side stream. Later calls:

* run the graph's prologue on the host (it writes this step's learning rate, bias corrections, batch-norm
  momentum into the 0-d device arrays the graph reads, in place, so the captured kernels see the new values);
* copy the call's input arrays into the captured input buffers and launch the graph on the current stream;
* read the outputs from the captured output buffers (copied: the next replay overwrites them) and set the
  ``"grad"`` effects.

A capture is refused, with a :class:`CudaGraphWarning`, and the step runs uncaptured from then on, when the
graph holds random ops (their host-drawn numbers would be frozen into the graph) or when capturing fails,
typically because something in the step synchronises with the host (``.item()``, a NumPy-only kernel, a
data-dependent branch such as max pooling's finiteness check). A captured parameter or state whose array
was replaced (``p.data = ...``) since the capture makes the next call capture again.

Memory: the step's temporaries are allocated while capturing, from CuPy's pool on the side stream; CuPy hands
a freed block out again only to work on the stream that freed it, and nothing but captures runs there, so the
blocks stay the graph's while it lives (plus the input buffers and one copy of each output per call).

Everything that touches CUDA here is unverified without a GPU: the CPU tests drive the logic with a stand-in
stream whose graph re-runs the captured function.
"""
from __future__ import annotations

import warnings

from ..tensor import _wrap
from .ir import BackwardOf, Graph, Value

__all__ = ["CudaGraphStep", "CudaGraphWarning"]


class CudaGraphWarning(UserWarning):
    """A step could not be captured as a CUDA Graph and runs kernel by kernel instead."""


def _refusal(graph: Graph) -> str | None:
    """Why this graph cannot be captured at all (before trying), or None."""
    for n in graph.nodes:
        if n.op is BackwardOf or not getattr(n.op, "random", False):
            continue
        if n.attrs.get("dropout_p", 1.0) > 0.0:
            return (f"node {n.name} draws random numbers on the host at every run, which a captured graph "
                    "would replay unchanged")
    return None


class CudaGraphStep:
    """Capture ``graph`` (a frozen graph on CuPy arrays) at its second run and replay it afterwards.

    ``xp`` is the array module the kernels run on (CuPy); ``cuda`` the namespace with ``Stream`` and
    ``get_current_stream`` (``xp.cuda`` unless given: the CPU tests pass a stand-in).
    :meth:`run` has :meth:`Graph.run`'s contract: input arrays in, output arrays out, prologue and effects done.
    """

    def __init__(self, graph: Graph, xp, cuda=None):
        self.graph, self.xp = graph, xp
        self.cuda = cuda if cuda is not None else xp.cuda
        self.disabled = False
        self.captures = 0
        self.replays = 0
        self._exec = self._stream = None
        self._inputs: list = []
        self._outputs: tuple = ()
        self._held: list = []
        reason = _refusal(graph)
        if reason is not None:
            self._give_up(reason)

    def _give_up(self, reason: str) -> None:
        self.disabled, self._exec = True, None
        warnings.warn(f"ember.jit(cuda_graph=True): the step is not captured as a CUDA Graph ({reason}); it runs "
                      "kernel by kernel instead", CudaGraphWarning, stacklevel=4)

    def _buffers(self) -> list:
        """The tensors whose arrays the capture reads or writes: captured values and effect targets."""
        tensors = {id(v.tensor): v.tensor for n in self.graph.nodes for v in n.value_args() if v.kind == "captured"}
        tensors.update((id(t), t) for kind, t, _ in self.graph.effects if kind == "copy")
        return list(tensors.values())

    def _current(self) -> bool:
        """Whether every captured tensor still holds the array the capture recorded."""
        return all(t.data is a for t, a in self._held)

    def _body(self):
        """The step as the capture records it: the compiled graph on the input buffers, then the copy effects."""
        g = self.graph
        outs = g._compiled(self.xp)(*self._inputs)
        for kind, tensor, i in g.effects:
            if kind == "copy" and outs[i] is not tensor.data:
                tensor.data[...] = outs[i]
        return outs

    def _capture(self, arrays) -> None:
        """Record the step on a side stream (nothing runs): input buffers first, then the graph."""
        cuda = self.cuda
        self._inputs = [self.xp.empty_like(a) for a in arrays]
        self._held = [(t, t.data) for t in self._buffers()]
        stream = cuda.Stream(non_blocking=True)
        try:
            with stream:
                stream.begin_capture()
                try:
                    outs = self._body()
                finally:
                    graph = stream.end_capture()
        except Exception as e:          # a host sync or an uncapturable call inside the step
            if getattr(stream, "is_capturing", lambda: False)():
                try:
                    stream.end_capture()
                except Exception:       # the capture was invalidated: ending it reports that again
                    pass
            self._give_up(f"capturing failed: {type(e).__name__}: {e}; usually something in the step waits for "
                          "the device: .item(), bool() of a device array, a NumPy-only kernel")
            return
        self._exec, self._stream, self._outputs = graph, stream, outs
        self.captures += 1

    def run(self, arrays) -> tuple:
        g = self.graph
        if self.disabled:
            return g.run(*arrays)
        if self._exec is None or not self._current():
            results = g.run(*arrays)     # this call's step, normally: compiles every kernel before the capture
            self._capture(arrays)
            return results
        for fn in g.prologue:
            fn()
        for buf, a in zip(self._inputs, arrays):
            self.xp.copyto(buf, a)
        self._exec.launch(stream=self.cuda.get_current_stream())
        self.replays += 1
        results = tuple(o.copy() if isinstance(v, Value) else o for v, o in zip(g.outputs, self._outputs))
        for kind, tensor, i in g.effects:
            if kind == "grad":
                tensor.grad = _wrap(results[i])
        return results
