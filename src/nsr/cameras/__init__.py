"""Camera model: projection decomposition and ray generation."""

from nsr.cameras.projection import compose_projection, decompose_projection
from nsr.cameras.rays import pixel_grid, pixel_rays, scale_intrinsics

__all__ = ["compose_projection", "decompose_projection", "pixel_grid", "pixel_rays", "scale_intrinsics"]
