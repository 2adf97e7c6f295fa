"""Losses of volume-rendered rays (NeuS): colour L1, mask BCE on the opacity, curvature.

The eikonal term on the samples is `nsr.losses.eikonal_loss(samples.gradients, samples.inside)`.
Every loss here reduces with masks as weights, never by indexing, so none waits on the GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean() if values.numel() else values.sum() * 0.0
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def rgb_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-ray L1 colour error summed over the channels, averaged over the rays (NeuS).

    Args:
        pred, target: (N, 3) rendered and ground-truth colours.
        mask: (N,) bool: average over these rays only (NeuS trained with masks: the colour inside the
            object; outside, the mask loss supervises the opacity). None: every ray (unmasked scenes,
            where the background model explains the rest of the image).
    """
    return _masked_mean((pred - target).abs().sum(-1), mask)


def uniform_background_l1_loss(
    foreground: torch.Tensor, opacity: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """`rgb_l1_loss` of the foreground over a background colour drawn uniformly from [0, 1]^3, in expectation
    over the background, in closed form (no noise). Per channel, with a = foreground - target and b = 1 -
    opacity: E|a + b u| = a + b / 2 where a >= 0, -(a + b / 2) where a + b <= 0, else (a^2 + (a + b)^2) / (2 b).
    Any transparency costs loss (b / 2 when the foreground is right), whatever the target colour.

    Args:
        foreground: (N, 3) the foreground's colour alone, sum(w c).
        opacity: (N,) foreground weight sums.
        target, mask: as `rgb_l1_loss`.
    """
    a = foreground - target
    b = (1.0 - opacity).clamp_min(0.0)[:, None].expand_as(a)
    crossing = (a < 0) & (a + b > 0)  # the background's range straddles the target: b > 0 there
    inside = (a * a + (a + b) ** 2) / (2.0 * torch.where(crossing, b, torch.ones_like(b)))
    outside = (a + 0.5 * b).abs()
    return _masked_mean(torch.where(crossing, inside, outside).sum(-1), mask)


def opacity_mask_loss(opacity: torch.Tensor, object_mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the foreground opacity (clipped to [1e-3, 1 - 1e-3]) and the object
    mask, averaged over the rays (NeuS).

    Args:
        opacity: (N,) foreground weight sums.
        object_mask: (N,) bool ground-truth masks.
    """
    if opacity.numel() == 0:
        return opacity.sum() * 0.0
    return F.binary_cross_entropy(opacity.clamp(1e-3, 1.0 - 1e-3), object_mask.to(opacity.dtype))


def curvature_loss(laplacian: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute Laplacian (mean curvature x 2 for an SDF) over the samples (Neuralangelo).

    Args:
        laplacian: (...) Laplacian of the SDF at the samples (`SDFField.with_gradient(..., laplacian=True)`).
        mask: (...) bool, e.g. the samples inside the bounding sphere.
    """
    return _masked_mean(laplacian.abs(), mask)
