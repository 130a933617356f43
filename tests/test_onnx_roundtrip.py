"""Export to ONNX and import back: the imported module gives the exported model's outputs at two batch sizes,
its gradients equal the original's (so every imported op is differentiable), and it trains."""
import os
import sys

import numpy as np
import pytest

import ember
from ember import nn

pytest.importorskip("onnx")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from bench_cnn import lenet, resnet8  # noqa: E402


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.lstm, self.head = nn.Embedding(30, 8), nn.LSTM(8, 12, batch_first=True), nn.Linear(12, 4)

    def forward(self, tokens):
        out, _ = self.lstm(self.emb(tokens))
        return self.head(out[:, -1])


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
        self.enc, self.head = nn.TransformerEncoder(layer, 2), nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.enc(x).mean(1))


def _inputs(name, batch, rng):
    if name == "lstm":
        return ember.tensor(rng.integers(0, 30, (batch, 7)))
    shape = {"lenet": (1, 28, 28), "resnet8": (3, 16, 16), "transformer": (6, 16)}[name]
    return ember.tensor(rng.standard_normal((batch, *shape)).astype(np.float32))


def _build(name):
    ember.manual_seed(0)
    if name == "lstm":
        return LSTMClassifier()
    if name == "transformer":
        return Encoder()
    return (lenet if name == "lenet" else resnet8)(nn, nn.functional)


def _grads(model, x, y):
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return {k: p.grad.numpy().copy() for k, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["lenet", "resnet8", "lstm", "transformer"])
def test_export_import_round_trip_matches_and_trains(name, tmp_path):
    rng = np.random.default_rng(0)
    model = _build(name).eval()
    path = tmp_path / f"{name}.onnx"
    ember.onnx.export(model, (_inputs(name, 2, rng),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    imported = ember.onnx.load(str(path)).eval()
    for batch in (2, 5):
        x = _inputs(name, batch, rng)
        with ember.no_grad():
            np.testing.assert_allclose(imported(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)

    # the same gradients, parameter by parameter (the initializers keep the state_dict's names)
    x, y = _inputs(name, 4, rng), ember.tensor(rng.integers(0, 3, 4))
    want = _grads(model, x, y)
    got = {imported.onnx_names.get(k, k): g for k, g in _grads(imported, x, y).items()}
    assert set(want) <= set(got)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-3, atol=1e-5, err_msg=k)

    # and it trains
    opt = ember.optim.Adam(imported.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(imported(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
