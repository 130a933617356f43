"""``model.summary()``: a table of layers, output shapes and parameter counts, as Keras prints it."""
from __future__ import annotations


def _shape_str(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_shape_str(s) for s in shape)
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _rows(model):
    from ..layers.symbolic import flatten_structure
    if getattr(model, "is_functional", False):
        shapes = {}
        for node in model._graph:
            outs = [t.shape for t in flatten_structure(node.outputs)]
            shapes[id(node.layer)] = outs[0] if len(outs) == 1 else outs
        for t in model.inputs:
            yield t.name or "input", "InputLayer", t.shape, 0
        for layer in model.layers:
            yield getattr(layer, "name", ""), type(layer).__name__, shapes.get(id(layer)), _params(layer)
        return
    shapes = getattr(model, "_output_shapes", {})
    for layer in model.layers:
        yield getattr(layer, "name", type(layer).__name__), type(layer).__name__, shapes.get(id(layer)), \
            _params(layer)


def _params(layer) -> int:
    return sum(p.numel() for p in layer.parameters())


def summary(model, print_fn=print, line_length: int = 80) -> None:
    cols = (int(line_length * 0.45), int(line_length * 0.33), line_length - int(line_length * 0.78))
    rule, thick = "─" * line_length, "━" * line_length

    def row(a, b, c):
        return f"{a:<{cols[0]}}{b:<{cols[1]}}{c:>{cols[2]}}"
    print_fn(f'Model: "{model.name}"')
    print_fn(thick)
    print_fn(row("Layer (type)", "Output Shape", "Param #"))
    print_fn(thick)
    rows = list(_rows(model))
    for i, (name, kind, shape, n) in enumerate(rows):
        print_fn(row(f"{name} ({kind})"[:cols[0] - 1], _shape_str(shape)[:cols[1] - 1], f"{n:,}"))
        if i < len(rows) - 1:
            print_fn(rule)
    print_fn(thick)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    print_fn(f" Total params: {total:,}")
    print_fn(f" Trainable params: {trainable:,}")
    print_fn(f" Non-trainable params: {total - trainable:,}")
