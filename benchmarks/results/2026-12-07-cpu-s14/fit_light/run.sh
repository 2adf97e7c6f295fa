#!/usr/bin/env bash
# The style bank's cheaper modulation against the exact one and the plain bank under dense supervision (`nsr
# fit-sdf`, equal steps), 2-core CPU, one thread a fit, two lanes. Run from the repo root:
#   bash benchmarks/results/2026-12-07-cpu-s14/fit_light/run.sh OUT
set -u
out=${1:-/tmp/fit_light}
mkdir -p "$out"
fit() {  # mesh-name mesh seed name encoding [encoding-args]
  local name=$1 mesh=$2 seed=$3 tag=$4 enc=$5; shift 5
  OMP_NUM_THREADS=1 nsr fit-sdf "$mesh" --encoding "$enc" --steps 1000 --batch-size 8192 --device cpu \
    --resolution 256 --seed "$seed" --cache "$out/cache" --json ${1:+--encoding-arg "$@"} \
    2>/dev/null | tail -1 > "$out/${name}_${tag}_seed${seed}.json"
}
lane() {  # seed
  for m in armadillo:.data/meshes/armadillo/armadillo.obj spot:.data/meshes/spot_cow/cow.obj; do
    fit "${m%%:*}" "${m#*:}" "$1" light stylemod-nffb style_map=diagonal demodulation=style_rms
    fit "${m%%:*}" "${m#*:}" "$1" exact stylemod-nffb style_map=linear demodulation=exact
    fit "${m%%:*}" "${m#*:}" "$1" nffb nffb
  done
}
lane 0 & lane 1 & wait
