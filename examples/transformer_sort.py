"""A small Transformer encoder learns to sort digit sequences (Ember's PyTorch-style API, seed 0).

    python examples/transformer_sort.py

Each input is ``--length`` random digits 0-9; the target at position i is the i-th smallest digit.
The model embeds the digits, adds a sinusoidal position code, runs two ``TransformerEncoderLayer``s
and classifies every position with one ``Linear``. It prints the loss as it trains and the token
accuracy on held-out sequences (0.998 with the defaults, about 20 s on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import ember
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim


class SortTransformer(nn.Module):
    """Embedding + positional encoding → 2 encoder layers → a per-position Linear over the 10 digits."""

    def __init__(self, vocab: int = 10, d_model: int = 64, nhead: int = 4, layers: int = 2, ff: int = 128,
                 max_len: int = 64):
        super().__init__()
        self.scale = math.sqrt(d_model)
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.SinusoidalPositionalEncoding(d_model, max_len=max_len, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        return self.head(self.encoder(self.pos(self.embed(tokens) * self.scale)))


def make_data(rng, n: int, length: int):
    x = rng.integers(0, 10, size=(n, length))
    return x, np.sort(x, axis=1)


def accuracy(model, x, y) -> float:
    model.eval()
    with ember.no_grad():
        pred = model(ember.tensor(x)).argmax(-1).numpy()
    model.train()
    return float((pred == y).mean())


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--length", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ember.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = SortTransformer(max_len=args.length)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps)
    x_test, y_test = make_data(np.random.default_rng(args.seed + 1), 2000, args.length)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        xb, yb = make_data(rng, args.batch_size, args.length)
        logits = model(ember.tensor(xb))
        loss = F.cross_entropy(logits.reshape(-1, 10), ember.tensor(yb.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps:
            print(f"step {step:5d}  loss {loss.item():.4f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    acc = accuracy(model, x_test, y_test)
    print(f"held-out token accuracy {acc:.4f} ({len(x_test)} sequences of {args.length} digits)")
    return acc


if __name__ == "__main__":
    main()
