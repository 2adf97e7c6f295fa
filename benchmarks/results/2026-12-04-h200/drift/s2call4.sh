source benchmarks/device/setup.sh
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
s=$(date +%s); timeout 240 python3 -m nsr.cli.main batch .data/jobs/drift4.yaml --address auto --out /tmp/drift4 2>&1 | tr '\r' '\n' | grep -E "^done|^ray|rror|FAIL" > $OUT/drift4.log; e=$(date +%s)
echo "drift4 wall $((e-s)) s" >> $OUT/drift4.log; cp /tmp/drift4/results.json $OUT/drift4.json
