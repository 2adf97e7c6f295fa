# 2026-12-05 night, call K: the room scene alone (issue 14), then the style-modulated bank's kernel (issue 16):
# GPU parity, the kernel alone at a step's sizes, graphed step times with the best settings.
source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; scene=.data/synthetic_spot_mitsuba
show() { python3 -c "
import json; r=json.load(open('$1/results.json'))
for x in r['runs']: print(x['preset'], x.get('variant'), x['seed'], x['budget'], x['status'], x['steps'], round(x['it_per_s'] or 0,1), x['chamfer_pct'], x['accuracy_pct'], x['completeness_pct'], x['psnr_mask'], x['psnr'], (x['error'] or '')[:300])
"; }
if [ -z "${SKIP_ROOM:-}" ]; then
timeout 250 python3 -m nsr.cli.main batch .data/jobs/room_preset.yaml --address local --out /tmp/room > /tmp/room.log 2>&1
echo "room batch rc $? at $SECONDS s"; tail -n 2 /tmp/room.log
cp /tmp/room/results.json "$OUT/room_preset.json"; show /tmp/room | tee "$OUT/room_preset.txt"
fi
timeout 90 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py -m gpu > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests rc $? at $SECONDS s"; tail -n 2 "$OUT/gpu_tests.log"
timeout 150 python3 benchmarks/bench_fused_bank.py --points 12288 65536 --blocks 16 32 64 --precisions tf32x3 \
  --warps 4 8 --mod-precisions same tf32 --repeats 10 --json "$OUT/bench_k.json" > /tmp/bench.log 2>&1
echo "bench rc $? at $SECONDS s"
python3 - "$OUT/bench_k.json" > /tmp/best.txt <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r.get("ms") and r["impl"] == "fused"]
for r in rows: print("#", r["bank"], r["points"], r["block"], r["warps"], r["mod"], r["ms"], "%.1e" % r["max_rel_error"])
for mod in ("same", "tf32"):
    big = [r for r in rows if r["bank"] == "stylemod-nffb" and r["points"] == 65536 and r["mod"] == mod]
    best = min(big, key=lambda r: r["ms"])
    print(f"SET {mod} model.sdf.encoding.fused_bank_block={best['block']} model.sdf.encoding.fused_bank_warps={best['warps']}"
          + ("" if mod == "same" else " model.sdf.encoding.fused_bank_mod_precision=tf32"))
PY
grep "#" /tmp/best.txt; grep SET /tmp/best.txt
timeout 70 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused --rays 2048 \
  --steps 40 --json "$OUT/prof_default.json" > /tmp/prof0.log 2>&1; echo "prof default rc $? at $SECONDS s"
i=0
grep SET /tmp/best.txt | while read -r _ mod sets; do
  timeout 60 python3 benchmarks/profile_step.py --scene $scene --presets stylemod-nffb-fused --rays 2048 --steps 40 \
    --set $sets --json "$OUT/prof_$mod.json" > /tmp/prof_$mod.log 2>&1; echo "prof $mod rc $? at $SECONDS s"
done
python3 -c "
import glob, json
for f in sorted(glob.glob('$OUT/prof_*.json')):
    for d in json.load(open(f)):
        print(f.split('/')[-1], d['preset'], d['ms_per_step'], d['kernels_per_step'], round(d['gpu_busy'] or 0, 3))"
nvidia-smi --query-gpu=name --format=csv,noheader
