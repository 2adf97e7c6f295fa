source benchmarks/device/setup.sh
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
for j in drift2 drift2b; do
  s=$(date +%s); timeout 290 python3 -m nsr.cli.main batch .data/jobs/$j.yaml --address auto --out /tmp/$j 2>&1 | tr '\r' '\n' | grep -E "^done|^ray|rror|FAIL" > $OUT/$j.log; e=$(date +%s)
  echo "$j wall $((e-s)) s" >> $OUT/$j.log; cp /tmp/$j/results.json $OUT/$j.json
done
