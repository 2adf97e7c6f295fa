source benchmarks/device/setup.sh
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
for j in g60:250 g120a:290; do n=${j%%:*}; t=${j##*:}
s=$(date +%s); timeout $t python3 -m nsr.cli.main batch .data/jobs/$n.yaml --address auto --out /tmp/$n 2>&1 | tr '\r' '\n' | grep -E "^done|^ray|rror|FAIL" > $OUT/$n.log; e=$(date +%s)
echo "$n wall $((e-s)) s" >> $OUT/$n.log; cp /tmp/$n/results.json $OUT/$n.json
done
