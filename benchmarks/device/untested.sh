# The device calls of a session, run from the repo root on the GPU machine (the `run` tool) as calls of under 10
# minutes each, results under $OUT. Carry .whl (benchmarks/device/prepare_ray_wheels.sh; installed by setup.sh),
# the scenes a call uses (.data/synthetic_spot_mitsuba for the timings) and .data/meshes (the GT meshes batches score
# against). Four modes; an experiment is a jobs file (benchmarks/experiments/*.yaml) or a profile_step.py command
# line, not a new mode here:
#
#   bash benchmarks/device/untested.sh tests
#       the GPU tests (the fused filter bank against PyTorch, the step as one CUDA graph for both renderers and with
#       trained cameras, the resume of a GPU run, the static tracer, the hash-grid kernel, the models), then the
#       fused bank's kernel alone at the sizes a training step evaluates
#   BATCH_TIMEOUT=560 bash benchmarks/device/untested.sh batch JOBS.yaml [nsr batch options, e.g. --only PATTERN]
#       any jobs file into /tmp/NAME (NAME: the file's name), its table back as $OUT/NAME.json (summarised, with the
#       budget bars against hashgrid-fused, in $OUT/NAME.md), the run folders' training logs, configs and
#       schedules as $OUT/NAME.logs.tar.gz and its finished runs as $OUT/NAME.state.tar: copied to
#       .data/batch_state/NAME.tar and carried, they mark those runs finished in a later call on a fresh machine (a
#       warm machine still has /tmp/NAME: the same command resumes the cut runs and skips the finished)
#   bash benchmarks/device/untested.sh profile [profile_step.py options]
#       graphed step times on Spot (benchmarks/profile_step.py; PROFILE_TIMEOUT, default 150 s), the JSON as
#       $OUT/profile.HHMMSSmmm.json and the whole output (`--table`: the top kernels) as the .log beside it; e.g.
#       the filter banks' IDR steps with the training chain compiled:
#         bash benchmarks/device/untested.sh profile --presets nffb-fused stylemod-nffb-fused --rays 2048 --steps 40 \
#             --set model.sdf.encoding.compile_training=true
#   bash benchmarks/device/untested.sh bandwidth
#       DRAM bytes, GPU time and the fraction of the memory bandwidth a step reaches (Nsight Compute's counters,
#       benchmarks/step_bandwidth.py); PRESETS="..." for fewer than the grid and bank presets of both renderers
#
# Until 2026-12-07 this file grew one mode per experiment (21 of them: resume, tracer, lightstyle, lightcompile, speed,
# neus, hidden, registers, dtu, banks, compile, styleseeds, banksneus, spot120, schedule, synthdecay, neusbanks, pace,
# room, ...). benchmarks/RESULTS.md names them in the rows they measured; their text is in the history
# (`git show 60c9ec7:benchmarks/device/untested.sh`). Each was a jobs file plus a few profile_step.py lines, which
# the modes above run.
set -u
source benchmarks/device/setup.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
scene=.data/synthetic_spot_mitsuba

batch_mode() {  # NAME JOBS.yaml [nsr batch options]
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
    # the tables (runs, and the budget bars against the grid) whole in $OUT/NAME.md, their end on the terminal
    python3 benchmarks/summarize.py /tmp/$name --bars --against hashgrid-fused > "$OUT/$name.md" 2>&1
    tail -n 8 "$OUT/$name.md"
}

case "${1:-tests}" in
tests)
    # on a fresh machine 240 s was not enough for all of them (2026-12-07 s19; warm: 168 s)
    timeout 400 python3 -m pytest -q -rf --durations=15 -p no:cacheprovider tests/encodings/test_nffb.py tests/encodings/test_hashgrid.py \
        tests/engine/test_graph_step.py tests/engine/test_resume_device.py tests/renderers/test_tracer.py tests/models \
        > "$OUT/gpu_tests.log" 2>&1
    echo "pytest rc $? (124: cut by its timeout)"
    grep -E "passed|failed|error" "$OUT/gpu_tests.log" | tail -5   # the slowest tests are in the log
    timeout $((580 - SECONDS)) python3 benchmarks/bench_fused_bank.py --points 12288 65536 --blocks 16 32 64 128 \
        --precisions tf32x3 --warps 4 8 --repeats 10 --json "$OUT/bench_fused_bank.json"
    ;;
batch)
    shift
    [ $# -ge 1 ] || { echo "usage: bash benchmarks/device/untested.sh batch JOBS.yaml [nsr batch options]" >&2; exit 2; }
    batch_mode "$(basename "$1" .yaml)" "$@"
    ;;
profile)
    shift
    # named by the clock (two profiles in one call must not share a name); the whole output (with --table, the
    # top kernels of each case) in the .log beside it, the JSON rows on stdout
    name="$OUT/profile.$(date +%H%M%S%N | cut -c1-9)"
    timeout ${PROFILE_TIMEOUT:-150} python3 benchmarks/profile_step.py --scene $scene "$@" \
        --json "$name.json" > "$name.log" 2>&1
    echo "profile rc $? ($name.log)"; grep '^{' "$name.log" | cut -c1-400
    ;;
bandwidth)
    timeout 560 python3 benchmarks/step_bandwidth.py --scene $scene \
        --presets ${PRESETS:-hashgrid-fused neus-hashgrid-fused nffb-fused stylemod-nffb-fused} --timeout 130 \
        --json "$OUT/step_bandwidth.json" --keep-csv "$OUT/ncu"
    ;;
*)
    echo "usage: bash benchmarks/device/untested.sh tests | batch JOBS.yaml [options] | profile [options] | bandwidth" >&2
    echo "(the one-off modes of earlier sessions: git show 60c9ec7:benchmarks/device/untested.sh)" >&2
    exit 2
    ;;
esac
