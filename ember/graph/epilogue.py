"""Epilogue fusion: a ReLU that follows a linear layer or a convolution runs inside its product kernel.

``relu(linear(x, w, b))`` and ``relu(conv2d(x, w, b))`` are the most common pairs of a network, and the
ReLU is a whole extra pass over the product's result. oneDNN applies it as a post-op while the result is
still in registers (:func:`ember.backend.onednn.matmul`, :func:`ember.backend.onednn.conv_forward`), with
the same float32 results as the two ops apart. The pass rewrites a pair when nothing else reads the
product's result and no backward node reads the product op's state (the traced gradient rules read only
graph values: linear's and conv's inputs and the ReLU's output, which the fused node still makes).
Elsewhere (float64, CuPy, no oneDNN) the fused ops run the product and a ReLU in place on its result.
"""
from __future__ import annotations

from ..backend import onednn, uses_onednn
from ..ops.activation import Relu
from ..ops.conv import Conv2d
from ..ops.linalg import Linear
from .ir import BackwardOf, Graph

__all__ = ["LinearRelu", "Conv2dRelu", "fuse_epilogues"]


class LinearRelu(Linear):
    """``relu(x @ w.T + b)`` in one kernel (graph mode only: made by :func:`fuse_epilogues`)."""

    name_ = "linear_relu"
    differentiable = False

    def forward(self, x, w, b=None):
        xp = self.xp
        if x.ndim == 2 and b is not None and uses_onednn(xp, x, w.T):    # where eager's linear takes oneDNN too
            out = onednn.matmul(x, w.T, bias=b, relu=True)
            if out is not None:
                return out
        out = super().forward(x, w, b)
        return xp.maximum(out, 0, out=out)


class Conv2dRelu(Conv2d):
    """``relu(conv2d(x, w) + b)`` in one kernel (graph mode only: made by :func:`fuse_epilogues`)."""

    name_ = "conv2d_relu"
    differentiable = False

    def forward(self, x, w, b=None, *, stride, pad, dilation, groups, out_hw):
        xp = self.xp
        if onednn.usable(xp, x, w):
            out = onednn.conv_forward(x, w, b, stride, pad, dilation, groups, out_hw, relu=True)
            if out is not None:
                return out
        out = super().forward(x, w, b, stride=stride, pad=pad, dilation=dilation, groups=groups, out_hw=out_hw)
        return xp.maximum(out, 0, out=out)


_FUSED = {Linear: LinearRelu, Conv2d: Conv2dRelu}


def fuse_epilogues(graph: Graph) -> Graph:
    """Rewrite each ``relu(linear | conv2d)`` pair into one fused node (in place; see the module docstring)."""
    users = graph.users()
    kept = {v.id for v in graph.outputs if hasattr(v, "id")}
    replayed = {id(n.attrs["forward"]) for n in graph.nodes if n.op is BackwardOf}
    gone = set()
    for n in graph.nodes:
        if n.op is not Relu or id(n) in replayed:
            continue
        v = n.args[0]
        p = getattr(v, "producer", None)
        if p is None or v.kind != "node" or p.op not in _FUSED or id(p) in replayed or id(p) in gone:
            continue
        if v.id in kept or len(users.get(v.id, ())) != 1 or v.dtype.kind != "f":
            continue
        p.op = _FUSED[p.op]
        p.outputs = n.outputs
        for out in p.outputs:
            out.producer = p
        gone.add(id(n))
    graph.nodes = [n for n in graph.nodes if id(n) not in gone]
    return graph
