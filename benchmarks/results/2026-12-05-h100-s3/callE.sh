source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}
timeout 280 python3 -m nsr.cli.main batch .data/jobs/s1_cn.yaml --address auto --out /tmp/dtu > /tmp/dtu.log 2>&1
echo "batch rc $? at $SECONDS s"; cp /tmp/dtu/results.json "$OUT/s1_cn.json"; tail -3 /tmp/dtu.log
python3 -c "
import json; r=json.load(open('/tmp/dtu/results.json'))
for x in r['runs']: print(x['variant'], x['status'], x['steps'], round(x['it_per_s'],1), x['scene'][-6:], x['chamfer_pct'], x['accuracy_pct'], x['completeness_pct'], x['psnr_mask'], x.get('inv_s'), x.get('train_psnr'), x['error'][:300])
"
nvidia-smi --query-gpu=name --format=csv,noheader
