"""Ground-truth signed distance: exact on analytic cases, robust sign on a mesh with a hole."""

import numpy as np
import pytest
import torch
import trimesh

from nsr.accel.libigl import has_libigl
from nsr.mesh.distance import point_triangle_squared_distance, signed_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def box_sdf(points: np.ndarray, half: float) -> np.ndarray:
    """Exact SDF of the cube [-half, half]^3."""
    q = np.abs(points) - half
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    inside = np.minimum(q.max(axis=1), 0.0)
    return outside + inside


def test_box_signed_distance_is_exact():
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    points = np.random.default_rng(0).uniform(-2.0, 2.0, (1000, 3))
    result = signed_distance(points, box.vertices, box.faces, backend="torch")
    np.testing.assert_allclose(result.distance, box_sdf(points, 1.0), atol=1e-12)
    np.testing.assert_allclose(result.winding, (box_sdf(points, 1.0) < 0).astype(float), atol=1e-9)


def test_icosphere_sign_and_magnitude():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    points = np.random.default_rng(1).uniform(-1.6, 1.6, (1000, 3))
    result = signed_distance(points, sphere.vertices, sphere.faces, backend="torch")
    exact = np.linalg.norm(points, axis=1) - 1.0
    gap = 1.0 - np.linalg.norm(sphere.triangles_center, axis=1).min()  # polyhedron vs sphere, ~0.02
    assert np.abs(result.distance - exact).max() <= gap + 1e-9
    clear = np.abs(exact) > gap
    assert np.array_equal(result.distance[clear] < 0, exact[clear] < 0)
    assert np.array_equal(result.inside[clear], exact[clear] < 0)


def test_point_triangle_cases():
    triangle = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    points = torch.tensor(
        [
            [0.2, 0.2, 0.5],  # above the interior: the height
            [-1.0, -1.0, 0.0],  # beyond vertex 0
            [0.5, -2.0, 1.0],  # beyond edge 0-1
            [1.0, 1.0, 0.0],  # beyond the hypotenuse, in the plane
        ],
        dtype=torch.float64,
    )
    expected = torch.tensor([0.25, 2.0, 5.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(point_triangle_squared_distance(points, triangle)[:, 0], expected)


def holey_sphere() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    top = np.argsort(-sphere.triangles_center[:, 2])[:5]  # a hole around the north pole
    keep = np.setdiff1d(np.arange(len(sphere.faces)), top)
    return trimesh.Trimesh(sphere.vertices, sphere.faces[keep], process=False)


def test_sign_is_robust_to_a_hole():
    mesh = holey_sphere()
    assert not mesh.is_watertight
    rng = np.random.default_rng(2)
    directions = rng.normal(size=(600, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = np.concatenate([rng.uniform(0.0, 0.85, 300), rng.uniform(1.15, 1.6, 300)])
    points = directions * radii[:, None]
    points[:5] = [[0, 0, 0.8], [0, 0, 0.5], [0, 0, 0.0], [0.05, 0, 0.9], [0, 0.05, 0.85]]  # under the hole
    result = signed_distance(points, mesh.vertices, mesh.faces, backend="torch")
    assert np.array_equal(result.distance < 0, radii < 1.0)
    # Ray parity along +z would call the points under the hole outside; the winding number does not.
    assert np.all(result.winding[:5] > 0.5)
    assert np.all(result.winding[radii > 1.0] < 0.5)


@pytest.mark.skipif(not has_libigl(), reason="libigl not installed (pip install 'nsr[bench]')")
def test_libigl_matches_the_torch_reference():
    mesh = holey_sphere()
    points = np.random.default_rng(3).uniform(-1.3, 1.3, (800, 3))
    reference = signed_distance(points, mesh.vertices, mesh.faces, backend="torch")
    fast = signed_distance(points, mesh.vertices, mesh.faces, backend="libigl")
    np.testing.assert_allclose(np.abs(fast.distance), np.abs(reference.distance), atol=1e-9)
    np.testing.assert_allclose(fast.winding, reference.winding, atol=2e-2)


def test_unknown_backend_is_an_error():
    box = trimesh.creation.box()
    with pytest.raises(ValueError, match="backend"):
        signed_distance(np.zeros((1, 3)), box.vertices, box.faces, backend="magic")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_backend_on_cuda_matches_cpu():
    mesh = holey_sphere()
    points = np.random.default_rng(4).uniform(-1.3, 1.3, (3000, 3))
    cpu = signed_distance(points, mesh.vertices, mesh.faces, backend="torch", device="cpu")
    gpu = signed_distance(points, mesh.vertices, mesh.faces, backend="torch", device="cuda")
    np.testing.assert_allclose(gpu.distance, cpu.distance, atol=1e-9)
    np.testing.assert_allclose(gpu.winding, cpu.winding, atol=1e-9)
