"""Transformer encoder, Ember vs PyTorch: training steps of a 2-layer ``TransformerEncoder`` side by side.

Run:  python bench/bench_transformer.py [--threads 2] [--runs 5] [--steps 10] [--profile]
The model: 2 x TransformerEncoderLayer(d_model 128, nhead 8, dim_feedforward 512, batch_first) on
(batch 16, seq 64, 128) inputs -> mean over the sequence -> Linear(128, 10) -> cross-entropy, Adam lr 1e-3;
both frameworks start from the same weights (torch's state_dict copied in). Configs with dropout 0.1 and
with dropout 0 (PyTorch's CPU dropout draws one mask per element, as Ember does). A step is forward, loss,
backward and the optimizer step. Prints steps/s of each and Ember ÷ PyTorch, writes
bench/results/transformer.json; ``--profile`` prints a cProfile of Ember steps (where the time goes).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from steps import config_main  # noqa: E402

CONFIGS = {  # name: (seq, batch, d_model, nhead, dim_feedforward, layers, dropout, norm_first)
    "enc2_s64_d128_h8_b16": (64, 16, 128, 8, 512, 2, 0.1, False),
    "enc2_s64_d128_h8_b16_nodrop": (64, 16, 128, 8, 512, 2, 0.0, False),
    "enc2_s64_d128_h4_b16_prenorm": (64, 16, 128, 4, 512, 2, 0.1, True),
}


def build(cfg):
    """Ember and torch step functions for one config, from the same initial weights and data."""
    import numpy as np
    import torch

    import ember
    T, N, D, H, FF, L, p, norm_first = cfg
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, T, D)).astype(np.float32)
    Y = rng.integers(0, 10, size=N)
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=p, batch_first=True, norm_first=norm_first)
    t_enc = torch.nn.TransformerEncoder(t_layer, L, enable_nested_tensor=False)
    t_head = torch.nn.Linear(D, 10)
    e_layer = ember.nn.TransformerEncoderLayer(D, H, FF, dropout=p, batch_first=True, norm_first=norm_first)
    e_enc = ember.nn.TransformerEncoder(e_layer, L)
    e_head = ember.nn.Linear(D, 10)
    for e, t in ((e_enc, t_enc), (e_head, t_head)):
        e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    t_params = list(t_enc.parameters()) + list(t_head.parameters())
    e_params = list(e_enc.parameters()) + list(e_head.parameters())
    t_opt = torch.optim.Adam(t_params, lr=1e-3)
    e_opt = ember.optim.Adam(e_params, lr=1e-3)
    tx, ty = torch.tensor(X), torch.tensor(Y)
    ex, ey = ember.tensor(X), ember.tensor(Y)
    t_enc.train()
    e_enc.train()

    def torch_step():
        t_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(t_head(t_enc(tx).mean(1)), ty)
        loss.backward()
        t_opt.step()

    def ember_step():
        e_opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(e_head(e_enc(ex).mean(1)), ey)
        loss.backward()
        e_opt.step()

    return ember_step, torch_step


def main(argv=None):
    return config_main(__doc__, CONFIGS, build, "transformer", argv)


if __name__ == "__main__":
    main()
