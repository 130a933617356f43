"""Padding modules: ZeroPad2d, ConstantPad1d/2d, ReflectionPad2d, ReplicationPad2d."""
from __future__ import annotations

__all__: list[str] = []
