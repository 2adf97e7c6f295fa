"""Training losses."""

from nsr.losses.idr import eikonal_loss, mask_loss, rgb_loss
from nsr.losses.photometric import ray_photometric_error
from nsr.losses.volume import curvature_loss, opacity_mask_loss, rgb_l1_loss, uniform_background_l1_loss

__all__ = [
    "curvature_loss",
    "eikonal_loss",
    "mask_loss",
    "opacity_mask_loss",
    "ray_photometric_error",
    "rgb_l1_loss",
    "rgb_loss",
    "uniform_background_l1_loss",
]
