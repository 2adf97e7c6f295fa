#!/usr/bin/env bash
# DTU per-scan PSNR/SSIM/LPIPS table on the GPU machine (see benchmarks/dtu_table.py).
#   bash benchmarks/dtu_table.sh SCENE_DIR [PRESET] [SECONDS] [extra dtu_table.py args...]
# e.g. bash benchmarks/dtu_table.sh .data/dtu_scan24 positional 600
# Installs the carried wheels (.whl/, as gpu_baseline.sh does) when present. For LPIPS, carry the AlexNet
# checkpoint too and pass --lpips-weights PATH (or put it in $TORCH_HOME/hub/checkpoints).
set -euo pipefail
SCENE=${1:?usage: dtu_table.sh SCENE_DIR [PRESET] [SECONDS]}
PRESET=${2:-positional}
SECONDS_BUDGET=${3:-600}
shift $(( $# < 3 ? $# : 3 ))
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 benchmarks/dtu_table.py --scene "$SCENE" --preset "$PRESET" --max-seconds "$SECONDS_BUDGET" "$@"
