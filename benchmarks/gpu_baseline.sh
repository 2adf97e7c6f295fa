#!/usr/bin/env bash
# The GPU baseline of the core issue: the `positional` preset on the Spot scene and DTU scan24 under
# 2/5/10-minute budgets. Run on the device machine from the repo root with .data/ and .whl/ carried:
#   bash benchmarks/gpu_baseline.sh sanity   # quick check + profile (~2 min)
#   bash benchmarks/gpu_baseline.sh spot|dtu # full run (~12 min), logs in /tmp/nsr-bench
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
mkdir -p /tmp/nsr-bench
SPOT=(--scene .data/synthetic_spot_mitsuba --gt-mesh .data/meshes/spot_cow/cow.obj --background 1 1 1)
DTU=(--scene .data/dtu_scan24)
case "${1:-sanity}" in
  sanity)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, scipy, skimage, trimesh; print(torch.__version__, torch.cuda.get_device_name())"
    python3 -m pytest -q -p no:cacheprovider tests/renderers tests/models tests/fields 2>&1 | tail -3 || true
    python3 benchmarks/profile_step.py --scene .data/synthetic_spot_mitsuba --preset positional
    python3 benchmarks/baseline.py "${SPOT[@]}" --preset positional --budgets 20 40 --resolution 256 --out /tmp/nsr-bench/sanity
    ;;
  spot)
    python3 benchmarks/baseline.py "${SPOT[@]}" --preset positional --out /tmp/nsr-bench/spot ;;
  dtu)
    python3 benchmarks/baseline.py "${DTU[@]}" --preset positional --out /tmp/nsr-bench/dtu ;;
esac
