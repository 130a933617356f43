"""Recurrent modules (PyTorch's ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells).

Every layer and direction is one :class:`~ember.ops.rnn.RecurrentScan`: the input projection of the
whole sequence is one matmul, then a fused loop does one ``h @ W_hh^T`` per step for all gates.
Parameter names, shapes, gate order (LSTM i, f, g, o; GRU r, z, n) and initialisation are PyTorch's,
so a torch ``state_dict`` loads as is.
"""
from __future__ import annotations

import math
import warnings

from ... import dtypes as _dt
from ...creation import empty
from ...tensor import Tensor
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_SCAN_MODE = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}


def _lengths_mask(lengths, T: int, N: int, xp, who: str):
    """(T, N, 1) bool mask of the valid steps of each sequence, from ``lengths`` (N,)."""
    lens = lengths.tolist() if isinstance(lengths, Tensor) or hasattr(lengths, "tolist") else list(lengths)
    if len(lens) != N or not all(isinstance(v, int) and not isinstance(v, bool) for v in lens):
        raise ValueError(f"{who}: lengths must hold one integer per sequence ({N}), got {lens}")
    if lens and (min(lens) < 1 or max(lens) > T):
        raise ValueError(f"{who}: every length must be in [1, {T}] (the padded sequence length), got {lens}")
    return (xp.arange(T)[:, None] < xp.asarray(lens)[None, :])[:, :, None]


def _project(linear, x, w, b, batch_major: bool):
    """``x @ w.T + b`` for every step at once as one 2-D matmul, returned time-major (T, N, G), contiguous.

    A batch-major input is made time-major first: copying the input (N*T*F) is cheaper than copying the
    gradient of the projection (N*T*G) on the way back, and the scan reads one contiguous block per step.
    """
    if batch_major:
        x = x.transpose(0, 1)
    T, N, n_in = x.shape
    return linear(x.reshape(T * N, n_in), w, b).reshape(T, N, w.shape[0])


class RNNBase(Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU` (PyTorch's ``nn.RNNBase``)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if mode not in _GATES:
            raise ValueError(f"{name}: unknown mode {mode!r}; expected one of {sorted(_GATES)}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability of "
                             f"an element being zeroed, got {dropout!r}")
        sizes = (("input_size", input_size, 0), ("hidden_size", hidden_size, 1), ("num_layers", num_layers, 1))
        for arg, v, lo in sizes:
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name}: {arg} must be an integer >= {lo}, got {v!r}")
        if not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections, "
                             f"got {proj_size!r}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size (got proj_size={proj_size}, "
                             f"hidden_size={hidden_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=2)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bool(bias), bool(batch_first)
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bool(bidirectional), proj_size
        dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        gate = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        real_hidden = proj_size or hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else real_hidden * dirs
                shapes = {"weight_ih": (gate, in_size), "weight_hh": (gate, real_hidden)}
                if bias:
                    shapes.update(bias_ih=(gate,), bias_hh=(gate,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                for pname, shape in shapes.items():
                    setattr(self, pname + sfx, Parameter(empty(*shape, dtype=dtype, device=device)))
                    self._flat_weights_names.append(pname + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op kept for PyTorch compatibility (Ember's weights need no cuDNN flattening)."""

    @property
    def all_weights(self) -> list:
        """The parameters of every layer and direction: ``[[w_ih, w_hh, b_ih, b_hh(, w_hr)], ...]``."""
        per = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        flat = [getattr(self, n) for n in self._flat_weights_names]
        return [flat[k:k + per] for k in range(0, len(flat), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------ forward
    def _check_input(self, input) -> bool:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D (unbatched) or 3D (batched), got {input.dim()}D "
                             f"input of shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {input.shape[-1]} (input shape {tuple(input.shape)})")
        if not _dt.is_float(input.data.dtype):
            raise TypeError(f"{name}: expected a floating point input, got dtype {input.dtype}")
        return input.dim() == 3

    def _check_hidden(self, h, N: int, batched: bool, what: str):
        dirs = 2 if self.bidirectional else 1
        size = self.proj_size if what == "hidden" and self.proj_size else self.hidden_size
        expected = (self.num_layers * dirs, N, size) if batched else (self.num_layers * dirs, size)
        if not isinstance(h, Tensor) or tuple(h.shape) != expected:
            got = list(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"{type(self).__name__}: Expected {what} size {expected}, got {got}"
                             + ("" if batched else " (for unbatched 2-D input, hx should also be 2-D)"))
        return h if batched else h.unsqueeze(1)

    def forward(self, input, hx=None, *, lengths=None):
        """Run the layers over ``input``; see the class docstring for shapes. ``lengths`` is an Ember extension."""
        from ..utils.rnn import PackedSequence, _repack, pad_packed_sequence
        if isinstance(input, PackedSequence):
            # run on the padded batch in its original order (hx and h_n are in that order too, as in PyTorch)
            padded, lens = pad_packed_sequence(input, batch_first=self.batch_first)
            out, h = self.forward(padded, hx, lengths=lens)
            return _repack(out, input, self.batch_first), h
        batched = self._check_input(input)
        bdim = 0 if self.batch_first else 1
        x = input if batched else input.unsqueeze(bdim)
        T, N = x.shape[1 - bdim], x.shape[bdim]
        lstm = self.mode == "LSTM"
        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise ValueError("LSTM: hx must be a tuple (h_0, c_0) of tensors")
                h0 = self._check_hidden(hx[0], N, batched, "hidden")
                c0 = self._check_hidden(hx[1], N, batched, "cell")
            else:
                h0 = self._check_hidden(hx, N, batched, "hidden")
        mask = None if lengths is None else _lengths_mask(lengths, T, N, x.xp, type(self).__name__)
        out, hs, cs = self._run(x, h0, c0, mask)
        if mask is not None:
            out = out * Tensor(mask.astype(out.data.dtype))
        if self.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out = out.squeeze(bdim)
            hs = hs.squeeze(1)
            cs = cs.squeeze(1) if lstm else None
        return (out, (hs, cs)) if lstm else (out, hs)

    def _run(self, x, h0, c0, mask):
        """All layers: ``(output (T, N, D*H), h_n (L*D, N, H), c_n or None)``; ``x`` in the module's layout."""
        from ...ops.join import cat, stack
        from ...ops.linalg import linear
        from ...ops.rnn import recurrent_scan
        from .dropout import dropout
        mode = _SCAN_MODE[self.mode]
        dirs = 2 if self.bidirectional else 1
        hs, cs = [], []
        batch_major = self.batch_first
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                x = dropout(x, self.dropout, True)
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
                b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
                b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
                b = b_ih if (mode == "gru" or b_ih is None) else b_ih + b_hh
                proj = _project(linear, x, w_ih, b, batch_major)
                w_hr = getattr(self, "weight_hr" + sfx) if self.proj_size else None
                res = recurrent_scan(mode, proj, w_hh, b_hh, None if h0 is None else h0[k],
                                     None if c0 is None else c0[k], w_hr, mask=mask, reverse=bool(d))
                outs.append(res[0])
                hs.append(res[1])
                if mode == "lstm":
                    cs.append(res[2])
            x = outs[0] if dirs == 1 else cat(outs, -1)
            batch_major = False
        return x, stack(hs, 0), (stack(cs, 0) if cs else None)


_SHAPES_DOC = """
    Input: ``(L, N, H_in)``, or ``(N, L, H_in)`` with ``batch_first=True``, or unbatched ``(L, H_in)``.
    Output ``(L, N, D*H_out)`` (D = 2 if bidirectional) and the final state(s) ``(num_layers*D, N, H_out)``.
    ``lengths=`` (an Ember extension, one int per sequence) treats the steps past each length as padding:
    they don't update the state, their output is zero and the reverse direction starts at each sequence's
    last valid step, exactly as PyTorch with ``pack_padded_sequence(..., enforce_sorted=False)``. A
    :class:`~ember.nn.utils.rnn.PackedSequence` input is accepted too. Memory: see ``RecurrentScan``
    (about 8 (LSTM) / 7 (GRU) / 2 (RNN) * L*N*H elements per layer and direction kept for the gradient).
"""


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU), PyTorch's ``nn.RNN``.
    """ + _SHAPES_DOC + """
    >>> import ember
    >>> rnn = ember.nn.RNN(10, 20, num_layers=2)
    >>> out, h = rnn(ember.randn(5, 3, 10))
    >>> tuple(out.shape), tuple(h.shape)
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")


class LSTM(RNNBase):
    """Long short-term memory (PyTorch's ``nn.LSTM``); gates i, f, g, o stacked in that order in the weights.

    ``c_t = f*c_{t-1} + i*g``, ``h_t = o*tanh(c_t)``; returns ``output, (h_n, c_n)``; ``hx = (h_0, c_0)``.
    With ``proj_size > 0`` ``h_t`` is projected to that size by ``weight_hr_l{k}`` (proj_size, hidden_size).
    """ + _SHAPES_DOC + """
    >>> import ember
    >>> lstm = ember.nn.LSTM(10, 20, batch_first=True, bidirectional=True)
    >>> out, (h, c) = lstm(ember.randn(3, 5, 10))
    >>> tuple(out.shape), tuple(h.shape), tuple(c.shape)
    ((3, 5, 40), (2, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit (PyTorch's ``nn.GRU``); gates r, z, n stacked in that order in the weights.

    ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``, ``h' = (1 - z)*n + z*h``.
    """ + _SHAPES_DOC + """
    >>> import ember
    >>> gru = ember.nn.GRU(4, 6)
    >>> out, h = gru(ember.randn(7, 4))
    >>> tuple(out.shape), tuple(h.shape)
    ((7, 6), (1, 6))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# ---------------------------------------------------------------- cells
class RNNCellBase(Module):
    """Shared machinery of the single-step cells: ``weight_ih`` (G*H, in), ``weight_hh`` (G*H, H), biases."""

    _mode = "rnn_tanh"

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
        g = num_chunks * hidden_size
        self.weight_ih = Parameter(empty(g, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(g, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(g, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(g, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        return s

    def _state(self, h, N: int, batched: bool, what: str):
        name = type(self).__name__
        want = (N, self.hidden_size) if batched else (self.hidden_size,)
        if not isinstance(h, Tensor) or tuple(h.shape) != want:
            got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"{name}: expected {what} of shape {want}, got {got}")
        return h if batched else h.unsqueeze(0)

    def _step(self, input, h0, c0):
        from ...ops.linalg import linear
        from ...ops.rnn import recurrent_scan
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got "
                             f"{input.dim() if isinstance(input, Tensor) else type(input).__name__}D input")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                             f"{self.input_size}")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        N = x.shape[0]
        h0 = None if h0 is None else self._state(h0, N, batched, "hx")
        c0 = None if c0 is None else self._state(c0, N, batched, "cx")
        b = self.bias_ih
        if b is not None and self._mode != "gru":
            b = b + self.bias_hh
        res = recurrent_scan(self._mode, linear(x, self.weight_ih, b).unsqueeze(0), self.weight_hh, self.bias_hh,
                             h0, c0)
        out = res[1:]
        return out if batched else tuple(o.squeeze(0) for o in out)


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (PyTorch's ``nn.RNNCell``).

    Input ``(N, H_in)`` or ``(H_in,)``; ``hx`` ``(N, H)`` (zeros when omitted); returns ``h'``.

    >>> import ember
    >>> cell = ember.nn.RNNCell(3, 5, nonlinearity="relu")
    >>> tuple(cell(ember.randn(2, 3)).shape)
    (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity
        self._mode = "rnn_" + nonlinearity

    def forward(self, input, hx=None):
        return self._step(input, hx, None)[0]


class LSTMCell(RNNCellBase):
    """One LSTM step (PyTorch's ``nn.LSTMCell``): ``(h', c')`` from ``input`` and ``hx = (h, c)``.

    >>> import ember
    >>> cell = ember.nn.LSTMCell(3, 5)
    >>> h, c = cell(ember.randn(2, 3))
    >>> tuple(h.shape), tuple(c.shape)
    ((2, 5), (2, 5))
    """

    _mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError("LSTMCell: hx must be a tuple (h, c) of tensors")
        h0, c0 = hx if hx is not None else (None, None)
        return self._step(input, h0, c0)


class GRUCell(RNNCellBase):
    """One GRU step (PyTorch's ``nn.GRUCell``): ``h'`` from ``input`` and ``hx``.

    >>> import ember
    >>> cell = ember.nn.GRUCell(3, 5)
    >>> tuple(cell(ember.randn(3)).shape)
    (5,)
    """

    _mode = "gru"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx, None)[0]
