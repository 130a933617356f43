"""Keras-style reshaping layers: UpSampling2D, ZeroPadding2D, Cropping2D, RepeatVector, Permute."""
from __future__ import annotations

__all__: list[str] = []
