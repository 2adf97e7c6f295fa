"""Ray generation for pinhole cameras (OpenCV frame, pixel centres at integer coordinates)."""

from __future__ import annotations

import numpy as np
import torch


def pixel_grid(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """All pixel coordinates of an image, row-major.

    Returns:
        (H * W, 2) float tensor of (x = column, y = row); pixel centres are integers.
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def pixel_rays(
    intrinsics: torch.Tensor, c2w: torch.Tensor, uv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixels.

    Args:
        intrinsics: (3, 3) or (N, 3, 3) camera matrices K.
        c2w: (4, 4) or (N, 4, 4) camera-to-world transforms (or (N, 3, 4)).
        uv: (N, 2) pixel coordinates (x, y).

    Returns:
        origins (N, 3) camera centres and directions (N, 3) unit vectors, both differentiable in c2w.
    """
    n = uv.shape[0]
    if intrinsics.dim() == 2:
        intrinsics = intrinsics.expand(n, 3, 3)
    if c2w.dim() == 2:
        c2w = c2w.expand(n, *c2w.shape)
    fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
    cx, cy, skew = intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 0, 1]
    y_cam = (uv[:, 1] - cy) / fy
    x_cam = (uv[:, 0] - cx - skew * y_cam) / fx
    d_cam = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1)
    directions = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return c2w[:, :3, 3], directions


def scale_intrinsics(intrinsics: np.ndarray, factor: float) -> np.ndarray:
    """Intrinsics of an image resized by `factor` (0.5 = half size), integer-centre convention.

    A pixel centre at x maps to (x + 0.5) * factor - 0.5.
    """
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    k[:2, :3] *= factor
    k[0, 2] += 0.5 * factor - 0.5
    k[1, 2] += 0.5 * factor - 0.5
    return k
