"""Filling hidden pockets while training: the right points are found, the loss closes them, runs resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import ball, interrupted, ring_of_cameras, tiny_config, with_bite, with_bubble
from nsr.config.train import PocketFillConfig
from nsr.data.idr import load_idr_scene
from nsr.engine import Trainer
from nsr.engine.pockets import PocketFill, uniform_ball
from nsr.mesh import extract_mesh
from nsr.mesh.visibility import hidden_pockets, render_depth_views
from nsr.renderers import SphereTracer, SphereTracerConfig
from nsr.report.html import read_scalars

BUBBLE_CENTRE, BUBBLE_RADIUS = torch.tensor([0.1, 0.0, 0.0]), 0.2


def test_hidden_pockets_are_the_bubble_and_never_a_visible_bite():
    intrinsics, c2w = ring_of_cameras()
    tracer = SphereTracer(SphereTracerConfig())
    points = uniform_ball(20000, 1.0, torch.Generator().manual_seed(0))
    found = {}
    for name, sdf in (("bubble", with_bubble), ("bite", with_bite)):
        views = render_depth_views(sdf, tracer, intrinsics, c2w, 64, 64)
        found[name] = hidden_pockets(sdf, views, points, sdf(points), tolerance=0.02)
    in_bubble = (points - BUBBLE_CENTRE).norm(dim=-1) < BUBBLE_RADIUS
    assert not found["bite"].any()
    assert not (found["bubble"] & ~in_bubble).any()  # nothing outside the bubble
    assert found["bubble"][in_bubble].float().mean() > 0.95  # and (nearly) all of it


def test_uniform_ball_is_uniform():
    points = uniform_ball(40000, 2.0, torch.Generator().manual_seed(1))
    radius = points.norm(dim=-1)
    assert radius.max() <= 2.0
    assert (radius < 1.0).float().mean().item() == pytest.approx(
        1 / 8, abs=0.01
    )  # volume fraction of r < R/2


class GridSDF(torch.nn.Module):
    """An analytic SDF plus a learnable trilinear offset grid (local support, as a hash grid's)."""

    def __init__(self, base, resolution: int = 24) -> None:
        super().__init__()
        self.base = base
        self.offset = torch.nn.Parameter(torch.zeros(1, 1, resolution, resolution, resolution))

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        grid = x[None, :, None, None, :]  # (1, M, 1, 1, 3), coordinates in [-1, 1]
        offset = F.grid_sample(self.offset, grid, align_corners=True).reshape(-1)
        return self.base(x) + offset


class TinyModel(torch.nn.Module):
    """What PocketFill needs of a model (nsr.models.Model): its SDF, bounding radius and a surface tracer."""

    def __init__(self, base) -> None:
        super().__init__()
        self.sdf_field = GridSDF(base)
        self.surface_tracer = SphereTracer(SphereTracerConfig())
        self.bounding_radius = self.surface_tracer.config.bounding_radius

    def sdf(self, x):
        return self.sdf_field.sdf(x)


def test_the_fill_loss_closes_a_hidden_bubble_and_leaves_the_outer_surface():
    intrinsics, c2w = ring_of_cameras()
    model = TinyModel(with_bubble)
    fill = PocketFill(
        PocketFillConfig(every=1, samples=100000, batch=2048, tolerance=0.02), torch.device("cpu"), 0
    )
    assert fill.refresh(model, intrinsics, c2w, 64, 64) > 600  # 0.8% of the ball: about 800
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        fill.loss(model).backward()
        optimizer.step()
    assert fill.loss(model).item() == 0.0
    assert fill.refresh(model, intrinsics, c2w, 64, 64) < 10  # the bubble is solid now
    with torch.no_grad():
        mesh = extract_mesh(model.sdf_field.sdf, resolution=64, keep_largest=False)
    assert mesh.area == pytest.approx(4 * math.pi * 0.6**2, rel=0.02)  # the inner sheet is gone
    outside = uniform_ball(5000, 1.0, torch.Generator().manual_seed(2))
    outside = outside[ball(outside) > 0.05]
    assert torch.equal(model.sdf_field.sdf(outside), with_bubble(outside))  # nothing outside moved


def test_the_fill_on_a_cpu_says_what_it_costs(tiny_scene, tmp_path, caplog):
    """On a CPU each refresh renders every training view's depth map (minutes on a few cores): the run says
    so once, with the number of refreshes and how to turn the fill off."""
    config = tiny_config(tiny_scene, steps=2)
    config.pockets = PocketFillConfig(every=0.25, start=0.1, samples=4096, batch=64, max_side=24)
    with caplog.at_level("WARNING", logger="nsr"):
        Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    assert [r.getMessage() for r in caplog.records if "pocket fill" in r.getMessage()] == [
        "the pocket fill on a CPU: each of its 4 refreshes renders a depth map of every training view"
        " (one to a few minutes each on a few cores); --pockets.every 0 turns it off"
    ]


def test_a_run_with_the_fill_resumes_exactly(tiny_scene, tmp_path):
    def config(steps):
        c = tiny_config(tiny_scene, steps=steps)
        c.pockets = PocketFillConfig(every=2 / 6, start=1 / 6, samples=4096, batch=64, max_side=24)
        return c

    scene = load_idr_scene(tiny_scene)
    seen = []
    straight = Trainer(config(6), scene, tmp_path / "a", on_step=seen.append)
    straight.train()
    assert all(math.isfinite(m.terms["pocket"]) for m in seen)
    curves = read_scalars(tmp_path / "a" / "tensorboard")
    assert len(curves["train/pocket"][0]) == 6 and curves["train/pocket_points"][0].tolist() == [1, 3, 5]
    first = interrupted(Trainer(config(6), scene, tmp_path / "b"), at=4)
    assert "pockets" in first.state_dict()
    second = Trainer(config(6), scene, tmp_path / "b")
    assert second.resume() and second.step == 4
    assert torch.equal(second.pockets.points, first.pockets.points)
    second.train()
    for a, b in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_drawn_points_give_the_loss_with_the_same_shapes_before_and_after_a_refresh():
    """What a captured step (`pockets.in_graph`) is given: before a refresh zeros and a weight of 0, drawing
    nothing from the fill's generator; after, the points the ordinary loss would draw, with weight 1."""
    intrinsics, c2w = ring_of_cameras()
    model = TinyModel(with_bubble)
    config = PocketFillConfig(every=1, samples=20000, batch=256, tolerance=0.02)
    fill, twin = (PocketFill(config, torch.device("cpu"), 5) for _ in range(2))
    points, values, weight = fill.draw()
    assert points.shape == (256, 3) and values.shape == (256,) and weight.item() == 0.0
    assert PocketFill.term(model, points, values, weight).item() == 0.0 == fill.loss(model).item()
    assert torch.equal(fill.generator.get_state(), twin.generator.get_state())
    assert fill.refresh(model, intrinsics, c2w, 64, 64) == twin.refresh(model, intrinsics, c2w, 64, 64) > 50
    points, values, weight = fill.draw()
    assert points.shape == (256, 3) and values.shape == (256,) and weight.item() == 1.0
    term = PocketFill.term(model, points, values, weight)
    assert term.item() > 0 and torch.equal(term, twin.loss(model))
