source benchmarks/device/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/call1.log
python3 -m pytest -q -rf --tb=short -p no:cacheprovider tests/engine/test_graph_step.py tests/models/test_idr_static.py tests/renderers/test_tracer.py tests/encodings/test_hashgrid.py 2>&1 | grep -v Warn | tail -40 >> $OUT/call1.log
for g in true; do
python3 benchmarks/profile_step.py --scene .data/synthetic_spot_mitsuba --presets hashgrid-fused nffb-fused stylemod-nffb-fused --rays 2048 --steps 40 --set cuda_graph_step=$g --json $OUT/profile_graph_$g.json 2>&1 | grep -v Warning | tail -8 >> $OUT/call1.log
done
python3 -m ray.scripts.scripts start --head --num-gpus 1 --num-cpus 16 --disable-usage-stats > /dev/null 2>&1
s=$(date +%s); timeout 200 python3 -m nsr.cli.main batch .data/jobs/g30.yaml --address auto --out /tmp/g30 2>&1 | tr '\r' '\n' | grep -E "^done|^ray|rror|FAIL" > $OUT/g30.log; e=$(date +%s)
echo "g30 wall $((e-s)) s" >> $OUT/g30.log; cp /tmp/g30/results.json $OUT/g30.json
