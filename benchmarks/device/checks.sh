#!/usr/bin/env bash
# The GPU checks that are not reconstructions (those are `nsr batch` experiments, benchmarks/experiments/):
# the GPU tests, the hash-grid kernel against the torch reference and the bandwidth floor, and fit-sdf of
# every encoding on the reference meshes. Writes OUT/gpu_tests.log, OUT/bench_hashgrid.md, OUT/fit_sdf.json.
#   bash benchmarks/device/checks.sh OUT
set -uo pipefail
OUT=${1:?usage: checks.sh OUT}
mkdir -p "$OUT"
source "$(dirname "$0")/setup.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | tee "$OUT/machine.txt"
date -u >>"$OUT/machine.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests -W ignore >"$OUT/gpu_tests.log" 2>&1
timeout 120 python3 benchmarks/bench_hashgrid.py --out /tmp/bench_hashgrid.json >"$OUT/bench_hashgrid.md" 2>&1
for mesh in bunny armadillo spot; do
  timeout 100 python3 benchmarks/fit_sdf.py --out /tmp/fit_sdf --meshes $mesh --device cuda --max-seconds 6 \
    --data .data/meshes >>"$OUT/fit_sdf.log" 2>&1
done
cp /tmp/fit_sdf/results.json "$OUT/fit_sdf.json" 2>/dev/null
tail -n 3 "$OUT/gpu_tests.log"
