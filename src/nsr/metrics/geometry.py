"""Geometry metrics between a predicted and a ground-truth mesh (sampled, symmetric).

Protocol (`mesh_metrics`): draw `num_samples` points uniformly by area on each mesh (independent,
seeded streams), then measure each sample's distance to the nearest sample of the other mesh:

- accuracy = mean distance pred samples -> gt samples (how close the prediction lies to the truth),
- completeness = mean distance gt samples -> pred samples (how much of the truth is covered),
- chamfer = (accuracy + completeness) / 2, the mean of both directions,
- precision / recall = fraction of pred / gt samples within `threshold` of the other set,
  fscore = their harmonic mean,
- normal_consistency = mean |cos| between a sample's face normal and that of its nearest sample on
  the other mesh, averaged over both directions (1 = aligned; orientation-agnostic).

Distances are in the meshes' units (put both in world units first, e.g. with
`nsr.mesh.transform_mesh` and the scene's scale_mat); the `_rel` keys divide them by the GT
bounding-box diagonal so scenes of different scales compare.

Sampling floor: point-to-point distances between two finite sample sets are not zero even for
identical surfaces; the mean gap between neighbouring samples shrinks like 1 / sqrt(num_samples).
With 200k samples a mesh against itself scores a chamfer of roughly 0.1% of its diagonal. Use the
same `num_samples` for every number you compare. This is not the DTU protocol (which uses a
fixed-density point cloud, observation masks and outlier cut-offs).
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

SeedLike = int | np.random.SeedSequence | np.random.Generator


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: SeedLike = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points drawn uniformly by area on a triangle mesh, with their face normals.

    Args:
        mesh: the mesh to sample; must have positive total area.
        n: number of samples.
        seed: an int, SeedSequence or numpy Generator; the same seed gives the same samples.

    Returns:
        points (n, 3) float64 and unit normals (n, 3) float64 (normals of the sampled faces).
    """
    if n < 1:
        raise ValueError(f"number of samples must be positive, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    triangles = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]
    if len(triangles) == 0:
        raise ValueError("cannot sample a mesh without faces")
    origin = triangles[:, 0]
    edge_a = triangles[:, 1] - origin
    edge_b = triangles[:, 2] - origin
    cross = np.cross(edge_a, edge_b)
    double_areas = np.linalg.norm(cross, axis=1)
    cumulative = np.cumsum(double_areas)
    if not cumulative[-1] > 0:
        raise ValueError("cannot sample a mesh of zero area (all faces are degenerate)")

    faces = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    faces = np.minimum(faces, len(triangles) - 1)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    points = origin[faces] + u[:, None] * edge_a[faces] + v[:, None] * edge_b[faces]
    normals = cross[faces] / double_areas[faces, None]
    return points, normals


def mesh_metrics(
    pred: trimesh.Trimesh,
    gt: trimesh.Trimesh,
    num_samples: int = 200_000,
    threshold: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Sampled, symmetric distances between a predicted and a ground-truth mesh (module docstring).

    Args:
        pred: the reconstructed mesh.
        gt: the reference mesh, in the same units and frame.
        num_samples: samples drawn on each mesh.
        threshold: distance for precision / recall / fscore; default 0.5% of the GT bbox diagonal.
        seed: seeds both samplings (independent streams); same seed, same numbers.

    Returns:
        Plain floats: accuracy, completeness, chamfer, precision, recall, fscore, threshold,
        normal_consistency, accuracy_rel, completeness_rel, chamfer_rel, bbox_diagonal, num_samples.
    """
    if len(gt.faces) == 0:
        raise ValueError("the ground-truth mesh has no faces")
    if len(pred.faces) == 0:
        raise ValueError("the predicted mesh has no faces (was extraction empty?)")
    bounds = np.asarray(gt.bounds, dtype=np.float64)
    diagonal = float(np.linalg.norm(bounds[1] - bounds[0]))
    if threshold is None:
        threshold = 0.005 * diagonal
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")

    pred_seed, gt_seed = np.random.SeedSequence(seed).spawn(2)
    pred_points, pred_normals = sample_surface(pred, num_samples, pred_seed)
    gt_points, gt_normals = sample_surface(gt, num_samples, gt_seed)
    to_gt, gt_index = cKDTree(gt_points).query(pred_points, workers=-1)
    to_pred, pred_index = cKDTree(pred_points).query(gt_points, workers=-1)

    accuracy = float(np.mean(to_gt))
    completeness = float(np.mean(to_pred))
    chamfer = 0.5 * (accuracy + completeness)
    precision = float(np.mean(to_gt < threshold))
    recall = float(np.mean(to_pred < threshold))
    fscore = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    cos_pred = np.abs(np.sum(pred_normals * gt_normals[gt_index], axis=1))
    cos_gt = np.abs(np.sum(gt_normals * pred_normals[pred_index], axis=1))
    normal_consistency = 0.5 * float(np.mean(cos_pred) + np.mean(cos_gt))

    return {
        "accuracy": accuracy,
        "completeness": completeness,
        "chamfer": chamfer,
        "precision": precision,
        "recall": recall,
        "fscore": float(fscore),
        "threshold": float(threshold),
        "normal_consistency": normal_consistency,
        "accuracy_rel": accuracy / diagonal,
        "completeness_rel": completeness / diagonal,
        "chamfer_rel": chamfer / diagonal,
        "bbox_diagonal": diagonal,
        "num_samples": float(num_samples),
    }
