source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}
# 1. GPU tests of the graphed step (trained cameras new) and the fused bank (coalesced weights new)
timeout 150 python3 -m pytest -q -rf -p no:cacheprovider tests/engine/test_graph_step.py tests/encodings/test_nffb.py -m gpu > $OUT/gpu_tests.log 2>&1; tail -3 $OUT/gpu_tests.log
# 2. NeuS quality with the graphed step (5 runs on the GPU), started in the background
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
for n in ndtu nspot; do
  (timeout 420 python3 -m nsr.cli.main batch .data/jobs/$n.yaml --address auto --out /tmp/$n > /tmp/$n.log 2>&1; cp /tmp/$n/results.json $OUT/$n.json) &
done
# 3. meanwhile (sharing the GPU: step times only relative to each other): the stylemod kernel variants
for v in b32 b16 b16_t65536; do timeout 90 python3 .data/variants.py $v -- --scene .data/synthetic_spot_mitsuba --presets nffb-fused stylemod-nffb-fused --rays 2048 --steps 40 --set cuda_graph_step=true --json $OUT/var_$v.json 2>&1 | grep -E "fused calls" | cut -c1-400; done
python3 -c "
import json,glob
for f in sorted(glob.glob('$OUT/var_*.json')):
    for d in json.load(open(f)): print(f.split('/')[-1], d['preset'], d['ms_per_step'], d['kernels_per_step'], round(d['gpu_busy'],3))
"
wait
tail -3 /tmp/ndtu.log /tmp/nspot.log | cut -c1-300
python3 -c "
import json
for n in ('ndtu','nspot'):
    try: rows=json.load(open('$OUT/'+n+'.json'))
    except Exception as e: print(n, e); continue
    rows = rows if isinstance(rows, list) else rows.get('runs', rows)
    for r in rows: print(json.dumps(r)[:700])
"
