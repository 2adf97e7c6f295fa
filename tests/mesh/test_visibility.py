"""Filling what no camera sees: a hidden bubble goes, a visible bite stays (analytic SDFs, known answers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import ball, ring_of_cameras, with_bite, with_bubble
from nsr.mesh import extract_mesh
from nsr.mesh.visibility import fill_unseen, render_depth_views
from nsr.renderers import SphereTracer, SphereTracerConfig


def views_of(sdf):
    intrinsics, c2w = ring_of_cameras()
    tracer = SphereTracer(SphereTracerConfig())
    return render_depth_views(sdf, tracer, intrinsics, c2w, 64, 64)


def test_depth_maps_match_the_analytic_sphere():
    views = views_of(ball)
    _, c2w = ring_of_cameras()
    expected = torch.tensor(np.linalg.norm(c2w[:, :3, 3], axis=1) - 0.6, dtype=torch.float32)
    # pixel (32, 32) is half a pixel off the optical axis through the origin: the depth is the same to 1e-3
    assert torch.allclose(views.depth[:, 32, 32], expected, atol=2e-3)
    assert torch.isinf(views.depth[:, 0, 0]).all()  # corners miss the ball


def test_points_in_front_of_the_surface_are_seen_and_hidden_ones_are_not():
    views = views_of(ball)
    points = torch.tensor(
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.3], [0.0, 0.9, 0.0], [1.5, 0.0, 0.0], [0.65, 0.0, 0.0]]
    )
    assert views.seen_empty(points, tolerance=0.01).tolist() == [False, False, True, True, True]


@pytest.mark.parametrize("pool", [1, 3])
def test_a_hidden_bubble_is_filled_and_a_visible_bite_is_kept(pool):
    intrinsics, c2w = ring_of_cameras()
    tracer = SphereTracer(SphereTracerConfig())
    area = {}
    for name, sdf in (("bubble", with_bubble), ("bite", with_bite)):
        views = render_depth_views(sdf, tracer, intrinsics, c2w, 64, 64, pool=pool)
        raw = extract_mesh(sdf, resolution=96, keep_largest=False)
        filled = extract_mesh(fill_unseen(sdf, views, tolerance=0.05), resolution=96, keep_largest=False)
        area[name] = raw.area, filled.area
    ball_area, bubble_area = 4 * math.pi * 0.6**2, 4 * math.pi * 0.2**2
    assert area["bubble"][0] == pytest.approx(ball_area + bubble_area, rel=0.02)  # the inner sheet is there
    assert area["bubble"][1] == pytest.approx(ball_area, rel=0.02)  # and gone
    assert area["bite"][1] == pytest.approx(area["bite"][0], rel=0.01)  # the bite is seen: unchanged


def test_open_space_behind_a_one_sided_capture_stays_empty():
    """Cameras on one side only (as DTU's): the space behind the ball is seen by none but is not enclosed."""
    intrinsics, c2w = ring_of_cameras()
    front = c2w[:, 2, 3] > 1  # the three cameras on the +z side
    views = render_depth_views(
        ball, SphereTracer(SphereTracerConfig()), intrinsics[front], c2w[front], 64, 64
    )
    behind = torch.tensor([[0.0, 0.0, -0.7], [0.1, -0.1, -0.8]])
    assert not views.seen_empty(behind, tolerance=0.01).any()
    raw = extract_mesh(ball, resolution=64)
    filled = extract_mesh(fill_unseen(ball, views, tolerance=0.05), resolution=64)
    assert filled.area == pytest.approx(raw.area, rel=1e-6)


def test_pool_must_be_odd():
    intrinsics, c2w = ring_of_cameras(2)
    with pytest.raises(ValueError, match="odd"):
        render_depth_views(ball, SphereTracer(SphereTracerConfig()), intrinsics, c2w, 8, 8, pool=2)
