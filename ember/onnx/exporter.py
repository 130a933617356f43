"""Export an Ember model to ONNX: trace it once in eval mode, then lower each traced op to ONNX nodes.

The model is traced with :mod:`ember.graph` (every Ember op it calls, with its attributes); parameters and
buffers become initializers named as in ``state_dict()``; each op class is lowered by a function of the
table in :mod:`ember.onnx.export_ops` / :mod:`ember.onnx.export_nn`.

Dynamic axes: a trace has concrete shapes, so with ``dynamic_axes`` the model is traced once more per
dynamic size (that axis one longer). Comparing the traces gives every value's shape as products of the
dynamic sizes (``2 * batch``), and shape-carrying attributes (a reshape's target, a constant's shape) are
emitted as ONNX shape computations (``Shape``/``Mul``/``Concat``) instead of frozen numbers.
"""
from __future__ import annotations

import inspect
import math

import numpy

from ..autograd.grad_mode import _state, no_grad
from ..tensor import Tensor, _wrap

__all__ = ["export", "ExportError", "SymDim"]


class ExportError(NotImplementedError):
    """An Ember op (or a use of it) that has no ONNX lowering: the message names the op and the layer."""


class SymDim:
    """A dimension that depends on dynamic axes: ``coef`` times the product of the symbols ``syms``."""

    __slots__ = ("coef", "syms")

    def __init__(self, coef: int, syms: tuple):
        self.coef, self.syms = int(coef), tuple(sorted(syms))

    def __eq__(self, other):
        return isinstance(other, SymDim) and (self.coef, self.syms) == (other.coef, other.syms)

    def __hash__(self):
        return hash((self.coef, self.syms))

    def __repr__(self):
        return "*".join([str(self.coef)] * (self.coef != 1) + [f"s{s}" for s in self.syms]) or "1"


def sym_mul(a, b):
    """The product of two dims (ints or SymDims)."""
    if not isinstance(a, SymDim) and not isinstance(b, SymDim):
        return a * b
    a = a if isinstance(a, SymDim) else SymDim(a, ())
    b = b if isinstance(b, SymDim) else SymDim(b, ())
    out = SymDim(a.coef * b.coef, a.syms + b.syms)
    return out if out.syms else out.coef


def sym_prod(dims):
    out = 1
    for d in dims:
        out = sym_mul(out, d)
    return out


def host(a) -> numpy.ndarray:
    """``a`` as a NumPy array (a CuPy array is copied to the host)."""
    if hasattr(a, "get") and not isinstance(a, numpy.ndarray):
        a = a.get()
    return numpy.asarray(a)


# ---------------------------------------------------------------- tracing
def _as_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return _wrap(numpy.asarray(x))


def _trace(model, inputs):
    """``(graph, tracer)`` of ``model(*inputs)``: the tracer keeps its map from arrays to graph values, which
    the lowering needs for arrays held in op attributes (an embedding's indices)."""
    from ..graph.trace import Tracer, flatten
    if _state.tracer is not None:
        raise RuntimeError("ember.onnx.export: a trace is already running on this thread")
    tracer = Tracer()
    for i, t in enumerate(inputs):
        tracer.input(t, name=f"%in{i}")
    owners: list = []          # node index -> "path (Type)" of the innermost module running when it was made
    stack: list = []

    def sync():
        owners.extend([stack[-1] if stack else None] * (len(tracer.graph.nodes) - len(owners)))

    def enter(label):
        def hook(module, args):
            sync()
            stack.append(label)
        return hook

    def leave(module, args, output):
        sync()
        if stack:
            stack.pop()
    handles = []
    if hasattr(model, "named_modules"):
        for path, m in model.named_modules():
            label = f"{path or '<root>'} ({type(m).__name__})"
            handles += [m.register_forward_pre_hook(enter(label)), m.register_forward_hook(leave)]
    _state.tracer = tracer
    try:
        with no_grad():
            result = model(*inputs)
    finally:
        _state.tracer = None
        for h in handles:
            h.remove()
    sync()
    leaves: list = []
    flatten(result, leaves)
    tracer.graph.outputs = [tracer.value_of(t) for t in leaves]
    tracer.graph.owners = owners
    return tracer.graph, tracer


def _varied(t: Tensor, axes) -> Tensor:
    """``t`` one longer along each of ``axes`` (its first entries repeated), for a second trace."""
    from ..backend import array_module
    a = t.data
    xp = array_module(a)
    for ax in axes:
        n = a.shape[ax]
        a = xp.take(a, xp.arange(n + 1) % max(n, 1), axis=ax)
    return _wrap(xp.ascontiguousarray(a))


def _symbolic_shapes(graphs, sizes, base_sizes) -> dict:
    """``{value id: shape}`` for every value of ``graphs[0]``, dims as ints or :class:`SymDim`;
    ``graphs[k + 1]`` was traced with symbol ``k`` at ``sizes[k]`` instead of ``base_sizes[k]``."""
    g0 = graphs[0]
    for k, g in enumerate(graphs[1:]):
        if len(g.nodes) != len(g0.nodes) or any(a.op is not b.op for a, b in zip(g.nodes, g0.nodes)):
            first = next((i for i, (a, b) in enumerate(zip(g.nodes, g0.nodes)) if a.op is not b.op),
                         min(len(g.nodes), len(g0.nodes)))
            raise ExportError(f"ember.onnx.export: the traced graph changes with the size of dynamic axis {k} "
                              f"({len(g0.nodes)} vs {len(g.nodes)} nodes, first difference at node {first}); the "
                              "model's Python control flow depends on that size, so it cannot be made dynamic")
    shapes: dict = {}

    def solve(where, dims0, dims_k):
        if any(len(d) != len(dims0) for d in dims_k):
            raise ExportError(f"ember.onnx.export: {where} changes rank with a dynamic axis size")
        out = []
        for j, d0 in enumerate(dims0):
            syms = []
            for k, dk in enumerate(dims_k):
                if dk[j] == d0:
                    continue
                if d0 * sizes[k] != dk[j] * base_sizes[k]:
                    raise ExportError(f"ember.onnx.export: dim {j} of {where} ({d0} -> {dk[j]} when dynamic axis "
                                      f"{k} goes {base_sizes[k]} -> {sizes[k]}) is not a multiple of that axis")
                syms.append(k)
            div = math.prod(base_sizes[k] for k in syms)
            if d0 % div:
                raise ExportError(f"ember.onnx.export: dim {j} of {where} is not a multiple of the dynamic axes")
            out.append(SymDim(d0 // div, tuple(syms)) if syms else d0)
        return tuple(out)

    for i, v in enumerate(g0.inputs):
        shapes[v.id] = solve(f"input {i}", v.shape, [g.inputs[i].shape for g in graphs[1:]])
    for i, n in enumerate(g0.nodes):
        others = [g.nodes[i] for g in graphs[1:]]
        for j, a in enumerate(n.args):
            if hasattr(a, "kind") and a.id not in shapes:
                shapes[a.id] = solve(f"argument {j} of node {i} ({n.name})", a.shape, [o.args[j].shape for o in others])
        for j, v in enumerate(n.outputs):
            shapes[v.id] = solve(f"output {j} of node {i} ({n.name})", v.shape, [o.outputs[j].shape for o in others])
    return shapes


# ---------------------------------------------------------------- naming
def _parameter_names(model) -> dict:
    """``{id(tensor) or id(array): state_dict name}`` for the model's parameters and buffers."""
    names: dict = {}
    if hasattr(model, "named_parameters"):
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t is None:
                continue
            names.setdefault(id(t), name)
            names.setdefault(id(t.data), name)
    return names


def _normalize_dynamic_axes(dynamic_axes, input_names, output_names) -> dict:
    """``{name: {axis: dim_param}}`` from torch's forms (``{name: [axes]}`` or ``{name: {axis: label}}``)."""
    out: dict = {}
    known = set(input_names) | set(output_names)
    for name, axes in (dynamic_axes or {}).items():
        if name not in known:
            raise ValueError(f"ember.onnx.export: dynamic_axes names {name!r}, which is not one of the inputs "
                             f"{list(input_names)} or outputs {list(output_names)}")
        if isinstance(axes, dict):
            out[name] = {int(a): str(label) for a, label in axes.items()}
        else:
            out[name] = {int(a): f"{name}_dynamic_axes_{int(a) + 1}" for a in axes}
    return out


# ---------------------------------------------------------------- the lowering context
class ExportContext:
    """What a lowering function sees: emits ONNX nodes and initializers, names values, and gives shapes
    (with :class:`SymDim` for dims that follow dynamic axes) and runtime shape tensors."""

    def __init__(self, graph, tracer, shapes, param_names, opset: int, sym_sources: dict):
        from onnx import helper
        self.helper = helper
        self.graph, self.tracer, self.shapes, self.opset = graph, tracer, shapes, opset
        self.param_names = param_names
        self.nodes: list = []
        self.initializers: dict = {}
        self.names: dict = {}          # value id -> ONNX name
        self.sym_sources = sym_sources  # symbol -> (input name, axis)
        self._sym_cache: dict = {}
        self._const_cache: dict = {}
        self._count = 0
        self.node = None               # the Ember node being lowered
        self._arrays = None
        self.layer = None              # "path (Type)" of the layer that made it, when known

    def traced_array(self, v):
        """The array ``v`` held in the (first) trace, or None."""
        if self._arrays is None:
            by_id = {id(a): a for a in self.tracer.arrays if hasattr(a, "shape")}
            self._arrays = {val.id: by_id[k] for k, val in self.tracer.values.items() if k in by_id}
        return self._arrays.get(v.id)

    # ---- names
    def fresh(self, hint: str = "t") -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def name(self, v) -> str:
        """The ONNX name of a graph Value (an initializer is made for captured and constant values)."""
        got = self.names.get(v.id)
        if got is not None:
            return got
        if v.kind == "captured":
            name = self.param_names.get(id(v.tensor)) or self.param_names.get(id(v.tensor.data))
            if name is None and self.is_dynamic(v):     # e.g. a zero state ``Tensor(xp.zeros((batch, h)))``
                name = self._dynamic_const(v, v.tensor.data)
            else:
                name = name or self.fresh("captured")
                self.initializers[name] = host(v.tensor.data)
        elif v.kind == "const":
            name = self._dynamic_const(v, v.const)
        else:
            raise ExportError(f"ember.onnx.export: value {v.label()} is read before the node that makes it was lowered")
        self.names[v.id] = name
        return name

    def _dynamic_const(self, v, data) -> str:
        shape = self.shape(v)
        if not any(isinstance(d, SymDim) for d in shape):
            return self.const(host(data), "const", cache=False)
        flat = host(data).reshape(-1)
        if flat.size and not (flat == flat[0]).all():
            self.fail(f"a constant it reads, made during the trace, has a shape that follows a dynamic axis ({shape}) "
                      "but is not filled with one value, so it cannot be rebuilt at run time; compute it from the "
                      "input with Ember ops, or keep that axis static")
        fill = self.helper.make_tensor("value", _onnx_dtype(v.dtype), [1], [flat[0].item() if flat.size else 0])
        return self.op("ConstantOfShape", [self.shape_tensor(shape)], value=fill)

    def arg(self, a, dtype=None) -> str:
        """The ONNX name for an op argument: a Value, an array (a traced one if the tracer knows it) or a
        Python number (a constant of ``dtype``)."""
        if a is None:
            return ""
        if hasattr(a, "kind") and hasattr(a, "shape"):
            return self.name(a)
        if hasattr(a, "shape") and hasattr(a, "dtype"):
            v = self.tracer.values.get(id(a))
            if v is not None:
                return self.name(v)
            return self.const(host(a) if dtype is None else host(a).astype(dtype))
        return self.const(numpy.asarray(a, dtype=dtype))

    def const(self, array, hint: str = "const", cache: bool = True) -> str:
        """An initializer holding ``array``; small ones are shared."""
        array = host(array)
        key = None
        if cache and array.size <= 16:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._const_cache:
                return self._const_cache[key]
        name = self.fresh(hint)
        self.initializers[name] = array
        if key is not None:
            self._const_cache[key] = name
        return name

    def ints(self, values) -> str:
        return self.const(numpy.asarray(list(values), dtype=numpy.int64))

    def scalar(self, value, dtype) -> str:
        return self.const(numpy.asarray(value, dtype=dtype))

    # ---- nodes
    def op(self, op_type: str, inputs, n_out: int = 1, **attrs):
        """Emit one ONNX node; returns its output name (or list of names when ``n_out != 1``)."""
        while inputs and inputs[-1] == "":
            inputs = inputs[:-1]
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.fresh("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    # ---- shapes
    def shape(self, v) -> tuple:
        """The shape of a Value: ints, or :class:`SymDim` where it follows a dynamic axis."""
        return self.shapes.get(v.id, tuple(v.shape))

    def is_dynamic(self, v) -> bool:
        return any(isinstance(d, SymDim) for d in self.shape(v))

    def _symbol(self, k: int) -> str:
        if k not in self._sym_cache:
            src, axis = self.sym_sources[k]
            self._sym_cache[k] = self.op("Shape", [src], start=axis, end=axis + 1)
        return self._sym_cache[k]

    def dim_tensor(self, d) -> str:
        """A 1-element int64 tensor holding dim ``d`` (an int or a SymDim) at run time."""
        if not isinstance(d, SymDim):
            return self.ints([d])
        out = None
        for k in d.syms:
            s = self._symbol(k)
            out = s if out is None else self.op("Mul", [out, s])
        if d.coef != 1:
            out = self.op("Mul", [out, self.ints([d.coef])])
        return out

    def shape_tensor(self, dims) -> str:
        """A 1-D int64 tensor holding ``dims`` at run time (a constant when none is symbolic)."""
        dims = list(dims)
        if not any(isinstance(d, SymDim) for d in dims):
            return self.ints(dims)
        pieces, run = [], []
        for d in dims:
            if isinstance(d, SymDim):
                if run:
                    pieces.append(self.ints(run))
                    run = []
                pieces.append(self.dim_tensor(d))
            else:
                run.append(d)
        if run:
            pieces.append(self.ints(run))
        return pieces[0] if len(pieces) == 1 else self.op("Concat", pieces, axis=0)

    def reshape(self, x: str, in_shape, out_shape) -> str:
        """``Reshape`` of ``x`` (shape ``in_shape``) to ``out_shape``; a dynamic dim at the same position as the
        input's becomes 0 (copy) and a single other one -1, so that most reshapes need no shape computation."""
        in_shape, out_shape = tuple(in_shape), tuple(out_shape)
        if in_shape == out_shape:
            return x
        target = list(out_shape)
        left = [j for j, d in enumerate(target) if isinstance(d, SymDim)]
        for j in list(left):
            if j < len(in_shape) and in_shape[j] == target[j]:
                target[j] = 0
                left.remove(j)
        if len(left) == 1 and not any(d == 0 for d in out_shape):
            target[left[0]] = -1
            left = []
        if any(d == 0 for d in out_shape):
            return self.op("Reshape", [x, self.shape_tensor(out_shape)], allowzero=1)
        shape = self.shape_tensor(target) if left else self.ints(target)
        return self.op("Reshape", [x, shape])

    def cast(self, x: str, to) -> str:
        return self.op("Cast", [x], to=_onnx_dtype(to))

    def fail(self, why: str):
        where = f" in layer {self.layer}" if self.layer else ""
        raise ExportError(f"ember.onnx.export: the Ember op {self.node.name!r}{where}: {why}")


def _onnx_dtype(dtype) -> int:
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(numpy.dtype(dtype))


def _bind(node) -> dict:
    """The node's arguments and attributes by the parameter names of its op's ``forward``."""
    fwd = getattr(node.op, "forward", None)
    try:
        sig = inspect.signature(fwd)
        bound = sig.bind(None, *node.args, **node.attrs)
        bound.apply_defaults()
        out = dict(bound.arguments)
        params = list(sig.parameters.values())
        out.pop(params[0].name, None)
        for p in params:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                out[p.name] = list(out.get(p.name, ()))
        return out
    except (TypeError, ValueError):
        return {"args": list(node.args), **node.attrs}


# ---------------------------------------------------------------- the entry point
def export(model, example_inputs, path=None, input_names=None, output_names=None, opset_version: int = 17,
           dynamic_axes=None):
    """Export ``model`` (an ``ember.nn.Module``, Keras-style model or a function of tensors) to ONNX.

    Args:
        model: called as ``model(*example_inputs)``; put in eval mode for the trace, its modes restored after.
        example_inputs: a Tensor (or array) or a tuple of them.
        path: where to write the ``.onnx`` file (atomically); None writes nothing.
        input_names, output_names: graph input/output names (default ``input``/``input_i``, ``output``/``output_i``).
        opset_version: ONNX default-domain op set, 17 or newer.
        dynamic_axes: ``{name: [axis, ...]}`` or ``{name: {axis: label}}``: axes whose size may change (a batch);
            axes of different inputs that must stay equal need the same label.

    Returns the ``onnx.ModelProto``. An op with no lowering raises :class:`ExportError` (a
    ``NotImplementedError``) naming the op, the layer that called it when known, and the exportable ops.

    Example::

        m = ember.onnx.export(model, ember.randn(1, 3, 32, 32), "model.onnx", input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": {0: "batch"}})
    """
    import onnx

    if opset_version < 17:
        raise ValueError(f"ember.onnx.export: opset_version must be 17 or newer, got {opset_version}")
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    inputs = [_as_tensor(x) for x in example_inputs]
    input_names = list(input_names) if input_names else (
        ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))])
    if len(input_names) != len(inputs):
        raise ValueError(f"ember.onnx.export: {len(input_names)} input_names for {len(inputs)} inputs")
    modes = [(m, m.training) for _, m in model.named_modules()] if hasattr(model, "named_modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            model(*inputs)                 # builds lazy (Keras-style) layers before the trace
        graph, tracer = _trace(model, inputs)
        n_out = len(graph.outputs)
        output_names = list(output_names) if output_names else (
            ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)])
        if len(output_names) != n_out:
            raise ValueError(f"ember.onnx.export: {len(output_names)} output_names for {n_out} outputs")
        dyn = _normalize_dynamic_axes(dynamic_axes, input_names, output_names)
        shapes, labels, sources = _dynamic_shapes(model, graph, inputs, input_names, dyn)
    finally:
        for m, was in modes:
            m.training = was
    ctx = ExportContext(graph, tracer, shapes, _parameter_names(model), int(opset_version), sources)
    _lower(ctx, graph, model, input_names)
    m = _assemble(ctx, graph, input_names, output_names, dyn, labels)
    if path is not None:
        from ..utils.atomic import atomic_write
        with atomic_write(path, suffix=".onnx") as tmp:
            onnx.save(m, tmp)
    return m


def _dynamic_shapes(model, graph, inputs, input_names, dyn):
    """``(shapes, labels, sources)``: symbolic shapes of every value (from one more trace per dynamic label),
    the labels in symbol order, and ``{symbol: (input name, axis)}`` where each can be read at run time."""
    labels, sources, base, varied_graphs = [], {}, [], []
    for i, name in enumerate(input_names):
        for axis, label in sorted(dyn.get(name, {}).items()):
            axis = axis % max(inputs[i].data.ndim, 1)
            if label not in labels:
                labels.append(label)
                base.append(inputs[i].data.shape[axis])
            sources.setdefault(labels.index(label), (name, axis))
    for label in labels:
        changed = []
        for i, name in enumerate(input_names):
            axes = [a % inputs[i].data.ndim for a, lab in dyn.get(name, {}).items() if lab == label]
            changed.append(_varied(inputs[i], axes) if axes else inputs[i])
        try:
            varied_graphs.append(_trace(model, changed)[0])
        except Exception as e:
            raise ExportError(f"ember.onnx.export: tracing again with dynamic axis {label!r} one longer failed "
                              f"({type(e).__name__}: {e}); axes that must keep the same size (a batch shared by "
                              "several inputs) need the same label in dynamic_axes, e.g. {'a': {0: 'batch'}, "
                              "'b': {0: 'batch'}}") from e
    shapes = _symbolic_shapes([graph] + varied_graphs, [b + 1 for b in base], base) if labels else {}
    return shapes, labels, sources


def _lower(ctx, graph, model, input_names) -> None:
    """Lower every traced node, each with the layer that made it (for error messages)."""
    from .export_ops import lower_node
    for v, name in zip(graph.inputs, input_names):
        ctx.names[v.id] = name
    layer_of = _layer_paths(model)
    for i, node in enumerate(graph.nodes):
        ctx.node = node
        ctx.layer = graph.owners[i] if i < len(graph.owners) else None
        if ctx.layer is None or ctx.layer.startswith("<root>"):
            ctx.layer = next((layer_of[id(v.tensor)] for v in node.value_args()
                              if v.kind == "captured" and id(v.tensor) in layer_of), ctx.layer)
        lower_node(ctx, node, _bind(node))


def _assemble(ctx, graph, input_names, output_names, dyn, labels):
    """The ``ModelProto``: the lowered nodes that the outputs need, named inputs/outputs (``dim_param`` for
    dynamic dims), and the initializers those nodes read."""
    import onnx
    from onnx import helper
    outputs = []
    for v, name in zip(graph.outputs, output_names):
        ctx.nodes.append(helper.make_node("Identity", [ctx.name(v)], [name], name=f"n_output_{name}"))
        outputs.append((name, v))

    def info(name, v):
        dims = []
        for j, d in enumerate(ctx.shape(v)):
            if isinstance(d, SymDim):
                d = dyn.get(name, {}).get(j) or (labels[d.syms[0]] if d.coef == 1 and len(d.syms) == 1 else None)
            dims.append(d)
        return helper.make_tensor_value_info(name, _onnx_dtype(v.dtype), dims)
    nodes = _prune(ctx.nodes, output_names)
    used = {i for n in nodes for i in n.input}
    g = helper.make_graph(
        nodes, "ember_model", [info(n, v) for n, v in zip(input_names, graph.inputs)],
        [info(n, v) for n, v in outputs],
        [onnx.numpy_helper.from_array(numpy.asarray(a, order="C"), name)
         for name, a in ctx.initializers.items() if name in used])
    opsets = [helper.make_opsetid("", int(ctx.opset))]
    m = helper.make_model(g, opset_imports=opsets, producer_name="ember")
    m.ir_version = helper.find_min_ir_version_for(opsets)     # the oldest IR that has this op set: widest support
    return m


def _prune(nodes, outputs) -> list:
    """The nodes that some graph output needs, in order."""
    need = set(outputs)
    keep = []
    for n in reversed(nodes):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    return keep[::-1]


def _layer_paths(model) -> dict:
    """``{id(parameter): module path}``: the layer a traced op belongs to, for error messages."""
    out: dict = {}
    if hasattr(model, "named_modules"):
        for path, m in model.named_modules():
            for _, p in m.named_parameters(recurse=False) if hasattr(m, "named_parameters") else ():
                out.setdefault(id(p), f"{path or '<root>'} ({type(m).__name__})")
    return out
