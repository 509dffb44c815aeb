#!/usr/bin/env bash
# The SHA-256 of four reference model files, seed 0, trained by a tree's code: run it on two commits to show that a
# refactor changed no byte (issue 13). Usage: benchmarks/reference_hashes.sh [TREE] [OUT]; TREE defaults to this
# checkout (a `git worktree add --detach DIR COMMIT` gives another), OUT to a temporary folder.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
TREE=$(cd "${1:-$HERE}" && pwd); OUT=${2:-$(mktemp -d)}; mkdir -p "$OUT"
DATA=${NEURALTAB_DATA:-$HERE/../shared/data}
export PYTHONPATH=$TREE/src
train() {
  local name=$1; shift
  python -m neuraltab.cli train "$@" --seed 0 -o "$OUT/$name.ntab" --force >"$OUT/$name.log" 2>&1 \
    || { echo "$name: training failed, see $OUT/$name.log"; exit 1; }
}
train hr-default "$DATA/hr.csv" --target left
train hr-classic "$DATA/hr.csv" --target left --model mlp --layers 64,64 --activation relu --optimizer adam \
  --batch-size 32 --no-early-stopping --scaling none --epochs 100
train concrete "$DATA/public/concrete.csv" --target compressive_strength
train telco "$DATA/public/telco_churn.csv" --target churn
cd "$OUT" && sha256sum ./*.ntab
