"""A small bidirectional LSTM learns to reverse sequences of digits (Ember, PyTorch-style API).

Run:  python examples/lstm_reverse.py [--steps 600] [--seed 0]
Data: random sequences of 8 digits (0-9); the target at position t is the input digit at position 7 - t.
Model: Embedding(10, 32) -> LSTM(32, 64, bidirectional) -> Linear(128, 10) at every step, trained with
Adam on cross-entropy. Prints the token accuracy on 2,000 held-out sequences (above 0.95 in well under
a minute on a laptop CPU with the defaults) and returns it from ``main``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import ember
import ember.nn as nn
import ember.nn.functional as F

LENGTH, DIGITS = 8, 10


class Reverser(nn.Module):
    def __init__(self, embed: int = 32, hidden: int = 64):
        super().__init__()
        self.embed = nn.Embedding(DIGITS, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, DIGITS)

    def forward(self, x):
        out, _ = self.lstm(self.embed(x))          # (N, T, 2*hidden)
        return self.head(out)                      # (N, T, DIGITS): a prediction per step


def batch(rng, n: int):
    x = rng.integers(0, DIGITS, size=(n, LENGTH))
    return x, x[:, ::-1].copy()


def accuracy(model, x, y) -> float:
    model.eval()
    with ember.no_grad():
        pred = model(ember.tensor(x)).argmax(-1).numpy()
    model.train()
    return float((pred == y).mean())


def main(steps: int = 600, seed: int = 0, batch_size: int = 64, verbose: bool = False) -> float:
    """Train for ``steps`` Adam steps from ``ember.manual_seed(seed)``; return the held-out token accuracy."""
    ember.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Reverser()
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)
    test_x, test_y = batch(np.random.default_rng(seed + 1), 2000)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = batch(rng, batch_size)
        logits = model(ember.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, DIGITS), ember.tensor(y.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if verbose and step % 100 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}  held-out accuracy {accuracy(model, test_x, test_y):.3f}"
                  f"  ({time.perf_counter() - t0:.1f}s)", flush=True)
    return accuracy(model, test_x, test_y)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    acc = main(args.steps, args.seed, verbose=True)
    print(f"held-out token accuracy: {acc:.4f}")
