"""Marching-cubes extraction on analytic SDFs with known answers."""

from __future__ import annotations

import logging
import math
import time
import tracemalloc

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree
from skimage import measure

from nsr.mesh import MeshError, estimate_memory, extract_mesh, save_mesh, transform_mesh


def sphere_sdf(center: tuple[float, float, float] = (0.0, 0.0, 0.0), radius: float = 0.5):
    centre = torch.tensor(center)

    def sdf(points: torch.Tensor) -> torch.Tensor:
        return (points - centre).norm(dim=-1) - radius

    return sdf


def box_sdf(half: tuple[float, float, float]):
    half_extent = torch.tensor(half)

    def sdf(points: torch.Tensor) -> torch.Tensor:
        q = points.abs() - half_extent
        return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)

    return sdf


def two_spheres_sdf(points: torch.Tensor) -> torch.Tensor:
    big = sphere_sdf((-0.4, 0.0, 0.0), 0.45)(points)
    small = sphere_sdf((0.6, 0.1, 0.0), 0.2)(points)
    return torch.minimum(big, small)


def torus_sdf(points: torch.Tensor) -> torch.Tensor:
    """A torus about z (radii 0.5 and 0.2), nudged off the grid's planes of symmetry."""
    ring = torch.stack([points[:, :2].norm(dim=-1) - 0.5, points[:, 2] - 0.013], dim=-1)
    return ring.norm(dim=-1) - 0.2


def plate_sdf(points: torch.Tensor) -> torch.Tensor:
    """A thin plate (0.1 thick along y) 1.4 wide: its faces run through every block along x and z."""
    half = torch.tensor([0.7, 0.05, 0.7])
    q = (points - torch.tensor([0.0, 0.011, 0.0])).abs() - half
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


def same_mesh(a: trimesh.Trimesh, b: trimesh.Trimesh, atol: float = 1e-6) -> None:
    """a and b are one mesh up to vertex order: a bijection of vertices within atol, the same triangles."""
    assert len(a.vertices) == len(b.vertices) and len(a.faces) == len(b.faces)
    distance, match = cKDTree(a.vertices).query(b.vertices)
    assert distance.max() < atol
    assert len(np.unique(match)) == len(match)
    triangles = {tuple(face) for face in np.sort(np.asarray(a.faces), axis=1)}
    assert triangles == {tuple(face) for face in np.sort(match[np.asarray(b.faces)], axis=1)}


def counting(sdf):
    """Wrap an SDF to count queries and record whether autograd was on."""

    def wrapped(points: torch.Tensor) -> torch.Tensor:
        wrapped.queries += points.shape[0]
        wrapped.grad_enabled |= torch.is_grad_enabled()
        return sdf(points)

    wrapped.queries = 0
    wrapped.grad_enabled = False
    return wrapped


def test_sphere_radius_recovered() -> None:
    mesh = extract_mesh(sphere_sdf(), resolution=64, bound=1.0)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - 0.5) < 0.005
    assert radii.max() - radii.min() < 0.01
    assert mesh.is_watertight


def test_offset_sphere_in_sdf_coordinates() -> None:
    center = np.array([0.2, -0.1, 0.3])
    mesh = extract_mesh(sphere_sdf(tuple(center), 0.4), resolution=96, bound=1.0)
    radii = np.linalg.norm(mesh.vertices - center, axis=1)
    assert abs(radii.mean() - 0.4) < 0.004
    np.testing.assert_allclose(mesh.vertices.mean(axis=0), center, atol=2e-3)


def test_axes_not_swapped() -> None:
    half = np.array([0.3, 0.5, 0.7])
    mesh = extract_mesh(box_sdf(tuple(half)), resolution=81, bound=1.0)
    np.testing.assert_allclose(mesh.bounds[1], half, atol=0.03)
    np.testing.assert_allclose(mesh.bounds[0], -half, atol=0.03)


def test_normals_point_outward() -> None:
    center = np.array([0.1, 0.0, -0.2])
    mesh = extract_mesh(sphere_sdf(tuple(center), 0.5), resolution=64)
    assert mesh.volume > 0
    outward = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center - center)
    assert np.all(outward > 0)


def test_keeps_largest_component() -> None:
    both = extract_mesh(two_spheres_sdf, resolution=96, keep_largest=False)
    assert len(both.split(only_watertight=False)) == 2
    mesh = extract_mesh(two_spheres_sdf, resolution=96, keep_largest=True)
    radii = np.linalg.norm(mesh.vertices - np.array([-0.4, 0.0, 0.0]), axis=1)
    np.testing.assert_allclose(radii, 0.45, atol=0.01)
    assert mesh.is_watertight


@pytest.mark.parametrize("sdf", [sphere_sdf((0.0, 0.0, 0.0), 3.0), sphere_sdf((0.0, 0.0, 0.0), -1.0)])
def test_no_crossing_raises_mesh_error(sdf) -> None:
    with pytest.raises(MeshError, match="no zero crossing"):
        extract_mesh(sdf, resolution=32)
    with pytest.raises(MeshError, match="no zero crossing"):
        extract_mesh(sdf, resolution=32, narrow_band=False)


def test_nan_raises_mesh_error() -> None:
    def nan_sdf(points: torch.Tensor) -> torch.Tensor:
        values = points.norm(dim=-1) - 0.5
        values[0] = float("nan")
        return values

    with pytest.raises(MeshError, match="non-finite"):
        extract_mesh(nan_sdf, resolution=32)


@pytest.mark.parametrize(
    ("sdf", "resolution", "coarse_step"),
    [
        (sphere_sdf((0.1, 0.2, -0.1), 0.55), 96, None),
        (two_spheres_sdf, 97, 8),
        (box_sdf((0.3, 0.5, 0.7)), 100, 16),
    ],
)
def test_narrow_band_equals_dense(sdf, resolution: int, coarse_step: int | None) -> None:
    dense_sdf, band_sdf = counting(sdf), counting(sdf)
    dense = extract_mesh(dense_sdf, resolution=resolution, narrow_band=False, keep_largest=False)
    band = extract_mesh(band_sdf, resolution=resolution, coarse_step=coarse_step, keep_largest=False)
    assert dense_sdf.queries == resolution**3
    assert band_sdf.queries < 0.6 * dense_sdf.queries
    assert len(band.vertices) == len(dense.vertices)
    np.testing.assert_allclose(band.vertices, dense.vertices, atol=1e-6)
    np.testing.assert_array_equal(band.faces, dense.faces)


def test_narrow_band_finds_features_smaller_than_a_coarse_cell() -> None:
    # A sphere of radius 0.06 centred in a coarse cell of side 1/6: no coarse corner changes sign.
    c = -1.0 + 9.5 * 2.0 / 12.0

    def sdf(points: torch.Tensor) -> torch.Tensor:
        return torch.minimum(sphere_sdf((0.0, 0.0, 0.0), 0.45)(points), sphere_sdf((c, c, c), 0.06)(points))

    dense = extract_mesh(sdf, resolution=97, narrow_band=False, keep_largest=False)
    band = extract_mesh(sdf, resolution=97, coarse_step=8, keep_largest=False)
    np.testing.assert_allclose(band.vertices, dense.vertices, atol=1e-6)
    sign_change_only = extract_mesh(sdf, resolution=97, coarse_step=8, keep_largest=False, margin=0.0)
    assert len(sign_change_only.vertices) < len(dense.vertices)


def test_called_without_grad_and_with_column_output() -> None:
    sdf = counting(lambda points: sphere_sdf()(points)[:, None])
    with torch.enable_grad():
        mesh = extract_mesh(sdf, resolution=32, chunk_size=1000, device="cpu")
    assert not sdf.grad_enabled
    assert len(mesh.faces) > 0


def test_progress_reaches_total() -> None:
    calls: list[tuple[int, int]] = []
    sdf = counting(sphere_sdf())
    extract_mesh(
        sdf, resolution=64, chunk_size=5000, progress=lambda done, total: calls.append((done, total))
    )
    dones = [done for done, _ in calls]
    assert dones == sorted(dones)
    assert calls[-1] == (sdf.queries, sdf.queries)
    assert all(done <= total for done, total in calls)
    # Block by block, the total is estimated ahead of the queries: half-way, the bar is not near its end.
    calls.clear()
    extract_mesh(sphere_sdf(), resolution=96, block_size=16, progress=lambda d, t: calls.append((d, t)))
    done, total = calls[len(calls) // 2]
    assert 0.2 < done / total < 0.8


def test_transform_scales_radius_and_keeps_orientation() -> None:
    mesh = extract_mesh(sphere_sdf(), resolution=64)
    original = mesh.vertices.copy()
    scale_mat = np.diag([2.0, 2.0, 2.0, 1.0])
    scale_mat[:3, 3] = [1.0, -2.0, 3.0]
    world = transform_mesh(mesh, scale_mat)
    radii = np.linalg.norm(world.vertices - scale_mat[:3, 3], axis=1)
    assert abs(radii.mean() - 1.0) < 0.01
    assert world.volume > 0

    mirrored = transform_mesh(mesh, torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64)))
    assert mirrored.volume > 0
    np.testing.assert_allclose(mirrored.volume, mesh.volume, rtol=1e-9)
    np.testing.assert_array_equal(mesh.vertices, original)
    with pytest.raises(ValueError, match="singular"):
        transform_mesh(mesh, np.diag([1.0, 0.0, 1.0, 1.0]))


def test_save_mesh_roundtrip(tmp_path) -> None:
    mesh = extract_mesh(sphere_sdf(), resolution=32)
    path = save_mesh(mesh, tmp_path / "out" / "mesh.ply")
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian")
    loaded = trimesh.load(path, process=False)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    assert sorted(p.name for p in path.parent.iterdir()) == ["mesh.ply"]


def test_512_narrow_band_is_fast_and_small() -> None:
    sdf = counting(sphere_sdf())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        mesh = extract_mesh(sdf, resolution=512)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sdf.queries < 0.05 * 512**3
    assert peak < 3 * 2**30
    assert seconds < 120
    assert abs(np.linalg.norm(mesh.vertices, axis=1).mean() - 0.5) < 1e-3


@pytest.mark.parametrize("sdf", [sphere_sdf((0.03, -0.02, 0.01), 0.6), torus_sdf, plate_sdf])
@pytest.mark.parametrize("narrow_band", [True, False])
def test_blocks_equal_one_shot_marching_cubes(sdf, narrow_band: bool) -> None:
    """Block-wise extraction (blocks of 16 cells: 7^3 blocks, every surface crosses block borders) gives
    skimage's one-shot marching cubes of the dense grid, up to vertex order, and a closed surface."""
    resolution = 100
    axis = torch.linspace(-1.0, 1.0, resolution)
    grid = sdf(torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3))
    vertices, faces, _, _ = measure.marching_cubes(
        grid.reshape((resolution,) * 3).numpy(), level=0.0, gradient_direction="descent"
    )
    one_shot = trimesh.Trimesh(vertices * 2.0 / (resolution - 1) - 1.0, faces, process=True)
    queries = counting(sdf)
    blocks = extract_mesh(
        queries,
        resolution=resolution,
        block_size=16,
        coarse_step=8,
        narrow_band=narrow_band,
        keep_largest=False,
    )
    same_mesh(one_shot, blocks)
    assert blocks.is_watertight and blocks.volume > 0
    if narrow_band:
        assert queries.queries < 0.5 * resolution**3


def test_block_size_changes_nothing_but_memory() -> None:
    meshes = [extract_mesh(torus_sdf, resolution=110, block_size=size) for size in (16, 48, 1000)]
    for mesh in meshes[1:]:
        same_mesh(meshes[0], mesh)


def test_memory_estimate_matches_the_mesh() -> None:
    """The estimate from the coarse lattice predicts the triangle count within 15% and bounds the peak
    memory, the static one (for a sphere of the given area) the count within 15%, and a block's memory
    does not grow with the resolution."""
    estimates = []
    tracemalloc.start()
    try:
        mesh = extract_mesh(sphere_sdf(), resolution=256, on_estimate=estimates.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (estimate,) = estimates
    assert estimate.faces == pytest.approx(len(mesh.faces), rel=0.15)
    # The estimate is a cautious one (a block's worst case plus the mesh), not a wild one.
    assert 0.4 * estimate.total_bytes < peak < estimate.total_bytes
    static = estimate_memory(256, surface_area=4 * math.pi * 0.5**2)
    assert static.faces == pytest.approx(len(mesh.faces), rel=0.15)
    assert static.total_bytes == static.block_bytes + static.mesh_bytes
    assert "256^3" in static.describe() and "GB" in estimate_memory(2048).describe()
    big, small = estimate_memory(2048), estimate_memory(512)
    assert big.block_bytes == small.block_bytes < 100e6
    assert big.blocks == 8**2 * small.blocks
    assert big.mesh_bytes == pytest.approx(16 * small.mesh_bytes, rel=0.01)


def test_memory_bounded_by_a_block() -> None:
    """A small surface at 1024^3: the grid would be 4.3 GB; a block and the mesh are all that is held."""
    tracemalloc.start()
    try:
        mesh = extract_mesh(sphere_sdf((0.1, 0.2, 0.0), 0.08), resolution=1024, block_size=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(np.linalg.norm(mesh.vertices - [0.1, 0.2, 0.0], axis=1).mean() - 0.08) < 1e-3
    assert peak < 100e6


def test_negative_everywhere_inside_the_clip_sphere_is_refused() -> None:
    with pytest.raises(MeshError, match="bounding sphere"):
        extract_mesh(lambda points: -torch.ones(points.shape[0]), resolution=48, clip_radius=0.8)
    # A sphere larger than the clip sphere: the same (all that is left is the clip sphere).
    with pytest.raises(MeshError, match="100% of the surface"):
        extract_mesh(sphere_sdf((0.0, 0.0, 0.0), 0.9), resolution=48, clip_radius=0.8)
    # Positive everywhere: no zero crossing at all.
    with pytest.raises(MeshError, match="no zero crossing"):
        extract_mesh(lambda points: torch.ones(points.shape[0]), resolution=48, clip_radius=0.8)


def test_touching_the_clip_sphere_partly_is_a_warning(caplog) -> None:
    def bulge(points: torch.Tensor) -> torch.Tensor:  # a ball with a lobe reaching through the clip sphere
        return torch.minimum(sphere_sdf()(points), sphere_sdf((0.7, 0.0, 0.0), 0.2)(points))

    with caplog.at_level(logging.WARNING, logger="nsr"):
        mesh = extract_mesh(bulge, resolution=64, clip_radius=0.8)
    (record,) = caplog.records
    assert "% of the mesh's area lies on the bounding sphere" in record.getMessage()
    assert np.linalg.norm(mesh.vertices, axis=1).max() < 0.8 + 1e-3
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nsr"):
        extract_mesh(sphere_sdf(), resolution=64, clip_radius=0.8)
    assert not caplog.records
