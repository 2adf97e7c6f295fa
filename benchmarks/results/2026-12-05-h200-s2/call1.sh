source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; scene=.data/synthetic_spot_mitsuba; gt=.data/meshes/spot_cow/cow.obj
timeout 470 python3 -m nsr.cli.main batch .data/jobs/nspot3.yaml --address auto --out /tmp/nspot > "$OUT/nspot.log" 2>&1
echo "batch rc $? at $SECONDS s"
cp /tmp/nspot/results.json "$OUT/nspot3.json"
for run in /tmp/nspot/runs/*; do
  timeout 40 python3 benchmarks/neus_probe.py "$run" --gt $gt --scene $scene --json "$OUT/$(basename $run).probe.json" 2>&1 | tail -1
done
python3 -c "
import json; r=json.load(open('$OUT/nspot3.json'))
for x in r['runs']: print(x['variant'], x['status'], x['steps'], round(x['it_per_s'],1), x['chamfer_pct'], x['accuracy_pct'], x['completeness_pct'], x['psnr_mask'], x['psnr'], x['error'][:300])
"
nvidia-smi --query-gpu=name --format=csv,noheader
