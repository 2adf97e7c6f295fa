"""Training losses."""

from nsr.losses.idr import eikonal_loss, mask_loss, rgb_loss

__all__ = ["eikonal_loss", "mask_loss", "rgb_loss"]
