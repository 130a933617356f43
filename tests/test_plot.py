"""``ember.plot``: training-curve and layer-graph PNGs."""
import os

import numpy as np
import pytest

import ember
from ember import layers

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_names():
    layers.clear_session()
    yield


def _png_ok(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp-")]  # nothing left behind
    return image


def test_history_from_fit_draws_training_and_validation_per_metric(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    ember.manual_seed(0)
    model = ember.Sequential([layers.Input(shape=(4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    path = tmp_path / "curves" / "history.png"
    fig = ember.plot.history(history, path)
    _png_ok(str(path))
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax, name in zip(fig.axes, ["loss", "accuracy"]):
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["training", "validation"]
        np.testing.assert_allclose(lines[0].get_ydata(), history.history[name])
        np.testing.assert_allclose(lines[1].get_ydata(), history.history["val_" + name])
        assert list(lines[0].get_xdata()) == [1, 2, 3]


def test_history_dict_metric_selection_and_sparse_validation():
    logs = {"loss": [1.0, 0.8, 0.6, 0.5], "mae": [0.9, 0.7, 0.6, 0.5], "val_loss": [0.9, 0.7]}
    fig = ember.plot.history(logs, metrics="loss")
    (ax,) = fig.axes
    train, val = ax.get_lines()
    assert list(val.get_xdata()) == [2, 4]      # validation_freq=2: epochs 2 and 4
    fig = ember.plot.history(logs, metrics=["mae"])
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1


def test_history_errors_are_clear():
    with pytest.raises(ValueError, match="empty"):
        ember.plot.history({})
    with pytest.raises(ValueError, match="empty"):
        ember.plot.history(ember.callbacks.History())
    with pytest.raises(ValueError, match=r"unknown metric 'acc'.*\['loss'\]"):
        ember.plot.history({"loss": [1.0]}, metrics=["acc"])
    with pytest.raises(TypeError, match="History"):
        ember.plot.history([1.0, 2.0])


def test_model_sequential_draws_a_box_per_layer(tmp_path):
    model = ember.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)), layers.Dropout(0.5),
                              layers.Dense(3, activation="softmax")])
    path = tmp_path / "seq.png"
    fig = ember.plot.model(model, path)
    _png_ok(str(path))
    boxes = ember.plot.layer_graph(model)
    assert [b.kind for b in boxes] == ["InputLayer", "Dense", "Dropout", "Dense"]
    assert boxes[-1].shape_text == "(None, 3)" and boxes[-1].parents == [boxes[-2].key]
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert sum(1 for t in ax.texts if "(Dense)" in t.get_text()) == 2


def test_model_functional_multi_input_output_shared_and_nested(tmp_path):
    inner_in = layers.Input(shape=(4,), name="inner_in")
    inner = ember.Model(inner_in, layers.Dense(4, name="inner_dense")(inner_in), name="inner")
    a, b = layers.Input(shape=(4,), name="a"), layers.Input(shape=(4,), name="b")
    shared = layers.Dense(4, name="shared")
    merged = layers.Add(name="add")([shared(a), shared(b)])
    out1 = layers.Dense(1, name="out1")(inner(merged))
    out2 = layers.Dense(2, name="out2")(merged)
    model = ember.Model([a, b], [out1, out2])
    boxes = {box.name: box for box in ember.plot.layer_graph(model)}
    assert set(boxes) == {"a", "b", "shared", "add", "inner", "out1", "out2"}
    key = {name: box.key for name, box in boxes.items()}
    assert sorted(boxes["shared"].parents) == sorted([key["a"], key["b"]])          # one box for the shared layer
    assert boxes["add"].parents == [key["shared"]]
    assert boxes["out2"].parents == [key["add"]] and boxes["out2"].shape_text == "(None, 2)"
    assert boxes["inner"].kind == "Model"
    path = tmp_path / "functional.png"
    fig = ember.plot.model(model, path)
    _png_ok(str(path))
    ax = fig.axes[0]
    assert len(ax.patches) == 7
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 6      # a,b->shared; shared->add; add->inner, add->out2; inner->out1


def test_model_subclassed_has_no_graph():
    class Net(ember.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)
    with pytest.raises(ValueError, match="subclassed"):
        ember.plot.model(Net(), None)
