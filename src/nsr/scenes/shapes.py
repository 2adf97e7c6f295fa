"""Analytic signed distance primitives and their smooth combinations (batched, torch).

Every primitive takes points (M, 3) and returns (M,) signed distances (negative inside), exact
distances unless said otherwise. The smooth combinations use the polynomial smooth minimum, whose
gradient is a convex combination of its inputs' gradients: combining exact distances yields a
1-Lipschitz function that never overestimates the distance, which is what a sphere tracer needs.
"""

from __future__ import annotations

import math

import torch


def sd_sphere(points: torch.Tensor, centre: tuple[float, float, float], radius: float) -> torch.Tensor:
    """Exact distance to a sphere. points (M, 3) -> (M,)."""
    return (points - points.new_tensor(centre)).norm(dim=-1) - radius


def sd_round_box(
    points: torch.Tensor,
    centre: tuple[float, float, float],
    half_extents: tuple[float, float, float],
    radius: float,
) -> torch.Tensor:
    """Exact distance to an axis-aligned box with edges rounded by `radius`. points (M, 3) -> (M,).

    `half_extents` are those of the rounded box itself (they include the rounding).
    """
    q = (points - points.new_tensor(centre)).abs() - points.new_tensor(half_extents) + radius
    outside = q.clamp_min(0.0).norm(dim=-1)
    inside = torch.maximum(torch.maximum(q[:, 0], q[:, 1]), q[:, 2]).clamp_max(0.0)
    return outside + inside - radius


def sd_torus(
    points: torch.Tensor, centre: tuple[float, float, float], major: float, minor: float, axis: int
) -> torch.Tensor:
    """Exact distance to a torus of tube radius `minor` around a circle of radius `major`.

    The circle lies in the plane through `centre` normal to coordinate `axis` (0 = x, 1 = y, 2 = z).
    points (M, 3) -> (M,).
    """
    p = points - points.new_tensor(centre)
    planar = [i for i in range(3) if i != axis]
    ring = p[:, planar].norm(dim=-1) - major
    return torch.stack([ring, p[:, axis]], dim=-1).norm(dim=-1) - minor


def rotate(points: torch.Tensor, centre: tuple[float, float, float], axis: int, angle: float) -> torch.Tensor:
    """Points expressed in a frame rotated by `angle` (radians) about coordinate `axis` through `centre`.

    Evaluating a shape's SDF on the returned points gives the SDF of the shape rotated by -angle; a
    rotation keeps distances exact. points (M, 3) -> (M, 3).
    """
    c, s = math.cos(angle), math.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    origin = points.new_tensor(centre)
    p = points - origin
    out = p.clone()
    out[:, i] = c * p[:, i] - s * p[:, j]
    out[:, j] = s * p[:, i] + c * p[:, j]
    return out + origin


def smooth_union(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum of two SDFs with a fillet of size ~`k` (k = 0: plain union)."""
    if k <= 0:
        return torch.minimum(a, b)
    h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0)
    return torch.lerp(b, a, h) - k * h * (1.0 - h)


def smooth_subtraction(keep: torch.Tensor, cut: torch.Tensor, k: float) -> torch.Tensor:
    """The shape `keep` with `cut` carved out, edges rounded by ~`k` (smooth max of keep and -cut)."""
    return -smooth_union(-keep, cut, k)
