"""``ember.callbacks.TensorBoard``: event files that TensorBoard's own reader reads back."""
import os
import sys

import numpy as np
import pytest

import ember
from ember import layers
from ember.callbacks import TensorBoard

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.fixture(autouse=True)
def _fresh_names():
    layers.clear_session()
    yield


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def _model():
    ember.manual_seed(0)
    model = ember.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _read(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def _scalars(acc, tag):
    return [e.value for e in acc.Scalars(tag)], [e.step for e in acc.Scalars(tag)]


def test_epoch_scalars_match_history_in_train_and_validation_runs(tmp_path):
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                        callbacks=[TensorBoard(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    train, val = _read(tmp_path / "train"), _read(tmp_path / "validation")
    for name in ("loss", "accuracy"):
        values, steps = _scalars(train, "epoch_" + name)
        assert steps == [0, 1, 2]
        np.testing.assert_allclose(values, history.history[name], rtol=1e-6)
        values, steps = _scalars(val, "epoch_" + name)
        assert steps == [0, 1, 2]
        np.testing.assert_allclose(values, history.history["val_" + name], rtol=1e-6)
    lr, _ = _scalars(train, "epoch_learning_rate")
    np.testing.assert_allclose(lr, [0.001] * 3, rtol=1e-6)
    assert not any(tag.startswith("batch_") for tag in train.Tags()["scalars"])
    # validation passes inside fit are also logged against the global training step (48 samples: 3 batches)
    _, steps = _scalars(val, "evaluation_loss_vs_iterations")
    assert steps == [3, 6, 9]


@pytest.mark.parametrize("update_freq, expected_steps", [("batch", list(range(1, 9))), (3, [3, 6])])
def test_batch_scalars_follow_update_freq(tmp_path, update_freq, expected_steps):
    x, y = _data(32)
    model = _model()
    seen = []
    record = ember.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["loss"]))
    board = TensorBoard(tmp_path, update_freq=update_freq)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[record, board])
    train = _read(tmp_path / "train")
    values, steps = _scalars(train, "batch_loss")
    assert steps == expected_steps
    np.testing.assert_allclose(values, [seen[s - 1] for s in expected_steps], rtol=1e-6)
    assert "batch_accuracy" in train.Tags()["scalars"]


def test_weight_and_gradient_histograms_every_histogram_freq_epochs(tmp_path):
    x, y = _data(32)
    model = _model()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[TensorBoard(tmp_path, histogram_freq=2)])
    train = _read(tmp_path / "train")
    tags = train.Tags()["histograms"]
    names = [name.replace(".", "/") for name, _ in model.named_parameters()]
    assert len(names) == 4
    for name in names:
        assert name + "/histogram" in tags and name + "/gradient" in tags
        assert [e.step for e in train.Histograms(name + "/histogram")] == [0, 2]
    # the last histogram summarises the final weights
    name, param = next(iter(model.named_parameters()))
    last = train.Histograms(name.replace(".", "/") + "/histogram")[-1].histogram_value
    w = param.detach().numpy()
    assert last.num == w.size
    np.testing.assert_allclose([last.min, last.max, last.sum], [w.min(), w.max(), w.sum()], rtol=1e-5, atol=1e-6)


def test_graph_and_summary_text_for_a_functional_model(tmp_path):
    a, b = layers.Input(shape=(3,), name="a"), layers.Input(shape=(2,), name="b")
    h = layers.Concatenate(name="joined")([layers.Dense(4, name="da")(a), layers.Dense(4, name="db")(b)])
    out1, out2 = layers.Dense(1, name="out1")(h), layers.Dense(2, name="out2")(h)
    model = ember.Model([a, b], [out1, out2])
    model.compile(optimizer="sgd", loss=["mse", "mse"])
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32)]
    ys = [rng.standard_normal((8, 1)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32)]
    model.fit(xs, ys, epochs=1, verbose=0, callbacks=[TensorBoard(tmp_path)])
    train = _read(tmp_path / "train")
    graph = train.Graph()
    nodes = {n.name: n for n in graph.node}
    assert set(nodes) == {"a", "b", "da", "db", "joined", "out1", "out2"}
    assert list(nodes["joined"].input) == ["da", "db"] and nodes["joined"].op == "Concatenate"
    assert nodes["out2"].attr["output_shape"].s == b"(None, 2)"
    text = train.Tensors("model_summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "joined (Concatenate)" in text and "Total params" in text


def test_write_graph_false_and_bad_arguments(tmp_path):
    x, y = _data(16)
    model = _model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[TensorBoard(tmp_path, write_graph=False)])
    train = _read(tmp_path / "train")
    assert not train.Tags()["graph"] and not train.Tags()["tensors"]
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(tmp_path, update_freq="sometimes")
    with pytest.raises(ValueError, match="histogram_freq"):
        TensorBoard(tmp_path, histogram_freq=-1)
    with pytest.raises(NotImplementedError, match="embeddings_freq"):
        TensorBoard(tmp_path, embeddings_freq=1)


def test_missing_tensorboardx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'ember-dl\[tensorboard\]'"):
        TensorBoard("logs")
