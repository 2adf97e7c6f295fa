#!/usr/bin/env bash
# Trainable cameras on the GPU: fixed ground-truth cameras vs cameras trained from noisy poses
# (benchmarks/cameras.py), Spot with 3 deg / 3% noise and DTU scan24 with 2 deg / 2%.
# Run on the device machine from the repo root with .data/ and .whl/ carried (as gpu_baseline.sh):
#   bash benchmarks/cameras_gpu.sh spot|dtu|all [BUDGET_S=600] [DATA=.data]
# Logs and results in /tmp/nsr-bench/cams-*; the last lines of each are a markdown table.
set -euo pipefail
WHAT=${1:-all}; BUDGET=${2:-600}; DATA=${3:-.data}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
mkdir -p /tmp/nsr-bench
if [[ $WHAT == spot || $WHAT == all ]]; then
  python3 benchmarks/cameras.py --scene "$DATA/synthetic_spot_mitsuba" --gt-mesh "$DATA/meshes/spot_cow/cow.obj" \
    --background 1 1 1 --preset positional --noise 3,0.03,0 --budget "$BUDGET" --out /tmp/nsr-bench/cams-spot \
    2>&1 | tee /tmp/nsr-bench/cams-spot.log
fi
if [[ $WHAT == dtu || $WHAT == all ]]; then
  # No ground-truth mesh for scan24 in the shared data: camera errors only (the fixed run is skipped).
  python3 benchmarks/cameras.py --scene "$DATA/dtu_scan24" --preset positional --noise 2,0.02,0 \
    --budget "$BUDGET" --skip-fixed --out /tmp/nsr-bench/cams-dtu 2>&1 | tee /tmp/nsr-bench/cams-dtu.log
fi
