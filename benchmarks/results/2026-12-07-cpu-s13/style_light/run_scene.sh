#!/bin/bash
# CPU proxy of the style bank under IDR (eighth session's): 2500 steps of 512 rays, one thread, mesh 256^3
cd /work/main
NAME=$1; shift
R=/tmp/stylecpu/$NAME
OMP_NUM_THREADS=1 nsr train --data .data/$SCENE --preset stylemod-nffb-fused --steps 2500 --rays-per-batch 512 --out $R --model.background 1 1 1 --no-tensorboard --seed 0 "$@" > $R.log 2>&1
OMP_NUM_THREADS=1 nsr mesh $R --resolution 256 --out $R/mesh.ply > $R.mesh.log 2>&1
OMP_NUM_THREADS=1 python -c "
import trimesh; from nsr.metrics.geometry import mesh_metrics
m=trimesh.load('$R/mesh.ply',force='mesh'); g=trimesh.load('$GT',force='mesh')
r=mesh_metrics(m,g); print('$NAME', 'chamfer %.4f%% acc %.4f%% comp %.4f%%' % (100*r['chamfer_rel'], 100*r['accuracy']/r['bbox_diagonal'], 100*r['completeness']/r['bbox_diagonal']))" >> /tmp/stylecpu/chamfer.txt
