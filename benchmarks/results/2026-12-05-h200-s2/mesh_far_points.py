import sys, glob, json, numpy as np, trimesh
from nsr.metrics.geometry import nearest_tree, sample_surface
from nsr.mesh.distance import signed_distance
gt = trimesh.load('.data/meshes/spot_cow/cow.obj', force='mesh')
diag = float(np.linalg.norm(gt.bounds[1]-gt.bounds[0]))
out = {}
for run in sorted(glob.glob('/tmp/nspot/runs/*')):
    ms = sorted(glob.glob(run + '/mesh_*.ply'))
    if not ms: continue
    m = trimesh.load(ms[-1], force='mesh')
    comps = m.split(only_watertight=False)
    areas = sorted([c.area for c in comps], reverse=True)[:5]
    p, n = sample_surface(m, 100000, seed=0)
    d = nearest_tree(gt.sample(200000)).query(p, workers=-1)[0] / diag * 100
    far = d > 0.5
    sd = signed_distance(p[far][:20000], np.asarray(gt.vertices), np.asarray(gt.faces))
    # depth inside GT of far points
    depth = np.abs(sd.distance) / diag * 100
    np.savez_compressed(f"{sys.argv[1]}/{run.split('/')[-1][-20:]}.npz", p=p[far].astype(np.float32), n=n[far].astype(np.float32), d=d[far].astype(np.float32))
    out[run.split('/')[-1]] = dict(mesh=ms[-1].split('/')[-1], faces=len(m.faces), components=len(comps), top_areas=[round(a,4) for a in areas], area=round(m.area,4), gt_area=round(gt.area,4), watertight=m.is_watertight, euler=int(m.euler_number), far=float(far.mean()), far_inside=float(np.mean(sd.inside)), far_depth_pct=np.percentile(depth,[10,50,90]).round(3).tolist())
    print(json.dumps(out[run.split('/')[-1]]), flush=True)
