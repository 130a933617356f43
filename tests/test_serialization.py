"""ember.save / ember.load: safetensors round trip, atomic writes, clear errors on bad files."""
import os

import numpy as np
import pytest

import ember


def test_round_trip_keeps_values_and_dtypes(tmp_path):
    sd = {"a": ember.randn(3, 4), "b": ember.arange(5), "c": ember.ones(2, dtype=ember.float64)}
    path = tmp_path / "w.safetensors"
    ember.save(sd, str(path))
    back = ember.load(str(path))
    assert set(back) == set(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype
        np.testing.assert_array_equal(back[k].numpy(), sd[k].numpy())
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]   # no temp file left behind


def test_tensors_requiring_grad_are_saved_detached(tmp_path):
    w = ember.ones(2, requires_grad=True)
    ember.save({"w": w}, str(tmp_path / "w.safetensors"))
    assert not ember.load(str(tmp_path / "w.safetensors"))["w"].requires_grad


def test_corrupt_and_missing_files_give_clear_errors(tmp_path):
    path = tmp_path / "bad.safetensors"
    ember.save({"a": ember.ones(100)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        ember.load(str(path))
    with pytest.raises(FileNotFoundError):
        ember.load(str(tmp_path / "nope.safetensors"))


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    ember.save({"a": ember.ones(2)}, str(path))
    with pytest.raises(TypeError):
        ember.save({"a": object()}, str(path))
    np.testing.assert_array_equal(ember.load(str(path))["a"].numpy(), [1, 1])
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]
