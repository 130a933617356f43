"""``python -m ember train``: a short run in a subprocess writes its run folder; bad configs fail clearly."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ember import cli
from ember.data import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ember(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ember", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_train_from_yaml_writes_run_folder(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: {hidden: [32], dropout: 0.0}\ndata: digits\noptimizer: adam\n"
                      "learning_rate: 0.005\nepochs: 3\nbatch_size: 64\nseed: 0\n")
    proc = _ember("train", "--config", str(config), "--out", "myrun", "--verbose", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch 3/3" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("test accuracy:"))
    accuracy = float(line.split()[2])
    assert 0.8 < accuracy <= 1.0                           # 3 epochs of a 64-32-10 MLP already learn digits
    run = tmp_path / "myrun"
    files = set(os.listdir(run))
    assert {"log.csv", "config.yaml", "results.json"} <= files
    assert "model.ember" in files or "model.safetensors" in files
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    results = json.loads((run / "results.json").read_text())
    assert results["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert results["epochs_run"] == 3


def test_flags_override_config_and_second_dataset(tmp_path):
    proc = _ember("train", "--data", "breast_cancer", "--epochs", "2", "--learning-rate", "0.01", "--out",
                  str(tmp_path / "bc"), "--verbose", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = (tmp_path / "bc" / "config.yaml").read_text()
    assert "data: breast_cancer" in saved and "epochs: 2" in saved and "learning_rate: 0.01" in saved
    results = json.loads((tmp_path / "bc" / "results.json").read_text())
    assert results["data"] == "breast_cancer" and results["test_accuracy"] > 0.85


def test_help_explains_config_keys(tmp_path):
    proc = _ember("train", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for word in ("--config", "--out", "learning_rate", "breast_cancer", "EarlyStopping", "hidden"):
        assert word in proc.stdout


@pytest.mark.parametrize("text, message", [
    ("epochz: 3\n", "unknown key(s) ['epochz']"),
    ("data: mnist\n", "unknown data 'mnist'"),
    ("model: {hidden: 32}\n", "model.hidden must be a list"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("model: [\n", "is not valid YAML"),
])
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        cli.load_config(str(path), {})


def test_missing_config_file(tmp_path):
    with pytest.raises(SystemExit, match="cannot read config file"):
        cli.load_config(str(tmp_path / "nope.yaml"), {})


def test_load_breast_cancer():
    X, y = datasets.load_breast_cancer(as_numpy=True)
    assert X.shape == (569, 30) and X.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1} and int(y.sum()) == 357
    assert X[0, 0] == pytest.approx(17.99)                  # first row of the UCI file, mean radius
    Xt, yt = datasets.load_breast_cancer()
    assert tuple(Xt.shape) == (569, 30) and int(yt.sum().item()) == 357
