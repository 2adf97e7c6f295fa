#!/bin/bash
# run a 2500-step schedule of nffb-fused on the armadillo at 512 rays, stop at step $STOP, one thread
cd /work/main
STOP=${STOP:-1000}
while read NAME ARGS; do
  R=/tmp/armcpu/v_$NAME
  rm -rf $R
  OMP_NUM_THREADS=1 nsr train --data .data/synth_armadillo --preset nffb-fused --steps 2500 --rays-per-batch 512 --out $R --model.background 1 1 1 --no-tensorboard --seed 0 $ARGS > $R.log 2>&1 &
  PID=$!
  while kill -0 $PID 2>/dev/null; do
    sleep 5
    S=$(tail -1 $R/train_log.jsonl 2>/dev/null | python -c "import json,sys; print(json.loads(sys.stdin.read())['step'])" 2>/dev/null || echo 0)
    [ "$S" -ge "$STOP" ] && kill $PID && break
  done
  wait $PID 2>/dev/null
  echo "$NAME done" >> /tmp/armcpu/probe_done.txt
done < /tmp/armcpu/variants.txt
