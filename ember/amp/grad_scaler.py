"""``ember.amp.GradScaler``: dynamic loss scaling for float16 training, as ``torch.amp.GradScaler``.

float16 gradients underflow to zero below ~6e-8; multiplying the loss by a large scale keeps them
representable. Before the optimizer step the gradients are divided back ("unscaled"); a step whose
gradients hold inf/nan is skipped and the scale is multiplied by ``backoff_factor``; after
``growth_interval`` clean steps in a row it is multiplied by ``growth_factor``.
"""
from __future__ import annotations

import warnings

import numpy

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["GradScaler"]

_READY, _UNSCALED, _STEPPED = 0, 1, 2


class GradScaler:
    """Scale the loss, unscale the gradients, skip steps with inf/nan gradients, adapt the scale.

    Args:
        device: ``'cuda'`` (PyTorch's default; disabled with a warning when CUDA is absent) or ``'cpu'``.
        init_scale: the first scale. growth_factor (> 1), backoff_factor (< 1), growth_interval: how
            the scale grows after that many clean steps, and shrinks after a step with inf/nan gradients.
        enabled: ``False`` makes every method a pass-through (``scale`` returns its input).

    >>> import ember
    >>> w = ember.nn.Parameter(ember.ones(3))
    >>> opt = ember.optim.SGD([w], lr=0.1)
    >>> scaler = ember.amp.GradScaler('cpu', init_scale=1024.0)
    >>> scaler.scale((w * 2).sum()).backward()
    >>> scaler.step(opt); scaler.update()
    >>> w.tolist()
    [0.800000011920929, 0.800000011920929, 0.800000011920929]
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        self._device = str(device).split(":")[0]
        self._enabled = bool(enabled)
        if self._enabled and self._device == "cuda":
            from .autocast import _cuda_available
            if not _cuda_available():
                warnings.warn("GradScaler is enabled for 'cuda', but CUDA is not available. Disabling "
                              "(use GradScaler('cpu') for the CPU).", UserWarning, stacklevel=2)
                self._enabled = False
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
        if backoff_factor >= 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be < 1.0, got {backoff_factor}")
        self._scale = numpy.float32(init_scale)      # float32 arithmetic, as PyTorch's scale tensor
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer: dict = {}

    # ------------------------------------------------------------ the three calls of a step
    def scale(self, outputs):
        """``outputs * scale`` (a tensor, or a list/tuple of tensors, nested); unchanged when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * Tensor(numpy.asarray(self._scale, dtype=numpy.float32))
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise TypeError(f"GradScaler.scale: expected a Tensor or a list/tuple of Tensors, got {type(outputs).__name__}")

    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale in place and note whether any is inf/nan."""
        if not self._enabled:
            return
        state = self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": False})
        if state["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv = numpy.float32(1.0 / numpy.float64(self._scale))     # PyTorch: scale.double().reciprocal().float()
        found = False
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    if g.data.dtype == numpy.float16:
                        raise ValueError("GradScaler.unscale_: attempting to unscale float16 gradients; keep the "
                                         "parameters in float32 and let autocast cast them (mixed precision).")
                    a = g.data
                    a *= a.dtype.type(inv) if a.dtype.kind == "f" else inv
                    if not found:
                        found = not bool(g.xp.isfinite(a).all())
        state["found_inf"] = found
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscale (unless done already) and call ``optimizer.step()`` unless a gradient is inf/nan."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": False})
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        retval = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return retval

    def update(self, new_scale: float | None = None) -> None:
        """Back off after a skipped step, grow after ``growth_interval`` clean ones (or set ``new_scale``)."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = numpy.float32(new_scale.item() if isinstance(new_scale, Tensor) else new_scale)
        else:
            if not self._per_optimizer:
                raise RuntimeError("GradScaler.update: no inf checks were recorded prior to update(); call "
                                   "scaler.step(optimizer) (or unscale_) first.")
            if any(s["found_inf"] for s in self._per_optimizer.values()):
                self._scale = numpy.float32(self._scale * numpy.float32(self._backoff_factor))
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    grown = numpy.float32(self._scale * numpy.float32(self._growth_factor))
                    if numpy.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._per_optimizer = {}

    # ------------------------------------------------------------ settings and state
    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled)."""
        return float(self._scale) if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """``scale``, the factors, the interval and ``_growth_tracker`` (empty when disabled), as PyTorch."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._scale = numpy.float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
