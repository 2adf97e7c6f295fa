"""Bounding spheres for scenes that come without one: visual hull of the masks, or COLMAP's sparse points.

A bounding sphere (centre c, radius r, world units) becomes the scene's `scale_mat` = [[r I, c], [0, 1]]:
it maps the normalised frame, where the object lies inside the unit sphere, to world units.

Visual hull (`carve_visual_hull`): voxels of a grid are kept when they project inside the mask of every
view that sees them (up to `max_miss_fraction` of those views, for imperfect masks), and when enough of
the views see them (by default all but `max_miss_fraction`: the object is inside every image). Unlike the original preprocessing script, the vote threshold
follows the number of views (it hard-coded 45 of DTU's 49 or 64), masks may have any number of channels,
and the grid is found automatically: a coarse carve over a generous cube, enlarged until the hull no
longer touches its border, then a fine carve over the hull's bounding box.

Sphere of a hull (`hull_sphere`): centred on the hull's surface that the cameras see face-on, not on the
hull's bounding box, which one-sided captures (DTU) stretch behind the object; the radius reaches the
whole hull. `VisualHull.fill` says how much of the sphere the hull fills.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsr.cameras.projection import decompose_projection
from nsr.data.errors import DataError
from nsr.data.scene import SceneData

Progress = Callable[[int, int], None]


@dataclass
class Sphere:
    """A bounding sphere in world units."""

    centre: np.ndarray
    """(3,) world position."""
    radius: float

    def scale_mat(self) -> np.ndarray:
        """(4, 4) normalised -> world similarity mapping the unit sphere onto this sphere."""
        out = np.diag([self.radius, self.radius, self.radius, 1.0])
        out[:3, 3] = self.centre
        return out


@dataclass
class VisualHull:
    """A carved voxel grid."""

    occupancy: np.ndarray
    """(R, R, R) bool, indexed [i, j, k] along world x, y, z."""
    lower: np.ndarray
    """(3,) world position of the centre of voxel [0, 0, 0]."""
    voxel: float
    """Voxel edge length (world units)."""

    def points(self) -> np.ndarray:
        """(M, 3) world centres of the occupied voxels."""
        return self.lower + np.argwhere(self.occupancy) * self.voxel

    def bounding_sphere(self, margin: float = 1.1, centre: np.ndarray | None = None) -> Sphere:
        """Sphere around the occupied voxels x margin: centred on `centre` (default: the centre of their
        bounding box), its radius reaching the farthest voxel corner."""
        points = self.points()
        if centre is None:
            centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
        centre = np.asarray(centre, dtype=np.float64)
        radius = np.linalg.norm(points - centre, axis=1).max() + 0.5 * np.sqrt(3.0) * self.voxel
        return Sphere(centre=centre, radius=float(radius * margin))

    def fill(self, sphere: Sphere) -> float:
        """The share of the sphere's volume the occupied voxels fill (an upper bound of the object's)."""
        volume = np.count_nonzero(self.occupancy) * self.voxel**3
        return float(volume / (4.0 / 3.0 * np.pi * sphere.radius**3))

    def pooled(self, max_resolution: int) -> VisualHull:
        """The hull on a grid of at most `max_resolution` voxels per axis (a coarse voxel is occupied when
        any of the fine ones it covers is)."""
        factor = -(-max(self.occupancy.shape) // max_resolution)
        if factor <= 1:
            return self
        pad = [(0, -n % factor) for n in self.occupancy.shape]
        occ = np.pad(self.occupancy, pad)
        shape = [n // factor for n in occ.shape]
        occ = occ.reshape(shape[0], factor, shape[1], factor, shape[2], factor).any(axis=(1, 3, 5))
        return VisualHull(
            occupancy=occ, lower=self.lower + 0.5 * (factor - 1) * self.voxel, voxel=self.voxel * factor
        )


def apply_scale_mat(scene: SceneData, scale_mat: np.ndarray) -> SceneData:
    """The scene (cameras in world units, `scene.scale_mat` ignored) expressed in the frame of `scale_mat`.

    `scale_mat` must be a similarity with positive scale; rotations are unchanged, camera centres become
    inv(scale_mat) @ centre.
    """
    inverse = np.linalg.inv(scale_mat)
    c2w = scene.c2w.copy()
    c2w[:, :3, 3] = scene.c2w[:, :3, 3] @ inverse[:3, :3].T + inverse[:3, 3]
    scale = np.cbrt(np.linalg.det(scale_mat[:3, :3]))
    c2w[:, :3, :3] = np.einsum("ij,njk->nik", inverse[:3, :3] * scale, scene.c2w[:, :3, :3])
    return SceneData(
        images=scene.images,
        masks=scene.masks,
        intrinsics=scene.intrinsics,
        c2w=c2w,
        scale_mat=np.asarray(scale_mat, dtype=np.float64),
        image_names=scene.image_names,
        root=scene.root,
        has_masks=scene.has_masks,
        composited_on=scene.composited_on,
    )


def stored_scale_mat(root: Path, num_views: int, camera_file: str = "cameras.npz") -> np.ndarray | None:
    """The `scale_mat_0` of `root/camera_file` (written by `nsr data normalize`), or None when absent.

    Raises:
        DataError: when the file exists but is unreadable or holds a different number of views.
    """
    path = Path(root) / camera_file
    if not path.is_file():
        return None
    if not zipfile.is_zipfile(path):
        raise DataError(path, "unreadable camera file: not an .npz (zip) archive")
    with np.load(path, allow_pickle=False) as npz:
        count = sum(key.startswith("world_mat_") and not key.startswith("world_mat_inv") for key in npz.files)
        if "scale_mat_0" not in npz.files:
            raise DataError(path, "missing key scale_mat_0", "run `nsr data normalize` to write it")
        scale = np.asarray(npz["scale_mat_0"], dtype=np.float64)
    if count != num_views:
        raise DataError(
            path, f"count mismatch: {count} cameras for {num_views} views", "rerun `nsr data normalize`"
        )
    if scale.shape != (4, 4) or not np.all(np.isfinite(scale)) or np.linalg.det(scale[:3, :3]) <= 0:
        raise DataError(path, "scale_mat_0 is not a finite 4x4 similarity with positive scale")
    return scale


def read_world_cameras(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """World-unit K (N, 3, 3), c2w (N, 4, 4) of the `world_mat_i` of an IDR camera npz, and its
    `scale_mat_0` (None when absent: a scene still to normalise).

    Raises:
        DataError: for a missing or unreadable file, missing or singular world_mat_i.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "camera file not found")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "unreadable camera file: not an .npz (zip) archive")
    with np.load(path, allow_pickle=False) as npz:
        count = sum(1 for key in npz.files if key.startswith("world_mat_") and key[10:].isdigit())
        if count == 0:
            raise DataError(path, "no world_mat_i keys")
        ks, poses = [], []
        for i in range(count):
            if f"world_mat_{i}" not in npz.files:
                raise DataError(path, f"missing key world_mat_{i}")
            try:
                k, c2w = decompose_projection(np.asarray(npz[f"world_mat_{i}"], dtype=np.float64))
            except ValueError as err:
                raise DataError(path, f"world_mat_{i}: {err}") from None
            ks.append(k)
            poses.append(c2w)
        scale = np.asarray(npz["scale_mat_0"], dtype=np.float64) if "scale_mat_0" in npz.files else None
    return np.stack(ks), np.stack(poses), scale


# --- Sparse points ---------------------------------------------------------------------------------


def sphere_from_points(
    points: np.ndarray,
    track_lengths: np.ndarray | None = None,
    min_track: int = 3,
    mad_factor: float = 4.0,
    percentile: float = 99.0,
    margin: float = 1.1,
    path: Path | str = "points3D",
) -> tuple[Sphere, int]:
    """Robust bounding sphere of a sparse point cloud (COLMAP points3D), and how many points were kept.

    Points seen by fewer than `min_track` images are dropped; then points farther from the median point than
    median + `mad_factor` x 1.4826 x MAD of the distances; then the farthest (100 - percentile) %. The sphere
    is centred on the kept points' bounding box and reaches the farthest kept point, times `margin`.

    Raises:
        DataError: when fewer than 4 points survive.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    keep = np.all(np.isfinite(points), axis=1)
    if track_lengths is not None:
        keep &= np.asarray(track_lengths) >= min_track
    kept = points[keep]
    if len(kept) >= 4:
        distance = np.linalg.norm(kept - np.median(kept, axis=0), axis=1)
        median = np.median(distance)
        mad = 1.4826 * np.median(np.abs(distance - median))
        kept = kept[distance <= median + mad_factor * max(mad, 1e-12)]
    if len(kept) >= 4 and percentile < 100:
        distance = np.linalg.norm(kept - np.median(kept, axis=0), axis=1)
        kept = kept[distance <= np.percentile(distance, percentile)]
    if len(kept) < 4:
        raise DataError(
            path,
            f"only {len(kept)} sparse points are seen by >= {min_track} images",
            "lower --min-track or use --method hull with masks",
        )
    centre = 0.5 * (kept.min(axis=0) + kept.max(axis=0))
    radius = np.linalg.norm(kept - centre, axis=1).max() * margin
    return Sphere(centre=centre, radius=float(radius)), len(kept)


# --- Visual hull -----------------------------------------------------------------------------------


def _project(points: np.ndarray, intrinsics: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, 2) pixel (column, row) and (M,) depth of world points in one camera."""
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = cam @ intrinsics.T
        uv = uvw[:, :2] / uvw[:, 2:3]
    return uv, depth


def _carve(
    points: np.ndarray,
    masks: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    max_miss_fraction: float,
    min_seen_fraction: float,
    progress: Progress | None = None,
) -> np.ndarray:
    """(M,) bool: points inside the masks of (nearly) every view that sees them."""
    num_views, height, width = masks.shape
    seen = np.zeros(len(points), dtype=np.int32)
    missed = np.zeros(len(points), dtype=np.int32)
    alive = np.arange(len(points))  # voxels that can still survive: too many misses can never be undone
    for view in range(num_views):
        uv, depth = _project(points[alive], intrinsics[view], c2w[view])
        col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
        inside = (depth > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
        seen[alive] += inside
        hit = np.zeros(len(alive), dtype=bool)
        hit[inside] = masks[view, row[inside].astype(np.int64), col[inside].astype(np.int64)]
        missed[alive] += inside & ~hit
        alive = alive[missed[alive] <= max_miss_fraction * num_views]
        if progress is not None:
            progress(view + 1, num_views)
    return (seen >= max(1, min_seen_fraction * num_views)) & (missed <= max_miss_fraction * seen)


def _axes_centre(c2w: np.ndarray) -> np.ndarray:
    """The world point nearest (least squares) to all optical axes."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for pose in c2w:
        d = pose[:3, 2] / np.linalg.norm(pose[:3, 2])
        projector = np.eye(3) - np.outer(d, d)
        a += projector
        b += projector @ pose[:3, 3]
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _grid(lower: np.ndarray, upper: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Cubic grid of `resolution`^3 voxel centres covering [lower, upper]: (points, first centre, voxel)."""
    voxel = float((upper - lower).max() / resolution)
    centre = 0.5 * (lower + upper)
    first = centre - 0.5 * voxel * (resolution - 1)
    index = np.arange(resolution) * voxel
    grid = np.stack(np.meshgrid(index, index, index, indexing="ij"), axis=-1).reshape(-1, 3) + first
    return grid, first, voxel


def carve_visual_hull(
    masks: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    resolution: int = 128,
    max_miss_fraction: float = 0.05,
    min_seen_fraction: float | None = None,
    progress: Progress | None = None,
    path: Path | str = "mask",
) -> VisualHull:
    """Carve the visual hull of masked views with world-unit cameras.

    Args:
        masks: (N, H, W) bool object masks.
        intrinsics: (N, 3, 3) K (integer pixel centres). c2w: (N, 4, 4) world camera-to-world poses.
        resolution: voxels per axis of the final grid (over the hull's bounding box).
        max_miss_fraction: a voxel survives being outside the masks of this fraction of the views that see it.
        min_seen_fraction: a voxel must project into at least this fraction of the images. Default
            1 - max_miss_fraction: the object is in every image (the IDR convention), so lying outside a
            view's frame counts like lying outside its mask; lower it for captures with partial views.
        progress: called with (done, total) views over all passes.

    Raises:
        DataError: when nothing survives (masks and cameras disagree) or the hull is unbounded.
    """
    num_views, height, width = masks.shape
    if min_seen_fraction is None:
        min_seen_fraction = 1.0 - max_miss_fraction
    centre = _axes_centre(c2w)
    distance = np.linalg.norm(c2w[:, :3, 3] - centre, axis=1)
    half_fov = 0.5 * np.hypot(width, height) / intrinsics[:, 0, 0]
    half = float(min(np.median(distance * half_fov), 0.9 * distance.min()))
    passes, done = 6, 0

    def step(_: int, __: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, passes * num_views)

    coarse = 48
    for _ in range(passes - 1):
        grid, first, voxel = _grid(centre - half, centre + half, coarse)
        keep = _carve(grid, masks, intrinsics, c2w, max_miss_fraction, min_seen_fraction, step)
        if not keep.any():
            raise DataError(
                path,
                "the visual hull is empty: no point projects inside enough of the masks",
                "check that masks and cameras belong together (mask = object, white)",
            )
        index = np.argwhere(keep.reshape(coarse, coarse, coarse))
        if index.min() > 0 and index.max() < coarse - 1:
            break
        half *= 2.0
        if half > 10.0 * distance.max():
            raise DataError(
                path, "the visual hull is unbounded: the masks cover the images' borders in all views"
            )
    lower = first + (index.min(axis=0) - 1) * voxel
    upper = first + (index.max(axis=0) + 1) * voxel
    grid, first, voxel = _grid(lower, upper, resolution)
    passes = done // num_views + 1
    keep = _carve(grid, masks, intrinsics, c2w, max_miss_fraction, min_seen_fraction, step)
    if not keep.any():
        raise DataError(path, "the visual hull is empty at full resolution (masks of thin parts disagree)")
    return VisualHull(occupancy=keep.reshape(resolution, resolution, resolution), lower=first, voxel=voxel)


FACING_COSINE = 0.2
"""`visible_surface` counts a hull voxel as seen when a ray meets it at least this cosine from grazing
(within about 78 degrees of the surface normal). A hull carved from one side runs out behind the object
in faces that contain the silhouette rays of the outermost cameras: those cameras and their neighbours see
them edge-on, and counting such grazing hits would put the back of the hull into the seen surface."""


def smallest_enclosing_sphere(points: np.ndarray) -> Sphere:
    """The smallest sphere containing (M, 3) points (M >= 1): min r subject to |p - c| <= r, solved on
    the vertices of their convex hull (SLSQP, which converges in a few iterations for this convex problem)."""
    from scipy.optimize import minimize
    from scipy.spatial import ConvexHull, QhullError

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    with contextlib.suppress(QhullError, ValueError):  # fewer than 4 points, or all in a plane: use them all
        points = points[ConvexHull(points).vertices]
    start = 0.5 * (points.min(axis=0) + points.max(axis=0))
    scale = max(float(np.linalg.norm(points - start, axis=1).max()), 1e-12)
    unit = (points - start) / scale  # solve in a unit frame: SLSQP's tolerances are absolute

    def gaps(x: np.ndarray) -> np.ndarray:
        return x[3] - np.linalg.norm(unit - x[:3], axis=1)

    def gaps_jacobian(x: np.ndarray) -> np.ndarray:
        offset = unit - x[:3]
        norm = np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-12)
        return np.concatenate([offset / norm, np.ones((len(unit), 1))], axis=1)

    result = minimize(
        lambda x: x[3],
        np.array([0.0, 0.0, 0.0, 1.0]),
        jac=lambda x: np.array([0.0, 0.0, 0.0, 1.0]),
        constraints=[{"type": "ineq", "fun": gaps, "jac": gaps_jacobian}],
        method="SLSQP",
        options={"maxiter": 200, "ftol": 1e-12},
    )
    centre = result.x[:3] if np.all(np.isfinite(result.x)) else np.zeros(3)
    radius = float(np.linalg.norm(unit - centre, axis=1).max())  # exact containment whatever the solver did
    return Sphere(centre=start + scale * centre, radius=scale * radius)


def visible_surface(
    hull: VisualHull,
    masks: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    max_resolution: int = 64,
    min_cosine: float = FACING_COSINE,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The voxels of the hull that the cameras see, and by how many views.

    The hull is pooled to at most `max_resolution` voxels per axis; in each view, rays through its mask
    pixels (about a voxel apart at the hull's distance) march through the grid in half-voxel steps
    and mark the first occupied voxel they reach, when they meet it at a cosine of at least `min_cosine`
    with its outward normal (the gradient of the occupancy smoothed over a voxel).

    Args:
        masks: (N, H, W) bool. intrinsics: (N, 3, 3) K (integer pixel centres). c2w: (N, 4, 4) world poses.
        progress: called with (done, total) views.

    Returns:
        points (M, 3) world centres of the (pooled) voxels seen by at least one view, and views (M,) int,
        the number of views that see each.
    """
    coarse = hull.pooled(max_resolution)
    occ = coarse.occupancy
    shape = np.array(occ.shape)
    low = coarse.lower - 0.5 * coarse.voxel
    high = coarse.lower + (shape - 0.5) * coarse.voxel
    middle = 0.5 * (low + high)
    step = 0.5 * coarse.voxel
    counts = np.zeros(occ.shape, dtype=np.int32)
    num_views = len(c2w)
    from scipy.ndimage import gaussian_filter

    normals = -np.stack(np.gradient(gaussian_filter(occ.astype(np.float64), sigma=1.0)), axis=-1)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    for view in range(num_views):
        k, pose = intrinsics[view], c2w[view]
        origin = pose[:3, 3]
        distance = max(float(np.linalg.norm(middle - origin)), 1e-12)
        spacing = max(1, int(coarse.voxel * k[0, 0] / distance))
        rows, cols = np.nonzero(masks[view, ::spacing, ::spacing])
        pixels = np.stack([cols * spacing, rows * spacing, np.ones_like(rows)], axis=-1).astype(np.float64)
        dirs = np.linalg.solve(k, pixels.T).T @ pose[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_low, t_high = (low - origin) / dirs, (high - origin) / dirs
        enter = np.nanmax(np.minimum(t_low, t_high), axis=1).clip(min=0.0)
        leave = np.nanmin(np.maximum(t_low, t_high), axis=1)
        crossing = np.flatnonzero(leave > enter)
        seen = np.zeros(occ.shape, dtype=bool)
        for start in range(0, len(crossing), 4096):
            rays = crossing[start : start + 4096]
            samples = int(np.ceil((leave[rays] - enter[rays]).max() / step)) + 1
            t = enter[rays, None] + step * np.arange(samples)
            index = np.floor((origin + dirs[rays, None, :] * t[..., None] - low) / coarse.voxel).astype(
                np.int64
            )
            inside = np.all((index >= 0) & (index < shape), axis=-1) & (t <= leave[rays, None])
            index = np.minimum(np.maximum(index, 0), shape - 1)
            hit = occ[index[..., 0], index[..., 1], index[..., 2]] & inside
            found = np.flatnonzero(hit.any(axis=1))
            first = index[found, hit[found].argmax(axis=1)]
            facing = -np.einsum("mj,mj->m", normals[first[:, 0], first[:, 1], first[:, 2]], dirs[rays[found]])
            first = first[facing >= min_cosine]
            seen[first[:, 0], first[:, 1], first[:, 2]] = True
        counts += seen
        if progress is not None:
            progress(view + 1, num_views)
    cells = np.argwhere(counts > 0)
    return coarse.lower + cells * coarse.voxel, counts[counts > 0]


def hull_sphere(
    hull: VisualHull,
    masks: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    margin: float = 1.1,
    progress: Progress | None = None,
) -> Sphere:
    """The bounding sphere of a visual hull, centred on what the cameras constrain.

    A hull carved from one side only (DTU's cameras all look from the front and above) runs out behind the
    object, where no silhouette ends it, and centring on its bounding box pulls the sphere that way. The
    centre here is that of the smallest sphere containing the hull's surface that the cameras see face-on
    (`visible_surface`, `FACING_COSINE`): exact for a ball seen over more than a hemisphere, and the
    centre of the smallest sphere around the whole hull when cameras surround the object. The radius
    reaches the farthest voxel corner of the whole hull, times `margin`: the sphere contains the hull.
    What the cameras never see stays a guess: the object's unseen back may reach beyond the seen
    surface's sphere (the radius still covers it, as far as the hull goes).
    """
    points, _ = visible_surface(hull, masks, intrinsics, c2w, progress=progress)
    if len(points) == 0:
        return hull.bounding_sphere(margin)
    return hull.bounding_sphere(margin, centre=smallest_enclosing_sphere(points).centre)


def sphere_from_masks(
    masks: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    resolution: int = 64,
    margin: float = 1.1,
    progress: Progress | None = None,
    path: Path | str = "mask",
) -> Sphere:
    """`carve_visual_hull` then `hull_sphere`: the bounding sphere of masked views (as loaders need it).

    Args:
        progress: called with (done, total) over both phases (carving passes, then the seen surface).

    Raises:
        DataError: as `carve_visual_hull`.
    """
    carved = 0

    def carving(done: int, total: int) -> None:
        nonlocal carved
        carved = done
        if progress is not None:
            progress(done, total + len(c2w))

    def centring(done: int, total: int) -> None:
        if progress is not None:
            progress(carved + done, carved + total)

    hull = carve_visual_hull(masks, intrinsics, c2w, resolution, progress=carving, path=path)
    return hull_sphere(hull, masks, intrinsics, c2w, margin, progress=centring)


def hull_silhouette_iou(
    hull: VisualHull,
    masks: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    progress: Progress | None = None,
) -> np.ndarray:
    """(N,) IoU between each mask and the projection of the hull (every occupied voxel's projected box).

    Surface voxels only are splatted (interior voxels project inside them); each covers the pixel centres
    inside the bounding box of its 8 projected corners, so the silhouette errs by under a pixel per edge.
    """
    occ = hull.occupancy
    padded = np.pad(occ, 1)
    interior = occ.copy()
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    points = hull.lower + np.argwhere(occ & ~interior) * hull.voxel
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * 0.5 * hull.voxel
    num_views, height, width = masks.shape
    ious = np.zeros(num_views)
    for view in range(num_views):
        uv = np.stack([_project(points + c, intrinsics[view], c2w[view])[0] for c in corners])  # (8, M, 2)
        low = np.clip(np.ceil(uv.min(axis=0) - 1e-9), 0, [width, height]).astype(np.int64)
        high = np.clip(np.floor(uv.max(axis=0) + 1e-9), -1, [width - 1, height - 1]).astype(np.int64)
        ok = np.all(high >= low, axis=1)
        low, high = low[ok], high[ok]
        span = (high - low).max(initial=0) + 1
        silhouette = np.zeros((height, width), dtype=bool)
        for dy in range(span):
            for dx in range(span):
                sel = (low[:, 0] + dx <= high[:, 0]) & (low[:, 1] + dy <= high[:, 1])
                silhouette[low[sel, 1] + dy, low[sel, 0] + dx] = True
        union = np.count_nonzero(silhouette | masks[view])
        ious[view] = np.count_nonzero(silhouette & masks[view]) / max(union, 1)
        if progress is not None:
            progress(view + 1, num_views)
    return ious
