"""Keras-style recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU`` (batch-first inputs ``(N, T, F)``).

Weights use Keras' layout: ``kernel`` (F, k*units), ``recurrent_kernel`` (units, k*units), ``bias`` (k*units,)
(GRU with ``reset_after=True``: (2, 3*units), input and recurrent biases), gate order LSTM i, f, c, o and
GRU z, r, h. They run on the same fused kernel as ``ember.nn.LSTM``/``GRU``/``RNN``
(:func:`ember.ops.rnn.recurrent_scan`): the input projection is one matmul, then one recurrent matmul per
step. Other activations, ``recurrent_dropout`` and ``reset_after=False`` take the step-by-step Ember-op path.

``stateful=True`` (Keras 3): the final states of each call start the next one (``layer.states``, detached,
so backward stops at the call boundary; not weights). The batch size is fixed by ``batch_size=``/
``batch_input_shape``/``Input(batch_size=...)``, else by the first real call (a Sequential built from
data); a functional graph with an unknown batch is an error, as is a later call with another batch size.
``reset_states()``/``reset_state()`` zeroes them. With ``go_backwards=True`` each call reads its chunk
back to front, so the chunks of a long sequence go in last-first. Use ``fit(..., shuffle=False)``.
"""
from __future__ import annotations

from .. import activations as _activations
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..tensor import Tensor
from .layer import Layer

__all__ = ["SimpleRNN", "LSTM", "GRU"]


def _bernoulli_keep(shape, rate: float, like: Tensor) -> Tensor:
    """A dropout mask of ``shape``: 0 with probability ``rate``, else ``1/(1-rate)`` (no gradient), drawn inside
    an op so that a jitted step draws a new one at every run."""
    from ..ops.random import DropoutMask
    return DropoutMask.apply(like, shape=tuple(shape), rate=float(rate))


class _RNNLayer(Layer):
    """Shared machinery of the Keras recurrent layers; subclasses set ``_gates`` and the weight mapping."""

    _gates = 1

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias: bool = True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed=None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{name}: units must be a positive integer, got {units!r}")
        for arg, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0 <= v < 1:
                raise ValueError(f"{name}: {arg} must be in [0, 1), got {v!r}")
        for arg, v in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                       ("recurrent_constraint", recurrent_constraint), ("bias_constraint", bias_constraint)):
            if v is not None:
                raise NotImplementedError(f"{name}: {arg} is not supported in Ember yet (got {v!r})")
        self.units = units
        self.activation = _activations.get(activation)
        self.recurrent_activation = _activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer) if kernel_regularizer else None
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer) if recurrent_regularizer else None
        self.bias_regularizer = _regularizers.get(bias_regularizer) if bias_regularizer else None
        self.dropout, self.recurrent_dropout, self.seed = float(dropout), float(recurrent_dropout), seed
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.zero_output_for_mask = False     # Bidirectional sets it: outputs at masked steps are then zero
        # stateful=True: the final states of each call, detached, start the next call (Keras' ``states``);
        # plain attributes, not weights, as in Keras (they never enter get_weights() or a state_dict)
        self.__dict__["states"] = None
        if self._batch_input_shape is not None:
            self.build(self._batch_input_shape)
            self.__dict__["built"] = True

    # ------------------------------------------------------------ weights
    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        name = type(self).__name__
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{name} {self.name!r}: expected inputs of shape (batch, timesteps, features) with "
                             f"known features, got shape {tuple(input_shape)}")
        g = self._gates * self.units
        self.kernel = self.add_weight((input_shape[-1], g), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight((self.units, g), self.recurrent_initializer, "recurrent_kernel",
                                                regularizer=self.recurrent_regularizer)
        if self.use_bias:
            self.bias = self.add_weight(self._bias_shape(), self._bias_init(), "bias",
                                        regularizer=self.bias_regularizer)
        if self.stateful:
            if self.states is not None:
                self.reset_state()
            elif input_shape[0] is None:
                if self.__dict__.get("_batch_from_first_call"):
                    return
                raise ValueError(f"{name} {self.name!r}: stateful=True needs a fixed batch size, got input shape "
                                 f"{tuple(input_shape)}; pass batch_size= (or batch_input_shape=) to the first "
                                 "layer, or Input(shape=..., batch_size=...) / Input(batch_shape=...)")
            else:
                self.__dict__["states"] = self._zero_states(int(input_shape[0]))

    # ------------------------------------------------------------ stateful=True
    def _zero_states(self, batch_size: int) -> list:
        from ..creation import zeros
        return [zeros(batch_size, self.units, dtype=self.kernel.dtype, device=self.kernel.device)
                for _ in range(self._n_states())]

    def reset_state(self) -> None:
        """Zero the states kept by ``stateful=True`` (a no-op before the layer is built or when not stateful).

        >>> import ember
        >>> layer = ember.layers.GRU(2, stateful=True)
        >>> _ = layer(ember.ones(3, 4, 5))
        >>> layer.reset_state()
        >>> [s.abs().sum().item() for s in layer.states]
        [0.0]
        """
        if self.states is not None:
            self.__dict__["states"] = self._zero_states(self.states[0].shape[0])

    def reset_states(self) -> None:
        """Alias of :meth:`reset_state` (Keras keeps both names)."""
        self.reset_state()

    def _build_symbolic(self, x, record: bool) -> None:
        """Build from a KerasTensor first, so the batch size comes from the symbolic shape, not from stand-ins.

        An unknown batch is an error in a functional graph (``record``, as Keras does); when a Sequential
        builds itself from data (``record=False``) the first real call's batch size fixes the states.
        """
        from .symbolic import KerasTensor
        if self.stateful and not self.built and isinstance(x, KerasTensor):
            self.__dict__["_batch_from_first_call"] = not record
            try:
                self._build_from(x)
            finally:
                self.__dict__["_batch_from_first_call"] = False

    def _symbolic_call(self, args, kwargs, record: bool = True):
        # shape inference runs the layer on stand-in data: it must not move (or create) the kept states
        if args:
            self._build_symbolic(args[0], record)
        saved = self.states
        self.__dict__["_probing"] = True
        try:
            return super()._symbolic_call(args, kwargs, record)
        finally:
            self.__dict__["states"], self.__dict__["_probing"] = saved, False

    # ------------------------------------------------------------ the recurrence
    def _mode(self) -> str:
        return "rnn_relu" if self.activation is _activations.relu else "rnn_tanh"

    def _fused(self) -> bool:
        """Whether the fused kernel computes these activations (tanh and sigmoid; ReLU for SimpleRNN)."""
        return self.activation is _activations.tanh and self.recurrent_activation is _activations.sigmoid

    def _scan_weights(self):
        """``(w_ih^T-free kernel (F, G), input bias, w_hh (G, units) in PyTorch layout, recurrent bias)``."""
        return self.kernel, (self.bias if self.use_bias else None), self.recurrent_kernel.t(), None

    def _n_states(self) -> int:
        return 1

    def call(self, sequences, initial_state=None, mask=None, training=None):
        from ..ops.linalg import matmul
        from ..ops.rnn import recurrent_scan
        name = type(self).__name__
        if not isinstance(sequences, Tensor) or sequences.dim() != 3:
            raise ValueError(f"{name} {self.name!r}: expected inputs of shape (batch, timesteps, features), got "
                             f"{tuple(sequences.shape) if isinstance(sequences, Tensor) else type(sequences)}")
        N, T, F = sequences.shape
        if F != self.kernel.shape[0]:
            raise ValueError(f"{name} {self.name!r}: expected {self.kernel.shape[0]} input features (the layer "
                             f"was built for them), got inputs of shape {tuple(sequences.shape)}")
        if mask is None:
            mask = getattr(sequences, "_keras_mask", None)
        x = sequences if sequences.dtype == self.kernel.dtype else sequences.to(self.kernel.dtype)
        if training and self.dropout:
            x = x * _bernoulli_keep((N, 1, F), self.dropout, x)
        kernel, b_in, w_hh, b_rec = self._scan_weights()
        proj = matmul(x.reshape(N * T, F), kernel)
        if b_in is not None:
            proj = proj + b_in
        proj = proj.reshape(N, T, -1).transpose(0, 1)
        carry = self.stateful and not (self.__dict__.get("_probing") and
                                       (self.states is None or self.states[0].shape[0] != N))
        if carry:
            if self.states is None:     # batch size not known at build time: the first call fixes it
                self.__dict__["states"] = self._zero_states(N)
            B = self.states[0].shape[0]
            if N != B:
                raise ValueError(f"{name} {self.name!r}: stateful=True: the layer keeps states for a batch of {B} "
                                 f"sequences, got inputs of shape {tuple(sequences.shape)}; every batch must have "
                                 f"{B} samples (fit/predict with batch_size={B} and a sample count divisible by it)")
            if initial_state is None:
                initial_state = self.states
        states = self._initial_states(initial_state, N)
        tmask = None
        if mask is not None:
            m = mask.data if isinstance(mask, Tensor) else sequences.xp.asarray(mask)
            if tuple(m.shape) != (N, T):
                raise ValueError(f"{name} {self.name!r}: mask must have shape (batch, timesteps) = {(N, T)}, got "
                                 f"{tuple(m.shape)}")
            tmask = m.astype(bool).T[:, :, None]
        kw = {}
        if not self._fused():
            kw = {"activation": self.activation, "recurrent_activation": self.recurrent_activation}
        if training and self.recurrent_dropout:
            kw["recurrent_mask"] = _bernoulli_keep((N, self.units), self.recurrent_dropout, x)
        res = recurrent_scan(self._mode(), proj, w_hh, b_rec, *states, mask=tmask, reverse=self.go_backwards, **kw)
        out, finals = res[0], list(res[1:])
        if carry:       # detached, so a later backward stops at this call's boundary
            self.__dict__["states"] = [f.detach().clone() for f in finals[:self._n_states()]]
        if self.return_sequences:
            if tmask is not None and self.zero_output_for_mask:
                out = out * Tensor(tmask.astype(out.data.dtype))
            out = out.flip(0) if self.go_backwards else out
            out = out.transpose(0, 1)
            if mask is not None:
                out._keras_mask = mask      # passed on to the next layer, as Keras does
        else:
            out = finals[0]
        return [out] + finals if self.return_state else out

    def _initial_states(self, initial_state, N: int) -> list:
        n = self._n_states()
        if initial_state is None:
            return [None] * n
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != n or any(tuple(s.shape) != (N, self.units) for s in states):
            raise ValueError(f"{type(self).__name__} {self.name!r}: initial_state must be {n} tensor(s) of shape "
                             f"{(N, self.units)}, got {[tuple(s.shape) for s in states]}")
        return states + [None] * (2 - n)

    def compute_mask(self, inputs, mask=None):
        """The mask passed on: the input mask for ``return_sequences=True``, else none (as in Keras)."""
        return mask if self.return_sequences else None

    def get_config(self):
        ser = _initializers.serialize
        return {**super().get_config(), "units": self.units,
                "activation": _activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": ser(self.kernel_initializer),
                "recurrent_initializer": ser(self.recurrent_initializer),
                "bias_initializer": ser(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer)
                if self.kernel_regularizer else None,
                "recurrent_regularizer": _regularizers.serialize(self.recurrent_regularizer)
                if self.recurrent_regularizer else None,
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll}

    def extra_repr(self):
        return f"name={self.name!r}, units={self.units}"


class SimpleRNN(_RNNLayer):
    """Fully-connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`` (Keras).

    Input ``(batch, timesteps, features)``; output the last ``h`` ``(batch, units)``, or every step
    ``(batch, timesteps, units)`` with ``return_sequences=True``; ``return_state=True`` adds the final state.
    Memory: about ``2*batch*timesteps*units`` elements kept for the gradient (``stateful=True`` adds
    ``batch*units`` for the kept state; see the module docstring).

    >>> import ember
    >>> layer = ember.layers.SimpleRNN(4, return_sequences=True)
    >>> tuple(layer(ember.ones(2, 5, 3)).shape)
    (2, 5, 4)
    >>> rnn = ember.layers.SimpleRNN(4, stateful=True)
    >>> x = ember.ones(2, 6, 3)
    >>> first, second = rnn(x[:, :3]), rnn(x[:, 3:])   # the second call starts where the first ended
    >>> tuple(rnn.states[0].shape)
    (2, 4)
    >>> rnn.reset_states()
    >>> rnn.states[0].abs().sum().item()
    0.0
    """

    def __init__(self, units: int, activation="tanh", use_bias: bool = True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False, seed=None, **kwargs):
        super().__init__(units, activation, "sigmoid", use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                         recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll,
                         **kwargs)

    def _fused(self) -> bool:
        return self.activation is _activations.tanh or self.activation is _activations.relu


class LSTM(_RNNLayer):
    """Long short-term memory (Keras' ``LSTM``); ``kernel`` columns are the gates i, f, c, o.

    ``unit_forget_bias=True`` starts the forget-gate bias at 1. ``return_state=True`` returns
    ``[output, h, c]``. Memory: about ``8*batch*timesteps*units`` elements kept for the gradient.

    >>> import ember
    >>> out, h, c = ember.layers.LSTM(4, return_state=True)(ember.ones(2, 5, 3))
    >>> tuple(out.shape), tuple(c.shape)
    ((2, 4), (2, 4))
    """

    _gates = 4

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias: bool = True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias: bool = True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed=None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, **kwargs):
        self.__dict__["unit_forget_bias"] = bool(unit_forget_bias)
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, recurrent_constraint,
                         bias_constraint, dropout, recurrent_dropout, seed, return_sequences, return_state,
                         go_backwards, stateful, unroll, **kwargs)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, u = self.bias_initializer, self.units

        def init(shape, dtype=None):
            from ..ops.join import cat
            from ..creation import ones
            return cat([base((u,), dtype=dtype), ones(u, dtype=dtype), base((2 * u,), dtype=dtype)], 0)
        return init

    def _mode(self) -> str:
        return "lstm"

    def _n_states(self) -> int:
        return 2

    def get_config(self):
        cfg = super().get_config()
        cfg["recurrent_activation"] = _activations.serialize(self.recurrent_activation)
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRU(_RNNLayer):
    """Gated recurrent unit (Keras' ``GRU``); ``kernel`` columns are the gates z, r, h.

    With ``reset_after=True`` (the default) ``bias`` is (2, 3*units) and the reset gate multiplies
    ``h @ recurrent_kernel + recurrent_bias`` (PyTorch's GRU); ``reset_after=False`` multiplies ``h`` first.
    Memory: about ``7*batch*timesteps*units`` elements kept for the gradient.

    >>> import ember
    >>> layer = ember.layers.GRU(4)
    >>> tuple(layer(ember.ones(2, 5, 3)).shape), tuple(layer.bias.shape)
    ((2, 4), (2, 12))
    """

    _gates = 3

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias: bool = True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed=None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, reset_after: bool = True, **kwargs):
        self.__dict__["reset_after"] = bool(reset_after)
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, recurrent_constraint,
                         bias_constraint, dropout, recurrent_dropout, seed, return_sequences, return_state,
                         go_backwards, stateful, unroll, **kwargs)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _mode(self) -> str:
        return "gru" if self.reset_after else "gru_v1"

    def _scan_weights(self):
        # Keras' gate order z, r, h -> PyTorch's r, z, n (the order the kernel computes in)
        u = self.units
        perm = self.kernel.xp.concatenate([self.kernel.xp.arange(u, 2 * u), self.kernel.xp.arange(0, u),
                                           self.kernel.xp.arange(2 * u, 3 * u)])
        kernel = self.kernel[:, perm]
        w_hh = self.recurrent_kernel[:, perm].t()
        b_in = b_rec = None
        if self.use_bias:
            if self.reset_after:
                b_in, b_rec = self.bias[0][perm], self.bias[1][perm]
            else:
                b_in = self.bias[perm]
        return kernel, b_in, w_hh, b_rec

    def get_config(self):
        cfg = super().get_config()
        cfg["recurrent_activation"] = _activations.serialize(self.recurrent_activation)
        cfg["reset_after"] = self.reset_after
        return cfg
