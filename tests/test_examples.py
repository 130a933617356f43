"""The examples run end to end: the main job reaches its accuracy and writes its artefacts."""
import json
import pathlib
import runpy
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_digits_main_job(tmp_path, capsys):
    mod = runpy.run_path(str(ROOT / "examples" / "train_digits.py"))
    acc = mod["main"](["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "epoch   1  loss" in out and "final test accuracy" in out
    assert acc >= 0.96
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final_test_accuracy"] == acc and metrics["seed"] == 0
    assert (tmp_path / "history.csv").read_text().startswith("epoch,loss,accuracy,test_loss,test_accuracy")
    import ember
    state = ember.load(str(tmp_path / "model.safetensors"))
    assert state["net.0.weight"].shape == (128, 64)


@pytest.mark.slow
def test_train_digits_is_reproducible(tmp_path):
    mod = runpy.run_path(str(ROOT / "examples" / "train_digits.py"))
    a = mod["main"](["--out", str(tmp_path / "a"), "--epochs", "3"])
    b = mod["main"](["--out", str(tmp_path / "b"), "--epochs", "3"])
    assert a == b


@pytest.mark.slow
def test_notes_pytorch_example_runs_with_only_imports_changed():
    src = (ROOT / "examples" / "pytorch_simple_model.py").read_text()
    notes = next((ROOT.parent / "shared" / "seeds").glob("004_*.txt"), None)
    if notes is not None:   # the notes' model code appears verbatim in the example
        text = notes.read_text()
        for line in ("self.fc1 = nn.Linear(784, 64)", "x = torch.softmax(self.fc2(x), dim=1)",
                     "optimizer = optim.Adam(model.parameters(), lr=0.001)", "loss = criterion(output, train_labels)"):
            assert line in text and line in src
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "pytorch_simple_model.py")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "loss before training" in res.stdout


@pytest.mark.slow
def test_notes_keras_examples_run_with_only_imports_changed():
    src = (ROOT / "examples" / "keras_notes_examples.py").read_text()
    notes = next((ROOT.parent / "shared" / "seeds").glob("004_*.txt"), None)
    if notes is not None:
        text = notes.read_text()
        for line in ("layers.Dense(64, activation='relu', input_shape=(784,)),", "model.fit(train_data, train_labels, "
                     "epochs=10)", "model.add(Dense(units=64, activation='relu', input_shape=(input_dim,)))",
                     "loss='sparse_categorical_crossentropy',"):
            assert line in text and line in src
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "keras_notes_examples.py")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "categorical model: loss" in res.stdout


@pytest.mark.slow
def test_notes_assignment_single_and_multi_layer_classifiers():
    mod = runpy.run_path(str(ROOT / "examples" / "assignment_classifiers.py"))
    acc = mod["main"]()
    assert acc[("digits", "mlp")] >= 0.97
    assert acc[("digits", "single_layer")] >= 0.9
    assert acc[("breast_cancer", "mlp")] >= 0.95 and acc[("breast_cancer", "single_layer")] >= 0.95
