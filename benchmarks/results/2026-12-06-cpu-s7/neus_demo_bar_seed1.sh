cd /work/main
for B in scene uniform; do
  for S in 1; do
    R=/tmp/cpubar/${B}_s$S
    rm -rf $R
    /usr/bin/time -f "%e s" nsr train --data .data/demo_scene --preset neus-demo --max-seconds 420 --seed $S --model.loss.masked-background $B --out $R > $R.log 2>&1
    nsr mesh $R --resolution 256 --out $R/mesh.ply >> $R.log 2>&1
    python -c "
import trimesh; from nsr.metrics.geometry import mesh_metrics
m=trimesh.load('$R/mesh.ply',force='mesh'); g=trimesh.load('.data/demo_scene/gt_mesh.ply',force='mesh')
print('$B seed $S chamfer_rel %.4f%%' % (100*mesh_metrics(m,g)['chamfer_rel']))" | tee -a /tmp/cpubar/summary.txt
  done
done
