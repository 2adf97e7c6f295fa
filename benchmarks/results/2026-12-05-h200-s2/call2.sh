source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}
timeout 365 python3 -m nsr.cli.main batch .data/jobs/ndtu1.yaml --address auto --out /tmp/ndtu > "$OUT/ndtu.log" 2>&1
echo "dtu batch rc $? at $SECONDS s"
cp /tmp/ndtu/results.json "$OUT/ndtu1.json"
timeout 185 python3 -m nsr.cli.main batch .data/jobs/nspotc.yaml --address auto --out /tmp/nspot > "$OUT/nspotc.log" 2>&1
echo "spot batch rc $? at $SECONDS s"
cp /tmp/nspot/results.json "$OUT/nspotc.json"
python3 -c "
import json
for f in ['ndtu1', 'nspotc']:
    r=json.load(open('$OUT/'+f+'.json'))
    for x in r['runs']: print(f, x['variant'], x['status'], x['steps'], round(x['it_per_s'],1), x['chamfer_pct'], x['accuracy_pct'], x['completeness_pct'], x['psnr_mask'], x['psnr'], x['ssim'], x['device'], x['error'][:300])
"
timeout 45 python3 .data/an.py $OUT 2>&1 | tail -3
