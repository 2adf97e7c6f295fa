# The first device calls of a session: what was written since the last GPU call and only checked on a CPU.
# Run from the repo root on the GPU machine (the `run` tool), with .data/synthetic_spot_mitsuba carried,
# as two calls of under 10 minutes each (results under $OUT):
#   bash benchmarks/device/untested.sh tests   GPU tests: the fused filter bank (parity with the PyTorch
#       bank, taken only without gradient), the step as one CUDA graph for both renderers and with trained
#       cameras, the static tracer's batched back-off, the hash-grid kernel; then the fused bank's kernel
#       alone against the PyTorch bank (points per program, product precision: benchmarks/bench_fused_bank.py)
#   bash benchmarks/device/untested.sh speed   step times as graphs with the fused bank on and off in one
#       call (benchmarks/RESULTS.md, "Step time and GPU use"), and NeuS's step ordinary and as a graph
set -u
source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
scene=.data/synthetic_spot_mitsuba
case "${1:-tests}" in
tests)
    timeout 300 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py tests/encodings/test_hashgrid.py \
        tests/engine/test_graph_step.py tests/renderers/test_tracer.py tests/models > "$OUT/gpu_tests.log" 2>&1
    tail -5 "$OUT/gpu_tests.log"
    timeout 200 python3 benchmarks/bench_fused_bank.py --points 2048 204800 --blocks 32 64 --precisions tf32x3 ieee \
        --warps 4 --json "$OUT/bench_fused_bank.json"
    ;;
speed)
    for bank in true false; do
        timeout 150 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused \
            --rays 2048 --steps 40 --set cuda_graph_step=true model.sdf.encoding.fused_bank=$bank \
            --json "$OUT/profile_bank_$bank.json"
    done
    timeout 60 python3 benchmarks/profile_step.py --scene $scene --presets hashgrid-fused --rays 2048 --steps 40 \
        --set cuda_graph_step=true --json "$OUT/profile_hashgrid.json"
    for graph in false true; do
        timeout 90 python3 benchmarks/profile_step.py --scene $scene --presets neus-hashgrid-fused --rays 1024 \
            --steps 20 --set cuda_graph_step=$graph --json "$OUT/profile_neus_graph_$graph.json"
    done
    ;;
*) echo "usage: bash benchmarks/device/untested.sh tests|speed" >&2; exit 2 ;;
esac
