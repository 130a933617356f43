"""Import an ONNX model as a trainable :class:`ember.nn.Module`.

The file is parsed with the ``onnx`` package (protobuf only: nothing in it is executed), checked with
``onnx.checker``, and every node is mapped to a converter from :mod:`ember.onnx.registry`. Floating
initializers become ``Parameter``s, so an imported model can be fine-tuned; other initializers become
buffers. Unsupported op types are reported, all at once and with their node names, before anything runs.

>>> import numpy as np, onnx, onnx.helper as oh, ember
>>> from onnx import TensorProto, numpy_helper
>>> w = numpy_helper.from_array(np.ones((3, 2), np.float32), "fc.weight")
>>> g = oh.make_graph([oh.make_node("MatMul", ["x", "fc.weight"], ["y"])], "g",
...                   [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
...                   [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
>>> m = ember.onnx.load(oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]))
>>> m(ember.ones(1, 3)).tolist(), [n for n, _ in m.named_parameters()]
([[3.0, 3.0]], ['fc_weight'])
"""
from __future__ import annotations

import os
import re

import numpy as np

from ..autograd.node import OpError
from ..nn import Module, Parameter
from ..tensor import Tensor, _wrap
from .registry import ConvertContext, UnsupportedOpError, lookup

__all__ = ["OnnxModule", "load", "UnsupportedOpError"]

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _onnx():
    try:
        import onnx
    except ImportError:   # pragma: no cover - the extra is part of the test environment
        raise ImportError("ember.onnx needs the `onnx` package: pip install ember-dl[onnx]") from None
    return onnx


# ------------------------------------------------------------------ reading and checking the file
def _parse(source, what: str):
    onnx = _onnx()
    from google.protobuf.message import DecodeError
    model = onnx.ModelProto()
    try:
        model.ParseFromString(source)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ValueError(f"{what} is not a valid ONNX model: the protobuf could not be parsed ({e}); "
                         "the file may be truncated or not an .onnx file") from None
    return model


def _check(model, what: str) -> None:
    onnx = _onnx()
    if not model.HasField("graph") or not model.opset_import:
        raise ValueError(f"{what} is not a valid ONNX model: it has no graph or no opset_import "
                         "(the file may be truncated or not an .onnx file)")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what} failed ONNX validation (onnx.checker): {first}") from None


def _resolve_external(tensor, base_dir: str | None, what: str) -> None:
    """Read a tensor's external data into ``raw_data``, refusing any path outside the model's folder."""
    onnx = _onnx()
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return
    info = {e.key: e.value for e in tensor.external_data}
    loc = info.get("location", "")
    if base_dir is None:
        raise ValueError(f"{what}: tensor {tensor.name!r} stores its data in external file {loc!r}, but the model "
                         "was not loaded from a path; load it with ember.onnx.load(path) or pass base_dir=")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, loc))
    if not loc or os.path.isabs(loc) or os.path.commonpath([root, path]) != root:
        raise ValueError(f"{what}: tensor {tensor.name!r} points to external data {loc!r}, which is outside the "
                         f"model's folder {root!r}; external data is only read from inside that folder")
    if not os.path.isfile(path):
        raise ValueError(f"{what}: external data file {loc!r} of tensor {tensor.name!r} does not exist in {root!r}")
    offset, length = int(info.get("offset", 0) or 0), info.get("length")
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read(int(length)) if length else f.read()
    if length and len(raw) != int(length):
        raise ValueError(f"{what}: external data file {loc!r} of tensor {tensor.name!r} is shorter than expected "
                         f"(wanted {length} bytes at offset {offset}, got {len(raw)})")
    tensor.raw_data = raw
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT


def _graph_tensors(graph):
    """Every TensorProto held by a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _graph_tensors(g)


def _to_array(t) -> np.ndarray:
    from onnx import numpy_helper
    return numpy_helper.to_array(t)


# ------------------------------------------------------------------ attributes and subgraphs
def decode_attribute(a):
    """An ONNX AttributeProto as a Python value: ints, floats, str, lists, NumPy arrays, GraphProtos."""
    onnx = _onnx()
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, onnx.TensorProto):
        return _to_array(v)
    if isinstance(v, list):
        return [x.decode("utf-8", errors="replace") if isinstance(x, bytes)
                else _to_array(x) if isinstance(x, onnx.TensorProto) else x for x in v]
    return v


def _domain_opsets(model_or_graph_opsets) -> dict:
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model_or_graph_opsets}


def _op_key(node, opsets: dict):
    """The registry key of a node and its domain's op-set: ``Relu`` for the default domain, ``ai.onnx.ml.Binarizer``
    for another one."""
    dom = "" if node.domain in _DEFAULT_DOMAINS else node.domain
    return (f"{dom}.{node.op_type}" if dom else node.op_type), dom, opsets.get(dom, 1)


def _unsupported(graph, opsets: dict, functions: dict | None = None) -> list:
    """``[(op type, domain, opset, [node names])]`` of nodes without a converter, subgraphs and the bodies of
    model-local functions included."""
    missing: dict = {}
    functions = functions or {}
    seen: set = set()

    def walk(g, opsets):
        for node in g.node:
            key, dom, ver = _op_key(node, opsets)
            f = functions.get((node.domain, node.op_type))
            if f is not None:
                if (node.domain, node.op_type) not in seen:
                    seen.add((node.domain, node.op_type))
                    walk(f, {**opsets, **_domain_opsets(f.opset_import)})
            elif lookup(key, ver) is None:
                key = (node.op_type, dom, ver)
                missing.setdefault(key, []).append(node.name or f"<{node.op_type} -> {','.join(node.output)}>")
            for a in node.attribute:
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sub, opsets)
    walk(graph, opsets)
    return [(op, dom, ver, names) for (op, dom, ver), names in missing.items()]


class ImportContext(ConvertContext):
    """A :class:`ConvertContext` that can also run a node's subgraph (If, Loop, Scan) in the current scope;
    ``training`` is the importing module's mode (``module.train()`` / ``module.eval()``)."""

    def __init__(self, opsets: dict, node, env: dict, training: bool = False, functions: dict | None = None):
        super().__init__(opsets.get("", 1), node)
        self.opsets, self.env, self.training, self.functions = opsets, env, training, functions

    def const(self, t):
        """A shape-like input as a NumPy array, also when it is a trainable initializer (a Parameter)."""
        return None if t is None else np.asarray(t.data)

    def run_subgraph(self, graph, inputs=()) -> list:
        """Run ``graph`` with its formal inputs bound to ``inputs``; outer-scope values stay visible."""
        env = dict(self.env)
        for vi, t in zip(graph.input, inputs):
            env[vi.name] = t
        for init in graph.initializer:
            env[init.name] = _wrap(np.array(_to_array(init)))
        run_steps(compile_nodes(graph.node, self.opsets, self.functions), env, self.opsets, self.training,
                  self.functions)
        return [env[o.name] for o in graph.output]


_BF16_NATIVE = ("Cast", "CastLike", "BitCast", "Identity", "Constant")   # ops that must see bfloat16 as it is


def _bfloat16_of(inputs):
    """The bfloat16 dtype when an input has it (an ``ml_dtypes`` type NumPy cannot compute with), else None."""
    for t in inputs:
        if isinstance(t, Tensor) and t.data.dtype.name == "bfloat16":
            return t.data.dtype
    return None


def compile_nodes(nodes, opsets: dict, functions: dict | None = None) -> list:
    """``[(node, converter, decoded attributes)]``, checked once so that each forward only runs converters.
    A call of a model-local function becomes a step that runs the function's own compiled body."""
    steps = []
    for node in nodes:
        key, _, ver = _op_key(node, opsets)
        f = (functions or {}).get((node.domain, node.op_type))
        fn = _function_call(f, node, opsets, functions) if f is not None else lookup(key, ver)
        if fn is None:
            name = ConvertContext(ver, node).name
            raise UnsupportedOpError(f"ONNX node {name!r}: op {key!r} is not supported at opset {ver}")
        steps.append((node, fn, {a.name: decode_attribute(a) for a in node.attribute}))
    return steps


def _function_call(f, call, opsets: dict, functions: dict):
    """A converter running the FunctionProto ``f`` for the node ``call`` (its attributes bound to the body)."""
    fopsets = {**opsets, **_domain_opsets(f.opset_import)}
    given = {a.name: a for a in call.attribute}
    defaults = {a.name: a for a in f.attribute_proto}
    body = []
    for n in f.node:
        resolved = type(n)()
        resolved.CopyFrom(n)
        del resolved.attribute[:]
        for a in n.attribute:
            if a.ref_attr_name:
                src = given.get(a.ref_attr_name, defaults.get(a.ref_attr_name))
                if src is None:
                    continue
                b = type(a)()
                b.CopyFrom(src)
                b.name = a.name
                resolved.attribute.append(b)
            else:
                resolved.attribute.append(a)
        body.append(resolved)
    steps = compile_nodes(body, fopsets, functions)

    def run(ctx, inputs, attrs):
        env = {name: t for name, t in zip(f.input, inputs) if name and t is not None}
        run_steps(steps, env, fopsets, ctx.training, functions)
        return tuple(env[o] for o in f.output)
    return run


_MAY_BE_EMPTY = ("Optional", "If", "Loop", "Scan", "Identity", "SequenceMap")   # may output an empty optional


def _describe(v) -> str:
    if v is None:
        return "None"
    if isinstance(v, list):
        return f"sequence of {len(v)}"
    return f"{tuple(v.data.shape)} {v.data.dtype}"


def run_steps(steps, env: dict, opsets: dict, training: bool = False, functions: dict | None = None) -> None:
    """Run compiled nodes in order, reading and writing values by name in ``env``."""
    for node, fn, attrs in steps:
        ctx = ImportContext(opsets, node, env, training, functions)
        try:
            inputs = [env[n] if n else None for n in node.input]
        except KeyError as e:
            raise ValueError(f"ONNX node {ctx.name!r} ({node.op_type}): input {e.args[0]!r} is not defined") from None
        attrs = dict(attrs)
        bf16 = _bfloat16_of(inputs) if node.op_type not in _BF16_NATIVE else None
        if bf16 is not None:   # Ember has no bfloat16 arithmetic: compute in float32, as ONNX's reference does
            inputs = [_wrap(t.data.astype(np.float32)) if isinstance(t, Tensor) and t.data.dtype == bf16 else t
                      for t in inputs]
        try:
            out = fn(ctx, inputs, attrs)
        except (UnsupportedOpError, OnnxRuntimeError):
            raise
        except Exception as e:
            shapes = ", ".join(_describe(t) for t in inputs)
            raise OnnxRuntimeError(f"ONNX node {ctx.name!r} ({node.op_type}, inputs: {shapes}): "
                                   f"{type(e).__name__}: {e}") from e
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if bf16 is not None:
            outs = [_wrap(o.data.astype(bf16)) if isinstance(o, Tensor) and o.data.dtype == np.float32 else o
                    for o in outs]
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(outs) or (outs[i] is None and node.op_type not in _MAY_BE_EMPTY):
                raise UnsupportedOpError(f"ONNX node {ctx.name!r} ({node.op_type}): output {i} ({name!r}) "
                                         "is not produced by Ember's converter")
            env[name] = outs[i]


class OnnxRuntimeError(OpError):
    """A converter failed while running an imported node; the message names the node, op and input shapes."""


# ------------------------------------------------------------------ the module
def _safe_name(name: str, taken: set) -> str:
    s = re.sub(r"\W", "_", name) or "param"
    if s[0].isdigit():
        s = "p_" + s
    base, i = s, 1
    while s in taken or hasattr(Module, s):
        s, i = f"{base}_{i}", i + 1
    taken.add(s)
    return s


def _input_spec(vi):
    """``(kind, NumPy dtype or None, shape tuple with None for free dims or None for unknown rank)`` of a graph
    input; ``kind`` is 'tensor', 'sequence' or 'optional'."""
    from onnx import helper
    kind = vi.type.WhichOneof("value")
    tt = vi.type.tensor_type if kind == "tensor_type" else None
    if tt is None:
        return ("sequence" if kind == "sequence_type" else "optional" if kind == "optional_type" else kind), None, None
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
    except (KeyError, TypeError, ValueError):
        dtype = None
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim) \
        if tt.HasField("shape") else None
    return "tensor", dtype, shape


def _as_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return _wrap(np.asarray(x))


class OnnxModule(Module):
    """An ONNX graph run node by node with Ember ops; call it with the graph inputs in order (or by name).

    ``onnx_names`` maps each parameter/buffer attribute name to the ONNX initializer name it came from;
    ``input_names`` and ``output_names`` list the graph's inputs and outputs. One output is returned as a
    Tensor, several as a tuple.
    """

    def __init__(self, model, name: str = "<model>"):
        super().__init__()
        graph = model.graph
        self.opsets = _domain_opsets(model.opset_import)
        self.opset = self.opsets.get("", 1)
        self.name = name
        self._graph = graph
        init_names = {i.name for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self.output_names = [o.name for o in graph.output]
        self.onnx_names: dict = {}
        self._attr_of: dict = {}
        taken: set = set()
        for init in graph.initializer:
            arr = np.array(_to_array(init))
            attr = _safe_name(init.name, taken)
            if arr.dtype in (np.float16, np.float32, np.float64):
                self.register_parameter(attr, Parameter(arr))
            else:
                self.register_buffer(attr, _wrap(arr))
            self.onnx_names[attr], self._attr_of[init.name] = init.name, attr
        self._specs = {i.name: _input_spec(i) for i in graph.input if i.name not in init_names}
        self._functions = {(f.domain, f.name): f for f in model.functions}
        self._steps = compile_nodes(graph.node, self.opsets, self._functions)

    def forward(self, *args, **kwargs):
        if len(args) > len(self.input_names):
            raise TypeError(f"{self.name}: the model takes {len(self.input_names)} inputs ({self.input_names}), "
                            f"got {len(args)}")
        feeds = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self.input_names:
                raise TypeError(f"{self.name}: unknown input {k!r}; the model's inputs are {self.input_names}")
            feeds[k] = v
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise TypeError(f"{self.name}: missing model input(s) {missing} (inputs: {self.input_names})")
        env = {onnx_name: getattr(self, attr) for onnx_name, attr in self._attr_of.items()}
        env.update({k: self._feed(k, v) for k, v in feeds.items()})
        run_steps(self._steps, env, self.opsets, self.training, self._functions)
        outs = tuple(env[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def _feed(self, name: str, v):
        """An input value as the graph needs it: a Tensor, a list of Tensors (a sequence) or None (no optional)."""
        kind = self._specs[name][0]
        if v is None and kind == "optional":
            return None
        if kind in ("sequence", "optional") and isinstance(v, (list, tuple)):
            return [_as_tensor(e) for e in v]
        return self._checked(name, _as_tensor(v)) if kind == "tensor" else _as_tensor(v)

    def _checked(self, name: str, t: Tensor) -> Tensor:
        """Refuse an input whose kind of dtype (float, int, bool, string) or fixed dims differ from the graph's."""
        _, dtype, shape = self._specs[name]
        got = t.data.dtype
        if dtype is not None and got != dtype and not (got.kind == "f" and dtype.kind == "f"):
            raise TypeError(f"{self.name}: input {name!r} has dtype {got}, but the model expects {dtype}")
        if shape is not None and (len(shape) != t.data.ndim or any(
                s is not None and s != g for s, g in zip(shape, t.data.shape))):
            want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{self.name}: input {name!r} has shape {tuple(t.data.shape)}, but the model expects "
                             f"{want} ('?' is any size)")
        return t

    def extra_repr(self) -> str:
        return (f"{self.name}, opset={self.opset}, nodes={len(self._graph.node)}, inputs={self.input_names}, "
                f"outputs={self.output_names}")


def _register_all():
    from . import ops_control, ops_domains, ops_extra, ops_math, ops_nn, ops_sequence, ops_tensor  # noqa: F401  (registration side effect)


def load(source, *, base_dir: str | None = None, check: bool = True) -> OnnxModule:
    """Load an ONNX model (a path, the file's bytes, or an ``onnx.ModelProto``) as an :class:`OnnxModule`.

    External-data tensors are read only from inside the model's folder (``base_dir`` for bytes or a
    ModelProto). Raises ``ValueError`` for a file that cannot be parsed or fails ``onnx.checker``, and
    :class:`UnsupportedOpError` listing every op type Ember cannot run, with its node names.
    """
    onnx = _onnx()
    _register_all()
    if isinstance(source, onnx.ModelProto):
        what = f"ONNX model {source.graph.name or '<ModelProto>'!r}"
        model = onnx.ModelProto()
        model.CopyFrom(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        what = "ONNX model bytes"
        model = _parse(bytes(source), what)
    else:
        path = os.fspath(source)
        what = f"ONNX file {path!r}"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} does not exist")
        with open(path, "rb") as f:
            model = _parse(f.read(), what)
        base_dir = os.path.dirname(os.path.abspath(path)) if base_dir is None else base_dir
    if not model.HasField("graph"):
        raise ValueError(f"{what} is not a valid ONNX model: it has no graph (the file may be truncated)")
    if len(model.graph.sparse_initializer):
        names = [t.values.name for t in model.graph.sparse_initializer][:5]
        raise ValueError(f"{what} has sparse initializers ({names}), which Ember does not import; densify them "
                         "first (e.g. with onnx.numpy_helper and a dense initializer)")
    for t in _graph_tensors(model.graph):
        _resolve_external(t, base_dir, what)
    if check:
        _check(model, what)
    opsets = _domain_opsets(model.opset_import)
    missing = _unsupported(model.graph, opsets, {(f.domain, f.name): f for f in model.functions})
    if missing:
        lines = [f"  {op}{f' (domain {dom})' if dom else ''} at opset {ver}: nodes {names[:5]}"
                 + (f" and {len(names) - 5} more" if len(names) > 5 else "") for op, dom, ver, names in missing]
        raise UnsupportedOpError(f"{what} uses ONNX ops that Ember cannot import ({len(missing)} op types); "
                                 "see ember/onnx/SUPPORTED_OPS.md for the supported list:\n" + "\n".join(lines))
    return OnnxModule(model, name=what)
