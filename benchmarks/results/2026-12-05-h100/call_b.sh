# One device call (2026-12-05): GPU tests + NeuS variants on Spot (packed) first, then graphed step times alone.
source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; scene=.data/synthetic_spot_mitsuba; gt=.data/meshes/spot_cow/cow.obj
(timeout 230 python3 -m nsr.cli.main batch .data/jobs/nspotA.yaml --address auto --out /tmp/nspot > "$OUT/nspot.log" 2>&1; cp /tmp/nspot/results.json "$OUT/nspotA.json") &
batch=$!
timeout 150 python3 -m pytest -q -rf -p no:cacheprovider tests/engine/test_graph_step.py tests/renderers/test_tracer.py \
    tests/models -m gpu > "$OUT/gpu_tests.log" 2>&1
tail -n 3 "$OUT/gpu_tests.log"
wait $batch
echo "batch done at $SECONDS s"
for run in /tmp/nspot/runs/*; do
    name=$(basename "$run"); mesh=$(ls "$run"/mesh_*.ply 2>/dev/null | tail -1)
    [ -n "$mesh" ] || { echo "$name: no mesh"; continue; }
    ( cp "$mesh" "$OUT/$name.ply"
      timeout 100 python3 benchmarks/mesh_errors.py "$mesh" $gt --scene $scene --json "$OUT/$name.errors.json"
    ) > "$OUT/$name.post.log" 2>&1 &
done
for samples in 100 99; do
    timeout 90 python3 benchmarks/profile_step.py --scene $scene --presets hashgrid-fused nffb-fused \
        stylemod-nffb-fused --rays 2048 --steps 40 --set model.tracer.mask_samples=$samples \
        --json "$OUT/profile_mask$samples.json" > /dev/null 2>&1
    echo "profile $samples done at $SECONDS s"
done
for limit in 0; do
    timeout 60 python3 benchmarks/profile_step.py --scene $scene --presets stylemod-nffb-fused --rays 2048 --steps 40 \
        --set model.sdf.encoding.fused_bank=true model.sdf.encoding.fused_bank_max_points=$limit \
        --json "$OUT/profile_stylemod_fused_max$limit.json" > /dev/null 2>&1
    echo "stylemod fused bank (max $limit) done at $SECONDS s"
done
wait
python3 -c "
import glob, json
for f in sorted(glob.glob('$OUT/profile_*.json')):
    for d in json.load(open(f)):
        print(f.split('/')[-1], d['preset'], d['ms_per_step'], d['kernels_per_step'], round(d['gpu_busy'] or 0, 3))
r = json.load(open('$OUT/nspotA.json')); rows = r if isinstance(r, list) else r.get('runs', r)
for x in rows: print(json.dumps(x)[:600])
for f in sorted(glob.glob('$OUT/*.errors.json')): print(f.split('/')[-1], open(f).read())
"
nvidia-smi --query-gpu=name --format=csv,noheader
