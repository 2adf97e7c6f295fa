import math

import numpy as np
import pytest
import torch

from nsr.cameras import pixel_grid, pixel_rays
from nsr.cameras.refine import (
    CameraConfigError,
    CameraRefineConfig,
    CameraRefinement,
    PoseNoise,
    PoseNoiseError,
    perturb_poses,
    so3_exp,
)
from nsr.metrics.poses import pose_errors, rotation_errors_deg
from nsr.renderers import SphereTracer, SphereTracerConfig, differentiable_surface_points
from nsr.scenes import default_cameras, default_object_sdf, trace_surface


def test_identity_at_initialisation_exactly():
    _, c2w = default_cameras(6, 32)
    module = CameraRefinement(c2w)
    assert torch.equal(module(), torch.as_tensor(c2w).float())
    assert torch.equal(module(torch.tensor([4, 1])), torch.as_tensor(c2w[[4, 1]]).float())
    np.testing.assert_array_equal(module.poses(), c2w)
    assert torch.equal(module.correction, torch.zeros(6, 6))


def test_so3_exp_matches_rodrigues_and_is_a_rotation():
    omega = torch.tensor([[0.3, -0.2, 0.5], [1e-5, 0.0, -2e-5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    r = so3_exp(omega)
    eye = torch.eye(3, dtype=torch.float64).expand(3, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye, atol=1e-12, rtol=0)
    angles = rotation_errors_deg(r.numpy(), eye.numpy())
    np.testing.assert_allclose(np.radians(angles), omega.norm(dim=1).numpy(), rtol=1e-9, atol=1e-12)
    # Rotating the axis itself leaves it unchanged.
    torch.testing.assert_close(r[0] @ omega[0], omega[0])


def test_correction_is_in_the_camera_frame():
    _, c2w = default_cameras(2, 32)
    module = CameraRefinement(c2w, pivot="camera").double()
    with torch.no_grad():
        module.correction[1, 5] = 0.1  # move along the optical axis (camera z)
        module.correction[1, 2] = 0.2  # roll about the optical axis
    out = module().detach().numpy()
    np.testing.assert_allclose(out[1, :3, 3], c2w[1, :3, 3] + 0.1 * c2w[1, :3, 2], atol=1e-12)
    np.testing.assert_allclose(out[1, :3, 2], c2w[1, :3, 2], atol=1e-12)  # roll keeps the optical axis
    np.testing.assert_allclose(out[0], c2w[0])
    np.testing.assert_allclose(module.poses(), out, atol=1e-12)


def test_scene_pivot_rotation_orbits_the_scene_centre():
    """With pivot="scene" a pure rotation keeps the scene centre at the same camera-frame point."""
    _, c2w = default_cameras(3, 32)
    module = CameraRefinement(c2w, pivot="scene").double()
    with torch.no_grad():
        module.correction[:, :3] = torch.tensor([[0.05, -0.02, 0.03], [0.0, 0.1, 0.0], [-0.04, 0.0, 0.02]])
    out = module().detach().numpy()
    for before, after in zip(c2w, out):
        np.testing.assert_allclose(np.linalg.inv(after)[:3, 3], np.linalg.inv(before)[:3, 3], atol=1e-12)
        assert np.linalg.norm(after[:3, 3] - before[:3, 3]) > 0.05  # the camera moved on its orbit


def test_fixed_views_do_not_move_and_get_no_gradient():
    _, c2w = default_cameras(3, 32)
    module = CameraRefinement(c2w, fixed_views=(0, 2))
    module().sum().backward()
    grad = module.correction.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0
    with pytest.raises(CameraConfigError, match="out of range"):
        CameraRefinement(c2w, fixed_views=(3,))


def _sphere_hits(origins, directions, radius=0.5):
    """Closed-form first intersection depth with a sphere at the origin."""
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - radius**2
    return -b - torch.sqrt(b * b - c)


def test_gradient_through_rays_and_surface_points_matches_finite_differences():
    """d(loss)/d(correction) via the differentiable surface point equals the true intersection's derivative."""
    k = torch.tensor([[40.0, 0.0, 15.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    _, c2w = default_cameras(1, 32)
    uv = torch.tensor([[14.0, 15.0], [17.0, 12.0], [16.0, 19.0]], dtype=torch.float64)
    weights = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0], [2.0, 0.1, 0.4]], dtype=torch.float64)
    module = CameraRefinement(c2w).double()
    with torch.no_grad():
        module.correction.copy_(torch.tensor([[0.01, -0.02, 0.015, 0.02, -0.01, 0.03]]))

    def sdf(x):
        return x.norm(dim=-1) - 0.5

    origins, dirs = pixel_rays(k, module()[0], uv)
    depth = _sphere_hits(origins, dirs).detach()
    points = differentiable_surface_points(sdf, origins, dirs, depth)
    (points * weights).sum().backward()
    analytic = module.correction.grad.clone()
    assert analytic.abs().max() > 1e-3

    def exact_loss(correction):
        with torch.no_grad():
            module.correction.copy_(correction)
            o, d = pixel_rays(k, module()[0], uv)
            return ((o + d * _sphere_hits(o, d)[:, None]) * weights).sum().item()

    base = module.correction.detach().clone()
    numeric = torch.zeros_like(base)
    eps = 1e-6
    for j in range(6):
        step = torch.zeros_like(base)
        step[0, j] = eps
        numeric[0, j] = (exact_loss(base + step) - exact_loss(base - step)) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_pose_noise_is_seeded_and_of_the_requested_magnitude():
    _, c2w = default_cameras(12, 32)
    noise = PoseNoise.parse("3,0.03,5")
    assert noise == PoseNoise(3.0, 0.03, 5)
    a, b = perturb_poses(c2w, noise), perturb_poses(c2w, noise)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, perturb_poses(c2w, PoseNoise(3.0, 0.03, 6)))
    errors = pose_errors(a, c2w, align=False)
    np.testing.assert_allclose(errors.rotation_deg, 3.0, rtol=1e-9)
    np.testing.assert_allclose(errors.centre_rel, 0.03, rtol=1e-9)
    axes = np.stack([np.linalg.svd(a[i, :3, :3] @ c2w[i, :3, :3].T - np.eye(3))[2][-1] for i in range(12)])
    assert np.abs(axes @ axes.T - np.eye(12)).max() > 0.1  # the axes differ between cameras
    assert PoseNoise.parse(" 2 , 0.02 ") == PoseNoise(2.0, 0.02, 0)


@pytest.mark.parametrize("text", ["3", "3,0.03,1,2", "a,b", "3,-0.1", "3,0.03,1.5", "200,0.01", "nan,0", ""])
def test_bad_pose_noise_is_a_clear_error(text):
    with pytest.raises(PoseNoiseError, match="pose noise"):
        PoseNoise.parse(text)


def test_config_warmup_and_validation():
    config = CameraRefineConfig(warmup_until=0.1, lr_milestones=(0.3,), lr_factor=0.1)
    assert [config.lr_factor_at(p) for p in (0, 0.05, 0.1, 0.299)] == [0.0, 0.5, 1.0, 1.0]
    assert config.lr_factor_at(0.3) == pytest.approx(0.1)
    frozen = CameraRefineConfig(warmup_until=0.1, warmup="frozen")
    assert [frozen.lr_factor_at(p) for p in (0, 0.099, 0.1)] == [0.0, 0.0, 1.0]
    with pytest.raises(CameraConfigError, match="warmup_until"):
        CameraRefineConfig(warmup_until=2.0).validate()
    with pytest.raises(CameraConfigError, match="warmup"):
        CameraRefineConfig(warmup="cosine").validate()
    with pytest.raises(PoseNoiseError):
        CameraRefineConfig(pose_noise="3").validate()


def test_optimising_only_the_cameras_recovers_the_poses():
    """Geometry fixed (the default object's analytic SDF): pull each pixel's traced surface point onto the
    ground-truth one, through the rays and the differentiable surface point. Known answer: the
    ground-truth poses; 3 deg / 3% noise on 4 cameras falls to a fraction."""
    size, views = 16, 4
    k, c2w = default_cameras(views, size)
    gt_points, gt_hit = trace_surface(k, c2w, size, size)
    module = CameraRefinement(perturb_poses(c2w, PoseNoise(3.0, 0.03, 1)))
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
    tracer = SphereTracer(SphereTracerConfig(num_samples=32))
    kt = torch.as_tensor(k).float()
    view = torch.arange(views).repeat_interleave(size * size)
    pix = torch.arange(size * size).repeat(views)
    uv = pixel_grid(size, size)[pix]
    before = pose_errors(module.poses(), c2w, align=False)
    for _ in range(100):
        origins, dirs = pixel_rays(kt[view], module()[view], uv)
        trace = tracer.trace(default_object_sdf, origins.detach(), dirs.detach())
        use = trace.hit & gt_hit[view, pix]
        x = differentiable_surface_points(default_object_sdf, origins[use], dirs[use], trace.depth[use])
        loss = (x - gt_points[view[use], pix[use]]).pow(2).sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = pose_errors(module.poses(), c2w, align=False)
    assert before.rotation_deg.mean() == pytest.approx(3.0)
    assert after.rotation_deg.mean() < 0.3 * before.rotation_deg.mean()
    assert after.centre_rel.mean() < 0.3 * before.centre_rel.mean()
    assert math.isfinite(loss.item())
