#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine: the CUDA tests, then speed.py's default-model and prediction
# sections on the GPU. Results go to ${OUT:-benchmarks/results}; copy the printed tables into benchmarks/README.md.
#
# The lent machine has a CUDA build of PyTorch and this project's dependencies, but not the project itself, and it
# cannot see ../shared. So the script runs the code from src/ (PYTHONPATH, nothing to install) and reads hr.csv from
# $DATA, else ../shared/data/hr.csv, else .devdata/hr.csv: a copy kept out of git, made once with
#     mkdir -p .devdata && cp ../shared/data/hr.csv .devdata/ && echo /.devdata/ >> .git/info/exclude
# and sent along with the working tree (the device tool's carry: [".devdata"]).
#     bash benchmarks/gpu.sh                 (PYTHON=... to pick the interpreter; python3 by default)
# Without a GPU it still runs, on the CPU, with the CUDA tests skipped: a dry run of the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
data=""
for candidate in "${DATA:-}" ../shared/data/hr.csv .devdata/hr.csv; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then data="$candidate"; break; fi
done
if [ -z "$data" ]; then
    echo "gpu.sh: hr.csv not found: set DATA=PATH, or carry .devdata/hr.csv (see the top of this script)" >&2
    exit 2
fi
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
else
    echo "no nvidia-smi here" | tee "$out/gpu.txt"
fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')" | tee -a "$out/gpu.txt"
# the tests first; a failure is recorded, and the benchmarks still run
"$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_dense.py tests/test_model_tabm.py 2>&1 \
    | tail -15 | tee "$out/gpu_tests.txt"
"$py" benchmarks/speed.py --data "$data" --only default,predict --json "$out/speed_gpu.json" 2>&1 \
    | tee "$out/speed_gpu.txt"
