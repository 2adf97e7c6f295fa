source benchmarks/device/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/card.txt
P="benchmarks/profile_step.py --scene .data/synthetic_spot_mitsuba --presets nffb-fused stylemod-nffb-fused --rays 2048 --steps 40"
for k in main alt main alt; do
  if [ $k = alt ]; then PP=$PWD/.data/alt/src:$PYTHONPATH; else PP=$PYTHONPATH; fi
  echo "== $k"; PYTHONPATH=$PP timeout 120 python3 $P 2>&1 | grep -v Warning | tail -6
done > $OUT/profile_ab.txt 2>&1
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
s=$(date +%s); timeout 390 python3 -m nsr.cli.main batch .data/jobs/drift1.yaml --address auto --out /tmp/drift1 2>&1 | tr '\r' '\n' | grep -E "^done|^ray|rror|FAIL" > $OUT/drift1.log; e=$(date +%s)
echo "drift1 wall $((e-s)) s" >> $OUT/drift1.log; cp /tmp/drift1/results.json $OUT/drift1.json
