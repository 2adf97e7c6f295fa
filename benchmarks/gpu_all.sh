#!/usr/bin/env bash
# Everything NSR measures on a GPU, in one call: install the carried wheels, check (GPU tests, kernel parity),
# time (hash-grid kernel vs the torch reference and the bandwidth floor) and measure quality (every preset on
# Spot, fit-sdf on the reference meshes, the DTU image-metric table, trainable cameras on Spot and DTU).
#
# On the device machine, from the repo root, with .data/ (synthetic_spot_mitsuba, meshes/{spot_cow,
# stanford_bunny,armadillo}, dtu_scan24_half) and .whl/ carried:
#   bash benchmarks/gpu_all.sh OUT [SHORT_S=120] [LONG_S=300]
# With 4 GPUs the four lanes run side by side, one process per GPU at a time (so budgets stay honest);
# with fewer GPUs the lanes run one after the other. Each lane writes its results into OUT as it goes
# (8 files at most: presets_short.json, presets_long.json, gpu_tests.log, bench_hashgrid.md, cameras.md,
# dtu_table.md, fit_sdf.json, machine.txt).
set -uo pipefail
OUT=${1:?usage: gpu_all.sh OUT [SHORT_S] [LONG_S]}; SHORT=${2:-120}; LONG=${3:-300}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
NGPU=$(nvidia-smi -L | wc -l); gpu() { echo $(( $1 % NGPU )); }
SPOT=(--scene .data/synthetic_spot_mitsuba --gt-mesh .data/meshes/spot_cow/cow.obj --background 1 1 1)
DTU=.data/dtu_scan24_half
W=/tmp/nsr-gpu-all; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | tee "$OUT/machine.txt"
date -u >>"$OUT/machine.txt"

lane_a() {  # presets at the short budget, one call each so that each result lands in OUT at once
  for preset in fourier stylemod-nffb nffb; do
    python3 benchmarks/compare_presets.py --presets $preset --gpus $(gpu 0) --out $W/short_$preset -- "${SPOT[@]}" --budgets "$SHORT" >>$W/a.log 2>&1
    python3 -c "import json,sys; print(json.dumps(sum((json.load(open(f)) for f in sys.argv[1:]), []), indent=1))" \
      $W/short_*/results.json >"$OUT/presets_short.json"
  done
}
lane_b() {  # a preset at both budgets, then the GPU tests and the kernel benchmark
  python3 benchmarks/compare_presets.py --presets nffb-fused --gpus $(gpu 1) --out $W/presets_long -- "${SPOT[@]}" --budgets "$SHORT" "$LONG" >$W/b.log 2>&1
  cp $W/presets_long/results.json "$OUT/presets_long.json"
  CUDA_VISIBLE_DEVICES=$(gpu 1) timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests -W ignore \
    >"$OUT/gpu_tests.log" 2>&1
  CUDA_VISIBLE_DEVICES=$(gpu 1) timeout 120 python3 benchmarks/bench_hashgrid.py --out $W/bench.json \
    >"$OUT/bench_hashgrid.md" 2>&1
}
lane_c() {  # trainable cameras: Spot 3 deg / 3% (fixed vs trained), then DTU 2 deg / 2% (trained)
  CUDA_VISIBLE_DEVICES=$(gpu 2) python3 benchmarks/cameras.py "${SPOT[@]}" --preset hashgrid-fused \
    --noise 3,0.03,0 --steps 7000 --budget 200 --out $W/cams_spot >$W/c.log 2>&1
  CUDA_VISIBLE_DEVICES=$(gpu 2) python3 benchmarks/cameras.py --scene $DTU --preset hashgrid-fused \
    --noise 2,0.02,0 --steps 5000 --budget 150 --skip-fixed --out $W/cams_dtu >>$W/c.log 2>&1
  cp $W/c.log "$OUT/cameras.md"
}
lane_d() {  # DTU held-out image metrics, then fit-sdf on the reference meshes
  CUDA_VISIBLE_DEVICES=$(gpu 3) python3 benchmarks/dtu_table.py --scene $DTU --preset hashgrid-fused \
    --max-seconds 150 --no-train-views --out $W/dtu >$W/d.log 2>&1
  cp $W/d.log "$OUT/dtu_table.md"
  for m in bunny armadillo spot; do
    CUDA_VISIBLE_DEVICES=$(gpu 3) timeout 150 python3 benchmarks/fit_sdf.py --out $W/fit_sdf --meshes $m \
      --device cuda --max-seconds 6 --data .data/meshes >>$W/fit.log 2>&1
    cp $W/fit_sdf/results.json "$OUT/fit_sdf.json" 2>/dev/null
  done
}
if [ "$NGPU" -ge 4 ]; then
  lane_a & lane_b & lane_c & lane_d & wait
else
  lane_a; lane_b; lane_c; lane_d
fi
tail -n 30 $W/*.log
