"""Per-ray photometric error: how well one ray's rendering matches its pixel (monitoring, not a loss).

The trainer's camera guard (`nsr.engine.camera_guard`) averages it per training view to find cameras whose
rays disagree with the surface the other cameras agree on, and scores candidate poses of such a camera with
it. Both the models' training losses (`LossOutput.ray_error`) and the guard's evaluation renders use this
one definition, so the two read the same scale.
"""

from __future__ import annotations

import torch


def ray_photometric_error(
    rgb: torch.Tensor,
    target: torch.Tensor,
    opacity: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean absolute colour error of each ray, plus its silhouette disagreement when there are masks.

    With masks: `m * o * mean_c |rgb - target| + |o - m|` (m: the mask, o: the opacity), i.e. the colour
    error where the ray sees the object it should see, and an error of 1 (the largest colour error) where it
    sees object outside the mask or misses the object inside it (IDR: o is 0 or 1; NeuS: soft). Without
    masks (the model renders the whole image): `mean_c |rgb - target|` on every ray.

    Args:
        rgb: (N, 3) rendered colours (only rays with m * o > 0 are read when there are masks).
        target: (N, 3) ground-truth colours in [0, 1].
        opacity: (N,) how much of the ray the object covers, in [0, 1] (needed with a mask).
        mask: (N,) bool object masks, or None when the run trains without masks.

    Returns:
        (N,) errors in [0, 2] (in [0, 1] without masks).
    """
    colour = (rgb - target).abs().mean(-1)
    if mask is None:
        return colour
    if opacity is None:
        raise ValueError("ray_photometric_error needs the opacity when a mask is given")
    m = mask.to(colour.dtype)
    return m * opacity * colour + (opacity - m).abs()
