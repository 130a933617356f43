"""Pictures of training: ``history`` draws training vs validation curves, ``model`` the layer graph, ``graph`` a
graph-mode graph (``ember.jit``).

All draw with matplotlib only (no pyplot state, no display needed), return the ``Figure`` and, given a
``path``, save it as a PNG atomically (written to a temporary file, then renamed). matplotlib is imported
when a picture is drawn (``pip install 'ember-dl[plot]'``).

>>> import ember
>>> fig = ember.plot.history({"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.9]})
>>> [ax.get_title() for ax in fig.axes]
['loss']
"""
from __future__ import annotations

from .utils.atomic import atomic_write

from dataclasses import dataclass, field

__all__ = ["history", "model", "graph", "layer_graph", "graph_boxes", "LayerBox"]


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("ember.plot needs matplotlib; install it with: pip install 'ember-dl[plot]'  "
                          "(or: pip install matplotlib)") from exc
    return Figure(figsize=(width, height), dpi=100)


def _save(fig, path) -> None:
    """Save ``fig`` as a PNG at ``path`` atomically: a temporary file in the same folder, then a rename."""
    with atomic_write(path, ".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


# ---------------------------------------------------------------- training curves
def history(history, path=None, metrics=None):
    """Draw each metric's training curve and, where logged, its validation curve (one subplot per metric).

    Args:
        history: the ``History`` that ``fit`` returns, or its ``history`` dict (``{"loss": [...], ...}``).
        path: where to save the PNG (optional).
        metrics: the metric names to draw (``"loss"``, ``"accuracy"``, ...); default: every training metric.

    Returns:
        the matplotlib ``Figure``. A validation curve above a falling training curve shows overfitting.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot.history: expected a History or a dict of metric name -> list of values, "
                        f"got {type(history).__name__}")
    logs = {k: list(v) for k, v in logs.items() if v is not None and len(v)}
    if not logs:
        raise ValueError("plot.history: the history is empty (no epoch was recorded); train with fit() first")
    available = [k for k in logs if not k.startswith("val_")] or [k[4:] for k in logs]
    if metrics is None:
        metrics = sorted(available, key=lambda k: (k != "loss", available.index(k)))
    elif isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        if name not in logs and "val_" + name not in logs:
            raise ValueError(f"plot.history: unknown metric {name!r}; the history has {sorted(available)}")
    if not metrics:
        raise ValueError("plot.history: metrics is empty; name at least one metric to draw")
    n = len(metrics)
    fig = _figure(5.0 * n, 3.6)
    epochs = [e + 1 for e in getattr(history, "epoch", [])]
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(1, n, i + 1)
        for key, label, style in ((name, "training", "-o"), ("val_" + name, "validation", "-s")):
            values = logs.get(key)
            if values:
                ax.plot(_x_for(values, epochs, logs), values, style, label=label, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def _x_for(values: list, epochs: list, logs: dict) -> list:
    """Epoch numbers (from 1) for ``values``; a shorter (``validation_freq``) list is spread evenly."""
    total = len(epochs) or max(len(v) for v in logs.values())
    first = epochs[0] if epochs else 1
    if len(values) == total:
        return epochs or list(range(1, total + 1))
    every = max(total // len(values), 1)
    return [first - 1 + every * (j + 1) for j in range(len(values))]


# ---------------------------------------------------------------- layer graph
@dataclass
class LayerBox:
    """One box of the layer graph: a layer (or model input), its output shape and the boxes it reads."""
    key: int
    name: str
    kind: str
    shape_text: str
    parents: list = field(default_factory=list)


def layer_graph(model) -> list[LayerBox]:
    """The boxes of ``model``'s layer graph, each after its parents (a shared layer is one box).

    Works for ``Sequential`` and functional models; a subclassed model has no recorded graph (ValueError).
    """
    from .models.summary import _shape_str
    from .layers.symbolic import flatten_structure

    if hasattr(model, "_layers") and isinstance(getattr(model, "_layers"), list):  # Sequential
        boxes: list[LayerBox] = []
        layers = model._layers
        first_shape = getattr(layers[0], "_batch_input_shape", None) if layers else None
        if first_shape is not None:
            boxes.append(LayerBox(-1, "input_layer", "InputLayer", _shape_str(first_shape)))
        shapes = getattr(model, "_output_shapes", {})
        for i, layer in enumerate(layers):
            parents = [boxes[-1].key] if boxes else []
            boxes.append(LayerBox(i, getattr(layer, "name", None) or type(layer).__name__, type(layer).__name__,
                                  _shape_str(shapes.get(id(layer))), parents))
        return boxes
    if not getattr(model, "is_functional", False):
        raise ValueError(f"plot: {type(model).__name__} {getattr(model, 'name', '')!r} is a subclassed model with "
                         "no recorded layer graph; draw a Sequential or functional model (Model(inputs, outputs))")
    boxes, by_key = [], {}
    for t in model.inputs:
        box = LayerBox(id(t), t.name or "input", "InputLayer", _shape_str(t.shape))
        boxes.append(box)
        by_key[box.key] = box
    for node in model._graph:
        key = id(node.layer)
        box = by_key.get(key)
        if box is None:
            shapes = [t.shape for t in flatten_structure(node.outputs)]
            box = LayerBox(key, node.layer.name, type(node.layer).__name__,
                           _shape_str(shapes[0] if len(shapes) == 1 else shapes))
            boxes.append(box)
            by_key[key] = box
        for t in node.inputs:
            parent = id(t) if t.node is None else id(t.node.layer)
            if parent not in box.parents:
                box.parents.append(parent)
    return boxes


def _levels(boxes: list[LayerBox]) -> dict:
    """Each box's row: one below its lowest parent (longest path from an input)."""
    level: dict = {}
    for box in boxes:                          # boxes come parents-first
        level[box.key] = 1 + max((level.get(p, 0) for p in box.parents), default=-1)
    return level


def model(model, path=None, show_shapes: bool = True):
    """Draw ``model``'s layer graph: a box per layer (name, type, output shape) and arrows along the data flow.

    Args:
        model: a ``Sequential`` or functional ``Model`` (several inputs and outputs, shared layers, nested models).
        path: where to save the PNG (optional).
        show_shapes: write each layer's output shape in its box.

    Returns:
        the matplotlib ``Figure``.
    """
    boxes = layer_graph(model)
    if not boxes:
        raise ValueError(f"plot.model: {type(model).__name__} {getattr(model, 'name', '')!r} has no layers to draw")
    return _draw(boxes, path, show_shapes)


def graph_boxes(g) -> list[LayerBox]:
    """The boxes of a graph-mode :class:`~ember.graph.Graph`: its inputs, then one per op node (parameters and
    constants, which every run reads as they are, are left out)."""
    boxes, source = [], {}
    for v in g.inputs:
        boxes.append(LayerBox(v.id, v.label(), "InputLayer", v.type_str()))
        source[v.id] = v.id
    for n in g.nodes:
        parents = list(dict.fromkeys(source[v.id] for v in n.value_args() if v.id in source))
        boxes.append(LayerBox(id(n), n.name, "op", ", ".join(v.type_str() for v in n.outputs), parents))
        for v in n.outputs:
            source[v.id] = id(n)
    return boxes


def graph(g, path=None, show_shapes: bool = True):
    """Draw a graph-mode graph (``ember.jit`` / ``ember.graph.trace``): a box per op with its output's dtype and
    shape, arrows along the data flow. Saves a PNG at ``path`` when given; returns the ``Figure``.

    >>> import ember
    >>> fig = ember.plot.graph(ember.graph.trace(lambda x: x.exp().sum(), ember.ones(3)))
    >>> len(fig.axes[0].patches)
    3
    """
    boxes = graph_boxes(g)
    if not boxes:
        raise ValueError("plot.graph: the graph has no inputs or nodes to draw")
    return _draw(boxes, path, show_shapes)


def _draw(boxes, path, show_shapes):
    """Lay ``boxes`` out in rows by depth and draw them (the shared body of :func:`model` and :func:`graph`)."""
    level = _levels(boxes)
    rows: dict = {}
    for box in boxes:
        rows.setdefault(level[box.key], []).append(box)
    n_rows, widest = len(rows), max(len(r) for r in rows.values())
    box_w, box_h, gap_x, gap_y = 2.8, 0.8 if show_shapes else 0.5, 0.4, 0.6
    width = widest * (box_w + gap_x)
    height = n_rows * (box_h + gap_y)
    fig = _figure(max(width, 3.5), max(height, 1.5))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, max(width, 3.5))
    ax.set_ylim(0, max(height, 1.5))
    ax.axis("off")
    centre: dict = {}
    for r, row in rows.items():
        y = height - (r + 0.5) * (box_h + gap_y)
        x0 = (max(width, 3.5) - len(row) * (box_w + gap_x)) / 2
        for j, box in enumerate(row):
            centre[box.key] = (x0 + (j + 0.5) * (box_w + gap_x), y)
    _draw_boxes(ax, boxes, centre, box_w, box_h, show_shapes)
    if path is not None:
        _save(fig, path)
    return fig


def _draw_boxes(ax, boxes, centre, box_w, box_h, show_shapes) -> None:
    from matplotlib.patches import FancyBboxPatch

    for box in boxes:
        x, y = centre[box.key]
        colour = "#dbe9f6" if box.kind == "InputLayer" else "#fdf1d6"
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", fc=colour, ec="#444444", lw=1))
        text = box.name if box.kind == "op" else f"{box.name} ({box.kind})"
        if show_shapes:
            text += f"\noutput: {box.shape_text}"
        ax.text(x, y, text, ha="center", va="center", fontsize=8, family="monospace", wrap=True)
        for parent in box.parents:
            px, py = centre[parent]
            ax.annotate("", xy=(x, y + box_h / 2), xytext=(px, py - box_h / 2),
                        arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1, shrinkA=0, shrinkB=2))
