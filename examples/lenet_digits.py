"""LeNet-5 on the bundled 8×8 handwritten digits, with Ember's Keras-style API (default) or its nn modules.

    python examples/lenet_digits.py                 # Sequential + compile/fit
    python examples/lenet_digits.py --api nn        # nn.Module + a hand-written training loop

The 8×8 images are upsampled (bilinear, ×4) to 32×32 inside the model, then LeNet-5 runs as in the
paper: conv 6@5×5 → 2×2 max pool → conv 16@5×5 → 2×2 max pool → 120 → 84 → 10 (ReLU activations).
The split (75 % train / 25 % test) uses ``--seed`` (default 0), which also seeds the weights and the
shuffling, so a run repeats exactly. The training images are augmented once with their four one-pixel
shifts (5× the data), and the learning rate follows a cosine from ``--lr`` to 0. Prints the test accuracy
(≥ 0.98 with the defaults: 0.987-0.991 over weight seeds 0-2 on the seed-0 split) and returns it.
"""
from __future__ import annotations

import argparse
import math
import time

import ember
import ember.nn as nn
from ember import layers
from ember.data import DataLoader, TensorDataset, load_digits, train_test_split


def keras_lenet():
    """LeNet-5 with Keras-style layers on channels_last (batch, 8, 8, 1) images."""
    return ember.Sequential([
        layers.Input((8, 8, 1)),
        layers.UpSampling2D(4, interpolation="bilinear"),           # 32×32
        layers.Conv2D(6, 5, activation="relu"),                     # 28×28×6
        layers.MaxPooling2D(),                                      # 14×14×6
        layers.Conv2D(16, 5, activation="relu"),                    # 10×10×16
        layers.MaxPooling2D(),                                      # 5×5×16
        layers.Flatten(),
        layers.Dense(120, activation="relu"),
        layers.Dense(84, activation="relu"),
        layers.Dense(10),
    ], name="lenet5")


class LeNet(nn.Module):
    """LeNet-5 with PyTorch-style modules on channels-first (batch, 1, 8, 8) images."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Upsample(scale_factor=4, mode="bilinear"),
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def shift_augment(x, y):
    """``x`` (N, 8, 8, 1) and its four one-pixel shifts (zero filled), with the labels repeated."""
    padded = ember.pad(x, (0, 0, 1, 1, 1, 1))                   # (N, 10, 10, 1)
    shifts = [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0)]
    xs = [padded[:, 1 + dy:9 + dy, 1 + dx:9 + dx] for dy, dx in shifts]
    return ember.cat(xs), ember.cat([y] * len(shifts))


def cosine(args):
    return lambda epoch: args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))


def train_keras(x_train, y_train, x_test, y_test, args) -> float:
    model = keras_lenet()
    model.compile(optimizer=ember.optim.Adam(model.parameters(), lr=args.lr),
                  loss=ember.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.summary()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
              callbacks=[ember.callbacks.LearningRateScheduler(cosine(args))])
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    return float(acc)


def train_nn(x_train, y_train, x_test, y_test, args) -> float:
    x_train, x_test = x_train.permute(0, 3, 1, 2).contiguous(), x_test.permute(0, 3, 1, 2).contiguous()
    model = LeNet()
    print(model)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)
    optimizer = ember.optim.Adam(model.parameters(), lr=args.lr)
    schedule = cosine(args)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = schedule(epoch)
        model.train()
        total, seen = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            seen += len(yb)
        print(f"epoch {epoch + 1:2d}  loss {total / seen:.4f}")
    model.eval()
    with ember.no_grad():
        return (model(x_test).argmax(dim=1) == y_test).float().mean().item()


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", choices=["keras", "nn"], default="keras")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ember.manual_seed(args.seed)
    X, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(X.reshape(-1, 8, 8, 1), y, test_size=0.25, seed=args.seed)
    print(f"digits: {len(x_train)} train / {len(x_test)} test images (8×8, upsampled to 32×32), api={args.api}")
    x_train, y_train = shift_augment(x_train, y_train)
    start = time.perf_counter()
    train = train_keras if args.api == "keras" else train_nn
    acc = train(x_train, y_train, x_test, y_test, args)
    print(f"test accuracy: {acc:.4f}  ({time.perf_counter() - start:.1f} s, seed {args.seed})")
    return acc


if __name__ == "__main__":
    main()
