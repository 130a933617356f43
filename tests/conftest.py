import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

#: ``EMBER_STRICT_BACKEND=1 python -m pytest tests``: the whole suite on ember.backend.strict (NumPy restricted
#: to CuPy's API). Tests of NumPy-only fast paths, which the strict backend skips as CuPy does, are skipped then.
STRICT = os.environ.get("EMBER_STRICT_BACKEND", "0") == "1"
_NUMPY_ONLY = (
    "tests/test_onednn.py",                      # oneDNN kernels take NumPy arrays only
    "tests/test_graph_epilogue.py::test_jitted_training_step_fuses_and_matches_eager",   # oneDNN epilogues
    "tests/test_graph_epilogue.py::test_forward_only_graph_fuses_and_replays_on_new_inputs",
    "tests/test_graph_fusion.py::test_optimizer_update_is_written_into_the_parameters_own_arrays",  # NumPy fusion
    "tests/test_graph_fusion.py::test_jit_fuses_inference_graphs_and_keeps_results",   # NumPy fusion
    "tests/test_graph_codegen.py::test_compiled_step_frees_values_as_early_as_the_interpreter",   # NumPy fusion
    "tests/test_gpu_cudnn.py::test_frontend_conv_step_with_asymmetric_padding_matches_pytorch",  # NumPy stand-ins
)


#: The op table and the module checks (the modules that use the ``each_device`` fixture) run once per device:
#: on the CPU, and on ``cuda`` against PyTorch CUDA, skipped without a CUDA GPU (CuPy) and PyTorch's CUDA build.
#: ``EMBER_TEST_DEVICE=cuda python -m pytest tests/test_ops_*.py`` runs the cuda cases alone.
DEVICE = os.environ.get("EMBER_TEST_DEVICE")


def _cuda_ready() -> bool:
    import ember
    if not ember.cuda.is_available():
        return False
    import torch
    return torch.cuda.is_available()


DEVICES = [DEVICE] if DEVICE else ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    "not config._ember_cuda", reason="no CUDA GPU with CuPy and PyTorch's CUDA build here"))]


@pytest.fixture(params=DEVICES)
def each_device(request, monkeypatch):
    """Run the test with ``helpers.opcheck.DEVICE`` (where the op and module checks put Ember's and PyTorch's
    inputs and modules) set to each device in turn."""
    from helpers import opcheck
    monkeypatch.setattr(opcheck, "DEVICE", request.param)
    return request.param


def pytest_configure(config):
    config._ember_cuda = DEVICE is None and _cuda_ready()
    if DEVICE not in (None, "cpu"):
        import ember
        if not ember.cuda.is_available():
            pytest.exit(f"EMBER_TEST_DEVICE={DEVICE}: no CUDA device here (CuPy with a GPU is needed)", returncode=4)


def pytest_collection_modifyitems(config, items):
    if not STRICT:
        return
    skip = pytest.mark.skip(reason="a NumPy-only fast path: skipped under EMBER_STRICT_BACKEND=1, as on CuPy")
    for item in items:
        if item.nodeid.startswith(_NUMPY_ONLY):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import ember
    ember.manual_seed(0)
    yield
