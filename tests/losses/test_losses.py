import math

import pytest
import torch

from nsr.losses import eikonal_loss, mask_loss, rgb_loss
from nsr.models import IDRLossConfig, mask_alpha


def test_rgb_loss_is_normalised_by_all_rays():
    pred = torch.zeros(2, 3)
    target = torch.full((2, 3), 0.5)
    assert rgb_loss(pred, target, num_rays=10).item() == pytest.approx(2 * 1.5 / 10)
    assert rgb_loss(pred[:0], target[:0], 10).item() == 0.0


def test_eikonal_loss():
    g = torch.tensor([[3.0, 4.0, 0.0], [0.0, 1.0, 0.0]])
    assert eikonal_loss(g).item() == pytest.approx((16 + 0) / 2)


def test_mask_loss_values_and_direction():
    sdf = torch.tensor([0.1, -0.1], requires_grad=True)
    mask = torch.tensor([True, False])
    alpha = 50.0
    loss = mask_loss(sdf, mask, alpha, num_rays=4)
    expected = (math.log1p(math.exp(5.0)) + math.log1p(math.exp(5.0))) / (alpha * 4)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    # An object ray outside the surface is pulled inside (sdf down), a background ray pushed out.
    assert sdf.grad[0] > 0 and sdf.grad[1] < 0


def test_alpha_doubles_at_milestones():
    cfg = IDRLossConfig(alpha_init=50.0, alpha_factor=2.0, alpha_milestones=(10, 20))
    assert [mask_alpha(cfg, s) for s in (0, 9, 10, 19, 20, 1000)] == [50, 50, 100, 100, 200, 200]


def test_eikonal_loss_with_a_mask_averages_the_selected_points():
    g = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    assert eikonal_loss(g, mask).item() == pytest.approx((16 + 0 + 1) / 3)
    assert eikonal_loss(g, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0
    assert eikonal_loss(g).item() == pytest.approx((16 + 0 + 1 + 1) / 4)


def test_volume_rgb_loss_sums_channels_and_averages_rays():
    from nsr.losses import rgb_l1_loss

    pred = torch.zeros(4, 3)
    target = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    assert rgb_l1_loss(pred, target).item() == pytest.approx((1.5 + 1.0 + 0.0 + 0.9) / 4)
    mask = torch.tensor([True, False, True, False])
    assert rgb_l1_loss(pred, target, mask).item() == pytest.approx((1.5 + 0.0) / 2)


def test_opacity_mask_loss_is_the_clipped_bce():
    from nsr.losses import opacity_mask_loss

    opacity = torch.tensor([0.9, 0.2, 1.0, 0.0], requires_grad=True)
    mask = torch.tensor([True, False, True, False])
    loss = opacity_mask_loss(opacity, mask)
    expected = -(math.log(0.9) + math.log(0.8) + 2 * math.log(1 - 1e-3)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    # Object rays are pushed to opaque, background rays to transparent; saturated ones are clipped.
    assert opacity.grad[0] < 0 and opacity.grad[1] > 0 and opacity.grad[2] == 0 and opacity.grad[3] == 0


def test_curvature_loss_is_the_mean_absolute_laplacian():
    from nsr.losses import curvature_loss

    lap = torch.tensor([[2.0, -4.0], [1.0, 100.0]])
    assert curvature_loss(lap).item() == pytest.approx(107 / 4)
    assert curvature_loss(lap, torch.tensor([[True, True], [True, False]])).item() == pytest.approx(7 / 3)


def test_the_uniform_background_loss_is_the_random_backgrounds_expectation():
    """`uniform_background_l1_loss`: the L1 of the foreground over a background drawn uniformly from [0, 1]^3,
    in closed form: the Monte-Carlo mean of `rgb_l1_loss` over many backgrounds, value and gradient, with every
    case of the closed form (the target above, below and inside the background's range), full and zero
    opacity among the rays, and finite gradients there."""
    from nsr.losses import rgb_l1_loss, uniform_background_l1_loss

    torch.manual_seed(0)
    n = 64
    opacity = torch.rand(n)
    opacity[:4], opacity[4:8] = 1.0, 0.0
    foreground = (torch.rand(n, 3) * opacity[:, None]).requires_grad_()
    opacity.requires_grad_()
    target = torch.rand(n, 3)
    mask = torch.rand(n) > 0.2
    exact = uniform_background_l1_loss(foreground, opacity, target, mask)
    grads = torch.autograd.grad(exact, [foreground, opacity])
    assert all(torch.isfinite(g).all() for g in grads)
    draws = 20_000
    background = torch.rand(draws, 1, 3)
    rendered = foreground[None] + (1 - opacity)[None, :, None] * background
    per_draw = (rendered - target).abs().sum(-1)  # (draws, n)
    sampled = (per_draw * mask).sum(-1).mean() / mask.sum()
    torch.testing.assert_close(exact, sampled, rtol=0.01, atol=1e-3)
    sampled_grads = torch.autograd.grad(sampled, [foreground, opacity])
    for g, s in zip(grads, sampled_grads, strict=True):
        torch.testing.assert_close(g, s, rtol=0.05, atol=2e-3)
    # opaque rays see no background: the plain L1
    opaque = torch.ones(n)
    torch.testing.assert_close(
        uniform_background_l1_loss(target * 0.5, opaque, target), rgb_l1_loss(target * 0.5, target)
    )
    # the right colour on a half-transparent ray still costs (1 - opacity) / 2 a channel: E|0.5 u| = 0.25
    half, black = torch.full((n,), 0.5), torch.zeros(n, 3)
    assert uniform_background_l1_loss(black, half, black).item() == pytest.approx(3 * 0.25)
