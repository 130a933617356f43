"""Keras-style layer wrappers: ``TimeDistributed``, ``Bidirectional``."""
from __future__ import annotations

from ..tensor import Tensor
from .layer import Layer

__all__ = ["TimeDistributed", "Bidirectional"]


def _serialize(layer) -> dict:
    from ..saving.config import serialize_layer
    return serialize_layer(layer)


def _deserialize(config: dict):
    from ..saving.config import deserialize_layer
    return deserialize_layer(config)


class TimeDistributed(Layer):
    """Apply ``layer`` to every time step: inputs ``(batch, timesteps, ...)`` run as one ``(batch*timesteps, ...)``.

    >>> import ember
    >>> td = ember.layers.TimeDistributed(ember.layers.Dense(4))
    >>> tuple(td(ember.ones(2, 5, 3)).shape)
    (2, 5, 4)
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed: expected a Keras-style layer (ember.layers), got {layer!r:.80}")
        self.layer = layer

    def call(self, inputs, training=None, mask=None):
        if not isinstance(inputs, Tensor) or inputs.dim() < 3:
            raise ValueError(f"TimeDistributed {self.name!r}: expected inputs of at least 3 dims (batch, timesteps, "
                             f"...), got shape {tuple(inputs.shape) if isinstance(inputs, Tensor) else inputs!r}")
        n, t = inputs.shape[0], inputs.shape[1]
        kw = {"training": training} if self.layer._accepts_training() else {}
        y = self.layer(inputs.reshape(n * t, *inputs.shape[2:]), **kw)
        out = y.reshape(n, t, *y.shape[1:])
        m = mask if mask is not None else getattr(inputs, "_keras_mask", None)
        if m is not None:
            out._keras_mask = m
        return out

    def get_config(self):
        return {**super().get_config(), "layer": _serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict):
        return super().from_config({**config, "layer": _deserialize(config["layer"])})


_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


class Bidirectional(Layer):
    """Run a recurrent layer forwards and a copy of it backwards, and merge the two outputs (Keras' ``Bidirectional``).

    ``merge_mode``: 'concat' (default, last axis), 'sum', 'mul', 'ave' or None (a list of both). The
    wrapped layer is copied from its config as ``forward_<name>``, and, unless ``backward_layer`` is
    given, as ``backward_<name>`` with ``go_backwards`` flipped. With ``return_state=True`` the output is
    ``[merged, *forward_states, *backward_states]``. With a mask and ``return_sequences=True`` the
    outputs at masked steps are zero. A ``stateful`` layer makes both directions stateful (each keeps its
    own final states; ``states`` lists the forward ones then the backward ones; ``reset_states()``).

    >>> import ember
    >>> bi = ember.layers.Bidirectional(ember.layers.LSTM(4, return_sequences=True))
    >>> tuple(bi(ember.ones(2, 5, 3)).shape)
    (2, 5, 8)
    """

    def __init__(self, layer, merge_mode: str | None = "concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer) or not hasattr(layer, "go_backwards"):
            raise ValueError(f"Bidirectional: expected a recurrent layer (SimpleRNN, LSTM, GRU), got {layer!r:.80}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: invalid merge_mode {merge_mode!r}; expected one of {_MERGE_MODES}")
        if weights is not None:
            raise NotImplementedError("Bidirectional: weights= is not supported; set the sublayers' weights instead")
        cfg = _serialize(layer)
        cfg["config"]["name"] = "forward_" + _strip(layer.name, "forward_")
        self.forward_layer = _deserialize(cfg)
        if backward_layer is None:
            cfg = _serialize(layer)
            cfg["config"]["name"] = "backward_" + _strip(layer.name, "backward_")
            cfg["config"]["go_backwards"] = not layer.go_backwards
            self.backward_layer = _deserialize(cfg)
            self.__dict__["_custom_backward"] = False
        else:
            if not isinstance(backward_layer, Layer) or not hasattr(backward_layer, "go_backwards"):
                raise ValueError(f"Bidirectional: backward_layer must be a recurrent layer, got {backward_layer!r:.80}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("Bidirectional: backward_layer.go_backwards must be the opposite of "
                                 "layer.go_backwards")
            for attr in ("stateful", "return_sequences", "return_state"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(f"Bidirectional: backward_layer.{attr} must equal layer.{attr}")
            self.backward_layer = backward_layer
            self.__dict__["_custom_backward"] = True
        self.merge_mode = merge_mode
        self.stateful = layer.stateful
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        for sub in (self.forward_layer, self.backward_layer):
            sub.__dict__["zero_output_for_mask"] = self.return_sequences

    def call(self, sequences, initial_state=None, mask=None, training=None):
        if mask is None:
            mask = getattr(sequences, "_keras_mask", None)
        fwd_state = bwd_state = None
        if initial_state is not None:
            states = list(initial_state)
            half = len(states) // 2
            fwd_state, bwd_state = states[:half], states[half:]
        y = self.forward_layer(sequences, initial_state=fwd_state, mask=mask, training=training)
        y_rev = self.backward_layer(sequences, initial_state=bwd_state, mask=mask, training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        if self.merge_mode == "concat":
            from ..ops.join import cat
            out = cat([y, y_rev], -1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) * 0.5
        elif self.merge_mode == "mul":
            out = y * y_rev
        else:
            out = [y, y_rev]
        if mask is not None and self.return_sequences and isinstance(out, Tensor):
            out._keras_mask = mask
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    @property
    def states(self):
        """With ``stateful=True``: the forward layer's kept states, then the backward layer's (else None)."""
        if self.forward_layer.states and self.backward_layer.states:
            return list(self.forward_layer.states) + list(self.backward_layer.states)
        return None

    def reset_state(self) -> None:
        """Zero the kept states of both directions; only for a stateful wrapped layer (as in Keras)."""
        if not self.stateful:
            raise AttributeError(f"Bidirectional {self.name!r}: reset_state() needs a stateful layer "
                                 "(stateful=True)")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self) -> None:
        """Alias of :meth:`reset_state`."""
        self.reset_state()

    def _symbolic_call(self, args, kwargs, record: bool = True):
        # shape inference runs both sublayers on stand-in data: it must not move their kept states
        subs = [sub for sub in (self.forward_layer, self.backward_layer) if hasattr(sub, "_build_symbolic")]
        for sub in subs:
            if args:
                sub._build_symbolic(args[0], record)
        saved = [sub.states for sub in subs]
        for sub in subs:
            sub.__dict__["_probing"] = True
        try:
            return super()._symbolic_call(args, kwargs, record)
        finally:
            for sub, states in zip(subs, saved):
                sub.__dict__["states"], sub.__dict__["_probing"] = states, False

    def get_config(self):
        cfg = {**super().get_config(), "layer": _serialize(self.forward_layer), "merge_mode": self.merge_mode}
        if self._custom_backward:
            cfg["backward_layer"] = _serialize(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config: dict):
        backward = config.get("backward_layer")
        return super().from_config({**config, "layer": _deserialize(config["layer"]),
                                    "backward_layer": None if backward is None else _deserialize(backward)})


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name
