"""IDR losses: masked colour L1, eikonal, and the mask loss with its sharpness alpha."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rgb_loss(
    pred: torch.Tensor, target: torch.Tensor, num_rays: int, select: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum of per-ray L1 colour errors (summed over channels) over the surface rays, divided by all rays.

    Args:
        pred, target: (M, 3) colours of the rays that hit the surface inside the object mask.
        num_rays: N, the number of rays in the batch (IDR normalisation).
        select: optional (M,) bool: only these rays count (fixed shapes instead of indexing).
    """
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    error = (pred - target).abs().sum(-1)
    if select is not None:
        error = torch.where(select, error, 0.0)
    return error.sum() / num_rays


def eikonal_loss(gradients: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (|grad f| - 1)^2 over (..., 3) gradients.

    Args:
        mask: (...) bool or float weights: the mean over the selected points (a volume renderer's samples
            inside the bounding sphere), computed without indexing (no host synchronisation); 0 when
            none is selected.
    """
    if gradients.numel() == 0:
        return gradients.sum() * 0.0
    error = (gradients.norm(dim=-1) - 1.0) ** 2
    if mask is None:
        return error.mean()
    mask = mask.to(error.dtype)
    return (error * mask).sum() / mask.sum().clamp_min(1.0)


def mask_loss(
    sdf: torch.Tensor,
    object_mask: torch.Tensor,
    alpha: float | torch.Tensor,
    num_rays: int,
    select: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1 / alpha) * sum BCE(sigmoid(-alpha * sdf), mask) / N over the rays outside (hit and object).

    Args:
        sdf: (M,) SDF at each such ray's minimal-SDF point.
        object_mask: (M,) ground-truth mask of those rays.
        alpha: the sharpness (a number, or a 0-d tensor a captured CUDA graph reads).
        select: optional (M,) bool: only these rays count (fixed shapes instead of indexing).
    """
    if sdf.shape[0] == 0:
        return sdf.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits(-alpha * sdf, object_mask.to(sdf.dtype), reduction="none")
    if select is not None:
        bce = torch.where(select, bce, 0.0)
    return bce.sum() / (alpha * num_rays)
