#!/usr/bin/env bash
# Everything NSR measures on a GPU: install the carried wheels, check (GPU tests, kernel parity), time
# (hash-grid kernel vs the torch reference and the bandwidth floor) and measure quality (presets on Spot,
# fit-sdf on the reference meshes, the DTU image-metric table, trainable cameras on Spot and DTU).
#
# On the device machine, from the repo root, with .data/ (synthetic_spot_mitsuba, meshes/{spot_cow,
# stanford_bunny,armadillo}, dtu_scan24_half) and .whl/ carried:
#   bash benchmarks/gpu_all.sh OUT [all]      # GPU tests, kernel benchmark, cameras, fit-sdf, DTU table
#   bash benchmarks/gpu_all.sh OUT ten-start  # presets on Spot at 120/300/600 s, call 1 of 2 ...
#   bash benchmarks/gpu_all.sh OUT ten-finish # ... call 2, on the same (warm) machine
#   TEN_PRESETS="hashgrid hashgrid-pe nffb" bash benchmarks/gpu_all.sh OUT ten-start   # other presets
#   bash benchmarks/gpu_all.sh OUT cams-sweep # camera-schedule variants of hashgrid-fused(-cams) on Spot
#   bash benchmarks/gpu_all.sh OUT cams-seeds # the same with other pose-noise seeds (1-4)
#   bash benchmarks/gpu_all.sh OUT cams-fill  # seeds 1, 3, 4 measured with the hidden pockets filled
#   bash benchmarks/gpu_all.sh OUT cams-pockets # seeds 0-4 (POCKET_SEEDS), fixed and trained cameras (the -cams
#                                             # preset fills hidden pockets while training); DTU beside them
#   AB_SEED=8 bash benchmarks/gpu_all.sh OUT pockets-ab # that seed with and without the fill, one run per GPU
#   CAMS_WITH=DEPTH TEN_PRESETS="fourier stylemod-nffb" bash benchmarks/gpu_all.sh OUT ten-start
#                                             # camera variants (an array below) beside the presets
#   bash benchmarks/gpu_all.sh OUT rest       # fourier to 300 s, stylemod-nffb fit-sdf, cameras: DTU at the
#                                             # preset's steps, Spot with a second seed
# With 4 GPUs the lanes run side by side, one time-budgeted training process per GPU at a time (so budgets
# stay honest; the camera runs of cams-sweep, cams-seeds and rest end by their steps and share GPUs); with fewer GPUs
# the lanes run one after the other. Each lane writes its results into OUT as it goes (8 files
# at most per call).
#
# The 10-minute budget does not fit one call of the device tool (10 minutes per command, loading and
# evaluation included), so `ten-start` trains the TEN_PRESETS to PAUSE_S seconds of training time and
# checkpoints them under runs/gpu-ten/ (git-ignored, kept on a warm machine), and `ten-finish` resumes
# them to 600 s and evaluates the 120, 300 and 600 s snapshots (training time excludes I/O, so the split
# does not change the budget). The GPU left over runs the camera benchmarks.
set -uo pipefail
OUT=${1:?usage: gpu_all.sh OUT [all | ten-start | ten-finish | cams-sweep | cams-seeds | cams-fill | cams-pockets | pockets-ab | rest]}; MODE=${2:-all}
case "$MODE" in
  all|ten-start|ten-finish|cams-sweep|cams-seeds|cams-fill|cams-pockets|pockets-ab|rest) ;;
  *) echo "gpu_all.sh: unknown mode '$MODE' (all, ten-start, ten-finish, cams-sweep, cams-seeds, cams-fill, cams-pockets, pockets-ab, rest)" >&2
     exit 2 ;;
esac
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
parallel() { if [ "$NGPU" -ge 4 ]; then "$@" & else "$@"; fi; }
merge() {  # merge the results.json files given (lists or objects; missing ones skipped) into OUT/$1
  local name=$1; shift
  python3 - "$@" >"$OUT/$name" <<'PY'
import json, os, sys
rows = []
for f in sys.argv[1:]:
    if os.path.isfile(f):
        data = json.load(open(f))
        rows += data if isinstance(data, list) else [data]
print(json.dumps(rows, indent=1))
PY
}

# ------------------------------------------------------------------ the lanes
TEN=runs/gpu-ten; PAUSE_S=${PAUSE_S:-505}
ten_minutes() {  # GPU PRESET --pause-at S | --resume: one preset on Spot, 600 s in two sittings, in $TEN/PRESET
  local g=$1 p=$2; shift 2
  CUDA_VISIBLE_DEVICES=$(gpu "$g") python3 benchmarks/baseline.py "${SPOT[@]}" --preset "$p" \
    --budgets 120 300 600 --out $TEN/$p "$@" >$W/ten_$p.log 2>&1
}
where_wrong() {  # DIR: where the meshes of a cameras.py run differ from the GT (benchmarks/mesh_errors.py)
  local m
  for m in "$1"/mesh_*.ply; do
    [ -f "$m" ] && python3 benchmarks/mesh_errors.py "$m" .data/meshes/spot_cow/cow.obj --samples 100000
  done
}
cameras_spot() {  # GPU [CAM_LR [--skip-fixed]]: trainable cameras on Spot, 3 deg / 3%: fixed vs trained
  local g=$1 lr=${2:-} tag=${2:+_$2}; shift; shift || true
  CUDA_VISIBLE_DEVICES=$(gpu "$g") python3 benchmarks/cameras.py "${SPOT[@]}" --preset hashgrid-fused \
    --noise 3,0.03,0 --steps 7000 --budget 200 --track-every 500 ${lr:+--cam-lr $lr} "$@" \
    --out $W/cams_spot$tag >$W/cams_spot$tag.log 2>&1
  where_wrong $W/cams_spot$tag >>$W/cams_spot$tag.log 2>&1
  grep -v "it/s" $W/cams_spot$tag.log >"$OUT/cameras_spot$tag.md"
}
cameras_spot_preset() {  # GPU --skip-fixed|--skip-cams: hashgrid-fused(-cams) with the preset's own steps
  local g=$1 only=$2
  CUDA_VISIBLE_DEVICES=$(gpu "$g") python3 benchmarks/cameras.py "${SPOT[@]}" --preset hashgrid-fused \
    --noise 3,0.03,0 --steps 15000 --budget 400 --track-every 1000 "$only" \
    --out $W/cams_spot_preset$only >$W/cams_spot_preset$only.log 2>&1
  where_wrong $W/cams_spot_preset$only >>$W/cams_spot_preset$only.log 2>&1
  grep -v "it/s" $W/cams_spot_preset$only.log >"$OUT/cameras_spot_preset$only.md"
}
cameras_dtu() {  # GPU [CAM_LR]: trainable cameras on DTU scan24, 2 deg / 2%
  local g=$1 lr=${2:-} tag=${2:+_$2}
  CUDA_VISIBLE_DEVICES=$(gpu "$g") python3 benchmarks/cameras.py --scene $DTU --preset hashgrid-fused \
    --noise 2,0.02,0 --steps 5000 --budget 150 --skip-fixed --track-every 500 ${lr:+--cam-lr $lr} \
    --out $W/cams_dtu$tag >$W/cams_dtu$tag.log 2>&1
  grep -v "it/s" $W/cams_dtu$tag.log >"$OUT/cameras_dtu$tag.md"
}
# Variants of the Spot camera run at the preset's 15000 steps, three processes per GPU (the small-MLP
# presets leave an H100 mostly idle; steps, not seconds, end these runs): NAME|MODE|SEED|OVERRIDE;OVERRIDE...
# (SEED: of the pose noise and of the model). SWEEP: schedule variants (mode cams-sweep); SEEDS: other
# noise draws, with the preset's schedule and with a 500-step freeze (mode cams-seeds).
C2F=model.sdf.encoding.steps_per_level
SWEEP=(
  "fixed|--skip-cams|0|"
  "cams|--skip-fixed|0|"
  "c2f600|--skip-fixed|0|$C2F=600"
  "fixed-c2f600|--skip-cams|0|$C2F=600"
  "c2f600-freeze500|--skip-fixed|0|$C2F=600;cameras.warmup_steps=500"
  "c2f600-lr2e-3|--skip-fixed|0|$C2F=600;cameras.lr=2e-3"
  "fixed-c2f600-start4|--skip-cams|0|$C2F=600;model.sdf.encoding.start_levels=4"
  "c2f600-start4|--skip-fixed|0|$C2F=600;model.sdf.encoding.start_levels=4"
  "c2f600-alpha2k|--skip-fixed|0|$C2F=600;model.loss.alpha_milestones=2000 4000 6000 8000 10000"
  "fixed-c2f400|--skip-cams|0|$C2F=400"
  "c2f400|--skip-fixed|0|$C2F=400"
  "c2f600-camlate|--skip-fixed|0|$C2F=600;cameras.lr_milestones=10000 12500"
)
SEEDS=()
for seed in 1 2 3 4; do
  SEEDS+=("fixed-s$seed|--skip-cams|$seed|" "cams-s$seed|--skip-fixed|$seed|"
          "freeze500-s$seed|--skip-fixed|$seed|cameras.warmup_steps=500")
done
# DEPTH: the mask loss searching at most MASK_DEPTH past the hit point (model.tracer.mask_search_depth), on
# the seeds where the preset left tunnels inside the object; the fixed runs with the same setting
# (CAMS_WITH=DEPTH in ten-start, on the GPUs the presets leave free).
MD="model.tracer.mask_search_depth=${MASK_DEPTH:-0.02}"
DEPTH=("cams-md-s1|--skip-fixed|1|$MD" "cams-md-s3|--skip-fixed|3|$MD" "cams-md-s4|--skip-fixed|4|$MD"
       "fixed-md-s1|--skip-cams|1|$MD" "fixed-md-s4|--skip-cams|4|$MD"
       "cams-md05-s4|--skip-fixed|4|model.tracer.mask_search_depth=0.05")
# FILL: the seeds with the largest Chamfer gap, one run per GPU, measured with and without the hidden pockets
# filled (mode cams-fill: PER_GPU=1 CAMS_FLAGS=--fill-unseen MESHES=0 LANE_LOGS=1).
FILL=("cams-fill-s3|--skip-fixed|3|" "cams-fill-s4|--skip-fixed|4|" "cams-fill-s1|--skip-fixed|1|"
      "fixed-fill-s3|--skip-cams|3|")
# POCKETS: seeds 0-4 (or POCKET_SEEDS) with the -cams preset as it is now (hidden pockets filled while
# training), fixed and trained cameras (mode cams-pockets: 3 per GPU on GPUs 0-2, the 10th on GPU 3 beside
# the DTU camera run at the preset's steps).
POCKETS=()
for seed in ${POCKET_SEEDS:-0 1 2 3 4}; do POCKETS+=("pk-cams-s$seed|--skip-fixed|$seed|" "pk-fixed-s$seed|--skip-cams|$seed|"); done
# PKAB: one seed with the fill (the preset) and without it (pockets.every=0), fixed and trained cameras,
# one run per GPU so that the training times compare (mode pockets-ab).
NOFILL="pockets.every=0"
PKAB=("ab-cams-s${AB_SEED:-8}|--skip-fixed|${AB_SEED:-8}|" "ab-cams-nofill-s${AB_SEED:-8}|--skip-fixed|${AB_SEED:-8}|$NOFILL"
      "ab-fixed-s${AB_SEED:-8}|--skip-cams|${AB_SEED:-8}|" "ab-fixed-nofill-s${AB_SEED:-8}|--skip-cams|${AB_SEED:-8}|$NOFILL")
cams_variant() {  # GPU NAME --skip-fixed|--skip-cams SEED "OVERRIDE;...": one Spot camera run, 3 deg / 3%
  local g=$1 name=$2 only=$3 seed=$4 sets=() item items
  IFS=';' read -r -a items <<<"$5"
  for item in "${items[@]}"; do sets+=(--set "$item"); done
  CUDA_VISIBLE_DEVICES=$(gpu "$g") OMP_NUM_THREADS=4 python3 benchmarks/cameras.py "${SPOT[@]}" \
    --preset hashgrid-fused --noise 3,0.03,$seed --seed $seed --steps 15000 --budget 440 --track-every 1000 \
    "$only" "${sets[@]}" ${CAMS_FLAGS:-} --out $W/sweep/$name >$W/sweep_$name.log 2>&1
  where_wrong $W/sweep/$name >>$W/sweep_$name.log 2>&1
  [ "${LANE_LOGS:-0}" = 1 ] && grep -v "it/s" $W/sweep_$name.log >"$OUT/sweep_$name.md"  # each as it ends
}
cams_sweep() {  # ARRAY OUTNAME [FIRST_GPU]: the variants of ARRAY, 3 per GPU, into OUT/OUTNAME.{json,md}
  local -n variants=$1
  local i name only seed sets v first=${3:-0} per=${PER_GPU:-3}
  for i in "${!variants[@]}"; do
    IFS='|' read -r name only seed sets <<<"${variants[$i]}"
    cams_variant $((first + i / per)) "$name" "$only" "$seed" "$sets" &
  done
  wait
  merge "$2.json" $(for v in "${variants[@]}"; do echo "$W/sweep/${v%%|*}/results.json"; done)
  for v in "${variants[@]}"; do echo "== ${v%%|*}"; grep -v "it/s" "$W/sweep_${v%%|*}.log"; done >"$OUT/$2.md"
  # The meshes come back too (for CPU-side analysis): xz, in parts of 15 MB (files from OUT are 16 MB at most).
  [ "${MESHES:-1}" = 1 ] && (cd $W/sweep && tar cf - $(for v in "${variants[@]}"; do echo "${v%%|*}"/mesh_*.ply; done) | xz -T0 -6 |
    split -b 15M -d - "$OUT/$2_meshes.tar.xz.")
}
cams_dtu_preset() {  # GPU: trainable cameras on DTU scan24, 2 deg / 2%, at the -cams preset's 15000 steps
  CUDA_VISIBLE_DEVICES=$(gpu "$1") python3 benchmarks/cameras.py --scene $DTU --preset hashgrid-fused \
    --noise 2,0.02,0 --steps 15000 --budget 440 --skip-fixed --track-every 1000 --out $W/cams_dtu_preset \
    >$W/cams_dtu_preset.log 2>&1
  grep -v "it/s" $W/cams_dtu_preset.log >"$OUT/cameras_dtu_preset.md"
}
gpu_tests() {
  CUDA_VISIBLE_DEVICES=$(gpu "$1") timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests -W ignore \
    >"$OUT/gpu_tests.log" 2>&1
}
kernel_bench() {
  CUDA_VISIBLE_DEVICES=$(gpu "$1") timeout 120 python3 benchmarks/bench_hashgrid.py --out $W/bench.json \
    >"$OUT/bench_hashgrid.md" 2>&1
}
dtu_table() {
  CUDA_VISIBLE_DEVICES=$(gpu "$1") python3 benchmarks/dtu_table.py --scene $DTU --preset hashgrid-fused \
    --max-seconds 150 --no-train-views --out $W/dtu >$W/dtu.log 2>&1
  cp $W/dtu.log "$OUT/dtu_table.md"
}
fit_sdf() {  # GPU MESHES...
  local g=$1; shift
  for m in "$@"; do
    CUDA_VISIBLE_DEVICES=$(gpu "$g") timeout 100 python3 benchmarks/fit_sdf.py --out $W/fit_sdf --meshes $m \
      --device cuda --max-seconds 6 --data .data/meshes >>$W/fit.log 2>&1
    cp $W/fit_sdf/results.json "$OUT/fit_sdf.json" 2>/dev/null
  done
}

# ------------------------------------------------------------------ the calls
read -r -a TEN_PRESETS <<<"${TEN_PRESETS:-positional hashgrid-fused nffb-fused}"  # at most 3 (GPU 4: cameras)
case $MODE in
  ten-start)
    for i in "${!TEN_PRESETS[@]}"; do
      p=${TEN_PRESETS[$i]}
      (ten_minutes "$i" "$p" --pause-at "$PAUSE_S"; tail -n 3 $W/ten_$p.log) &
    done
    if [ -n "${CAMS_WITH:-}" ]; then  # camera variants on the GPUs the presets leave free
      cams_sweep "$CAMS_WITH" "cams_${CAMS_WITH,,}" ${#TEN_PRESETS[@]} &
    else
      (cameras_spot 3; gpu_tests 3) &
    fi
    wait
    ;;
  ten-finish)
    for i in "${!TEN_PRESETS[@]}"; do
      p=${TEN_PRESETS[$i]}
      (ten_minutes "$i" "$p" --resume; merge presets_ten.json $TEN/*/results.json) &
    done
    cameras_dtu 3 &
    wait
    ;;
  cams-sweep) cams_sweep SWEEP cams_sweep ;;
  cams-seeds) cams_sweep SEEDS cams_seeds ;;
  cams-fill) PER_GPU=1 CAMS_FLAGS=--fill-unseen MESHES=0 LANE_LOGS=1 cams_sweep FILL cams_fill ;;
  pockets-ab) PER_GPU=1 MESHES=0 cams_sweep PKAB pockets_ab ;;
  cams-pockets)
    cams_dtu_preset 3 &
    MESHES=${MESHES:-0} cams_sweep POCKETS cams_pockets
    wait
    ;;
  rest)
    (CUDA_VISIBLE_DEVICES=$(gpu 0) python3 benchmarks/baseline.py "${SPOT[@]}" --preset fourier --budgets 120 300 \
      --out $W/fourier >$W/fourier.log 2>&1; merge presets_fourier.json $W/fourier/results.json) &
    (CUDA_VISIBLE_DEVICES=$(gpu 1) timeout 400 python3 benchmarks/fit_sdf.py --out $W/fit_style --meshes spot \
      --encodings stylemod-nffb --device cuda --max-seconds 6 --data .data/meshes >$W/fit_style.log 2>&1
     cp $W/fit_style/results.json "$OUT/fit_sdf_stylemod.json") &
    cams_dtu_preset 2 &
    for only in --skip-cams --skip-fixed; do  # both on GPU 3: steps, not seconds, end them
      (CUDA_VISIBLE_DEVICES=$(gpu 3) python3 benchmarks/cameras.py "${SPOT[@]}" --preset hashgrid-fused \
        --noise 3,0.03,1 --seed 1 --steps 15000 --budget 440 --track-every 1000 $only \
        --out $W/cams_spot_seed1$only >$W/cams_spot_seed1$only.log 2>&1
       where_wrong $W/cams_spot_seed1$only >>$W/cams_spot_seed1$only.log 2>&1) &
    done
    wait
    cat $W/cams_spot_seed1--skip-cams.log $W/cams_spot_seed1--skip-fixed.log | grep -v "it/s" >"$OUT/cameras_spot_seed1.md"
    ;;
  all)
    lane_a() { cameras_spot_preset 0 --skip-cams; gpu_tests 0; kernel_bench 0; }
    lane_b() { cameras_spot_preset 1 --skip-fixed; }
    lane_c() { cameras_dtu 2; fit_sdf 2 bunny armadillo spot; }
    lane_d() { dtu_table 3; }
    parallel lane_a; parallel lane_b; parallel lane_c; parallel lane_d; wait
    ;;
esac
tail -n 5 $W/*.log
