"""How mask culling's dilation changes the Chamfer of near-perfect meshes on the room scene (2-core CPU,
2026-12-05). Needs .data/spot_room and /tmp/gt_disc.ply, the GT plus the ground disc inside the unit sphere
(made as the README of this folder says). Output: benchmarks/RESULTS.md, "Mask culling"."""

import numpy as np
import trimesh

from nsr.data.formats import load_scene
from nsr.metrics.geometry import MaskCulling, mesh_metrics

scene = load_scene(".data/spot_room")
gt = trimesh.load(".data/spot_room/gt_mesh.ply")
diagonal = np.linalg.norm(gt.bounds[1] - gt.bounds[0])
rng = np.random.default_rng(0)


def moved(mesh: trimesh.Trimesh, along_normals: np.ndarray) -> trimesh.Trimesh:
    out = mesh.copy()
    out.vertices = out.vertices + out.vertex_normals * along_normals
    return out


cases = {
    "perfect": gt,
    "perfect + ground disc": trimesh.load("/tmp/gt_disc.ply"),
    "offset +0.2% diag": moved(gt, np.full((len(gt.vertices), 1), 0.002 * diagonal)),
    "normal noise 0.2% diag": moved(gt, rng.normal(0, 0.002 * diagonal, (len(gt.vertices), 1))),
}
for dilation in (None, 0, 1, 3, 6):
    keep = None
    if dilation is not None:
        to_camera = np.linalg.inv(scene.scale_mat)
        keep = MaskCulling(scene.intrinsics, scene.c2w, scene.masks, to_camera, dilation)
    row = []
    for name, mesh in cases.items():
        m = mesh_metrics(mesh, gt, num_samples=200000, keep=keep)
        row.append(
            f"{name}: {100 * m['chamfer_rel']:.3f} ({100 * m['accuracy_rel']:.3f}/{100 * m['completeness_rel']:.3f})"
            f" n={m.get('num_gt_points')}"
        )
    print("dilation", dilation, " | ".join(row), flush=True)
