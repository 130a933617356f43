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


#: ``EMBER_TEST_DEVICE=cuda python -m pytest tests/test_ops_*.py``: the op table on the GPU against PyTorch CUDA.
DEVICE = os.environ.get("EMBER_TEST_DEVICE", "cpu")


def pytest_configure(config):
    if DEVICE != "cpu":
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
