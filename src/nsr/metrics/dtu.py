"""The DTU surface protocol (official MATLAB evaluation as mirrored by jzhangbs/DTUeval-python).

Inputs: a reconstructed mesh (or point cloud) in DTU world coordinates (millimetres: map NSR meshes with
the scene's scale_mat, which `extract_world_mesh` does) and the official evaluation data, which the user
downloads from the DTU MVS site (SampleSet + Points), laid out as:

    DIR/Points/stl/stl{scan:03d}_total.ply    structured-light GT points
    DIR/ObsMask/ObsMask{scan}_10.mat          ObsMask (voxel grid of observed space), BB (2, 3), Res
    DIR/ObsMask/Plane{scan}.mat               P (4,): ground plane, P . [x, 1] > 0 above it

Steps (`dtu_metrics`):
1. mesh -> points on a regular barycentric lattice of spacing ~`density` per triangle, plus the vertices;
2. random shuffle (seeded) and greedy thinning: keep a point, drop its neighbours within `density`;
3. keep points inside BB padded by `patch` mm on every side ("in-bound" points), then those whose
   ObsMask voxel (rounded (x - BB_min) / Res) is observed;
4. accuracy = mean distance observed points -> GT points, over distances < `max_dist`;
5. completeness = mean distance GT points above the ground plane -> in-bound points, over < `max_dist`;
6. overall = (accuracy + completeness) / 2.

Differences from DTUeval-python, stated: the padding is symmetric (DTUeval-python pads the upper
corner by 2 x patch; points that far above BB are > 20 mm from every GT point and cannot change a
number); the default density is 0.2 mm (the original system used 0.19).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from nsr.atomic import atomic_write
from nsr.metrics.geometry import nearest_tree


class DTUDataError(FileNotFoundError):
    """Missing or malformed official DTU evaluation data."""


@dataclass
class DTUGroundTruth:
    """The official evaluation data of one scan."""

    points: np.ndarray
    """(M, 3) structured-light GT points, mm."""
    obs_mask: np.ndarray
    """(X, Y, Z) bool voxel grid, True = observed."""
    bbox: np.ndarray
    """(2, 3) min and max corner of the grid, mm."""
    resolution: float
    """Voxel size of `obs_mask`, mm."""
    plane: np.ndarray
    """(4,) ground plane; points with plane . [x, 1] > 0 are kept for completeness."""


@dataclass
class DTUResult:
    """Numbers (mm) and the coloured error clouds of one evaluation."""

    accuracy: float
    completeness: float
    overall: float
    num_points: int
    """Reconstruction points after thinning."""
    num_observed: int
    """Of those, points in observed voxels (the accuracy side)."""
    num_gt_above_plane: int
    data_points: np.ndarray
    data_colors: np.ndarray
    """(N, 3) uint8: white -> red with error up to `vis_threshold`, green >= max_dist, blue not evaluated."""
    gt_points: np.ndarray
    gt_colors: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {
            "dtu_accuracy": self.accuracy,
            "dtu_completeness": self.completeness,
            "dtu_overall": self.overall,
            "dtu_num_points": float(self.num_points),
            "dtu_num_observed": float(self.num_observed),
            "dtu_num_gt_above_plane": float(self.num_gt_above_plane),
        }


def dtu_paths(root: str | Path, scan: int) -> dict[str, Path]:
    root = Path(root)
    return {
        "points": root / "Points" / "stl" / f"stl{scan:03d}_total.ply",
        "obs_mask": root / "ObsMask" / f"ObsMask{scan}_10.mat",
        "plane": root / "ObsMask" / f"Plane{scan}.mat",
    }


def load_dtu_ground_truth(root: str | Path, scan: int) -> DTUGroundTruth:
    """Read the official files of one scan; DTUDataError naming the file when one is missing or malformed."""
    from scipy.io import loadmat

    paths = dtu_paths(root, scan)
    for path in paths.values():
        if not path.is_file():
            raise DTUDataError(
                f"{path}: not found (the DTU evaluation data must be downloaded by the user; "
                "see docs/evaluation.md for the layout)"
            )
    try:
        obs = loadmat(paths["obs_mask"])
        obs_mask = np.asarray(obs["ObsMask"]).astype(bool)
        bbox = np.asarray(obs["BB"], dtype=np.float64).reshape(2, 3)
        resolution = float(np.asarray(obs["Res"]).reshape(-1)[0])
    except (KeyError, ValueError, OSError) as err:
        raise DTUDataError(f"{paths['obs_mask']}: expected keys ObsMask, BB (2x3), Res ({err})") from None
    if obs_mask.ndim != 3:
        raise DTUDataError(f"{paths['obs_mask']}: ObsMask must be a 3-D grid, got shape {obs_mask.shape}")
    try:
        plane = np.asarray(loadmat(paths["plane"])["P"], dtype=np.float64).reshape(4)
    except (KeyError, ValueError, OSError) as err:
        raise DTUDataError(f"{paths['plane']}: expected key P with 4 values ({err})") from None
    try:
        points = np.asarray(trimesh.load(paths["points"], process=False).vertices, dtype=np.float64)
    except (ValueError, OSError, AttributeError) as err:
        raise DTUDataError(f"{paths['points']}: not a readable point cloud ({err})") from None
    return DTUGroundTruth(points=points, obs_mask=obs_mask, bbox=bbox, resolution=resolution, plane=plane)


def sample_mesh_lattice(
    vertices: np.ndarray, faces: np.ndarray, density: float, chunk: int = 200_000
) -> np.ndarray:
    """DTUeval-python's mesh sampling: per non-degenerate triangle, a barycentric lattice of spacing
    ~`density` (n1 = floor(l1 / t), n2 = floor(l2 / t), t = density * sqrt(l1 l2 / |v1 x v2|), points
    ((i + .5) / n1, (j + .5) / n2) with sum < 1), plus all vertices. Returns (M, 3) float64."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    out = [vertices]
    for start in range(0, len(faces), chunk):
        tri = vertices[faces[start : start + chunk]]
        v1, v2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        l1, l2 = np.linalg.norm(v1, axis=1), np.linalg.norm(v2, axis=1)
        area2 = np.linalg.norm(np.cross(v1, v2), axis=1)
        ok = area2 > 0
        tri, v1, v2, l1, l2, area2 = tri[ok], v1[ok], v2[ok], l1[ok], l2[ok], area2[ok]
        if len(tri) == 0:
            continue
        t = density * np.sqrt(l1 * l2 / area2)
        n1, n2 = np.floor(l1 / t).astype(np.int64), np.floor(l2 / t).astype(np.int64)
        counts = (n1 + 1) * (n2 + 1)
        owner = np.repeat(np.arange(len(tri)), counts)
        local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        i, j = local // (n2[owner] + 1), local % (n2[owner] + 1)
        a = (i + 0.5) / np.maximum(n1[owner], 1e-7)
        b = (j + 0.5) / np.maximum(n2[owner], 1e-7)
        inside = a + b < 1
        owner, a, b = owner[inside], a[inside], b[inside]
        out.append(tri[owner, 0] + a[:, None] * v1[owner] + b[:, None] * v2[owner])
    return np.concatenate(out)


def thin_points(points: np.ndarray, radius: float, seed: int = 0) -> np.ndarray:
    """Random shuffle (seeded), then greedy radius thinning: walk the points, keep one, drop its
    neighbours within `radius`. Kept points are at least `radius` apart and every input point lies
    within `radius` of a kept one. Returns the kept (K, 3) points in shuffled order."""
    points = np.asarray(points, dtype=np.float64)
    rng = np.random.default_rng(seed)
    points = points[rng.permutation(len(points))]
    tree = cKDTree(points)
    neighbours = tree.query_ball_point(points, r=radius, workers=-1, return_sorted=False)
    alive = np.ones(len(points), dtype=bool)
    for current, idx in enumerate(neighbours):
        if alive[current]:
            alive[idx] = False
            alive[current] = True
    return points[alive]


def dtu_metrics(
    points: np.ndarray,
    gt: DTUGroundTruth,
    max_dist: float = 20.0,
    patch: float = 60.0,
    vis_threshold: float = 10.0,
) -> DTUResult:
    """Accuracy / completeness / overall of thinned reconstruction points (module docstring, steps 3-6)."""
    data = np.asarray(points, dtype=np.float64)
    inbound = np.all((data >= gt.bbox[0] - patch) & (data < gt.bbox[1] + patch), axis=1)
    inbound_idx = np.nonzero(inbound)[0]
    data_in = data[inbound_idx]
    grid = np.rint((data_in - gt.bbox[0]) / gt.resolution).astype(np.int64)
    in_grid = np.all((grid >= 0) & (grid < np.array(gt.obs_mask.shape)), axis=1)
    observed = np.zeros(len(data_in), dtype=bool)
    g = grid[in_grid]
    observed[np.nonzero(in_grid)[0]] = gt.obs_mask[g[:, 0], g[:, 1], g[:, 2]]
    data_obs = data_in[observed]
    if len(data_obs) == 0:
        raise ValueError(
            "no reconstruction point lies in the observed region of the DTU scan: "
            "is the mesh in DTU world coordinates (mm), i.e. mapped with scale_mat?"
        )
    above = np.concatenate([gt.points, np.ones((len(gt.points), 1))], axis=1) @ gt.plane > 0
    gt_above = gt.points[above]
    if len(gt_above) == 0:
        raise ValueError("no GT point lies above the ground plane (check Plane*.mat)")

    d2s, _ = nearest_tree(gt.points).query(data_obs, workers=-1)
    s2d, _ = nearest_tree(data_in).query(gt_above, workers=-1)
    accuracy = _capped_mean(d2s, max_dist)
    completeness = _capped_mean(s2d, max_dist)

    blue, green = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    data_colors = np.tile(blue, (len(data), 1))
    obs_idx = inbound_idx[observed]
    data_colors[obs_idx] = _error_colours(d2s, vis_threshold)
    data_colors[obs_idx[d2s >= max_dist]] = green
    gt_colors = np.tile(blue, (len(gt.points), 1))
    above_idx = np.nonzero(above)[0]
    gt_colors[above_idx] = _error_colours(s2d, vis_threshold)
    gt_colors[above_idx[s2d >= max_dist]] = green
    return DTUResult(
        accuracy=accuracy,
        completeness=completeness,
        overall=0.5 * (accuracy + completeness),
        num_points=len(data),
        num_observed=len(data_obs),
        num_gt_above_plane=len(gt_above),
        data_points=data,
        data_colors=(data_colors * 255 + 0.5).astype(np.uint8),
        gt_points=gt.points,
        gt_colors=(gt_colors * 255 + 0.5).astype(np.uint8),
    )


def evaluate_dtu_mesh(
    mesh: trimesh.Trimesh,
    gt: DTUGroundTruth,
    density: float = 0.2,
    seed: int = 0,
    max_dist: float = 20.0,
    patch: float = 60.0,
    keep=None,
) -> DTUResult:
    """The whole protocol for a mesh in DTU world coordinates (mm). `keep`: optional extra culling
    ((M, 3) -> (M,) bool, e.g. `MaskCulling`) applied to the thinned points before step 3."""
    points = thin_points(sample_mesh_lattice(mesh.vertices, mesh.faces, density), density, seed)
    if keep is not None:
        points = points[keep(points)]
    return dtu_metrics(points, gt, max_dist=max_dist, patch=patch)


def save_error_clouds(result: DTUResult, folder: str | Path, scan: int) -> tuple[Path, Path]:
    """Write vis_{scan:03d}_d2s.ply (reconstruction coloured by accuracy error) and vis_{scan:03d}_s2d.ply
    (GT coloured by completeness error), as DTUeval-python names them."""
    folder = Path(folder)
    paths = (folder / f"vis_{scan:03d}_d2s.ply", folder / f"vis_{scan:03d}_s2d.ply")
    for path, pts, col in zip(
        paths, (result.data_points, result.gt_points), (result.data_colors, result.gt_colors)
    ):
        cloud = trimesh.PointCloud(
            pts, colors=np.concatenate([col, np.full((len(col), 1), 255, np.uint8)], 1)
        )
        data = cloud.export(file_type="ply")
        atomic_write(path, lambda f, data=data: f.write(data))
    return paths


def _capped_mean(distances: np.ndarray, cap: float) -> float:
    kept = distances[distances < cap]
    return float(kept.mean()) if len(kept) else float("nan")


def _error_colours(distances: np.ndarray, vis_threshold: float) -> np.ndarray:
    alpha = (np.minimum(distances, vis_threshold) / vis_threshold)[:, None]
    return np.array([1.0, 0.0, 0.0]) * alpha + np.array([1.0, 1.0, 1.0]) * (1 - alpha)
