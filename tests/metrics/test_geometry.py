"""Sampled geometry metrics on meshes with known distances."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from nsr.metrics import mesh_metrics, sample_surface


@pytest.fixture(scope="module")
def unit_sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=1.0)


@pytest.fixture(scope="module")
def outer_sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=1.1)


def test_sample_surface_is_area_weighted_and_on_surface() -> None:
    box = trimesh.creation.box(extents=(4.0, 1.0, 1.0))
    points, normals = sample_surface(box, 60_000, seed=3)
    assert points.shape == normals.shape == (60_000, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    # Each sample lies on a face whose normal it carries: |p . n| = half the extent along n.
    half = np.abs(normals) @ np.array([2.0, 0.5, 0.5])
    np.testing.assert_allclose(np.abs(np.sum(points * normals, axis=1)), half, atol=1e-9)
    # The two 1x1 end caps hold 2 / 18 of the area.
    end_caps = np.mean(np.abs(normals[:, 0]) > 0.5)
    assert abs(end_caps - 2.0 / 18.0) < 0.01


def test_sample_surface_is_deterministic(unit_sphere: trimesh.Trimesh) -> None:
    a, na = sample_surface(unit_sphere, 1000, seed=7)
    b, nb = sample_surface(unit_sphere, 1000, seed=7)
    c, _ = sample_surface(unit_sphere, 1000, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(na, nb)
    assert not np.allclose(a, c)


def test_mesh_against_itself_is_near_zero_and_shrinks_with_samples(unit_sphere: trimesh.Trimesh) -> None:
    few = mesh_metrics(unit_sphere, unit_sphere, num_samples=20_000)
    many = mesh_metrics(unit_sphere, unit_sphere, num_samples=200_000)
    assert 0 < many["chamfer_rel"] < 0.002
    assert many["chamfer"] < 0.5 * few["chamfer"]  # the floor falls like 1 / sqrt(samples)
    assert many["normal_consistency"] > 0.999
    assert many["fscore"] > 0.99


def test_concentric_spheres(unit_sphere: trimesh.Trimesh, outer_sphere: trimesh.Trimesh) -> None:
    result = mesh_metrics(unit_sphere, outer_sphere, num_samples=100_000, threshold=0.05)
    for key in ("accuracy", "completeness", "chamfer"):
        assert result[key] == pytest.approx(0.1, rel=0.02)
    assert result["fscore"] == 0.0
    assert result["threshold"] == 0.05
    assert mesh_metrics(unit_sphere, outer_sphere, num_samples=100_000, threshold=0.2)["fscore"] == 1.0

    diagonal = np.linalg.norm(outer_sphere.bounds[1] - outer_sphere.bounds[0])
    assert result["bbox_diagonal"] == pytest.approx(diagonal)
    for key in ("accuracy", "completeness", "chamfer"):
        assert result[f"{key}_rel"] == pytest.approx(result[key] / diagonal)
    assert result["normal_consistency"] > 0.99


def test_default_threshold_and_plain_floats(
    unit_sphere: trimesh.Trimesh, outer_sphere: trimesh.Trimesh
) -> None:
    result = mesh_metrics(unit_sphere, outer_sphere, num_samples=10_000)
    assert result["threshold"] == pytest.approx(0.005 * result["bbox_diagonal"])
    assert result["num_samples"] == 10_000
    assert all(type(value) is float for value in result.values())
    json.dumps(result)


def test_precision_and_recall_are_directional(unit_sphere: trimesh.Trimesh) -> None:
    # The prediction is half of the sphere: everything it has is right, half of the truth is missing.
    keep = unit_sphere.triangles_center[:, 2] > 0
    half = trimesh.Trimesh(unit_sphere.vertices, unit_sphere.faces[keep], process=False)
    result = mesh_metrics(half, unit_sphere, num_samples=50_000, threshold=0.05)
    assert result["precision"] > 0.99
    assert result["recall"] == pytest.approx(0.5, abs=0.03)
    assert result["completeness"] > 10 * result["accuracy"]


def test_seeded_determinism(unit_sphere: trimesh.Trimesh, outer_sphere: trimesh.Trimesh) -> None:
    first = mesh_metrics(unit_sphere, outer_sphere, num_samples=20_000, seed=5)
    second = mesh_metrics(unit_sphere, outer_sphere, num_samples=20_000, seed=5)
    other = mesh_metrics(unit_sphere, outer_sphere, num_samples=20_000, seed=6)
    assert first == second
    assert first["chamfer"] != other["chamfer"]


def test_empty_prediction_is_a_clear_error(unit_sphere: trimesh.Trimesh) -> None:
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="predicted mesh has no faces"):
        mesh_metrics(empty, unit_sphere)


def test_mask_culling_keeps_points_seen_inside_the_masks():
    from nsr.metrics.geometry import MaskCulling

    k = np.array([[10.0, 0, 10], [0, 10.0, 10], [0, 0, 1]])
    c2w = np.eye(4)  # camera at the origin looking along +z
    mask = np.zeros((21, 21), bool)
    mask[5:16, 5:16] = True  # |x/z|, |y/z| <= 0.5 in view
    cull = MaskCulling(k[None], c2w[None], mask[None])
    pts = np.array([[0, 0, 2.0], [1.4, 0, 2.0], [3.0, 0, 2.0], [0, 0, -2.0]])
    # inside the mask; inside the image but outside the mask; outside the image (unseen); behind
    assert cull(pts).tolist() == [True, False, False, False]
    dilated = MaskCulling(k[None], c2w[None], mask[None], dilation=5)
    assert dilated(pts).tolist() == [True, True, False, False]
    # world-unit points mapped into the cameras' frame first
    scale = np.diag([2.0, 2.0, 2.0, 1.0])
    world = MaskCulling(k[None], c2w[None], mask[None], to_camera_frame=np.linalg.inv(scale))
    assert world(pts * 2).tolist() == [True, False, False, False]


def _sphere_views(count: int = 24, size: int = 400, distance: float = 3.0):
    """Cameras on a sphere about the origin looking at it, and the exact masks of the unit sphere."""
    focal = size * 1.2
    k = np.array([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1.0]])
    golden = np.pi * (3 - np.sqrt(5))
    c2ws, masks = [], []
    rows, cols = np.mgrid[0:size, 0:size]
    for i in range(count):
        z = 1 - 2 * (i + 0.5) / count
        centre = distance * np.array(
            [np.sqrt(1 - z * z) * np.cos(golden * i), np.sqrt(1 - z * z) * np.sin(golden * i), z]
        )
        forward = -centre / distance
        right = np.cross(forward, [0.3, 0.1, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        c2w = np.eye(4)
        c2w[:3, :3] = np.stack([right, down, forward], axis=1)
        c2w[:3, 3] = centre
        rays = np.stack([(cols - k[0, 2]) / focal, (rows - k[1, 2]) / focal, np.ones_like(rows, float)], -1)
        rays = rays @ c2w[:3, :3].T
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        b = rays @ centre  # |c + t d|^2 = 1 has a root where b^2 - (|c|^2 - 1) >= 0
        masks.append(b * b - (distance**2 - 1) >= 0)
        c2ws.append(c2w)
    return np.repeat(k[None], count, 0), np.stack(c2ws), np.stack(masks)


def test_mask_culling_dilates_by_default_so_a_good_mesh_is_not_cut_at_every_silhouette():
    """A point near the silhouette of any one view falls outside that view's mask by rounding: without
    dilation, culling over many views keeps a fraction of a perfect surface and scores a mesh offset by 1%
    of the radius several times worse than its offset. The default (DTU's 12 px at 1600 px scaled to the
    masks' width) keeps the whole object and the unculled score."""
    from nsr.metrics.geometry import MaskCulling, auto_dilation

    assert [auto_dilation(w) for w in (1600, 800, 400, 160, 40)] == [12, 6, 3, 1, 1]
    intrinsics, c2w, masks = _sphere_views(size=400)  # `nsr data synth`'s image size
    assert MaskCulling(intrinsics, c2w, masks).dilation == 3
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    offset = trimesh.creation.icosphere(subdivisions=5, radius=1.01)
    plain = mesh_metrics(offset, sphere, num_samples=20_000)
    auto = mesh_metrics(offset, sphere, num_samples=20_000, keep=MaskCulling(intrinsics, c2w, masks))
    none = mesh_metrics(
        offset, sphere, num_samples=20_000, keep=MaskCulling(intrinsics, c2w, masks, dilation=0)
    )
    assert auto["num_gt_points"] == 20_000 and abs(auto["chamfer"] - plain["chamfer"]) < 1e-9
    assert none["num_gt_points"] < 0.9 * 20_000 and none["chamfer"] > 2 * plain["chamfer"]


def test_point_cloud_ground_truth_and_culled_metrics():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    shifted = sphere.copy()
    shifted.apply_translation([0.05, 0, 0])
    cloud = sample_surface(sphere, 50_000, seed=3)[0]
    m = mesh_metrics(shifted, cloud, num_samples=50_000)
    assert m["normal_consistency"] is None
    assert 0.02 < m["chamfer"] < 0.05
    half = mesh_metrics(shifted, sphere, num_samples=20_000, keep=lambda p: p[:, 2] > 0)
    assert half["num_pred_points"] < 12_000 and half["num_gt_points"] < 12_000
    assert half["normal_consistency"] > 0.9


def test_fine_detail_is_where_the_normal_varies_most():
    """On a cube the detail samples are those at its edges (a tenth of all: where the edges have fewer, the
    rest are flat samples of no variation)."""
    from nsr.metrics.geometry import DETAIL_FRACTION, detail_samples

    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    points, normals = sample_surface(cube, 40_000, seed=0)
    selected = detail_samples(points, normals)
    assert selected.sum() == round(DETAIL_FRACTION * len(points))
    # distance to the nearest edge: the second-smallest distance to a face plane (|x|, |y|, |z| = 0.5 on faces)
    to_planes = np.sort(0.5 - np.abs(points), axis=1)
    to_edge = to_planes[:, 1]
    assert selected[to_edge < 0.005].all()
    assert np.median(to_edge[selected]) < 0.02 and np.median(to_edge[~selected]) > 0.1


def test_detail_chamfer_sees_smoothed_edges_that_the_overall_chamfer_dilutes():
    """A cube with its edges rounded (vertices pulled towards a sphere) against the cube: the error sits at
    the edges, so the detail Chamfer is well above the overall one; the cube against itself scores both at
    the sampling floor. A point-cloud GT has no normals and no detail keys."""
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    fine = cube.subdivide().subdivide().subdivide().subdivide()
    v = np.asarray(fine.vertices)
    rounded = trimesh.Trimesh(0.8 * v + 0.2 * 0.55 * v / np.linalg.norm(v, axis=1, keepdims=True), fine.faces)
    itself = mesh_metrics(cube, cube, num_samples=50_000)
    smooth = mesh_metrics(rounded, cube, num_samples=50_000)
    assert itself["detail_chamfer_rel"] == pytest.approx(itself["chamfer_rel"], rel=0.15)
    assert smooth["detail_chamfer_rel"] > 1.2 * smooth["chamfer_rel"] > 2 * itself["chamfer_rel"]
    assert smooth["detail_normal_consistency"] < smooth["normal_consistency"]
    cloud = mesh_metrics(cube, sample_surface(cube, 20_000, seed=1)[0], num_samples=20_000)
    assert "detail_chamfer_rel" not in cloud


def test_nearest_tree_gives_the_exact_distances_near_and_far():
    """The metrics' k-d tree (boxes not shrunk to their points, fast for queries far from them) answers as
    SciPy's default tree and as brute force: queries on, near and far from a sphere of points."""
    from scipy.spatial import cKDTree

    from nsr.metrics.geometry import nearest_tree

    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(3000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    queries = np.concatenate([sphere[:100], 1.01 * sphere[100:200], 3.0 * rng.normal(size=(100, 3))])
    distance, index = nearest_tree(sphere).query(queries, workers=-1)
    reference, _ = cKDTree(sphere).query(queries)
    brute = np.linalg.norm(queries[:, None] - sphere[None], axis=-1)
    np.testing.assert_array_equal(distance, reference)
    np.testing.assert_allclose(distance, brute.min(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(queries - sphere[index], axis=1), distance, rtol=1e-12)
