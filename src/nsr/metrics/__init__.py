"""Image metrics (MSE, PSNR) and geometry metrics (sampled Chamfer, F-score, normal consistency)."""

from nsr.metrics.geometry import mesh_metrics, sample_surface
from nsr.metrics.image import mse, psnr

__all__ = ["mesh_metrics", "mse", "psnr", "sample_surface"]
