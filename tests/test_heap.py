"""ember.backend.heap: on glibc, freed arrays stay in the heap, so a step that allocates and frees 40 MiB
of arrays again and again stops page-faulting (measured in a fresh process, with and without the setting)."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")

_STEPS = """
import resource, numpy, ember
from ember.backend import heap
def step():                      # 20 arrays of 2 MiB made, written and freed, as a training step's temporaries
    arrays = [numpy.ones(1 << 18) for _ in range(20)]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(heap.keep_freed_memory(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_step(keep: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["EMBER_KEEP_HEAP"] = keep
    out = subprocess.run([sys.executable, "-c", _STEPS], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", float(faults)


def test_freed_arrays_are_reused_without_page_faults():
    applied, faults = _faults_per_step("1")
    assert applied
    assert faults < 100                               # 40 MiB of fresh pages would be about 10,000 faults
    applied, faults = _faults_per_step("0")           # glibc's own thresholds: the heap top goes back each time
    assert not applied
    assert faults > 1000


def test_glibc_settings_from_the_environment_win(monkeypatch):
    from ember.backend import heap
    monkeypatch.setattr(heap, "_applied", [])
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert heap.keep_freed_memory() is False
