#!/usr/bin/env bash
# Issue 7's GPU checks as one prepared run on a lent device machine (the `device` tool), inside one call:
#
#     run(command="bash bench/gpu_checks.sh", timeout_s=590)
#
# The device image has CuPy (cupy-cuda13x), PyTorch with CUDA, numba, onnx and ml_dtypes, and no network, so
# Ember runs from the checkout (PYTHONPATH) without pip. Each stage has its own time limit (together under
# 560 s), writes its whole log to $OUT/<stage>.log (or ./gpu-check-logs here) and prints its last lines; a
# failed stage does not stop the next. Stages:
#   env       nvidia-smi, versions, ember.cuda.is_available() / device_count()
#   gpu_unit  the device, CUDA-kernel, cuDNN and mixed-precision tests (skip nothing there: a GPU is present)
#   parity    the op table and the module checks with EMBER_TEST_DEVICE=cuda: forward and gradients on the GPU
#             against PyTorch CUDA
#   bench     bench/bench_gpu.py: MLP (eager, jit, jit + CUDA Graphs), ResNet-18 (float32, bf16 autocast),
#             Transformer encoder, matmul TFLOP/s against the device's peak; writes bench/results/gpu.json
set -u
OUT=${OUT:-gpu-check-logs}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

stage() {
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name (limit ${limit}s)"
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "   rc=$rc after $(($(date +%s) - start))s"
    tail -n 6 "$OUT/$name.log" | sed 's/^/   /'
}

stage env 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; $PY -c '
import cupy, numpy, torch, ember
print(\"cupy\", cupy.__version__, \"numpy\", numpy.__version__, \"torch\", torch.__version__,
      \"torch.cuda\", torch.cuda.is_available(), \"ember.cuda\", ember.cuda.is_available(), ember.cuda.device_count())'"
stage gpu_unit 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_gpu_kernels.py \
    tests/test_gpu_cudnn.py tests/test_amp.py
stage parity 180 env EMBER_TEST_DEVICE=cuda "$PY" -m pytest -q -p no:cacheprovider tests/test_ops_activation.py \
    tests/test_ops_conv.py tests/test_ops_elementwise.py tests/test_ops_index.py tests/test_ops_linalg.py \
    tests/test_ops_pool.py tests/test_ops_reduce.py tests/test_ops_shape.py tests/test_attention.py \
    tests/test_conv_layers.py tests/test_embedding.py tests/test_norm.py tests/test_pool_layers.py tests/test_rnn.py
stage bench 200 "$PY" bench/bench_gpu.py --runs 3 --steps 10
if [ -f bench/results/gpu.json ]; then cp bench/results/gpu.json "$OUT/"; fi
