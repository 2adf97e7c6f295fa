"""Where a reconstructed mesh is wrong: the Chamfer distance of PRED against GT taken apart.

    python benchmarks/mesh_errors.py PRED.ply GT.obj [--scene DIR [--cull-masks auto]] [--far FAR.npz] [--json OUT.json]

Both meshes in the same frame and units (world units, as `nsr mesh` and benchmarks/cameras.py write them).
Prints accuracy (PRED samples to GT) and completeness (GT samples to PRED) in % of the GT bounding-box
diagonal and, for the samples farther than the F-score threshold (0.5% of the diagonal):
- PRED: their share, their part of the accuracy, how many lie inside the GT surface (sheets hidden inside
  the object) and, with `--scene`, how many no camera of the scene sees on PRED (occluded or unobserved);
- GT: their share, their part of the completeness and, with `--scene`, how many no camera sees on GT.
A point is seen from a camera centre when it faces it and the first hit of the ray towards it is the point
(image borders ignored). The visibility figures need Embree (`pip install embreex`); without it they are
left out. `--cull-masks` scores only what the scene's masks show (a mesh of an unmasked scene with its
ground or table), `--far` keeps the far samples of both sides for a look at where they are.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import trimesh

from nsr.accel.embree import INSTALL_HINT, has_embree, ray_intersector
from nsr.mesh.distance import signed_distance
from nsr.metrics.geometry import nearest_tree, sample_surface

THRESHOLD = 0.005
"""Fraction of the GT diagonal beyond which a sample counts as wrong (the F-score threshold)."""


def seen_from(
    mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray, centres: np.ndarray
) -> np.ndarray:
    """(M,) bool: the surface points of `mesh` (outward `normals`) that some camera centre sees."""
    caster = ray_intersector(mesh)
    tolerance = 1e-4 * float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
    seen = np.zeros(len(points), dtype=bool)
    for centre in centres:
        todo = np.where(~seen)[0]
        if len(todo) == 0:
            break
        direction = points[todo] - centre
        distance = np.linalg.norm(direction, axis=1)
        direction /= distance[:, None]
        facing = (normals[todo] * direction).sum(1) < 0
        locations, rays, _ = caster.intersects_location(
            np.repeat(centre[None], len(todo), 0), direction, multiple_hits=False
        )
        first = np.full(len(todo), np.inf)
        first[rays] = np.linalg.norm(locations - centre, axis=1)
        seen[todo] = facing & (first >= distance - tolerance)
    return seen


def mesh_errors(
    pred: trimesh.Trimesh,
    gt: trimesh.Trimesh,
    centres: np.ndarray | None = None,
    samples: int = 200_000,
    keep=None,
    far_out: Path | None = None,
) -> dict[str, float]:
    """The parts of the Chamfer distance (fractions and % of the GT diagonal); see the module docstring.
    `keep` culls both sides' samples ((M, 3) -> (M,) bool, e.g. `MaskCulling`), `far_out` receives the far
    samples of both sides (npz: pred_far, gt_far, their distances) for a look at where they are."""
    diag = float(np.linalg.norm(gt.bounds[1] - gt.bounds[0]))
    threshold = THRESHOLD * diag
    pred_points, pred_normals = sample_surface(pred, samples, seed=0)
    gt_points, gt_normals = sample_surface(gt, samples, seed=1)
    if keep is not None:
        kept_pred, kept_gt = keep(pred_points), keep(gt_points)
        pred_points, pred_normals = pred_points[kept_pred], pred_normals[kept_pred]
        gt_points, gt_normals = gt_points[kept_gt], gt_normals[kept_gt]
    to_gt = nearest_tree(gt_points).query(pred_points, workers=-1)[0]
    to_pred = nearest_tree(pred_points).query(gt_points, workers=-1)[0]
    bad_pred, bad_gt = to_gt > threshold, to_pred > threshold
    out = {
        "accuracy_rel": 100 * to_gt.mean() / diag,
        "completeness_rel": 100 * to_pred.mean() / diag,
        "chamfer_rel": 100 * (to_gt.mean() + to_pred.mean()) / 2 / diag,
        "pred_far_fraction": float(bad_pred.mean()),
        "pred_far_accuracy_rel": 100 * float((to_gt * bad_pred).mean()) / diag,
        "gt_far_fraction": float(bad_gt.mean()),
        "gt_far_completeness_rel": 100 * float((to_pred * bad_gt).mean()) / diag,
    }
    if keep is not None:
        out["pred_kept_fraction"] = float(kept_pred.mean())
        out["gt_kept_fraction"] = float(kept_gt.mean())
    if far_out is not None:
        np.savez_compressed(
            far_out, pred_far=pred_points[bad_pred], pred_far_distance=to_gt[bad_pred],
            gt_far=gt_points[bad_gt], gt_far_distance=to_pred[bad_gt], diagonal=diag,
        )  # fmt: skip
    if bad_pred.any():  # inside: generalised winding number > 1/2 (robust for open GT meshes)
        far = pred_points[bad_pred][:20000]
        inside = signed_distance(far, np.asarray(gt.vertices), np.asarray(gt.faces)).inside
        out["pred_far_inside_gt"] = float(np.mean(inside))
    if centres is not None and not has_embree():
        print(f"mesh_errors: no visibility figures ({INSTALL_HINT})")
    elif centres is not None:
        if bad_pred.any():
            out["pred_far_unseen"] = float(
                1 - seen_from(pred, pred_points[bad_pred], pred_normals[bad_pred], centres).mean()
            )
        if bad_gt.any():
            out["gt_far_unseen"] = float(
                1 - seen_from(gt, gt_points[bad_gt], gt_normals[bad_gt], centres).mean()
            )
        out["gt_unseen"] = float(1 - seen_from(gt, gt_points[:20000], gt_normals[:20000], centres).mean())
    return {k: round(v, 5) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pred", type=Path)
    parser.add_argument("gt", type=Path)
    parser.add_argument("--scene", type=Path, help="IDR scene folder: camera centres for the visibility")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--cull-masks",
        metavar="DILATION",
        help="cull both sides to what the --scene's masks show, dilated by DILATION px or `auto` (DTU's 12 px "
        "at 1600 px wide, scaled), as `nsr eval --cull masks`",
    )
    parser.add_argument("--far", type=Path, help="write the far samples of both sides here (npz)")
    args = parser.parse_args()
    pred = trimesh.load(args.pred, force="mesh")
    gt = trimesh.load(args.gt, force="mesh")
    centres, keep = None, None
    if args.cull_masks is not None and args.scene is None:
        parser.error("--cull-masks needs --scene (the masks)")
    if args.scene is not None:
        from nsr.data.idr import load_idr_scene

        scene = load_idr_scene(args.scene, downscale=1 if args.cull_masks is not None else 8)
        homogeneous = np.c_[scene.c2w[:, :3, 3], np.ones(len(scene.c2w))]
        centres = (scene.scale_mat @ homogeneous.T).T[:, :3]
        if args.cull_masks is not None:
            from nsr.metrics.geometry import MaskCulling

            keep = MaskCulling.from_scene(scene, None if args.cull_masks == "auto" else int(args.cull_masks))
    errors = mesh_errors(pred, gt, centres, args.samples, keep=keep, far_out=args.far)
    result = {"pred": str(args.pred), **errors}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
