#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine: the CUDA tests, then the speed benchmark's default-model and
# prediction sections on the GPU. Results go to ${OUT:-benchmarks/results}; copy the printed tables into README.md.
#   bash benchmarks/gpu.sh            (needs a CUDA build of torch: pip install torch -e '.[test,bench]')
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
    | tee -a "$out/gpu.txt"
python -m pytest -q tests/test_cuda.py tests/test_dense.py tests/test_model_tabm.py -p no:cacheprovider 2>&1 \
    | tail -5 | tee "$out/gpu_tests.txt"
python benchmarks/speed.py --only default,predict --json "$out/speed_gpu.json" 2>&1 | tee "$out/speed_gpu.txt"
