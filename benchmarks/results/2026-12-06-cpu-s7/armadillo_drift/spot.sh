#!/bin/bash
cd /work/main
# slot 1: after full_unlock10 finishes: its Chamfer, then Spot preset
( while pgrep -f "out /tmp/armcpu/full_unlock10" >/dev/null; do sleep 5; done
  /tmp/armcpu/chamfer.sh /tmp/armcpu/full_unlock10
  OMP_NUM_THREADS=1 nsr train --data .data/synthetic_spot_mitsuba --preset nffb-fused --steps 2500 --rays-per-batch 512 --out /tmp/armcpu/spot_preset --model.background 1 1 1 --no-tensorboard --seed 0 > /tmp/armcpu/spot_preset.log 2>&1
  /tmp/armcpu/chamfer_spot.sh /tmp/armcpu/spot_preset ) &
# slot 2: after the decay probe: stop the probe loop, then Spot unlock10
( while ! grep -q "decay done" /tmp/armcpu/probe_done.txt; do sleep 5; done
  pkill -f probe.sh; sleep 1; pkill -f "out /tmp/armcpu/v_finest512"
  OMP_NUM_THREADS=1 nsr train --data .data/synthetic_spot_mitsuba --preset nffb-fused --steps 2500 --rays-per-batch 512 --out /tmp/armcpu/spot_unlock10 --model.background 1 1 1 --no-tensorboard --seed 0 --model.sdf.encoding.unlock-every 0.1 > /tmp/armcpu/spot_unlock10.log 2>&1
  /tmp/armcpu/chamfer_spot.sh /tmp/armcpu/spot_unlock10 ) &
wait
