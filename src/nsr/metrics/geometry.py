"""Geometry metrics between a predicted and a ground-truth mesh (sampled, symmetric).

Protocol (`mesh_metrics`): draw `num_samples` points uniformly by area on each mesh (independent,
seeded streams), then measure each sample's distance to the nearest sample of the other mesh:

- accuracy = mean distance pred samples -> gt samples (how close the prediction lies to the truth),
- completeness = mean distance gt samples -> pred samples (how much of the truth is covered),
- chamfer = (accuracy + completeness) / 2, the mean of both directions,
- precision / recall = fraction of pred / gt samples within `threshold` of the other set,
  fscore = their harmonic mean,
- normal_consistency = mean |cos| between a sample's face normal and that of its nearest sample on
  the other mesh, averaged over both directions (1 = aligned; orientation-agnostic),
- detail_* (with a GT mesh): the same distances restricted to the GT's fine detail, the `DETAIL_FRACTION`
  of GT samples whose normal varies most among their `DETAIL_NEIGHBOURS` nearest GT samples (edges,
  creases, ears, thin parts): detail completeness over those GT samples, detail accuracy over the predicted
  samples whose nearest GT sample is one of them, detail chamfer their mean, and the normal consistency
  there. A surface that is right on the whole but smooths the detail away scores worse here than overall.

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

from collections.abc import Callable

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from nsr.metrics.poses import Similarity, rotation_errors_deg, umeyama

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


def nearest_tree(points: np.ndarray) -> cKDTree:
    """A k-d tree for exact nearest-neighbour distances to `points`, built for queries far from them too.

    SciPy's default tree shrinks every node's box to its points; with the query points far from all of them
    (an early or failed mesh against the ground truth) a search then visits most of the tree: 34 s for the
    200k + 200k queries of a 3-step demo mesh on 2 cores, 4.3 s with the boxes left at their splits and
    median-free splits, the same distances (and 0.69 -> 0.61 s for a trained mesh; 2026-12-05)."""
    return cKDTree(points, compact_nodes=False, balanced_tree=False)


DETAIL_FRACTION = 0.1
"""Share of the GT samples that make up its detail (those whose normal varies most around them)."""
DETAIL_NEIGHBOURS = 16
"""GT samples (the sample included) over which a sample's normal variation is taken."""


def normal_variation(
    points: np.ndarray, normals: np.ndarray, neighbours: int = DETAIL_NEIGHBOURS
) -> np.ndarray:
    """(M,) 1 - mean |cos| between each sample's normal and those of its nearest samples: 0 on a plane,
    growing with the surface's curvature at the scale of the sampling (and at edges and creases)."""
    k = min(neighbours, len(points))
    _, index = nearest_tree(points).query(points, k=k, workers=-1)
    index = index.reshape(len(points), k)
    return 1.0 - np.abs(np.einsum("md,mkd->mk", normals, normals[index])).mean(axis=1)


def detail_samples(points: np.ndarray, normals: np.ndarray, fraction: float = DETAIL_FRACTION) -> np.ndarray:
    """(M,) bool: the `fraction` of the samples whose normal varies most around them (`normal_variation`)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the detail fraction must be in (0, 1], got {fraction}")
    variation = normal_variation(points, normals)
    count = max(1, round(fraction * len(points)))
    selected = np.zeros(len(points), dtype=bool)
    selected[np.argpartition(-variation, count - 1)[:count]] = True
    return selected


PointFilter = Callable[[np.ndarray], np.ndarray]
"""(M, 3) points -> (M,) bool, True = keep (e.g. `MaskCulling`)."""


def mesh_metrics(
    pred: trimesh.Trimesh,
    gt: trimesh.Trimesh | trimesh.PointCloud | np.ndarray,
    num_samples: int = 200_000,
    threshold: float | None = None,
    seed: int = 0,
    keep: PointFilter | None = None,
) -> dict[str, float]:
    """Sampled, symmetric distances between a predicted mesh and a ground-truth mesh or point cloud.

    Args:
        pred: the reconstructed mesh.
        gt: the reference mesh, or a point cloud ((M, 3) array or trimesh.PointCloud, used as is, no
            normals: `normal_consistency` is then None), in the same units and frame.
        num_samples: samples drawn on each mesh.
        threshold: distance for precision / recall / fscore; default 0.5% of the GT bbox diagonal.
        seed: seeds both samplings (independent streams); same seed, same numbers.
        keep: optional culling applied to the samples of both sides (e.g. to the region seen by the
            cameras, `MaskCulling`); the bbox diagonal stays that of the whole GT.

    Returns:
        Plain floats: accuracy, completeness, chamfer, precision, recall, fscore, threshold,
        normal_consistency, accuracy_rel, completeness_rel, chamfer_rel, bbox_diagonal, num_samples
        (and num_pred_points / num_gt_points actually compared).
    """
    if len(pred.faces) == 0:
        raise ValueError("the predicted mesh has no faces (was extraction empty?)")
    pred_seed, gt_seed = np.random.SeedSequence(seed).spawn(2)
    pred_points, pred_normals = sample_surface(pred, num_samples, pred_seed)
    if isinstance(gt, trimesh.Trimesh):
        if len(gt.faces) == 0:
            raise ValueError("the ground-truth mesh has no faces")
        bounds = np.asarray(gt.bounds, dtype=np.float64)
        gt_points, gt_normals = sample_surface(gt, num_samples, gt_seed)
    else:
        gt_points = np.asarray(gt.vertices if isinstance(gt, trimesh.PointCloud) else gt, dtype=np.float64)
        if gt_points.ndim != 2 or gt_points.shape[1] != 3 or len(gt_points) == 0:
            raise ValueError(f"the ground-truth point cloud must be (M, 3) with M > 0, got {gt_points.shape}")
        bounds = np.stack([gt_points.min(0), gt_points.max(0)])
        gt_normals = None
    diagonal = float(np.linalg.norm(bounds[1] - bounds[0]))
    if keep is not None:
        kp, kg = keep(pred_points), keep(gt_points)
        pred_points, pred_normals = pred_points[kp], pred_normals[kp]
        gt_points = gt_points[kg]
        gt_normals = gt_normals[kg] if gt_normals is not None else None
        if len(pred_points) == 0 or len(gt_points) == 0:
            raise ValueError(
                f"culling left {len(pred_points)} predicted and {len(gt_points)} ground-truth points: "
                "are both in the cameras' view (same frame and units)?"
            )
    result = point_metrics(pred_points, gt_points, pred_normals, gt_normals, threshold, diagonal)
    result["num_samples"] = float(num_samples)
    return result


def point_metrics(
    pred_points: np.ndarray,
    gt_points: np.ndarray,
    pred_normals: np.ndarray | None = None,
    gt_normals: np.ndarray | None = None,
    threshold: float | None = None,
    diagonal: float | None = None,
) -> dict[str, float]:
    """The metrics of `mesh_metrics` between two point sets (M, 3) and (K, 3) (normals optional).

    `diagonal` (default: of the GT points' bbox) scales the `_rel` keys; `threshold` defaults to 0.5% of it.
    """
    if diagonal is None:
        diagonal = float(np.linalg.norm(gt_points.max(0) - gt_points.min(0)))
    if threshold is None:
        threshold = 0.005 * diagonal
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    to_gt, gt_index = nearest_tree(gt_points).query(pred_points, workers=-1)
    to_pred, pred_index = nearest_tree(pred_points).query(gt_points, workers=-1)

    accuracy = float(np.mean(to_gt))
    completeness = float(np.mean(to_pred))
    chamfer = 0.5 * (accuracy + completeness)
    precision = float(np.mean(to_gt < threshold))
    recall = float(np.mean(to_pred < threshold))
    fscore = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    normal_consistency = None
    detail = {}
    if pred_normals is not None and gt_normals is not None:
        cos_pred = np.abs(np.sum(pred_normals * gt_normals[gt_index], axis=1))
        cos_gt = np.abs(np.sum(gt_normals * pred_normals[pred_index], axis=1))
        normal_consistency = 0.5 * float(np.mean(cos_pred) + np.mean(cos_gt))
        on_detail = detail_samples(gt_points, gt_normals)
        near_detail = on_detail[gt_index]  # predicted samples whose nearest GT sample is detail
        detail_completeness = float(np.mean(to_pred[on_detail]))
        detail_accuracy = float(np.mean(to_gt[near_detail])) if near_detail.any() else float("nan")
        detail = {
            "detail_accuracy_rel": detail_accuracy / diagonal,
            "detail_completeness_rel": detail_completeness / diagonal,
            "detail_chamfer_rel": 0.5 * (detail_accuracy + detail_completeness) / diagonal,
            "detail_normal_consistency": 0.5
            * float(
                (np.mean(cos_pred[near_detail]) if near_detail.any() else np.nan) + np.mean(cos_gt[on_detail])
            ),
        }

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
        "threshold_rel": float(threshold) / diagonal,
        "bbox_diagonal": diagonal,
        "num_pred_points": float(len(pred_points)),
        "num_gt_points": float(len(gt_points)),
        **detail,
    }


DTU_CULL_DILATION = 12
"""Mask dilation in pixels of the MonoSDF / 2DGS DTU culling, at DTU's full width (`DTU_WIDTH`)."""
DTU_WIDTH = 1600


ICP_SAMPLES = 50_000
"""Points sampled on each side for `icp_onto` (the Chamfer distances after it use their own samples)."""
ICP_REJECT = 0.02
"""Pairs farther apart than this fraction of the GT diagonal are left out of each ICP fit."""


def icp_similarity(source: np.ndarray, target: np.ndarray, reject: float, iterations: int = 50) -> Similarity:
    """The similarity taking points `source` (M, 3) onto points `target` (K, 3): point-to-point ICP from the
    identity, each fit (Umeyama, rotation, translation and scale) on the pairs closer than `reject`."""
    tree = nearest_tree(target)
    total = Similarity(1.0, np.eye(3), np.zeros(3))
    for _ in range(iterations):
        moved = total.apply(source)
        distance, index = tree.query(moved)
        keep = distance < reject
        if keep.sum() < 3:
            raise ValueError(
                f"ICP: {int(keep.sum())} point pairs closer than {reject:.4g}: are the meshes in one frame and unit?"
            )
        step = umeyama(moved[keep], target[index[keep]])
        total = Similarity(
            step.scale * total.scale, step.rotation @ total.rotation, step.apply(total.translation)
        )
        settled = np.abs(step.rotation - np.eye(3)).max() < 1e-9 and abs(step.scale - 1) < 1e-9
        if settled and np.linalg.norm(step.translation) < 1e-9 * reject:
            break
    return total


def icp_onto(
    pred: trimesh.Trimesh,
    gt: trimesh.Trimesh | trimesh.PointCloud | np.ndarray,
    samples: int = ICP_SAMPLES,
    reject: float = ICP_REJECT,
    seed: int = 0,
) -> tuple[trimesh.Trimesh, dict[str, float]]:
    """`pred` moved onto the ground truth by ICP (rigid motion and scale), and the motion: its angle
    (`rotation_deg`), how far it moved `pred`'s vertex centroid (`shift_rel`, a fraction of the GT diagonal) and
    its `scale`. `reject` is a fraction of the GT diagonal.

    What a mesh aligned by estimated cameras (`nsr eval-cameras`) measures after this is its surface's error
    without the alignment's; a mesh in its true frame measures a little less too (ICP also fits the samples'
    noise and any slight inflation of the surface), so compare with a fixed-camera run measured the same way."""
    pred_seed, gt_seed = np.random.SeedSequence(seed).spawn(2)
    source, _ = sample_surface(pred, samples, pred_seed)
    if isinstance(gt, trimesh.Trimesh):
        target, _ = sample_surface(gt, samples, gt_seed)
    else:
        target = np.asarray(gt.vertices if isinstance(gt, trimesh.PointCloud) else gt, dtype=np.float64)
    bounds = np.stack([target.min(0), target.max(0)]) if not isinstance(gt, trimesh.Trimesh) else gt.bounds
    diagonal = float(np.linalg.norm(np.asarray(bounds[1]) - np.asarray(bounds[0])))
    similarity = icp_similarity(source, target, reject * diagonal)
    moved = pred.copy()
    moved.apply_transform(similarity.matrix())
    centroid = np.asarray(pred.vertices, dtype=np.float64).mean(0)
    motion = {
        "rotation_deg": float(rotation_errors_deg(similarity.rotation[None], np.eye(3)[None])[0]),
        "shift_rel": float(np.linalg.norm(similarity.apply(centroid[None])[0] - centroid)) / diagonal,
        "scale": float(similarity.scale),
    }
    return moved, motion


def auto_dilation(width: int) -> int:
    """The DTU culling's dilation scaled to masks `width` pixels wide, at least 1 pixel (12 at 1600, 6 at 800,
    3 at 400). Without dilation every point near a silhouette in one view is dropped: on a 48-view scene
    that removed 73% of a perfect mesh's samples and scored a mesh offset by 0.2% of the diagonal at 1.75%
    Chamfer instead of 0.23% (benchmarks/RESULTS.md, "Mask culling")."""
    return max(1, round(DTU_CULL_DILATION * width / DTU_WIDTH))


class MaskCulling:
    """Keep points seen inside the object masks: the region the cameras observed.

    A point is kept when, in every view where it projects inside the image (and lies in front of the
    camera), it falls inside that view's mask dilated by `dilation` pixels; a point no camera sees is
    dropped. This is the mask culling of MonoSDF / 2DGS DTU scripts (there: disk-shaped dilation of 12
    pixels on full-resolution DTU), applied here to both the predicted and the GT samples.

    Args:
        intrinsics: (N, 3, 3) K (pixel centres at integer coordinates).
        c2w: (N, 4, 4) camera-to-world in the frame the cameras live in (NSR: the normalised frame).
        masks: (N, H, W) bool object masks.
        to_camera_frame: (4, 4) applied to the points first (e.g. inv(scale_mat) for world-unit points).
        dilation: disk radius in pixels of the mask dilation (0 = none; None = `auto_dilation` of the
            masks' width).
    """

    def __init__(
        self,
        intrinsics: np.ndarray,
        c2w: np.ndarray,
        masks: np.ndarray,
        to_camera_frame: np.ndarray | None = None,
        dilation: int | None = None,
    ) -> None:
        from scipy.ndimage import binary_dilation

        self.intrinsics = np.asarray(intrinsics, dtype=np.float64)
        self.w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
        masks = np.asarray(masks, dtype=bool)
        if dilation is None:
            dilation = auto_dilation(masks.shape[2])
        self.dilation = int(dilation)
        """The dilation used, in pixels."""
        if dilation > 0:
            r = int(dilation)
            yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
            disk = xx**2 + yy**2 <= r * r
            masks = np.stack([binary_dilation(m, structure=disk) for m in masks])
        self.masks = masks
        self.to_camera_frame = (
            np.eye(4) if to_camera_frame is None else np.asarray(to_camera_frame, np.float64)
        )

    @classmethod
    def from_scene(cls, scene, dilation: int | None = None) -> MaskCulling:
        """The culling of a loaded scene (`SceneData`: its cameras and masks; points in world units)."""
        return cls(scene.intrinsics, scene.c2w, scene.masks, np.linalg.inv(scene.scale_mat), dilation)

    def describe(self) -> str:
        """How the samples were culled, for the metrics' JSON: `masks (dilation N px)`."""
        return f"masks (dilation {self.dilation} px)"

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) -> (M,) bool keep."""
        p = (
            np.asarray(points, dtype=np.float64) @ self.to_camera_frame[:3, :3].T
            + self.to_camera_frame[:3, 3]
        )
        height, width = self.masks.shape[1:]
        keep = np.ones(len(p), dtype=bool)
        seen = np.zeros(len(p), dtype=bool)
        for k, w2c, mask in zip(self.intrinsics, self.w2c, self.masks):
            cam = p @ w2c[:3, :3].T + w2c[:3, 3]
            z = cam[:, 2]
            front = z > 1e-9
            pix = cam @ k.T
            with np.errstate(divide="ignore", invalid="ignore"):
                col = np.rint(pix[:, 0] / z)
                row = np.rint(pix[:, 1] / z)
            inside = front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
            idx = np.nonzero(inside)[0]
            in_mask = mask[row[idx].astype(np.int64), col[idx].astype(np.int64)]
            keep[idx[~in_mask]] = False
            seen[idx] = True
        return keep & seen
