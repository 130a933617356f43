"""Save and load without pickle: JSON/YAML configs, HDF5/safetensors weights, .ember archives, the registry."""
import json
import zipfile

import h5py
import numpy as np
import pytest

import ember
from ember import layers


def _functional():
    a = layers.Input(shape=(4,), name="a")
    b = layers.Input(shape=(3,), name="b")
    h = layers.Dense(8, activation="relu", name="ha")(a)
    x = layers.Concatenate(name="cat")([h, b])
    out = layers.Dense(2, activation="softmax", name="out")(x)
    return ember.Model([a, b], out, name="two_inputs")


def _sequential():
    return ember.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="tanh", name="h"),
                             layers.Dense(2, activation="softmax", name="o")], name="seq")


def _data(n=64):
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")
    y = (xa[:, 0] + xb[:, 0] > 0).astype("int64")
    return xa, xb, y


def _trained(kind):
    ember.manual_seed(0)
    xa, xb, y = _data()
    model = _functional() if kind == "functional" else _sequential()
    x = [xa, xb] if kind == "functional" else xa
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_three_paths_give_the_same_predictions(tmp_path, kind):
    model, x = _trained(kind)
    expected = model.predict(x, verbose=0)

    m1 = ember.models.model_from_json(model.to_json())
    model.save_weights(str(tmp_path / "w.weights.h5"))
    m1.load_weights(str(tmp_path / "w.weights.h5"))

    m2 = ember.models.model_from_yaml(model.to_yaml())
    model.save_weights(str(tmp_path / "w.safetensors"))
    m2.load_weights(str(tmp_path / "w.safetensors"))

    model.save(str(tmp_path / "m.ember"))
    m3 = ember.load_model(str(tmp_path / "m.ember"))

    for m in (m1, m2, m3):
        assert type(m) is type(model)
        assert [la.name for la in m.layers] == [la.name for la in model.layers]
        np.testing.assert_allclose(m.predict(x, verbose=0), expected, rtol=0, atol=1e-6)
    assert m3.compiled and m3.evaluate(x, _data()[2], verbose=0) == pytest.approx(
        model.evaluate(x, _data()[2], verbose=0), abs=1e-6)


def test_functional_config_lists_layers_and_connections():
    cfg = json.loads(_functional().to_json())
    assert cfg["class_name"] == "Functional"
    by_name = {la["name"]: la for la in cfg["config"]["layers"]}
    assert by_name["a"]["class_name"] == "InputLayer"
    assert by_name["cat"]["inbound_nodes"][0]["args"] == [[{"__keras_tensor__": ["ha", 0, 0]},
                                                           {"__keras_tensor__": ["b", 0, 0]}]]
    assert cfg["config"]["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert cfg["config"]["output_layers"] == ["out", 0, 0]


def test_archive_resumes_training_exactly(tmp_path):
    xa, _, y = _data(96)

    def run(resume):
        ember.manual_seed(3)
        model = _sequential()
        model.compile(optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01}},
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        if not resume:
            model.fit(xa, y, epochs=3, batch_size=16, shuffle=True, verbose=0)
            return model
        model.fit(xa, y, epochs=2, batch_size=16, shuffle=True, verbose=0)
        model.save(str(tmp_path / "ckpt.ember"))
        model = ember.load_model(str(tmp_path / "ckpt.ember"))
        model.fit(xa, y, epochs=1, batch_size=16, shuffle=True, verbose=0)
        return model

    straight, resumed = run(False), run(True)
    assert type(resumed.optimizer).__name__ == "Adam"
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=k)


def test_archive_members_and_metadata(tmp_path):
    model, _ = _trained("sequential")
    path = tmp_path / "m.ember"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        meta = json.loads(z.read("metadata.json"))
        config = json.loads(z.read("config.json"))
        opt = json.loads(z.read("optimizer.json"))
    assert names == {"config.json", "model.weights.safetensors", "optimizer.safetensors", "optimizer.json",
                     "metadata.json"}
    assert meta["ember_version"] == ember.__version__ and "created" in meta
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert config["compile_config"]["loss"] == "sparse_categorical_crossentropy"
    assert set(opt["scalars"]["0"]) == {"step"} and opt["scalars"]["0"]["step"] == 8
    assert not list(tmp_path.glob(".tmp-*"))          # the temporary file was moved into place


class Scale(layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_layers_load_only_when_registered(tmp_path):
    model = ember.Sequential([layers.Input(shape=(3,)), Scale(3.0, name="scale")])
    with pytest.raises(ValueError, match="Unknown layer class 'Scale'.*register_serializable"):
        ember.models.model_from_json(model.to_json())
    loaded = ember.models.model_from_json(model.to_json(), custom_objects={"Scale": Scale})
    assert loaded.layers[0].factor == 3.0

    @ember.register_serializable(package="Tests")
    class Shift(layers.Layer):
        def call(self, x):
            return x + 1.0
    model = ember.Sequential([layers.Input(shape=(3,)), Shift(name="shift")])
    model.save(str(tmp_path / "c.ember"))
    assert json.loads(model.to_json())["config"]["layers"][0]["registered_name"] == "Tests>Shift"
    loaded = ember.load_model(str(tmp_path / "c.ember"))
    assert isinstance(loaded.layers[0], Shift)
    np.testing.assert_allclose(loaded(ember.ones(1, 3)).numpy(), 2.0)


def test_yaml_is_plain_data():
    with pytest.raises(ValueError, match="not valid YAML|Unknown layer class"):
        ember.models.model_from_yaml("!!python/object/apply:os.system ['echo hi']")


def test_corrupt_and_wrong_files_give_clear_errors(tmp_path):
    model, _ = _trained("sequential")
    good = tmp_path / "m.ember"
    model.save(str(good))
    data = good.read_bytes()

    (tmp_path / "trunc.ember").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.ember.*truncated or corrupt"):
        ember.load_model(str(tmp_path / "trunc.ember"))
    (tmp_path / "text.ember").write_text("hello")
    with pytest.raises(ValueError, match="text.ember is not a valid .ember archive"):
        ember.load_model(str(tmp_path / "text.ember"))

    def rewrite(name, drop=None, replace=None):
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / name, "w") as dst:
            for n in src.namelist():
                if n != drop:
                    dst.writestr(n, replace[1] if replace and replace[0] == n else src.read(n))
        return str(tmp_path / name)
    with pytest.raises(ValueError, match="missing.ember.*'model.weights.safetensors' is missing"):
        ember.load_model(rewrite("missing.ember", drop="model.weights.safetensors"))
    with pytest.raises(ValueError, match="badjson.ember.*'config.json' is not valid JSON"):
        ember.load_model(rewrite("badjson.ember", replace=("config.json", b"{not json")))
    with pytest.raises(ValueError, match="badweights.ember.*not a valid safetensors"):
        ember.load_model(rewrite("badweights.ember", replace=("model.weights.safetensors", b"xx")))
    with pytest.raises(ValueError, match="not a '.ember' archive"):
        ember.load_model(str(tmp_path / "m.h5"))
    with pytest.raises(FileNotFoundError, match="nope.ember"):
        ember.load_model(str(tmp_path / "nope.ember"))

    h5 = tmp_path / "w.weights.h5"
    model.save_weights(str(h5))
    with h5py.File(h5, "a") as f:
        del f["weights"]["h.bias"]
    with pytest.raises(ValueError, match=r"w.weights.h5.*missing \['h.bias'\]"):
        model.load_weights(str(h5))
    model.save_weights(str(h5))
    with h5py.File(h5, "a") as f:
        del f["weights"]["o.kernel"]
        f["weights"].create_dataset("o.kernel", data=np.zeros((3, 3), "float32"))
    before = model.layers[0].kernel.detach().numpy().copy()
    with pytest.raises(ValueError, match=r"weight 'o.kernel' has shape \(3, 3\) in the file"):
        model.load_weights(str(h5))
    np.testing.assert_array_equal(model.layers[0].kernel.detach().numpy(), before)     # nothing half-loaded
    (tmp_path / "junk.h5").write_text("junk")
    with pytest.raises(ValueError, match="junk.h5 is not a valid HDF5 file"):
        model.load_weights(str(tmp_path / "junk.h5"))
    with pytest.raises(ValueError, match="w.pt.*unknown format"):
        model.save_weights(str(tmp_path / "w.pt"))
    with pytest.raises(ValueError, match="must end in '.ember'"):
        model.save(str(tmp_path / "m.zip"))
