# The first device calls of a session: what was written since the last GPU call and only checked on a CPU
# (or checked on a GPU but not yet timed). Run from the repo root on the GPU machine (the `run` tool), with
# .data/synthetic_spot_mitsuba, .data/meshes (the GT meshes the batch modes score against) and .whl
# (benchmarks/device/setup.sh) carried, as calls of under 10 minutes
# each (results under $OUT):
#   bash benchmarks/device/untested.sh resume  what the tenth session (2026-12-06) wrote without a GPU: a run resumed
#       on the GPU (RNG states loaded onto the device) and the pocket fill inside the captured step
#       (`--pockets.in-graph`), then a graphed `hashgrid-fused-cams` step with the fill in the graph against the
#       preset's ordinary steps (about 2 minutes; run 2026-12-07 on an H100: 16 of 16 passed, 4.10 against 13.48 ms a
#       step, and `pockets.in_graph` became the default)
#   bash benchmarks/device/untested.sh tests   the GPU tests (fused filter bank, the step as one CUDA graph
#       for both renderers and with trained cameras, the static tracer, the hash-grid kernel, the models),
#       then the fused bank's kernel alone against the PyTorch bank at the sizes a training step evaluates
#       (12,288 and 65,536 points; 128 points a program, where both kernels use Hopper's wgmma, untimed so far)
#   bash benchmarks/device/untested.sh lightstyle  issue 16's speed bar with the style bank's cheaper modulations
#       (`style_map: diagonal`, `demodulation: style_rms`): the banks' GPU tests, then graphed steps of each
#       modulation against `nffb-fused` under both renderers (about 5 minutes; run 2026-12-07 on an H100: 7 of 7
#       tests passed, IDR 0.71x and NeuS 0.79x the plain bank's step with both switches, 0.39x / 0.54x exact)
#   bash benchmarks/device/untested.sh lightcompile  the IDR bank presets' steps with the training chain compiled by
#       Inductor (`compile_training`) and not: whether fusing the cheaper style modulation's small operations takes
#       the style bank from 0.71x to the bar's 0.8x of `nffb-fused` (about 90 s; run 2026-12-07 on an H100:
#       compiled 9.43 against 7.95 ms, 0.84x; eager 11.83 against 8.03 ms, 0.68x)
#   bash benchmarks/device/untested.sh speed   graphed step times: the style-modulated bank without the
#       fused bank, with it and with it only up to 12,288 / 20,480 points a call (`fused_bank_max_points`),
#       `nffb-fused` likewise; a trained-camera run (pocket fill off) graphed and ordinary
#   bash benchmarks/device/untested.sh tracer  the static trace's steps reading the SDF at their new depths from
#       the back-off's batch (one SDF call a step instead of two): the GPU tests of the trace and of the
#       graphed step, then graphed step times of the grid and filter-bank presets with it and without
#   bash benchmarks/device/untested.sh hidden  what NeuS's surface beyond what the cameras see is (issue 14):
#       benchmarks/experiments/neus_hidden.yaml (the preset and the recipe before, 120 s alone), then
#       neus_probe.py and neus_hidden_surface.py on each run (closing sweep, far samples and the mesh as npz)
#   bash benchmarks/device/untested.sh room  the last bar of issue 14: NeuS on Spot in a textured room without masks
#       (benchmarks/experiments/neus_room.yaml: the preset, 120 s alone, about 4-5 minutes with its mesh taken
#       apart by mesh_errors.py, culled as the bar's protocol and, to compare, without dilation);
#       generates .data/spot_room first unless it was carried (needs .data/meshes/spot_cow)
#   bash benchmarks/device/untested.sh registers  issue 16's lever: the fused bank's kernel with a thread's registers
#       capped (`fused_bank_max_registers`; compiled for sm_90 on a CPU the style kernel at 16 points and 8 warps
#       fits 172 -> 128 registers without a spill: two programs an SM instead of one), alone and in graphed steps
#   bash benchmarks/device/untested.sh bandwidth  issue 15's last number: DRAM bytes, GPU time and the fraction of the
#       memory bandwidth a step reaches, from Nsight Compute's counters (benchmarks/step_bandwidth.py; untried on a
#       GPU: if ncu refuses, its log's tail is printed), for the IDR and NeuS grid presets and the filter banks
#   bash benchmarks/device/untested.sh dtu  issue 14's DTU bars with the IDR preset beside the NeuS preset in the same
#       call (benchmarks/experiments/neus_dtu.yaml, three runs sharing the GPU under Ray, about 7 minutes; needs
#       .data/dtu_scan24_half from `nsr data convert ../shared/data/dtu_scan24 --out .data/dtu_scan24_half --downscale 2`)
#   bash benchmarks/device/untested.sh spot120  issue 15's 120 s bar: `hashgrid-fused` on Spot at 120 s, seeds 0-2,
#       one run at a time (experiments/hashgrid_spot.yaml at that budget only, about 8 minutes)
#   bash benchmarks/device/untested.sh schedule  the same at 120 s with smooth learning-rate decays against the
#       preset's steps (experiments/hashgrid_schedule.yaml; two calls, finished runs are skipped)
#   bash benchmarks/device/untested.sh synthdecay  the hash-grid presets' exponential decay (chosen on Spot) against the
#       old steps on the two synthesised scenes, 120 s, seed 0 (experiments/hashgrid_schedule_synth.yaml; carry
#       .data/synth_fuze and .data/synth_banana; 4 runs of about 143 s: the last may need a second call on the warm
#       machine, finished runs are skipped)
#   bash benchmarks/device/untested.sh neusbanks  why a NeuS step of the filter banks costs 8.5x / 21x the hash grid's
#       (issue 16; 52.5 / 130.7 against 6.1 ms at 1024 rays on an H200, the fused bank no help): the top kernels of
#       an ordinary `neus-nffb-fused` step, then graphed steps of both banks with 32 + 32 samples a ray, with the
#       analytic gradient (the PyTorch grid, double backward) and at 512 rays, against the preset; first the banks'
#       training path alone and both renderers' graphed steps since it goes level by level, after the GPU tests of
#       the banks and the graphed step (about 8 minutes)
#   bash benchmarks/device/untested.sh pace  what a 120 s batch run costs besides training since the GPU presets pace
#       checkpoints, validation views and good copies by training time (30 / 30 / 2 s): `hashgrid-fused` on Spot,
#       120 s, seed 2 (the seed the 2026-12-06 call could not finish), with the pacing and without (about 7 minutes)
#   bash benchmarks/device/untested.sh neus [JOBS]  where NeuS's extra accuracy error on Spot is (issue 14): the
#       120 s runs with and without masks alone on the GPU, each mesh taken apart by mesh_errors.py (inner
#       sheets, unseen surface), then meshed again with the hidden pockets filled (`nsr mesh --fill-unseen`)
#       and measured again (needs .data/jobs/nspot.yaml and .data/meshes/spot_cow)
#   bash benchmarks/device/untested.sh banks  issue 16: graphed step times of the grid and the banks under both renderers
#       with fp32 and with TF32 matrix products (`tf32`), then `nffb-fused` on Spot with the hash grid's exponential
#       decay and / or TF32 against its preset (experiments/banks_decay.yaml, 120 s, four runs a GPU; about 7 minutes)
#   bash benchmarks/device/untested.sh banksneus  the banks under NeuS on Spot (experiments/banks_neus.yaml's Spot
#       runs: both banks, the hash grid and positional, 120 s, seed 0, two runs a GPU; about 6.5 minutes on an H100;
#       measured 2026-12-06); for the other scenes: batch benchmarks/experiments/banks_neus.yaml --only 'synth_fuze_*'
#   bash benchmarks/device/untested.sh styleseeds  whether an early collapse is the compiled chain's or the preset's:
#       `neus-stylemod-nffb-fused` on Spot alone (120 s budget cut at 45 s), seeds 0-2 compiled, 0-1 eager (measured
#       2026-12-06: every run, either way, lost most of its opacity in its first ten steps and recovered)
#   bash benchmarks/device/untested.sh batch JOBS.yaml [nsr batch options, e.g. --only PATTERN]  any jobs file, its
#       finished runs returned as $OUT/NAME.state.tar and restored from .data/batch_state/NAME.tar, their training
#       logs, configs and schedules as $OUT/NAME.logs.tar.gz (the batch modes
#       above do the same: spot120, schedule, synthdecay, banksneus)
#   bash benchmarks/device/untested.sh compile  (measured 2026-12-06 on an H100: the NeuS bank presets compile since)
#       issue 16's lever for the memory-bound NeuS bank step: the banks' PyTorch
#       level chain compiled by Inductor (`model.sdf.encoding.compile_training`; CPU: 0.91x / 0.71x the
#       eager chain's time for the plain / style bank at 81,920 points): its GPU tests, the training path alone at
#       655,360 points eager and compiled, then graphed NeuS steps of 1024 rays and IDR steps of 2048 both ways
set -u
source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
scene=.data/synthetic_spot_mitsuba
# `nsr batch` of a jobs file into /tmp/NAME (at most 560 s), its table back as $OUT/NAME.json and its finished runs
# as $OUT/NAME.state.tar: copied to .data/batch_state/NAME.tar and carried, they mark those runs finished in the next
# call (a machine and its /tmp go after 30 s idle), which then runs only what is left.
batch_mode() {
    local name=$1; shift
    [ -f .data/batch_state/$name.tar ] && mkdir -p /tmp/$name && tar -xf .data/batch_state/$name.tar -C /tmp/$name
    # SIGTERM at the limit winds the batch down (its training runs save a checkpoint and stop, recorded as
    # interrupted; a few seconds); SIGKILL 30 s later if it has not ended
    timeout -k 30 ${BATCH_TIMEOUT:-560} python3 -m nsr.cli.main batch "$@" --out /tmp/$name > "$OUT/$name.log" 2>&1
    echo "batch rc $? at $SECONDS s"; tail -n 3 "$OUT/$name.log" | cut -c1-400
    cp /tmp/$name/results.json "$OUT/$name.json"
    (cd /tmp/$name && tar -cf "$OUT/$name.state.tar" runs/*/batch_result.json 2>/dev/null)
    # the runs' training logs, configs and resolved schedules, apart from the state (which a later call restores)
    (cd /tmp/$name && tar -czf "$OUT/$name.logs.tar.gz" runs/*/train_log.jsonl runs/*/config.yaml \
        runs/*/schedule.json 2>/dev/null)
    python3 benchmarks/summarize.py /tmp/$name 2>/dev/null | tail -n 8
}
case "${1:-tests}" in
resume)
    timeout 200 python3 -m pytest -q -rf -p no:cacheprovider tests/engine/test_resume_device.py \
        tests/engine/test_graph_step.py > "$OUT/gpu_tests.log" 2>&1
    tail -n 5 "$OUT/gpu_tests.log"
    for in_graph in false true; do
        timeout 120 python3 benchmarks/profile_step.py --scene $scene --presets hashgrid-fused-cams --rays 2048 \
            --steps 40 --set pockets.in_graph=$in_graph --json "$OUT/profile_cams_pockets_in_graph_$in_graph.json"
    done
    ;;
tests)
    timeout 300 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py tests/encodings/test_hashgrid.py \
        tests/engine/test_graph_step.py tests/engine/test_resume_device.py tests/renderers/test_tracer.py tests/models > "$OUT/gpu_tests.log" 2>&1
    tail -5 "$OUT/gpu_tests.log"
    timeout 240 python3 benchmarks/bench_fused_bank.py --points 12288 65536 --blocks 16 64 128 --precisions tf32x3 \
        --warps 4 8 --repeats 10 --json "$OUT/bench_fused_bank.json"
    ;;
tracer)
    timeout 150 python3 -m pytest -q -rf -p no:cacheprovider tests/engine/test_graph_step.py tests/renderers/test_tracer.py \
        tests/models -m gpu > "$OUT/gpu_tests.log" 2>&1
    tail -n 3 "$OUT/gpu_tests.log"
    for reuse in True False True; do  # the static trace's steps reading their SDF values from the back-off batch
        timeout 150 python3 -c "
import runpy, sys
from nsr.renderers.sphere_tracing import SphereTracer
SphereTracer.values_from_back_off = $reuse
sys.argv = ['profile_step.py', '--scene', '$scene', '--presets', 'hashgrid-fused', 'nffb-fused', 'stylemod-nffb-fused',
            '--rays', '2048', '--steps', '40', '--json', '$OUT/profile_reuse$reuse.$SECONDS.json']
runpy.run_path('benchmarks/profile_step.py', run_name='__main__')"
    done
    python3 -c "
import glob, json
for f in sorted(glob.glob('$OUT/profile_*.json')):
    for d in json.load(open(f)):
        print(f.split('/')[-1], d['preset'], d['ms_per_step'], d['kernels_per_step'], round(d['gpu_busy'] or 0, 3))"
    ;;
lightstyle)
    # issue 16's speed bar with the style bank's cheaper modulations (`style_map: diagonal`, `demodulation:
    # style_rms`; 2026-12-07 s13, on a CPU only): the GPU tests of the banks (the fused kernel's new switches
    # against PyTorch), then graphed IDR steps of 2048 rays and NeuS steps of 1024 rays, each modulation
    # against the plain bank in the same call
    timeout 150 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py -m gpu \
        > "$OUT/gpu_tests.log" 2>&1
    tail -n 2 "$OUT/gpu_tests.log"
    enc=model.sdf.encoding
    timeout 90 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused \
        --rays 2048 --steps 40 --json "$OUT/light_idr_exact.json" | cut -c1-300
    for mod in "diagonal style_rms" "linear style_rms" "diagonal exact"; do
        set -- $mod
        timeout 60 python3 benchmarks/profile_step.py --scene $scene --presets stylemod-nffb-fused --rays 2048 \
            --steps 40 --set $enc.style_map=$1 $enc.demodulation=$2 --json "$OUT/light_idr_$1_$2.json" | cut -c1-300
    done
    timeout 150 python3 benchmarks/profile_step.py --scene $scene --presets neus-nffb-fused \
        neus-stylemod-nffb-fused --rays 1024 --steps 20 --json "$OUT/light_neus_exact.json" | cut -c1-300
    timeout 100 python3 benchmarks/profile_step.py --scene $scene --presets neus-stylemod-nffb-fused --rays 1024 \
        --steps 20 --set $enc.style_map=diagonal $enc.demodulation=style_rms \
        --json "$OUT/light_neus_diagonal_style_rms.json" | cut -c1-300
    ;;
lightcompile)
    # the rest of issue 16's speed gap with the cheaper modulation (0.71x under IDR, 2026-12-07): the training
    # side's small operations (855 operators forward + backward against the plain bank's 461, counted on a CPU),
    # which Inductor would fuse: graphed IDR steps of both banks with the training chain compiled and not
    enc=model.sdf.encoding
    for compiled in false true; do
        timeout 150 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused \
            --rays 2048 --steps 40 --set $enc.compile_training=$compiled \
            --json "$OUT/lightcompile_$compiled.json" | cut -c1-300
    done
    ;;
speed)
    enc=model.sdf.encoding
    for limit in 0 12288 20480; do
        timeout 120 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused \
            --rays 2048 --steps 40 --set $enc.fused_bank=true $enc.fused_bank_max_points=$limit \
            --json "$OUT/profile_bank_max$limit.json"
    done
    timeout 120 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused \
        --rays 2048 --steps 40 --set $enc.fused_bank=false --json "$OUT/profile_bank_off.json"
    for graph in false true; do
        timeout 90 python3 benchmarks/profile_step.py --scene $scene --presets hashgrid-fused-cams --rays 2048 \
            --steps 40 --set pockets.every=0 cuda_graph_step=$graph --json "$OUT/profile_cams_graph_$graph.json"
    done
    ;;
neus)
    # JOBS (default: nspot.yaml with one run on the GPU at a time) names the jobs file in .data/jobs/
    jobs=${2:-nspot_alone}
    [ "$jobs" = nspot_alone ] && sed -e 's/gpus_per_run: 0.2/gpus_per_run: 1/' .data/jobs/nspot.yaml > .data/jobs/nspot_alone.yaml
    timeout ${BATCH_TIMEOUT:-420} python3 -m nsr.cli.main batch .data/jobs/$jobs.yaml --address auto --out /tmp/nspot \
        > "$OUT/nspot.log" 2>&1
    cp /tmp/nspot/results.json "$OUT/$jobs.json"
    gt=.data/meshes/spot_cow/cow.obj
    for run in /tmp/nspot/runs/*; do
        name=$(basename "$run")
        mesh=$(ls "$run"/mesh_*.ply 2>/dev/null | tail -1)
        [ -n "$mesh" ] || { echo "$name: no mesh (see $OUT/nspot.log)"; continue; }
        (   # the runs' meshes taken apart side by side (16 cores; a 512^3 mesh is too large to come back)
            timeout 90 python3 benchmarks/mesh_errors.py "$mesh" $gt --scene $scene --json "$OUT/$name.errors.json"
            timeout 90 python3 -m nsr.cli.main mesh "$run" --fill-unseen --resolution 512 --out "/tmp/$name.filled.ply"
            timeout 90 python3 benchmarks/mesh_errors.py "/tmp/$name.filled.ply" $gt --scene $scene \
                --json "$OUT/$name.filled.errors.json"
        ) > "$OUT/$name.post.log" 2>&1 &
    done
    wait
    tail -n 3 "$OUT"/*.post.log
    ;;
hidden)
    timeout 345 python3 -m nsr.cli.main batch benchmarks/experiments/neus_hidden.yaml --address auto --out /tmp/hidden \
        > /tmp/hidden.log 2>&1
    tail -n 3 /tmp/hidden.log
    cp /tmp/hidden/results.json "$OUT/neus_hidden.json"
    gt=.data/meshes/spot_cow/cow.obj
    for run in /tmp/hidden/runs/*; do
        name=$(basename "$run" | sed 's/.*fused_//')
        timeout 40 python3 benchmarks/neus_probe.py "$run" --gt $gt --scene $scene --json "$OUT/$name.probe.json"
        # the preset's far samples and mesh come back; the other run's numbers only (a call returns 8 files)
        case $name in preset*) keep=(--out "$OUT/$name") ;; *) keep=() ;; esac
        timeout 100 python3 benchmarks/neus_hidden_surface.py "$run" --gt $gt --close 0 2 1 ${keep[@]+"${keep[@]}"} \
            | tee "$OUT/$name.hidden.jsonl"
    done
    ;;
registers)
    timeout 200 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py -m gpu > "$OUT/gpu_tests.log" 2>&1
    tail -n 2 "$OUT/gpu_tests.log"
    timeout 200 python3 benchmarks/bench_fused_bank.py --points 12288 65536 --blocks 16 --precisions tf32x3 \
        --warps 4 8 --max-registers 0 96 128 168 --repeats 10 --json "$OUT/bench_registers.json" > /tmp/bench.log 2>&1
    python3 -c "
import json
for r in json.load(open('$OUT/bench_registers.json')):
    if r.get('impl') == 'fused': print(r['bank'], r['points'], r['block'], r['warps'], r['max_registers'], r.get('ms'), r.get('failed', ''))"
    for regs in 0 128; do
        timeout 100 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused \
            --rays 2048 --steps 40 --set model.sdf.encoding.fused_bank_max_registers=$regs --json "$OUT/profile_regs$regs.json"
    done
    ;;
bandwidth)
    # PRESETS="..." for fewer (each takes up to 130 s)
    timeout 560 python3 benchmarks/step_bandwidth.py --scene $scene \
        --presets ${PRESETS:-hashgrid-fused neus-hashgrid-fused nffb-fused stylemod-nffb-fused} --timeout 130 --json "$OUT/step_bandwidth.json" --keep-csv "$OUT/ncu"
    ;;
dtu)
    timeout 560 python3 -m nsr.cli.main batch benchmarks/experiments/neus_dtu.yaml --address auto --out /tmp/neus_dtu \
        > "$OUT/neus_dtu.log" 2>&1
    echo "batch rc $? at $SECONDS s"; tail -n 3 "$OUT/neus_dtu.log"
    cp /tmp/neus_dtu/results.json "$OUT/neus_dtu.json"
    python3 benchmarks/summarize.py /tmp/neus_dtu 2>/dev/null | tail -n 8
    ;;
banks)
    for tf in false true false true; do  # interleaved: each setting twice (once if the first round is slow)
        [ $SECONDS -gt 200 ] && break
        timeout 100 python3 benchmarks/profile_step.py --scene $scene --presets hashgrid-fused nffb-fused \
            stylemod-nffb-fused --rays 2048 --steps 20 --set tf32=$tf --json "$OUT/idr_tf32_$tf.$SECONDS.json" | cut -c1-160
        timeout 100 python3 benchmarks/profile_step.py --scene $scene --presets neus-hashgrid-fused neus-nffb-fused \
            neus-stylemod-nffb-fused --rays 1024 --steps 20 --set tf32=$tf --json "$OUT/neus_tf32_$tf.$SECONDS.json" | cut -c1-160
    done
    echo "step times done at $SECONDS s"
    timeout $((570 - SECONDS)) python3 -m nsr.cli.main batch benchmarks/experiments/banks_decay.yaml --address auto \
        --out /tmp/banks_decay > "$OUT/banks_decay.log" 2>&1
    echo "banks_decay rc $? at $SECONDS s"; cp /tmp/banks_decay/results.json "$OUT/banks_decay.json"
    python3 benchmarks/summarize.py /tmp/banks_decay 2>/dev/null | tail -n 5
    ;;
compile)
    # the NeuS steps first (the question), then the GPU parity tests, the bank alone, and IDR steps if time is left;
    # each compile takes tens of seconds (Inductor's first call), hence the generous limits
    for c in false true; do
        timeout 200 python3 benchmarks/profile_step.py --scene $scene --presets neus-nffb-fused neus-stylemod-nffb-fused \
            --rays 1024 --steps 20 --set model.sdf.encoding.compile_training=$c --json "$OUT/neus_compile_$c.json" 2>&1 \
            | grep -E '^[{]|Error|error' | cut -c1-200
    done
    echo "NeuS steps done at $SECONDS s"
    timeout 120 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py -m gpu -k compiled \
        > "$OUT/gpu_tests.log" 2>&1
    tail -n 2 "$OUT/gpu_tests.log"
    timeout $((500 - SECONDS)) python3 benchmarks/bench_bank_training.py --points 655360 --modes eager compiled \
        --json "$OUT/bank_training_compile.json" | cut -c1-220
    for c in false true; do
        [ $SECONDS -gt 470 ] && break
        timeout $((570 - SECONDS)) python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused \
            stylemod-nffb-fused --rays 2048 --steps 20 --set model.sdf.encoding.compile_training=$c \
            --json "$OUT/idr_compile_$c.json" | cut -c1-160
    done
    ;;
styleseeds)  # did the compiled chain make neus-stylemod-nffb-fused diverge (banks_compile.yaml, 2026-12-06)? The
    # batch's 120 s run alone, cut at 45 s of wall time (the divergence came at step 94), per seed, both ways
    for run in "compile-training 0" "no-compile-training 0" "compile-training 1" "compile-training 2" \
               "no-compile-training 1"; do
        set -- $run; [ $SECONDS -gt $((${LIMIT:-300} - 50)) ] && break
        timeout 45 python3 -m nsr.cli.main train --preset neus-stylemod-nffb-fused --data $scene --holdout 8 \
            --max-seconds 120 --steps 1000000000 --seed $2 --model.sdf.encoding.$1 --out /tmp/ss_$1_$2 \
            > "$OUT/styleseeds_$1_$2.log" 2>&1
        echo "$1 seed $2: $(grep -o 'diverged at step [0-9]*' "$OUT/styleseeds_$1_$2.log" | head -1)" \
            "$(tr '\r' '\n' < "$OUT/styleseeds_$1_$2.log" | grep -o 'step [0-9]*[/,].*opacity=[0-9.e+-]*' | tail -1)"
    done
    ;;
banksneus)  # banks_neus.yaml's Spot runs only (one scene a call)
    batch_mode banksneus benchmarks/experiments/banks_neus.yaml --only 'synthetic_spot_mitsuba_*'
    ;;
spot120)
    batch_mode spot120 benchmarks/experiments/hashgrid_spot.yaml --address local --only '*_120s_*'
    ;;
schedule)
    batch_mode schedule benchmarks/experiments/hashgrid_schedule.yaml --address local
    ;;
synthdecay)
    batch_mode synthdecay benchmarks/experiments/hashgrid_schedule_synth.yaml --address local
    ;;
batch)  # bash benchmarks/device/untested.sh batch JOBS.yaml [nsr batch options]
    shift; batch_mode "$(basename "$1" .yaml)" "$@"
    ;;
neusbanks)
    timeout 120 python3 -m pytest -q -rf -p no:cacheprovider tests/encodings/test_nffb.py tests/engine/test_graph_step.py \
        -m gpu > "$OUT/gpu_tests.log" 2>&1  # the level-by-level bank against the fused kernel, graphed steps
    tail -n 2 "$OUT/gpu_tests.log"
    # the banks' training path alone at a NeuS step's size (1024 rays x 128 samples x 5 taps), then the graphed
    # steps of both renderers since the level-by-level PyTorch path (2026-12-06)
    timeout 100 python3 benchmarks/bench_bank_training.py --points 655360 --json "$OUT/bank_training.json" | cut -c1-200
    timeout 150 python3 benchmarks/profile_step.py --scene $scene --presets nffb-fused stylemod-nffb-fused neus-nffb-fused \
        neus-stylemod-nffb-fused --rays 2048 1024 --steps 20 --json "$OUT/banks_level_by_level.json" | cut -c1-200
    timeout 150 python3 benchmarks/profile_step.py --scene $scene --presets neus-nffb-fused --rays 1024 --steps 10 \
        --table --set cuda_graph_step=false > "$OUT/neus_nffb_kernels.txt" 2>&1
    grep -m 25 -E "Name|---|^ *[a-z_]" "$OUT/neus_nffb_kernels.txt" | cut -c1-160
    r=model.renderer
    for set in "$r.num_samples=32 $r.num_importance=32" "model.sdf.gradient=analytic"; do
        timeout 150 python3 benchmarks/profile_step.py --scene $scene --presets neus-nffb-fused neus-stylemod-nffb-fused \
            --rays 1024 --steps 20 --set $set --json "$OUT/neusbanks_${set//[ =]/_}.json" | cut -c1-200
    done
    timeout 100 python3 benchmarks/profile_step.py --scene $scene --presets neus-nffb-fused neus-stylemod-nffb-fused \
        --rays 512 --steps 20 --json "$OUT/neusbanks_512rays.json" | cut -c1-200
    ;;
pace)
    for pacing in 30 0; do
        sed -e 's/^max_seconds: .*/max_seconds: 120/' -e 's/^seeds: .*/seeds: [2]/' -e "s#\.\./\.\./\.data/#$PWD/.data/#g" \
            -e "s/^  tensorboard: false/  tensorboard: false\n  checkpoint_min_seconds: $pacing\n  val_min_seconds: $pacing\n  health.keep_good_min_seconds: $((pacing / 15))/" \
            benchmarks/experiments/hashgrid_spot.yaml > /tmp/pace$pacing.yaml
        timeout 280 python3 -m nsr.cli.main batch /tmp/pace$pacing.yaml --address local --out /tmp/pace$pacing \
            > "$OUT/pace$pacing.log" 2>&1
        cp /tmp/pace$pacing/results.json "$OUT/pace$pacing.json"
        python3 -c "
import json
for r in json.load(open('$OUT/pace$pacing.json'))['runs']:
    print('pacing $pacing s:', r['status'], r['steps'], 'steps', round(r['train_seconds'] or 0), 's training,',
          round(r['train_wall_seconds'] or 0), 's with its I/O,', round(r['eval_seconds'] or 0), 's measuring,',
          round(r['seconds']), 's in all, Chamfer', r['chamfer_pct'])"
    done
    ;;
room)
    [ -d .data/spot_room ] || python3 -m nsr.cli.main data synth --mesh .data/meshes/spot_cow/cow.obj \
        --out .data/spot_room --backdrop room --spp 2 > /tmp/room_synth.log 2>&1
    timeout 250 python3 -m nsr.cli.main batch benchmarks/experiments/neus_room.yaml --address local --out /tmp/room \
        > /tmp/room.log 2>&1
    echo "batch rc $? at $SECONDS s"; tail -n 2 /tmp/room.log
    cp /tmp/room/results.json "$OUT/neus_room.json"
    python3 benchmarks/summarize.py /tmp/room 2>/dev/null | tail -n 6
    for run in /tmp/room/runs/*preset*; do  # where the error is, culled as the bar's protocol (and without dilation)
        name=$(basename "$run" | sed 's/.*fused_//'); mesh=$(ls "$run"/mesh_*.ply 2>/dev/null | tail -1)
        [ -n "$mesh" ] || continue
        timeout 100 python3 benchmarks/mesh_errors.py "$mesh" .data/spot_room/gt_mesh.ply --scene .data/spot_room \
            --cull-masks auto --far "$OUT/$name.far.npz" --json "$OUT/$name.errors.json" | cut -c1-400
        timeout 50 python3 benchmarks/mesh_errors.py "$mesh" .data/spot_room/gt_mesh.ply --scene .data/spot_room \
            --cull-masks 0 | cut -c1-200
    done
    ;;
*) echo "usage: bash benchmarks/device/untested.sh tests|tracer|speed|registers|bandwidth|neus|neusbanks|pace|hidden|room|dtu|spot120|schedule" >&2; exit 2 ;;
esac
