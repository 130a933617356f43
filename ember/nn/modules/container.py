"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``, ``ParameterList``, ``ParameterDict``."""
from __future__ import annotations

import operator
from collections import OrderedDict
from typing import Iterable

from ..module import Module, _addindent
from ..parameter import Parameter

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


def _index(idx, n: int, kind: str) -> int:
    i = operator.index(idx)
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for a {kind} of length {n}")
    return i % n


class _ListContainer(Module):
    """Growing a list of modules registered under '0', '1', ...: shared by Sequential and ModuleList."""

    def append(self, module: Module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self.__dict__["_modules"] = {}
        for i, m in enumerate(mods):
            self.add_module(str(i), m)
        return self


class Sequential(_ListContainer):
    """Modules applied one after another: ``Sequential(Linear(784, 64), ReLU(), Linear(64, 10))``.

    Also accepts an ``OrderedDict`` of named modules; supports ``len``, indexing, slicing and ``append``.

    >>> import ember
    >>> net = ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.ReLU())
    >>> len(net), type(net[0]).__name__
    (2, 'Linear')
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self), "Sequential")]

    def __setitem__(self, idx, module: Module) -> None:
        key = list(self._modules)[_index(idx, len(self), "Sequential")]
        setattr(self, key, module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for key in (keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(self), "Sequential")]]):
            del self._modules[key]
        if all(k.isdigit() for k in self._modules):
            self.__dict__["_modules"] = {str(i): m for i, m in enumerate(self._modules.values())}

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(_ListContainer):
    """A list of modules whose parameters are registered (use for layers applied in a loop)."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx, module: Module) -> None:
        setattr(self, str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx) -> None:
        mods = list(self._modules.values())
        del mods[idx if isinstance(idx, slice) else _index(idx, len(self), "ModuleList")]
        self.__dict__["_modules"] = {str(i): m for i, m in enumerate(mods)}

    def __iadd__(self, modules):
        return self.extend(modules)

    def __repr__(self):
        """Runs of identical modules print once, as PyTorch does: ``(0-2): 3 x Linear(...)``."""
        mods = list(self._modules.values())
        if not mods:
            return self._get_name() + "()"
        lines, start = [], 0
        reprs = [repr(m) for m in mods]
        for i in range(1, len(mods) + 1):
            if i < len(mods) and reprs[i] == reprs[start]:
                continue
            body = _addindent(reprs[start], 2)
            if i - start == 1:
                lines.append(f"({start}): {body}")
            else:
                lines.append(f"({start}-{i - 1}): {i - start} x {body}")
            start = i
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


class _DictContainer(Module):
    """The mapping protocol shared by ModuleDict and ParameterDict, over the registry named ``_store``."""

    _store = "_modules"

    def __init__(self, items=None):
        super().__init__()
        if items is not None:
            self.update(items)

    def _items(self) -> dict:
        return self.__dict__[self._store]

    def __getitem__(self, key: str):
        return self._items()[key]

    def __delitem__(self, key: str) -> None:
        del self._items()[key]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self):
        return iter(self._items())

    def __contains__(self, key) -> bool:
        return key in self._items()

    def keys(self):
        return self._items().keys()

    def values(self):
        return self._items().values()

    def items(self):
        return self._items().items()

    def pop(self, key: str):
        return self._items().pop(key)

    def clear(self) -> None:
        self._items().clear()

    def update(self, items) -> None:
        pairs = items.items() if hasattr(items, "items") else items
        for key, value in pairs:
            self[key] = value


class ModuleDict(_DictContainer):
    """A dict of named modules whose parameters are registered, in insertion order."""

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)


class ParameterList(Module):
    """A list of Parameters registered under '0', '1', ..."""

    def __init__(self, values=None):
        super().__init__()
        for v in values or ():
            self.append(v)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, idx) -> Parameter:
        return self._parameters[str(_index(idx, len(self), "ParameterList"))]

    def __setitem__(self, idx, value) -> None:
        self.register_parameter(str(_index(idx, len(self), "ParameterList")), _as_param(value))

    def append(self, value) -> ParameterList:
        self.register_parameter(str(len(self)), _as_param(value))
        return self

    def extend(self, values) -> ParameterList:
        for v in values:
            self.append(v)
        return self

    def extra_repr(self) -> str:
        return _parameters_repr(self)


class ParameterDict(_DictContainer):
    """A dict of named Parameters."""

    _store = "_parameters"

    def __setitem__(self, key: str, value) -> None:
        self.register_parameter(key, _as_param(value))

    def extra_repr(self) -> str:
        return _parameters_repr(self)


def _parameters_repr(module: Module) -> str:
    """One line per parameter, as PyTorch's ParameterList and ParameterDict print them."""
    return "\n".join(f"({k}): Parameter containing: [{p.dtype!r} of size {tuple(p.shape)}]"
                     for k, p in module._parameters.items())


def _as_param(value) -> Parameter:
    return value if isinstance(value, Parameter) else Parameter(value)
