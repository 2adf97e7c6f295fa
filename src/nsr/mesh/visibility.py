"""What the training cameras see as empty space, to fill hidden pockets of an SDF (at mesh extraction,
and while training: nsr.engine.pockets).

An SDF learned from images is constrained only where the cameras look: along each ray, empty space up to
the first surface. Behind that surface nothing is observed, so a positive pocket inside the object (a
bubble or a tunnel with a closed-off mouth) costs no loss and marching cubes turns it into inner sheets.
Runs with trained cameras leave such pockets unless they are filled while training (hash-grid runs on
Spot from 3 deg / 3% noise: they were most of the Chamfer gap to the same run with fixed cameras,
benchmarks/history/2026-11.md, "Trainable cameras"); runs with fixed cameras show few. Filling what is
positive, seen as empty by no camera and enclosed by the surface removes them: a point counts as seen
empty when some camera sees it in front of the first surface along its ray, and as enclosed when rays in
14 directions from it all meet the surface (so the open space behind a one-sided capture, as DTU's, stays
empty).

The depth maps are rendered from the model itself (its sphere tracer), at reduced resolution, and
min-pooled over a few pixels, so that a point near a silhouette or behind a surface edge is not called
empty because of the pixel grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nsr.cameras.rays import pixel_grid, pixel_rays, scale_intrinsics
from nsr.renderers.sphere_tracing import SDFFunction, SphereTracer, SphereTracerConfig


@dataclass
class DepthViews:
    """Depth maps of a surface from N cameras (normalised frame)."""

    c2w: torch.Tensor
    """(N, 4, 4) camera-to-world transforms (OpenCV axes)."""
    intrinsics: torch.Tensor
    """(N, 3, 3) pinhole matrices of the depth maps' pixel grid."""
    depth: torch.Tensor
    """(N, H, W) distance along each pixel's unit ray to the first surface point, inf where the ray
    meets none; min-pooled over `pool` pixels."""

    def seen_empty(self, points: torch.Tensor, tolerance: float) -> torch.Tensor:
        """(M,) bool: the points that some camera sees, inside its image, in front of the surface
        (farther than the first surface point by at most `tolerance`)."""
        seen = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
        for inside, distance, surface, _ in self._project(points):
            seen |= inside & (distance < surface + tolerance)
        return seen

    def sees(self, points: torch.Tensor, tolerance: float, pixel_slack: float = 4.0) -> torch.Tensor:
        """(N, M) bool: camera n sees surface point m: inside its image and not behind the first surface
        along its ray by more than `tolerance` plus `pixel_slack` pixel footprints (the depth maps are
        min-pooled, so a surface seen at a grazing angle reads up to a pixel's footprint times the slope
        nearer than it is)."""
        rows = [
            inside & (distance <= surface + tolerance + pixel_slack * distance / focal)
            for inside, distance, surface, focal in self._project(points)
        ]
        return torch.stack(rows) if rows else torch.zeros(0, points.shape[0], dtype=torch.bool)

    def _project(self, points: torch.Tensor):
        """Per camera: (inside (M,) bool: in front and inside the image, distance (M,) from the centre,
        the depth map at the point's pixel (M,), the focal length in pixels)."""
        height, width = self.depth.shape[1:]
        for c2w, k, depth in zip(self.c2w, self.intrinsics, self.depth):
            rotation, centre = c2w[:3, :3], c2w[:3, 3]
            local = (points - centre) @ rotation  # world -> camera (rows: R^T (x - c))
            z = local[:, 2]
            front = z > 1e-6
            z = torch.where(front, z, torch.ones_like(z))
            u = torch.round((k[0, 0] * local[:, 0] + k[0, 1] * local[:, 1]) / z + k[0, 2]).long()
            v = torch.round(k[1, 1] * local[:, 1] / z + k[1, 2]).long()
            inside = front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            surface = depth[v.clamp(0, height - 1), u.clamp(0, width - 1)]
            yield inside, (points - centre).norm(dim=-1), surface, float(k[1, 1])


@torch.no_grad()
def render_depth_views(
    sdf_fn: SDFFunction,
    tracer: SphereTracer,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    height: int,
    width: int,
    max_side: int = 200,
    pool: int = 3,
    device: torch.device | str = "cpu",
    chunk: int = 65536,
    progress: Callable[[int, int], None] | None = None,
) -> DepthViews:
    """Trace depth maps of the SDF from every camera, at most `max_side` pixels on the long side.

    Args:
        intrinsics: (N, 3, 3) and c2w (N, 4, 4) of the cameras at images of height x width.
        pool: min-pooling window in pixels (odd; 1: none).
        progress: optional callable(done, total) counting the views traced.
    """
    if pool < 1 or pool % 2 == 0:
        raise ValueError(f"pool must be a positive odd number of pixels, got {pool}")
    factor = min(1.0, max_side / max(height, width))
    h, w = max(1, round(height * factor)), max(1, round(width * factor))
    ks = np.stack([scale_intrinsics(k, factor) for k in intrinsics])
    ks_t = torch.as_tensor(ks, dtype=torch.float32, device=device)
    c2w_t = torch.as_tensor(np.asarray(c2w)[:, :4, :4], dtype=torch.float32, device=device)
    uv = pixel_grid(h, w, device=device)
    maps = []
    for k, pose in zip(ks_t, c2w_t):
        depth = torch.empty(uv.shape[0], device=device)
        for start in range(0, uv.shape[0], chunk):
            origins, directions = pixel_rays(k, pose, uv[start : start + chunk])
            trace = tracer.trace(sdf_fn, origins, directions)
            depth[start : start + chunk] = torch.where(
                trace.hit, trace.depth, torch.full_like(trace.depth, torch.inf)
            )
        maps.append(depth.reshape(h, w))
        if progress is not None:
            progress(len(maps), len(c2w_t))
    depth = torch.stack(maps)
    if pool > 1:
        depth = -F.max_pool2d(-depth[:, None], pool, stride=1, padding=pool // 2)[:, 0]
    return DepthViews(c2w=c2w_t, intrinsics=ks_t, depth=depth)


_AROUND = torch.tensor(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]
    + [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)],
    dtype=torch.float32,
)
_AROUND = _AROUND / _AROUND.norm(dim=-1, keepdim=True)
"""14 directions (the axes and the cube diagonals) along which a pocket point must meet the surface."""


def enclosed(
    sdf_fn: SDFFunction, points: torch.Tensor, bounding_radius: float, chunk: int = 16384
) -> torch.Tensor:
    """(M,) bool: points from which a ray in each of 14 directions meets the surface before leaving the
    bounding sphere (inside a pocket, not in open space that merely lies behind the object)."""
    tracer = SphereTracer(
        SphereTracerConfig(bounding_radius=bounding_radius, sphere_tracing_iters=20, num_samples=24,
                           num_secant_steps=0)
    )  # fmt: skip
    around = _AROUND.to(points.device)
    result = []
    for part in points.split(chunk):
        origins = part.repeat_interleave(len(around), dim=0)
        directions = around.repeat(part.shape[0], 1)
        hit = tracer.trace(sdf_fn, origins, directions).hit
        result.append(hit.reshape(part.shape[0], len(around)).all(dim=1))
    return torch.cat(result) if result else torch.zeros(0, dtype=torch.bool, device=points.device)


def hidden_pockets(
    sdf_fn: SDFFunction,
    views: DepthViews,
    points: torch.Tensor,
    values: torch.Tensor,
    tolerance: float,
    bounding_radius: float = 1.0,
) -> torch.Tensor:
    """(M,) bool: the points in hidden pockets of the SDF: positive (`values`: the SDF at `points`), seen
    as empty by no camera (to within `tolerance`) and enclosed by the surface (see `enclosed`)."""
    # Narrow each test to the points still in question: positive, then unseen, then enclosed.
    index = (values > 0).nonzero().squeeze(1)
    index = index[~views.seen_empty(points[index], tolerance)]
    if index.numel():
        index = index[enclosed(sdf_fn, points[index], bounding_radius)]
    found = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    found[index] = True
    return found


def fill_unseen(
    sdf_fn: SDFFunction, views: DepthViews, tolerance: float, bounding_radius: float = 1.0
) -> SDFFunction:
    """The SDF with its hidden pockets filled: a positive point that no camera sees as empty and that is
    enclosed by the surface (see `enclosed`) is made negative, |value| kept so that narrow-band extraction
    stays valid. Open space that merely lies behind the object (one-sided captures such as DTU's) is
    not enclosed and stays empty; a tunnel is capped near its mouth."""

    def filled(x: torch.Tensor) -> torch.Tensor:
        values = sdf_fn(x)
        return torch.where(
            hidden_pockets(sdf_fn, views, x, values, tolerance, bounding_radius), -values, values
        )

    return filled
