"""Weights from other frameworks: PyTorch state_dicts (safetensors, torch.save zips) and Keras .weights.h5/.h5.

Models are trained or randomized in PyTorch/Keras, their weights loaded into the same Ember model (and the other
way round), and the outputs compared. Malformed files (a pickle naming os.system, truncated zips, the legacy
format, mismatched keys and shapes) must give clear errors and execute nothing.
"""
import io
import os
import pickle
import pickletools
import subprocess
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch

import ember
from ember import layers as L
from ember import nn
from ember.saving import (UnsafeWeightsError, load_keras_weights, load_torch_state_dict, load_torch_weights,
                          save_keras_weights, save_torch_state_dict)


# ---------------------------------------------------------------- PyTorch models and their Ember twins
def _torch_cnn():
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(4 * 4 * 4, 3))


def _ember_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3))


def _torch_mlp():
    tnn = torch.nn
    return tnn.Sequential(tnn.Linear(6, 16), tnn.Tanh(), tnn.Linear(16, 8), tnn.ReLU(), tnn.Linear(8, 2))


def _ember_mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


class _TorchRNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 5, batch_first=True)
        self.head = torch.nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


class _EmberRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


_MODELS = {"cnn": (_torch_cnn, _ember_cnn, (8, 1, 8, 8)), "mlp": (_torch_mlp, _ember_mlp, (8, 6)),
           "lstm": (_TorchRNN, _EmberRNN, (8, 4, 3))}


def _trained_torch(kind):
    torch.manual_seed(0)
    make, _, shape = _MODELS[kind]
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(*shape), torch.randint(0, 2, (shape[0],))
    for _ in range(5):              # a few steps: weights and BatchNorm's running statistics move
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _torch_out(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _ember_out(model, x):
    with ember.no_grad():
        return model(ember.tensor(x)).numpy()


@pytest.mark.parametrize("fmt", ["pt", "pth-params", "safetensors"])
@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_torch_trained_model_loads_into_ember(tmp_path, kind, fmt):
    tmodel = _trained_torch(kind)
    state = tmodel.state_dict()
    path = str(tmp_path / f"m.{'safetensors' if fmt == 'safetensors' else 'pt'}")
    if fmt == "safetensors":
        safetensors.torch.save_file(state, path)
    elif fmt == "pt":
        torch.save(state, path)
    else:                   # Parameters (not detached tensors) pickle through torch._utils._rebuild_parameter
        torch.save(dict(tmodel.named_parameters()) | dict(tmodel.named_buffers()), path)
    emodel = _MODELS[kind][1]().eval()
    assert load_torch_weights(emodel, path) == ([], [])
    x = np.random.default_rng(1).normal(size=_MODELS[kind][2]).astype("float32")
    np.testing.assert_allclose(_ember_out(emodel, x), _torch_out(tmodel, x), atol=1e-5)
    arrays = load_torch_state_dict(path)
    for k, v in state.items():
        np.testing.assert_array_equal(arrays[k], v.numpy())
        assert arrays[k].dtype == v.numpy().dtype


@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_ember_trained_model_loads_into_torch(tmp_path, kind):
    emodel = _MODELS[kind][1]()
    shape = _MODELS[kind][2]
    rng = np.random.default_rng(2)
    x, y = ember.tensor(rng.normal(size=shape).astype("float32")), ember.tensor(rng.integers(0, 2, shape[0]))
    opt = ember.optim.SGD(emodel.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(emodel(x), y).backward()
        opt.step()
    emodel.eval()
    path = str(tmp_path / "e.safetensors")
    save_torch_state_dict(emodel, path)
    tmodel = _MODELS[kind][0]().eval()
    tmodel.load_state_dict(safetensors.torch.load_file(path), strict=True)
    xs = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(_torch_out(tmodel, xs), _ember_out(emodel, xs), atol=1e-5)


_ZOO = {  # PyTorch module, its Ember twin, input shape (None: token ids), number of inputs
    "gru_2layer_bidir": (lambda m: m.GRU(3, 4, num_layers=2, batch_first=True, bidirectional=True), (2, 5, 3), 1),
    "embedding": (lambda m: m.Embedding(10, 3), None, 1),
    "layer_norm": (lambda m: m.LayerNorm(6), (2, 6), 1),
    "conv_transpose2d": (lambda m: m.ConvTranspose2d(2, 3, 3, stride=2), (1, 2, 4, 4), 1),
    "conv1d": (lambda m: m.Conv1d(2, 3, 3), (1, 2, 7), 1),
    "multihead_attention": (lambda m: m.MultiheadAttention(8, 2, batch_first=True), (2, 5, 8), 3),
    "transformer_encoder_layer": (lambda m: m.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                                  (2, 5, 8), 1),
    "group_norm": (lambda m: m.GroupNorm(2, 4), (3, 4, 5), 1),
}


@pytest.mark.parametrize("name", sorted(_ZOO))
def test_torch_module_zoo_through_pt(tmp_path, name):
    make, shape, n_in = _ZOO[name]
    torch.manual_seed(0)
    tmodel = make(torch.nn).eval()
    with torch.no_grad():
        for p in tmodel.parameters():        # away from the default init, so loading has to happen
            p.add_(torch.randn_like(p) * 0.1)
    torch.save(tmodel.state_dict(), tmp_path / "z.pt")
    emodel = make(nn).eval()
    load_torch_weights(emodel, tmp_path / "z.pt")
    x = np.array([[1, 2, 9]]) if shape is None else np.random.default_rng(0).normal(size=shape).astype("float32")
    with torch.no_grad():
        ref = tmodel(*[torch.from_numpy(x)] * n_in)
    with ember.no_grad():
        out = emodel(*[ember.tensor(x)] * n_in)
    ref, out = (ref[0], out[0]) if isinstance(ref, tuple) else (ref, out)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)


def test_torch_views_shared_storage_and_dtypes(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"t": base.t(), "slice": base[1:3, 2:5], "tied": base, "half": torch.randn(3, 2).half(),
             "bf16": torch.randn(5).bfloat16(), "f64": torch.randn(2, 2, dtype=torch.float64),
             "long": torch.tensor([1, -2], dtype=torch.int64), "flag": torch.tensor([True, False]),
             "byte": torch.tensor([0, 255], dtype=torch.uint8), "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3)}
    torch.save(state, tmp_path / "v.pt")
    got = load_torch_state_dict(tmp_path / "v.pt")
    for k, v in state.items():
        ref = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
        np.testing.assert_array_equal(got[k], ref)
        assert got[k].dtype == ref.dtype and got[k].shape == ref.shape, k
    st = {k: v.contiguous() for k, v in state.items() if k not in ("tied", "t")}
    safetensors.torch.save_file(st, tmp_path / "v.safetensors")
    got = load_torch_state_dict(tmp_path / "v.safetensors")
    for k, v in st.items():
        np.testing.assert_array_equal(got[k], v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy())


def test_torch_big_endian_checkpoint(tmp_path):
    values = torch.tensor([1.5, -2.0, 3.25])
    torch.save({"w": values}, tmp_path / "le.pt")
    with zipfile.ZipFile(tmp_path / "le.pt") as z, zipfile.ZipFile(tmp_path / "be.pt", "w") as out:
        for n in z.namelist():
            raw = z.read(n)
            raw = b"big" if n.endswith("/byteorder") else raw
            out.writestr(n, values.numpy().astype(">f4").tobytes() if n.endswith("/data/0") else raw)
    got = load_torch_state_dict(tmp_path / "be.pt")["w"]
    np.testing.assert_array_equal(got, values.numpy())
    assert got.dtype == np.float32 and got.dtype.isnative


def test_torch_checkpoint_dict_needs_key(tmp_path):
    tmodel = _torch_mlp()
    torch.save({"model": tmodel.state_dict(), "epoch": 3, "lr": [0.1, 0.01]}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match=r"entries \['model', 'epoch', 'lr'\] are not tensors; pass key='model'"):
        load_torch_state_dict(tmp_path / "ckpt.pt")
    emodel = _ember_mlp()
    load_torch_weights(emodel, tmp_path / "ckpt.pt", key="model")
    x = np.ones((2, 6), "float32")
    np.testing.assert_allclose(_ember_out(emodel, x), _torch_out(tmodel.eval(), x), atol=1e-5)
    with pytest.raises(KeyError, match="no entry 'net'"):
        load_torch_state_dict(tmp_path / "ckpt.pt", key="net")


# ---------------------------------------------------------------- malformed PyTorch files
def _torch_zip(path, pickle_bytes, storages=None):
    """A zip laid out like torch.save's, holding the given pickle (and storages)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", pickle_bytes)
        z.writestr("m/byteorder", "little")
        z.writestr("m/version", "3\n")
        for k, raw in (storages or {}).items():
            z.writestr(f"m/data/{k}", raw)


class _Evil:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class _Pid:
    """Pickled as a persistent id (how torch.save refers to a storage)."""

    def __init__(self, pid):
        self.pid = pid


class _PidPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Pid) else None


def _dumps(obj, protocol=2):
    buf = io.BytesIO()
    _PidPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def _evil_cases(marker):
    return {"os.system": (os.system, (f"touch {marker}",)),
            "builtins.eval": (eval, (f"open({str(marker)!r}, 'w').close()",)),
            "subprocess.Popen": (subprocess.Popen, (["touch", str(marker)],)),
            "builtins.exec": (exec, (f"open({str(marker)!r}, 'w').close()",))}


def _pickled_global(data, fn):
    """How the pickle names ``fn``: protocol 2 writes Python 2 names (``__builtin__.eval``), as pickle does."""
    text = [arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL" and arg.endswith(" " + fn.__name__)]
    return text[0].replace(" ", ".") if text else f"{fn.__module__}.{fn.__qualname__}"


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("case", ["os.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
@pytest.mark.parametrize("where", ["top", "in_state_dict", "as_storage_type"])
def test_pickle_naming_a_callable_is_refused_and_not_run(tmp_path, case, where, protocol):
    marker = tmp_path / "pwned"
    fn, args = _evil_cases(marker)[case]
    evil = _Evil(fn, args)
    if where == "top":
        obj = evil
    elif where == "in_state_dict":
        obj = {"weight": evil}
    else:           # the evil call inside the persistent id, where a storage type belongs
        obj = {"weight": _Evil(torch._utils._rebuild_tensor_v2, (_Pid(("storage", evil, "0", "cpu", 1)), 0, (1,),
                                                                 (1,)))}
    path = tmp_path / "evil.pt"
    data = _dumps(obj, protocol)
    _torch_zip(path, data, {"0": b"\0\0\0\0"})
    with pytest.raises(UnsafeWeightsError) as err:
        load_torch_weights(_ember_mlp(), path)
    assert f"'{_pickled_global(data, fn)}', which Ember refuses to load" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not marker.exists()
    with pytest.raises(UnsafeWeightsError):        # and once more, under the name a user would open it by
        load_torch_state_dict(path)
    assert not marker.exists()


def test_whole_pickled_model_is_refused(tmp_path):
    torch.save(_torch_mlp(), tmp_path / "model.pt")
    with pytest.raises(UnsafeWeightsError, match=r"'torch\.nn\.modules\.container\.Sequential'.*state_dict\(\)"):
        load_torch_state_dict(tmp_path / "model.pt")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_zip(tmp_path, fraction):
    torch.save(_torch_mlp().state_dict(), tmp_path / "full.pt")
    raw = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[:int(len(raw) * fraction)])
    with pytest.raises(ValueError, match="not a readable zip file, truncated or damaged"):
        load_torch_state_dict(tmp_path / "cut.pt")


def test_damaged_storage_and_pickle(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    prefix = next(n for n in entries if n.endswith("data.pkl"))[:-len("data.pkl")]
    short = dict(entries, **{prefix + "data/0": b"\0" * 8})      # 2 floats where 3 are promised
    with zipfile.ZipFile(tmp_path / "short.pt", "w") as z:
        for n, raw in short.items():
            z.writestr(n, raw)
    with pytest.raises(ValueError, match="should hold 3 elements of 4 bytes but .* has 8 bytes"):
        load_torch_state_dict(tmp_path / "short.pt")
    _torch_zip(tmp_path / "junk.pt", b"\x80\x02not a pickle")
    with pytest.raises(ValueError, match="damaged or unsupported PyTorch checkpoint"):
        load_torch_state_dict(tmp_path / "junk.pt")
    # a stride that walks past the end of its storage is caught before any array is made
    storage = _Pid(("storage", torch.FloatStorage, "0", "cpu", 2))
    _torch_zip(tmp_path / "far.pt", _dumps({"w": _Evil(torch._utils._rebuild_tensor_v2, (storage, 0, (2,), (2,)))}),
               {"0": b"\0" * 8})
    with pytest.raises(ValueError, match=r"size \(2,\), stride \(2,\) at offset 0 reads past its storage of 2"):
        load_torch_state_dict(tmp_path / "far.pt")
    # an allowed global that is not data (a function left uncalled) is no tensor
    _torch_zip(tmp_path / "func.pt", _dumps({"w": torch._utils._rebuild_tensor_v2}))
    with pytest.raises(ValueError, match="is the function _rebuild_tensor_v2 left uncalled, not a tensor"):
        load_torch_state_dict(tmp_path / "func.pt")


def test_pickle_cannot_change_allowed_globals(tmp_path):
    from ember.saving import torch_weights
    before = torch_weights._rebuild_tensor_v2.__defaults__
    # GLOBAL torch._utils._rebuild_tensor_v2; BUILD (None, {'__defaults__': (1,)}) on it
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__K\x01\x85s\x86b.")
    _torch_zip(tmp_path / "build.pt", data)
    with pytest.raises(ValueError, match="tries to set the state"):
        load_torch_state_dict(tmp_path / "build.pt")
    assert torch_weights._rebuild_tensor_v2.__defaults__ == before
    # an expanded (stride-0) tensor may not claim more elements than its storage holds
    storage = _Pid(("storage", torch.FloatStorage, "0", "cpu", 1))
    _torch_zip(tmp_path / "big.pt", _dumps({"w": _Evil(torch._utils._rebuild_tensor_v2,
                                                       (storage, 0, (10 ** 12,), (0,)))}), {"0": b"\0" * 4})
    with pytest.raises(ValueError, match="more elements than its storage"):
        load_torch_state_dict(tmp_path / "big.pt")


def test_legacy_format_refused(tmp_path):
    torch.save(_torch_mlp().state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"legacy \(pre-1\.6\) format.*re-save"):
        load_torch_weights(_ember_mlp(), tmp_path / "old.pt")


def test_key_and_shape_mismatch_leave_model_unchanged(tmp_path):
    tmodel = _torch_mlp()
    path = tmp_path / "m.safetensors"
    safetensors.torch.save_file(tmodel.state_dict(), path)
    wrong = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 9), nn.ReLU(), nn.Linear(9, 2), nn.Linear(2, 2))
    before = {k: v.numpy().copy() for k, v in wrong.state_dict().items()}
    with pytest.raises(ValueError) as err:
        load_torch_weights(wrong, path)
    msg = str(err.value)
    assert "'2.weight' is (8, 16) in the file but (9, 16) in the model" in msg
    assert "'4.weight' is (2, 8) in the file but (2, 9) in the model" in msg
    assert "missing keys (in the model, not in the file): ['5.weight', '5.bias']" in msg
    for k, v in wrong.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    # strict=False: missing/unexpected are reported, matching keys load
    extra = tmp_path / "extra.safetensors"
    safetensors.torch.save_file(dict(tmodel.state_dict(), head=torch.zeros(1)), extra)
    small = _ember_mlp()
    assert load_torch_weights(small, extra, strict=False) == ([], ["head"])
    with pytest.raises(ValueError, match=r"unexpected keys \(in the file, not in the model\): \['head'\]"):
        load_torch_weights(small, extra)
    # a DataParallel-style prefix gets a hint
    prefixed = tmp_path / "dp.safetensors"
    safetensors.torch.save_file({"module." + k: v for k, v in tmodel.state_dict().items()}, prefixed)
    with pytest.raises(ValueError, match=r"hint: the file's keys start with 'module\.'"):
        load_torch_weights(_ember_mlp(), prefixed)


def test_malformed_safetensors_and_save_suffix(tmp_path):
    safetensors.torch.save_file({"w": torch.ones(4)}, tmp_path / "ok.safetensors")
    raw = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-4])
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_torch_state_dict(tmp_path / "cut.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"\xff" * 8)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_torch_state_dict(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="safetensors only"):
        save_torch_state_dict(_ember_mlp(), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError):
        load_torch_state_dict(tmp_path / "nope.pt")


# ---------------------------------------------------------------- Keras
@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these tests run Keras 3 on its torch backend")
    return keras


def _cnn(mod, keras=None):
    k = mod is not ember
    lay = keras.layers if k else L
    return (keras.Sequential if k else ember.Sequential)([
        (keras.Input if k else L.Input)(shape=(8, 8, 3)), lay.Conv2D(4, 3, padding="same", activation="relu"),
        lay.BatchNormalization(), lay.MaxPooling2D(), lay.DepthwiseConv2D(3, depth_multiplier=2),
        lay.SeparableConv2D(3, 2, padding="same"), lay.Conv2DTranspose(2, 3, strides=2), lay.Flatten(),
        lay.Dense(5, activation="relu"), lay.Dense(2)])


def _rnn(mod, keras=None):
    k = mod is not ember
    lay = keras.layers if k else L
    i = (keras.Input if k else L.Input)(shape=(6, 4))
    x = lay.Bidirectional(lay.LSTM(3, return_sequences=True))(i)
    x = lay.MultiHeadAttention(2, 3)(x, x)
    x = lay.LayerNormalization()(x)
    x = lay.GRU(4, return_sequences=True)(x)
    x = lay.GRU(3, reset_after=False, return_sequences=True)(x)
    x = lay.TimeDistributed(lay.Dense(3))(x)
    x = lay.SimpleRNN(4)(x)
    head = (keras.Sequential if k else ember.Sequential)([lay.Dense(4, activation="tanh"), lay.BatchNormalization(),
                                                         lay.Dense(2)])
    return (keras.Model if k else ember.Model)(i, head(x))


def _text(mod, keras=None):
    k = mod is not ember
    lay = keras.layers if k else L
    i = (keras.Input if k else L.Input)(shape=(7,), dtype="int32")
    x = lay.Embedding(10, 4)(i)
    x = lay.Conv1D(3, 2, padding="causal", activation="relu")(x)
    x = lay.GlobalMaxPooling1D()(x)
    x = lay.Dropout(0.3)(x)
    return (keras.Model if k else ember.Model)(i, lay.Dense(2)(x))


_KERAS_MODELS = {"cnn": (_cnn, (3, 8, 8, 3)), "rnn": (_rnn, (3, 6, 4)), "text": (_text, (3, 7))}
_KERAS_WARNINGS = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _randomize_keras(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        v = rng.normal(size=tuple(w.shape)).astype("float32") * 0.5
        w.assign(np.abs(v) + 0.5 if "variance" in w.path else v)


@_KERAS_WARNINGS
@pytest.mark.parametrize("fmt", ["weights.h5", "h5"])
@pytest.mark.parametrize("kind", sorted(_KERAS_MODELS))
def test_keras_weights_into_ember_and_back(tmp_path, keras, kind, fmt):
    build, shape = _KERAS_MODELS[kind]
    kmodel = build(keras, keras)
    _randomize_keras(kmodel)
    kpath = str(tmp_path / f"k.{fmt}")
    if fmt == "weights.h5":
        kmodel.save_weights(kpath)          # Keras 3 layout
    else:
        kmodel.save(kpath)                  # Keras 2 (legacy) h5: weights under model_weights/
    rng = np.random.default_rng(1)
    x = rng.integers(0, 10, shape).astype("int32") if kind == "text" else rng.normal(size=shape).astype("float32")
    ref = keras.ops.convert_to_numpy(kmodel(x, training=False))
    emodel = build(ember)
    load_keras_weights(emodel, kpath)
    out = _ember_out(emodel, x)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # Ember -> Keras: a fresh Keras model reads what Ember wrote, in the same format
    epath = str(tmp_path / f"e.{fmt}")
    save_keras_weights(emodel, epath)
    kmodel2 = build(keras, keras)
    kmodel2.load_weights(epath)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kmodel2(x, training=False)), out, atol=1e-5)
    for a, b in zip(kmodel.get_weights(), kmodel2.get_weights()):
        np.testing.assert_array_equal(a, b)


@_KERAS_WARNINGS
def test_keras_trained_model_into_ember(tmp_path, keras):
    keras.utils.set_random_seed(0)
    kmodel = _cnn(keras, keras)
    kmodel.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(32, 8, 8, 3)).astype("float32"), rng.integers(0, 2, 32)
    kmodel.fit(x, y, epochs=2, batch_size=8, verbose=0)
    kmodel.save_weights(str(tmp_path / "t.weights.h5"))
    emodel = _cnn(ember)
    load_keras_weights(emodel, tmp_path / "t.weights.h5")
    np.testing.assert_allclose(_ember_out(emodel, x), keras.ops.convert_to_numpy(kmodel(x, training=False)),
                               atol=1e-5)


@_KERAS_WARNINGS
@pytest.mark.parametrize("fmt", ["weights.h5", "h5"])
def test_keras_subclassed_model(tmp_path, keras, fmt):
    """Keras 3 saves a subclassed model's layers under their attribute names, except those whose names sort after
    ``layers``: those are saved in the ``layers`` list (here ``norm`` → ``layers/batch_normalization``)."""
    def net(mod, base):
        lay = keras.layers if mod is keras else L

        class Net(base):
            def __init__(self):
                super().__init__()
                self.encoder = lay.Dense(4, activation="relu")
                self.norm = lay.BatchNormalization()
                self.head = lay.Dense(2)

            def call(self, x):
                return self.head(self.norm(self.encoder(x)))
        return Net()
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    kmodel = net(keras, keras.Model)
    kmodel(x)
    _randomize_keras(kmodel)
    emodel = net(ember, ember.Model)
    emodel(ember.tensor(x))
    epath = str(tmp_path / f"e.{fmt}")
    if fmt == "weights.h5":
        kmodel.save_weights(str(tmp_path / "k.weights.h5"))
        load_keras_weights(emodel, tmp_path / "k.weights.h5")
        np.testing.assert_allclose(_ember_out(emodel, x), keras.ops.convert_to_numpy(kmodel(x, training=False)),
                                   atol=1e-5)
    else:
        emodel.load_state_dict({k: np.abs(v.numpy()) + 0.5 for k, v in emodel.state_dict().items()})
    save_keras_weights(emodel, epath)
    kmodel2 = net(keras, keras.Model)
    kmodel2(x)
    kmodel2.load_weights(epath)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kmodel2(x, training=False)), _ember_out(emodel, x),
                               atol=1e-5)


# ---------------------------------------------------------------- Keras files, checked without Keras
def _mlp(units=3, extra=False):
    ls = [L.Input(shape=(4,)), L.Dense(units, activation="relu"), L.BatchNormalization(), L.Dense(2)]
    return ember.Sequential(ls + ([L.Dense(2)] if extra else []))


@pytest.mark.parametrize("suffix", ["weights.h5", "h5"])
def test_ember_keras_files_round_trip(tmp_path, suffix):
    a, b = _mlp(), _mlp()
    for p in a.parameters():
        p.data[...] = np.random.default_rng(0).normal(size=p.shape).astype("float32") ** 2
    save_keras_weights(a, tmp_path / f"a.{suffix}")
    load_keras_weights(b, tmp_path / f"a.{suffix}")
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(_ember_out(b, x), _ember_out(a, x))


def test_keras3_mismatches_name_layer_and_shapes(tmp_path):
    save_keras_weights(_mlp(), tmp_path / "a.weights.h5")
    wrong = _mlp(units=5)
    before = [p.detach().numpy().copy() for p in wrong.parameters()]
    with pytest.raises(ValueError) as err:
        load_keras_weights(wrong, tmp_path / "a.weights.h5")
    msg = str(err.value)
    assert "layer 'dense_" in msg and "(Dense): weight 'kernel' is (4, 5) in the model but (4, 3) in the file at " \
        "'layers/dense/vars/0'" in msg
    assert "(BatchNormalization): weight 'gamma' is (5,) in the model but (3,) in the file" in msg
    assert all(np.array_equal(p.detach().numpy(), q) for p, q in zip(wrong.parameters(), before))
    with pytest.raises(ValueError, match=r"no weights at 'layers/dense_2/vars'.*the file's layers are "
                                         r"\['batch_normalization', 'dense', 'dense_1'\]"):
        load_keras_weights(_mlp(extra=True), tmp_path / "a.weights.h5")
    save_keras_weights(_mlp(extra=True), tmp_path / "b.weights.h5")
    with pytest.raises(ValueError, match=r"no layer of the model takes: \['layers/dense_2/vars/0', "
                                         r"'layers/dense_2/vars/1'\]"):
        load_keras_weights(_mlp(), tmp_path / "b.weights.h5")


def test_keras2_file_with_tf_names_and_chunked_attributes(tmp_path):
    """A file laid out as tf.keras 2 writes it: model_weights/<layer>/<layer>/kernel:0, chunked layer_names."""
    import h5py
    rng = np.random.default_rng(0)
    k0, b0, k1, b1 = (rng.normal(size=s).astype("float32") for s in [(4, 3), (3,), (3, 2), (2,)])
    with h5py.File(tmp_path / "tf2.h5", "w") as f:
        g = f.create_group("model_weights")
        g.attrs["layer_names0"] = np.array([b"input_1", b"dense_7"])       # split as Keras does for long lists
        g.attrs["layer_names1"] = np.array([b"dropout", b"dense_8"])
        g.attrs["keras_version"], g.attrs["backend"] = b"2.15.0", b"tensorflow"
        g.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        g.create_group("dropout").attrs["weight_names"] = np.array([], dtype="S1")
        for name, (k, b) in (("dense_7", (k0, b0)), ("dense_8", (k1, b1))):
            layer = g.create_group(name)
            layer.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            layer.create_dataset(f"{name}/kernel:0", data=k)
            layer.create_dataset(f"{name}/bias:0", data=b)
    model = ember.Sequential([L.Input(shape=(4,)), L.Dense(3, activation="relu"), L.Dropout(0.5), L.Dense(2)])
    load_keras_weights(model, tmp_path / "tf2.h5")
    x = rng.normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(_ember_out(model, x), np.maximum(x @ k0 + b0, 0) @ k1 + b1, rtol=1e-6, atol=1e-6)


def test_keras2_mismatches_and_other_files(tmp_path):
    save_keras_weights(_mlp(), tmp_path / "a.h5")
    with pytest.raises(ValueError, match=r"has 3 layer\(s\) with weights .* the model 4"):
        load_keras_weights(_mlp(extra=True), tmp_path / "a.h5")
    with pytest.raises(ValueError, match=r"weight 'kernel' is \(4, 5\) in the model but \(4, 3\) in the file at "
                                         r"'dense_\d+/dense_\d+/kernel'"):
        load_keras_weights(_mlp(units=5), tmp_path / "a.h5")
    model = _mlp()
    model.save_weights(str(tmp_path / "ember.weights.h5"))
    with pytest.raises(ValueError, match=r"holds Ember weights \(save_weights\)"):
        load_keras_weights(model, tmp_path / "ember.weights.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a valid HDF5 file"):
        load_keras_weights(model, tmp_path / "junk.h5")
    with pytest.raises(ValueError, match="has no weights yet"):
        save_keras_weights(ember.Sequential([L.Dense(2)]), tmp_path / "x.weights.h5")
