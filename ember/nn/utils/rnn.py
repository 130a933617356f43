"""Variable-length batches for recurrent modules: ``PackedSequence`` and its pack/pad helpers (PyTorch's names).

A packed sequence stores, time step by time step, only the entries of the sequences still running
(``batch_sizes[t]`` of them, longest sequences first). Ember's RNN modules run a packed batch as the
padded batch with ``lengths=``; packing and padding are differentiable gathers/scatters.
"""
from __future__ import annotations

from typing import NamedTuple

from ...tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence"]


class PackedSequence(NamedTuple):
    """``data`` (sum(lengths), *) in time-major packed order; ``batch_sizes`` (T,) int64; the sort permutations."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


def _lengths(lengths, who: str) -> list:
    lens = lengths.tolist() if hasattr(lengths, "tolist") else list(lengths)
    if not lens or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in lens):
        raise ValueError(f"{who}: lengths must be a non-empty list of positive integers, got {lens}")
    return lens


def _layout(lens_sorted: list) -> tuple:
    """``(time index, sorted batch position)`` of every packed entry, and ``batch_sizes``."""
    sizes = [sum(1 for v in lens_sorted if v > t) for t in range(lens_sorted[0])]
    ts = [t for t, s in enumerate(sizes) for _ in range(s)]
    bs = [b for s in sizes for b in range(s)]
    return ts, bs, sizes


def _pack(x_tm: Tensor, lens: list, order: list | None) -> PackedSequence:
    """Pack a time-major padded ``x_tm`` (T, B, *) whose sequences have ``lens`` (original order)."""
    from ...creation import tensor
    xp = x_tm.xp
    order = order if order is not None else list(range(len(lens)))
    ts, bs, sizes = _layout([lens[i] for i in order])
    orig = [order[b] for b in bs]
    data = x_tm[xp.asarray(ts, dtype=xp.int64), xp.asarray(orig, dtype=xp.int64)]
    sorted_idx = unsorted_idx = None
    if order != list(range(len(lens))):
        inv = [0] * len(order)
        for pos, i in enumerate(order):
            inv[i] = pos
        sorted_idx, unsorted_idx = tensor(order), tensor(inv)
    return PackedSequence(data, tensor(sizes), sorted_idx, unsorted_idx)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch ``(T, B, *)`` (``(B, T, *)`` if ``batch_first``) of sequences of ``lengths``.

    With ``enforce_sorted=True`` the lengths must be decreasing; otherwise the batch is sorted (and the
    permutation kept in ``sorted_indices``/``unsorted_indices``).

    >>> import ember
    >>> from ember.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    >>> p = pack_padded_sequence(ember.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]), [3, 2], batch_first=True)
    >>> p.data.tolist(), p.batch_sizes.tolist()
    ([1.0, 4.0, 2.0, 5.0, 3.0], [2, 2, 1])
    >>> pad_packed_sequence(p, batch_first=True)[0].tolist()
    [[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]
    """
    lens = _lengths(lengths, "pack_padded_sequence")
    x = input.transpose(0, 1) if batch_first else input
    if len(lens) != x.shape[1]:
        raise ValueError(f"pack_padded_sequence: got {len(lens)} lengths for a batch of {x.shape[1]} sequences "
                         f"(input shape {tuple(input.shape)}, batch_first={batch_first})")
    if max(lens) > x.shape[0]:
        raise ValueError(f"pack_padded_sequence: a length {max(lens)} exceeds the padded length {x.shape[0]}")
    if enforce_sorted:
        if any(a < b for a, b in zip(lens, lens[1:])):
            raise RuntimeError("pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` to pack_padded_sequence "
                               "and/or pack_sequence to sidestep this requirement if you do not need ONNX "
                               "exportability.")
        order = None
    else:
        order = sorted(range(len(lens)), key=lambda i: -lens[i])
    return _pack(x, lens, order)


def _sorted_lengths(sizes: list) -> list:
    return [sum(1 for s in sizes if s > b) for b in range(sizes[0])]


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple:
    """The padded batch ``(T, B, *)`` (or ``(B, T, *)``) and the ``lengths`` (int64) of a :class:`PackedSequence`."""
    from ...creation import full, tensor
    from ...ops.index import index_put
    data, sizes = sequence.data, sequence.batch_sizes.tolist()
    xp = data.xp
    lens_sorted = _sorted_lengths(sizes)
    T = len(sizes)
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"pad_packed_sequence: Expected total_length to be at least the length of the longest "
                             f"sequence ({T}), but got total_length={total_length}")
        T = total_length
    B = sizes[0]
    ts, bs, _ = _layout(lens_sorted)
    out = full((T, B) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    out = index_put(out, (tensor(xp.asarray(ts, dtype=xp.int64)), tensor(xp.asarray(bs, dtype=xp.int64))), data)
    lens = lens_sorted
    if sequence.unsorted_indices is not None:
        un = sequence.unsorted_indices.tolist()
        out = out[:, xp.asarray(un, dtype=xp.int64)]
        lens = [lens_sorted[u] for u in un]
    if batch_first:
        out = out.transpose(0, 1)
    return out, tensor(lens)


def _repack(padded: Tensor, like: PackedSequence, batch_first: bool) -> PackedSequence:
    """Pack ``padded`` with exactly the layout (order and sizes) of ``like``."""
    sizes = like.batch_sizes.tolist()
    lens_sorted = _sorted_lengths(sizes)
    order = like.sorted_indices.tolist() if like.sorted_indices is not None else list(range(len(lens_sorted)))
    lens = [0] * len(order)
    for pos, i in enumerate(order):
        lens[i] = lens_sorted[pos]
    x = padded.transpose(0, 1) if batch_first else padded
    packed = _pack(x, lens, order)
    return PackedSequence(packed.data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shape ``(L_i, *)`` into ``(L_max, B, *)`` (``(B, L_max, *)`` if ``batch_first``), padded.

    >>> import ember
    >>> from ember.nn.utils.rnn import pad_sequence
    >>> pad_sequence([ember.tensor([1, 2, 3]), ember.tensor([4])], batch_first=True).tolist()
    [[1, 2, 3], [4, 0, 0]]
    """
    from ...ops.join import pad, stack
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    seqs = list(sequences)
    if not seqs:
        raise ValueError("pad_sequence: received an empty list of sequences")
    L = max(s.shape[0] for s in seqs)
    padded = []
    for s in seqs:
        extra = L - s.shape[0]
        widths = [0, 0] * (s.dim() - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, widths, value=padding_value) if extra else s)
    return stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The list of ``(L_i, *)`` tensors a padded batch holds (the inverse of :func:`pad_sequence`)."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :n] for i, n in enumerate(_lengths(lengths, "unpad_sequence"))]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of ``(L_i, *)`` tensors (``pad_sequence`` then ``pack_padded_sequence``)."""
    lens = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lens, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of ``(L_i, *)`` tensors in a :class:`PackedSequence`."""
    padded, lens = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lens, batch_first=True)
