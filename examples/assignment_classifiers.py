"""The source notes' lab (shared/seeds/001): solve two classification problems with single-layer and
multi-layer fully connected networks — here on the bundled digits and breast-cancer data (seed 0).

    python examples/assignment_classifiers.py

Prints the test accuracy of each of the four models and returns them from ``main()``.
"""
from __future__ import annotations

import ember
from ember import layers
from ember.data import load_breast_cancer, load_digits, train_test_split


def _standardise(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    return (x_train - mean) / std, (x_test - mean) / std


def build(kind: str, n_features: int, n_classes: int) -> ember.Sequential:
    """A single-layer network (softmax regression) or a two-hidden-layer MLP."""
    model = ember.Sequential([layers.Input(shape=(n_features,))], name=f"{kind}")
    if kind == "mlp":
        model.add(layers.Dense(128, activation="relu"))
        model.add(layers.Dropout(0.1))
        model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(n_classes, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(epochs: int = 100, seed: int = 0) -> dict:
    results = {}
    for name, loader, n_classes in (("digits", load_digits, 10), ("breast_cancer", load_breast_cancer, 2)):
        X, y = loader(as_numpy=True)
        x_train, x_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=seed, stratify=True)
        x_train, x_test = _standardise(x_train, x_test)
        for kind in ("single_layer", "mlp"):
            ember.manual_seed(seed)
            model = build(kind, X.shape[1], n_classes)
            stop = ember.callbacks.EarlyStopping(monitor="val_loss", patience=20, restore_best_weights=True)
            model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.15, callbacks=[stop],
                      verbose=0)
            _, acc = model.evaluate(x_test, y_test, verbose=0)
            results[(name, kind)] = acc
            print(f"{name:14s} {kind:13s} test accuracy {acc:.4f}")
    return results


if __name__ == "__main__":
    main()
