source benchmarks/device/setup.sh
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
s=$(date +%s); timeout 480 python3 -m nsr.cli.main batch .data/jobs/drift3.yaml --address auto --out /tmp/drift3 2>&1 | tr '\r' '\n' | grep -E "^done|^ray|rror|FAIL" > $OUT/drift3.log; e=$(date +%s)
echo "drift3 wall $((e-s)) s" >> $OUT/drift3.log; cp /tmp/drift3/results.json $OUT/drift3.json
