"""Padding modules (PyTorch names): zero, constant, reflection, replication and circular padding, 1-D to 3-D.

Each pads the last ``n`` dims of its input through ``F.pad`` (:func:`ember.pad`); padding is
``(left, right)`` for 1-D, ``(left, right, top, bottom)`` for 2-D and ``(left, right, top, bottom, front,
back)`` for 3-D, or one int for all sides. Memory: one padded copy of the input.
"""
from __future__ import annotations

from ...autograd.node import OpError
from ..module import Module

__all__ = ["ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
           "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
           "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"]


class _PadNd(Module):
    _dims = 2
    _mode = "constant"

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        n = 2 * self._dims
        if isinstance(padding, (list, tuple)):
            if len(padding) != n:
                raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {n} ints, got "
                                 f"{padding!r}")
            self.padding = tuple(int(p) for p in padding)
        else:
            self.padding = (int(padding),) * n
        self.value = float(value)

    def forward(self, input):
        from ...ops.join import pad
        n = self._dims
        if input.ndim not in (n + 1, n + 2):
            raise OpError(f"{type(self).__name__}: expected a {n + 1}-D or {n + 2}-D input, got shape "
                          f"{tuple(input.shape)}")
        if self._mode == "constant":
            return pad(input, self.padding, "constant", self.value)
        return pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


def _zero(dims: int):
    class ZeroPad(_ConstantPadNd):
        _dims = dims

        def __init__(self, padding):
            super().__init__(padding, 0.0)

        def extra_repr(self) -> str:
            return f"{self.padding}"
    return ZeroPad


def _family(base, dims: int, name: str, mode: str, doc: str):
    cls = type(name, (base,), {"_dims": dims, "_mode": mode, "__doc__": doc, "__module__": __name__})
    cls.__qualname__ = name
    return cls


_EX = """

    >>> import ember
    >>> ember.nn.{name}({pad})(ember.ones({shape})).shape
    ember.Size([{out}])
    """

ZeroPad1d = _family(_zero(1), 1, "ZeroPad1d", "constant",
                    "Pad the last dim with zeros (PyTorch's ``nn.ZeroPad1d``)." +
                    _EX.format(name="ZeroPad1d", pad="(1, 2)", shape="1, 2, 3", out="1, 2, 6"))
ZeroPad2d = _family(_zero(2), 2, "ZeroPad2d", "constant",
                    "Pad the last two dims with zeros (PyTorch's ``nn.ZeroPad2d``)." +
                    _EX.format(name="ZeroPad2d", pad="1", shape="1, 2, 3, 3", out="1, 2, 5, 5"))
ZeroPad3d = _family(_zero(3), 3, "ZeroPad3d", "constant",
                    "Pad the last three dims with zeros (PyTorch's ``nn.ZeroPad3d``)." +
                    _EX.format(name="ZeroPad3d", pad="1", shape="1, 2, 2, 2", out="1, 4, 4, 4"))
ConstantPad1d = _family(_ConstantPadNd, 1, "ConstantPad1d", "constant",
                        "Pad the last dim with ``value`` (PyTorch's ``nn.ConstantPad1d(padding, value)``)." +
                        _EX.format(name="ConstantPad1d", pad="2, 3.5", shape="1, 3", out="1, 7"))
ConstantPad2d = _family(_ConstantPadNd, 2, "ConstantPad2d", "constant",
                        "Pad the last two dims with ``value`` (PyTorch's ``nn.ConstantPad2d(padding, value)``)." +
                        _EX.format(name="ConstantPad2d", pad="(1, 0, 2, 0), -1.0", shape="1, 3, 3", out="1, 5, 4"))
ConstantPad3d = _family(_ConstantPadNd, 3, "ConstantPad3d", "constant",
                        "Pad the last three dims with ``value`` (PyTorch's ``nn.ConstantPad3d(padding, value)``)." +
                        _EX.format(name="ConstantPad3d", pad="1, 0.5", shape="1, 1, 1, 1", out="1, 3, 3, 3"))
ReflectionPad1d = _family(_PadNd, 1, "ReflectionPad1d", "reflect",
                          "Pad the last dim by reflection, edge excluded (PyTorch's ``nn.ReflectionPad1d``); each pad "
                          "must be smaller than the size." +
                          _EX.format(name="ReflectionPad1d", pad="2", shape="1, 2, 4", out="1, 2, 8"))
ReflectionPad2d = _family(_PadNd, 2, "ReflectionPad2d", "reflect",
                          "Pad the last two dims by reflection (PyTorch's ``nn.ReflectionPad2d``)." +
                          _EX.format(name="ReflectionPad2d", pad="(1, 1, 2, 0)", shape="1, 3, 3", out="1, 5, 5"))
ReflectionPad3d = _family(_PadNd, 3, "ReflectionPad3d", "reflect",
                          "Pad the last three dims by reflection (PyTorch's ``nn.ReflectionPad3d``)." +
                          _EX.format(name="ReflectionPad3d", pad="1", shape="1, 1, 3, 3, 3", out="1, 1, 5, 5, 5"))
ReplicationPad1d = _family(_PadNd, 1, "ReplicationPad1d", "replicate",
                           "Pad the last dim by repeating the edge (PyTorch's ``nn.ReplicationPad1d``)." +
                           _EX.format(name="ReplicationPad1d", pad="(2, 1)", shape="1, 2, 2", out="1, 2, 5"))
ReplicationPad2d = _family(_PadNd, 2, "ReplicationPad2d", "replicate",
                           "Pad the last two dims by repeating the edges (PyTorch's ``nn.ReplicationPad2d``)." +
                           _EX.format(name="ReplicationPad2d", pad="2", shape="1, 2, 2", out="1, 6, 6"))
ReplicationPad3d = _family(_PadNd, 3, "ReplicationPad3d", "replicate",
                           "Pad the last three dims by repeating the edges (PyTorch's ``nn.ReplicationPad3d``)." +
                           _EX.format(name="ReplicationPad3d", pad="1", shape="1, 2, 2, 2", out="1, 4, 4, 4"))
CircularPad1d = _family(_PadNd, 1, "CircularPad1d", "circular",
                        "Pad the last dim by wrapping around (PyTorch's ``nn.CircularPad1d``)." +
                        _EX.format(name="CircularPad1d", pad="1", shape="1, 2, 3", out="1, 2, 5"))
CircularPad2d = _family(_PadNd, 2, "CircularPad2d", "circular",
                        "Pad the last two dims by wrapping around (PyTorch's ``nn.CircularPad2d``)." +
                        _EX.format(name="CircularPad2d", pad="1", shape="1, 2, 3, 3", out="1, 2, 5, 5"))
CircularPad3d = _family(_PadNd, 3, "CircularPad3d", "circular",
                        "Pad the last three dims by wrapping around (PyTorch's ``nn.CircularPad3d``)." +
                        _EX.format(name="CircularPad3d", pad="1", shape="1, 1, 2, 2, 2", out="1, 1, 4, 4, 4"))
