"""Differentiable surface points by implicit differentiation (IDR's sample network)."""

from __future__ import annotations

import torch


def differentiable_surface_points(
    sdf_fn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    depth: torch.Tensor,
) -> torch.Tensor:
    """Surface points x(theta, c, v) whose first derivatives are those of the true intersection.

    With x0 = c + t0 v the traced point (f(x0) = 0), the intersection depth moves to first order as
    t = t0 - (f(c + t0 v; theta) - f0) / (grad f(x0) . v), so gradients reach the network parameters
    theta and, through `origins`/`directions`, the cameras.

    Args:
        sdf_fn: (M, 3) -> (M,) signed distance, differentiable in its parameters.
        origins, directions: (M, 3) rays (may carry gradients to camera parameters).
        depth: (M,) traced depths t0 (no gradient).

    Returns:
        (M, 3) points equal to c + t0 v in value.
    """
    depth = depth.detach()
    with torch.enable_grad():
        x = origins + directions * depth[:, None]
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        f = sdf_fn(x)
        (grad,) = torch.autograd.grad(f.sum(), x, retain_graph=True)
    denom = (grad.detach() * directions.detach()).sum(-1)
    # Grazing rays (denominator ~ 0) would explode: keep their sign, bound their magnitude.
    denom = torch.where(denom.abs() < 1e-3, torch.full_like(denom, -1e-3), denom)
    t = depth - (f - f.detach()) / denom
    return origins + directions * t[:, None]
