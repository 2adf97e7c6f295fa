# Issue 14, call A (2026-12-05 evening): two NeuS Spot runs alone (120 s), each taken apart while the next trains.
source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; scene=.data/synthetic_spot_mitsuba; gt=.data/meshes/spot_cow/cow.obj
analyse() {  # RUNDIR NAME [--out DIR]
  timeout 60 python3 benchmarks/neus_probe.py "$1" --gt $gt --scene $scene --json "$OUT/$2.probe.json" > /tmp/$2.probe.log 2>&1
  timeout 150 python3 benchmarks/neus_hidden_surface.py "$1" --gt $gt --close 0 1 2 "${@:3}" > "$OUT/$2.hidden.jsonl" 2>/tmp/$2.hidden.err
}
for v in ${VARIANTS:-preset curvnoocc}; do
  timeout 200 python3 -m nsr.cli.main batch .data/jobs/h_$v.yaml --address local --out /tmp/h_$v > /tmp/h_$v.log 2>&1
  echo "$v batch rc $? at $SECONDS s"
  python3 -c "
import json; r=json.load(open('/tmp/h_$v/results.json'))
for x in r['runs']: print(x['variant'], x['status'], x['steps'], round(x['it_per_s'],1), x['chamfer_pct'], x['accuracy_pct'], x['completeness_pct'], x['psnr_mask'], x['psnr'], x.get('inv_s'), x['error'][:300])
" | tee "$OUT/h_$v.txt"
  run=$(ls -d /tmp/h_$v/runs/* | head -1)
  if [ $v = preset ]; then analyse $run $v --out "$OUT/preset" & else analyse $run $v & fi
done
wait
echo "all done at $SECONDS s"
for f in "$OUT"/*.hidden.jsonl; do echo "== $f"; cut -c1-600 "$f"; done
tail -n 2 /tmp/*.hidden.err /tmp/*.probe.log
nvidia-smi --query-gpu=name --format=csv,noheader
