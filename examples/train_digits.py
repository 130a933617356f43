"""Train an MLP on the bundled 8×8 handwritten digits with Ember's low-level API (seed 0).

    python examples/train_digits.py --out runs/digits

Prints loss and accuracy per epoch and the final test accuracy, and writes
``model.safetensors``, ``metrics.json`` and ``history.csv`` to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time

import ember
import ember.nn as nn
import ember.optim as optim
from ember.data import DataLoader, TensorDataset, load_digits, train_test_split


class DigitsMLP(nn.Module):
    """64 → 128 → 64 → 10 with ReLU and dropout."""

    def __init__(self, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, 10),
        )

    def forward(self, x):
        return self.net(x)


def evaluate(model, x, y, loss_fn):
    model.eval()
    with ember.no_grad():
        logits = model(x)
        loss = loss_fn(logits, y).item()
        acc = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, acc


def _write_atomic(path, write):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        write(f)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/digits")
    args = ap.parse_args(argv)

    ember.manual_seed(args.seed)
    X, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=args.seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6           # standardise with training statistics
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)
    xt, yt = x_test, y_test

    model = DigitsMLP()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"digits: {len(x_train)} train / {len(x_test)} test images, model:\n{model}")

    history = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        total, correct, seen = 0.0, 0, 0
        for xb, yb in train:
            optimizer.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            correct += (logits.argmax(dim=1) == yb).sum().item()
            seen += len(yb)
        scheduler.step()
        test_loss, test_acc = evaluate(model, xt, yt, loss_fn)
        row = {"epoch": epoch, "loss": total / seen, "accuracy": correct / seen,
               "test_loss": test_loss, "test_accuracy": test_acc}
        history.append(row)
        print(f"epoch {epoch:3d}  loss {row['loss']:.4f}  accuracy {row['accuracy']:.4f}  "
              f"test_loss {test_loss:.4f}  test_accuracy {test_acc:.4f}")
    seconds = time.perf_counter() - start

    _, final_acc = evaluate(model, xt, yt, loss_fn)
    print(f"final test accuracy: {final_acc:.4f}  ({seconds:.1f} s)")
    os.makedirs(args.out, exist_ok=True)
    ember.save(model.state_dict(), os.path.join(args.out, "model.safetensors"),
               metadata={"model": "DigitsMLP", "seed": args.seed})
    _write_atomic(os.path.join(args.out, "metrics.json"), lambda f: json.dump(
        {"final_test_accuracy": final_acc, "epochs": args.epochs, "seed": args.seed, "seconds": seconds,
         "train_size": len(x_train), "test_size": len(x_test)}, f, indent=2))

    def write_csv(f):
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    _write_atomic(os.path.join(args.out, "history.csv"), write_csv)
    print(f"artefacts written to {args.out}/")
    return final_acc


if __name__ == "__main__":
    main()
