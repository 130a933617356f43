"""``Optimizer``: the base of Ember's optimizers (param groups, state, ``zero_grad``, ``state_dict``).

Updates run directly on the parameters' backend arrays (``p.data``) with in-place ufuncs,
outside the autograd graph, so a step costs a handful of passes over memory and no graph.
Per-parameter state lives in ``optimizer.state[p]``; entries whose key starts with ``_`` are
scratch buffers reused between steps and are not saved by :meth:`Optimizer.state_dict`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..autograd.grad_mode import _state as _grad_state
from ..autograd.grad_mode import enable_grad, no_grad
from ..backend import array_module, device_of, move, ndarray_types
from ..tensor import Tensor, _wrap, zero_grads

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: holds ``param_groups`` (dicts of ``params`` plus options) and per-parameter ``state``.

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...], "lr": ...}`` to give
    groups their own options; options missing from a group take the optimizer's defaults.
    Subclasses implement ``_step_group(group)``.
    """

    def __init__(self, params: Iterable, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of Tensors or dicts, "
                            "but got a single Tensor; pass [tensor] or module.parameters()")
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (with its own options) to optimise, e.g. a layer unfrozen later."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__} can't optimize a non-leaf Tensor (it has grad_fn "
                                 f"{type(p.grad_fn).__name__}); optimize the leaf it was computed from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("add_param_group: a parameter appears more than once in the group")
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    # ------------------------------------------------------------ gradients and steps
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: drop them (``set_to_none=True``, the default) or fill them with zeros."""
        zero_grads(self._params(), set_to_none)

    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if _grad_state.tracer is not None:       # inside ember.jit: the update goes into the graph
            self._traced_step(_grad_state.tracer)
            return loss
        for group in self.param_groups:
            self._step_group(group)
        return loss

    # ------------------------------------------------------------ graph mode
    def _traced_step(self, tracer) -> None:
        """The step as Ember ops, so that ``ember.jit`` captures it with the forward and backward.

        Subclasses give ``_graph_update(p, state, group, scalars)`` (the new parameter and state tensors, as
        ``(target, value)`` pairs) and ``_graph_scalars(state, group)`` (this step's host numbers: learning
        rate, bias corrections; it also counts the step). The scalars become 0-d tensors that the graph reads
        and a prologue refreshes before every run, so a learning-rate schedule and the step count keep working;
        the state arrays are updated in place after every run.
        """
        if not hasattr(self, "_graph_update"):
            raise TypeError(f"ember.jit: {type(self).__name__} has no graph-mode step (_graph_scalars and "
                            "_graph_update, as Ember's SGD, Adam, AdamW, RMSprop and Adagrad have); call its step() "
                            "outside the jitted function")
        items = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    items.append((p, self.state.setdefault(p, {}), group))
        scalars: dict = {}

        def refresh():
            for p, state, group in items:
                for name, value in self._graph_scalars(state, group, p.data).items():
                    t = scalars.get((id(p), name))
                    if t is None:
                        scalars[(id(p), name)] = _wrap(array_module(p.data).full((), value, p.data.dtype))
                    else:
                        t.data[...] = value
        tracer.on_run(refresh)
        with no_grad():
            for p, state, group in items:
                mine = {name: t for (pid, name), t in scalars.items() if pid == id(p)}
                for target, value in self._graph_update(p, state, group, mine):
                    tracer.assign(target, value)

    def _step_group(self, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement a step")

    def _updates(self, group: dict, count_steps: bool = True, **initial):
        """Each parameter of ``group`` that has a gradient, as ``(p, w, g, xp, state)`` on backend arrays.

        ``state`` is made on first use: ``"step": 0`` (when ``count_steps``) and one array per keyword,
        filled with its value; ``"step"`` is then counted up. After the caller's update the parameter's
        version is bumped, since it changed in place.
        """
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            w = p.data
            xp = array_module(w)
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0} if count_steps else {}
                for name, fill in initial.items():
                    state[name] = xp.full(w.shape, fill, w.dtype)
            else:
                self._check_state(group, i, w, state)
            if count_steps:
                state["step"] += 1
            yield p, w, p.grad.data, xp, state
            p._bump()

    def _check_state(self, group: dict, i: int, w, state: dict) -> None:
        """Refuse to mix a parameter with saved state of another dtype or shape (e.g. after ``module.double()``);
        scratch buffers (``_``-keys) are just dropped and remade."""
        for key, buf in list(state.items()):
            if not isinstance(buf, ndarray_types):
                continue
            if type(buf) is not type(w) and device_of(buf) != device_of(w):
                buf = state[key] = move(buf, device_of(w))   # the parameter moved (module.to): its state follows
            if buf.dtype == w.dtype and buf.shape == w.shape:
                continue
            if key.startswith("_"):
                del state[key]
                continue
            g = next(j for j, grp in enumerate(self.param_groups) if grp is group)
            raise RuntimeError(
                f"{type(self).__name__}: parameter {i} of param group {g} is now {w.dtype} {tuple(w.shape)} but "
                f"its optimizer state {key!r} is {buf.dtype} {tuple(buf.shape)}; the parameter changed (e.g. "
                "module.double()) after the optimizer stepped; make a new optimizer after changing the model")

    def _buffer(self, state: dict, key: str, like):
        """A per-parameter array of zeros in ``state``, created on first use, shaped and typed like ``like``."""
        buf = state.get(key)
        if buf is None:
            buf = state[key] = array_module(like).zeros_like(like)
        return buf

    def _grad(self, state: dict, w, g, weight_decay: float, maximize: bool):
        """The gradient the update uses: ``(-g if maximize else g) + weight_decay * w``, without touching ``g``."""
        if not maximize and not weight_decay:
            return g
        xp = array_module(w)
        out = self._buffer(state, "_grad", w)
        if weight_decay:
            xp.multiply(w, weight_decay, out=out)
            (xp.subtract if maximize else xp.add)(out, g, out=out)
        else:
            xp.negative(g, out=out)
        return out

    # ------------------------------------------------------------ saving
    def state_dict(self) -> dict:
        """The optimizer's state as plain data, in PyTorch's layout.

        ``{"state": {index: {name: tensor or number}}, "param_groups": [{..options, "params": [indices]}]}``;
        parameters are numbered in group order. Arrays are copied, so later steps don't change it.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (_wrap(v.copy()) if isinstance(v, ndarray_types) else v)
                                       for k, v in s.items() if not k.startswith("_")}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; the optimizer must hold the same number of groups and parameters."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"load_state_dict: loaded state dict has {len(saved)} parameter groups, "
                             f"but the optimizer has {len(self.param_groups)}")
        for i, (mine, theirs) in enumerate(zip(self.param_groups, saved)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"load_state_dict: parameter group {i} has {len(theirs['params'])} parameters "
                                 f"in the state dict but {len(mine['params'])} in the optimizer")
        by_index = {i: p for mine, theirs in zip(self.param_groups, saved)
                    for i, p in zip(theirs["params"], mine["params"])}
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {k: (int(float(v)) if k == "step" else _import(v, p.data)) for k, v in s.items()}
        self.param_groups = [dict(theirs, params=mine["params"]) for mine, theirs in zip(self.param_groups, saved)]


def _import(value: Any, like):
    """A state value from a state dict as a fresh backend array matching the parameter ``like``."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, ndarray_types) or hasattr(value, "__array__") and not isinstance(value, (int, float)):
        if isinstance(value, ndarray_types):
            value = move(value, device_of(like))      # saved on one device, loaded onto the parameter's
        xp = array_module(like)
        arr = xp.array(value, copy=True)
        if arr.dtype.kind == "f" and arr.shape == like.shape:
            arr = arr.astype(like.dtype, copy=False)
        return arr
    return value


def _check(who: str, **values: float) -> None:
    """Reject negative hyper-parameters at construction, naming the optimizer and the option."""
    for name, v in values.items():
        if not v >= 0.0:
            raise ValueError(f"{who}: invalid {name} value: {v} (expected >= 0)")
