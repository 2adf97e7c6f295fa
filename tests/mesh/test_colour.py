"""Vertex colours from an appearance network: an analytic sphere and colour function with known answers,
stored in PLY, OBJ and GLB and read back with trimesh."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from conftest import ball, ring_of_cameras
from nsr.mesh import extract_mesh, save_mesh
from nsr.mesh.colour import vertex_colours, view_directions, with_vertex_colours
from nsr.mesh.visibility import render_depth_views
from nsr.renderers import SphereTracer, SphereTracerConfig


class SphereField:
    """The SDF of the ball of radius 0.6 with its exact gradient; the features are the point itself."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def with_gradient(self, x: torch.Tensor, create_graph: bool = True):
        self.calls.append(create_graph)
        return SimpleNamespace(sdf=ball(x), features=x.clone(), gradient=x / x.norm(dim=-1, keepdim=True))


def paint(points: torch.Tensor) -> torch.Tensor:
    """A colour that differs between any two vertices (a smooth function of the position)."""
    return 0.5 + 0.45 * torch.sin(3.0 * points + torch.tensor([0.0, 1.0, 2.0]))


def positional(points, normals, view_dirs, features):  # the colour of the point, read from the features
    return paint(features)


def directional(points, normals, view_dirs, features):  # the view direction, as a colour
    return 0.5 + 0.5 * view_dirs


@pytest.fixture(scope="module")
def sphere_mesh() -> trimesh.Trimesh:
    return extract_mesh(ball, resolution=40)


@pytest.mark.parametrize("kind", ["ply", "obj", "glb"])
def test_colours_land_on_their_vertices_in_every_format(sphere_mesh, kind, tmp_path) -> None:
    field = SphereField()
    colours = vertex_colours(sphere_mesh.vertices, field, positional, chunk_size=500)
    assert field.calls and not any(field.calls)  # create_graph=False
    np.testing.assert_allclose(colours, paint(torch.tensor(sphere_mesh.vertices)).numpy(), atol=1e-5)
    path = save_mesh(with_vertex_colours(sphere_mesh, colours), tmp_path / f"sphere.{kind}")
    loaded = trimesh.load(path, process=False, force="mesh")
    assert loaded.visual.kind == "vertex" and len(loaded.vertices) == len(sphere_mesh.vertices)
    # Compared by position: whatever order a format keeps, each vertex carries its own colour (8 bits).
    expected = paint(torch.tensor(np.asarray(loaded.vertices))).numpy()
    np.testing.assert_allclose(loaded.visual.vertex_colors[:, :3] / 255.0, expected, atol=0.6 / 255 + 1e-5)
    assert np.abs(np.diff(expected, axis=0)).max() > 0.1  # not a uniform colour that would always pass


def test_without_cameras_the_view_is_minus_the_normal(sphere_mesh) -> None:
    colours = vertex_colours(sphere_mesh.vertices, SphereField(), directional)
    normals = sphere_mesh.vertices / np.linalg.norm(sphere_mesh.vertices, axis=1, keepdims=True)
    np.testing.assert_allclose(colours, 0.5 - 0.5 * normals, atol=1e-5)


def test_view_is_the_mean_direction_of_the_cameras_that_see_the_vertex() -> None:
    intrinsics, c2w = ring_of_cameras(count=8)
    views = render_depth_views(ball, SphereTracer(SphereTracerConfig()), intrinsics, c2w, 64, 64)
    centres = torch.tensor(c2w[:, :3, 3], dtype=torch.float32)
    # Facing camera 0 (on +x) only a little off its axis; the -x side is seen by camera 4; the poles
    # (top and bottom, |y| = 0.6) are seen at grazing angles by every camera or by none.
    direction = torch.tensor([[1.0, 0.1, 0.05], [-1.0, 0.0, 0.02], [0.0, 0.0, 1.0]])
    points = 0.6 * direction / direction.norm(dim=-1, keepdim=True)
    seen = views.sees(points, tolerance=0.01)
    assert seen[:, 0].tolist() == [True, True, False, False, False, False, False, True]
    assert seen[4, 1] and not seen[0, 1]
    got = view_directions(points, points, views)
    for m in range(len(points)):
        expected = torch.nn.functional.normalize(points[m] - centres[seen[:, m]], dim=-1).mean(0)
        torch.testing.assert_close(got[m], expected / expected.norm(), atol=1e-5, rtol=0)
    # A point no camera sees (the bottom pole of a ball seen by cameras at or above its equator) faces -n.
    bottom = torch.tensor([[0.0, -0.6, 0.0]])
    assert not views.sees(bottom, tolerance=0.01).any()
    torch.testing.assert_close(view_directions(bottom, bottom, views), torch.tensor([[0.0, 1.0, 0.0]]))


def test_unseen_vertices_face_the_surface() -> None:
    intrinsics, c2w = ring_of_cameras(count=1)  # one camera on +x: the -x half is hidden
    views = render_depth_views(ball, SphereTracer(SphereTracerConfig()), intrinsics, c2w, 64, 64)
    points = torch.tensor([[-0.6, 0.0, 0.0], [0.0, 0.0, -0.6], [0.6, 0.0, 0.0]])
    got = view_directions(points, points, views)
    torch.testing.assert_close(got[:2], -points[:2] / 0.6)
    torch.testing.assert_close(got[2], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_colours_need_one_per_vertex(sphere_mesh) -> None:
    with pytest.raises(ValueError, match="colours"):
        with_vertex_colours(sphere_mesh, np.zeros((3, 3)))
