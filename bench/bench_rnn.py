"""Recurrent layers, Ember vs PyTorch: training steps of an LSTM (and a GRU) sequence model side by side.

Run:  python bench/bench_rnn.py [--threads 2] [--runs 5] [--steps 10] [--profile] [--no-numba]
The model: LSTM (seq 50, hidden 128, batch 32, input 32) -> Linear(128, 10) on the last output ->
cross-entropy, Adam lr 1e-3; both frameworks start from the same weights (torch's state_dict copied in).
A step is forward, loss, backward and the optimizer step. Prints steps/s of each and Ember ÷ PyTorch,
writes bench/results/rnn.json; ``--profile`` prints a cProfile of Ember steps (where the time goes);
``--no-numba`` times Ember's portable NumPy path instead of the numba step kernels.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from steps import config_main  # noqa: E402

CONFIGS = {  # name: (cell, seq, batch, input, hidden, layers, bidirectional)
    "lstm_s50_h128_b32": ("LSTM", 50, 32, 32, 128, 1, False),
    "gru_s50_h128_b32": ("GRU", 50, 32, 32, 128, 1, False),
    "lstm2_bi_s50_h64_b32": ("LSTM", 50, 32, 32, 64, 2, True),
}


def build(cfg):
    """Ember and torch step functions for one config, from the same initial weights and data."""
    import numpy as np
    import torch

    import ember
    cell, T, N, F, H, L, bi = cfg
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, T, F)).astype(np.float32)
    Y = rng.integers(0, 10, size=N)
    torch.manual_seed(0)
    t_rnn = getattr(torch.nn, cell)(F, H, num_layers=L, batch_first=True, bidirectional=bi)
    t_head = torch.nn.Linear(H * (2 if bi else 1), 10)
    e_rnn = getattr(ember.nn, cell)(F, H, num_layers=L, batch_first=True, bidirectional=bi)
    e_head = ember.nn.Linear(H * (2 if bi else 1), 10)
    for e, t in ((e_rnn, t_rnn), (e_head, t_head)):
        e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    t_opt = torch.optim.Adam(list(t_rnn.parameters()) + list(t_head.parameters()), lr=1e-3)
    e_opt = ember.optim.Adam(list(e_rnn.parameters()) + list(e_head.parameters()), lr=1e-3)
    tx, ty = torch.tensor(X), torch.tensor(Y)
    ex, ey = ember.tensor(X), ember.tensor(Y)

    def torch_step():
        t_opt.zero_grad()
        out, _ = t_rnn(tx)
        loss = torch.nn.functional.cross_entropy(t_head(out[:, -1]), ty)
        loss.backward()
        t_opt.step()

    def ember_step():
        e_opt.zero_grad()
        out, _ = e_rnn(ex)
        loss = ember.nn.functional.cross_entropy(e_head(out[:, -1]), ey)
        loss.backward()
        e_opt.step()

    return ember_step, torch_step


def _setup(args) -> None:
    from ember.backend import rnn_kernels
    if args.no_numba:
        rnn_kernels.enabled = False


def main(argv=None):
    return config_main(__doc__, CONFIGS, build, "rnn", argv, setup=_setup, extra_args=[
        ("--no-numba", {"action": "store_true", "help": "use the NumPy gate arithmetic, not numba kernels"})])


if __name__ == "__main__":
    main()
