"""UV-textured meshes: a known colour function baked by xatlas' charts, read back from GLB at surface points."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nsr.mesh import MeshError, extract_mesh, save_mesh
from nsr.mesh import texture as texture_module
from nsr.mesh.texture import barycentric, texture_mesh


def paint(points: np.ndarray) -> np.ndarray:
    return 0.5 + 0.45 * np.sin(3.0 * points + np.array([0.0, 1.0, 2.0]))


def test_the_texture_holds_the_colour_of_every_surface_point(tmp_path) -> None:
    pytest.importorskip("xatlas")
    mesh = extract_mesh(lambda points: points.norm(dim=-1) - 0.6, resolution=40)
    loaded = trimesh.load(save_mesh(texture_mesh(mesh, paint, size=256), tmp_path / "t.glb"), force="mesh")
    assert loaded.visual.kind == "texture"
    image = np.asarray(loaded.visual.material.baseColorTexture)[..., :3] / 255.0
    height, width = image.shape[:2]
    # Area-weighted surface samples, looked up as a viewer does: their UV, then the texel under it.
    points, face = trimesh.sample.sample_surface(loaded, 5000, seed=0)
    corners = loaded.faces[face]
    weights = trimesh.triangles.points_to_barycentric(loaded.vertices[corners], points)
    uv = np.einsum("mk,mkd->md", weights, loaded.visual.uv[corners])
    col = np.clip((uv[:, 0] * width).astype(int), 0, width - 1)
    row = np.clip(((1.0 - uv[:, 1]) * height).astype(int), 0, height - 1)
    error = np.abs(image[row, col] - paint(points))
    assert error.mean() < 0.01 and error.max() < 0.1
    assert np.abs(paint(points) - paint(points).mean(0)).mean() > 0.1  # the colour does vary


def test_barycentric_weights_are_clamped_into_the_triangle() -> None:
    triangle = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]] * 3)
    points = np.array([[0.25, 0.25], [-0.5, 0.5], [2.0, 0.0]])
    weights = barycentric(points, triangle)
    np.testing.assert_allclose(weights[0], [0.5, 0.25, 0.25])
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(1), 1.0)
    np.testing.assert_allclose(weights[2], [0.0, 1.0, 0.0])


def test_without_xatlas_one_line_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(texture_module, "has_xatlas", lambda: False)
    mesh = trimesh.creation.icosphere(subdivisions=1)
    with pytest.raises(MeshError, match=r'pip install "nsr\[texture\]"'):
        texture_mesh(mesh, paint)
