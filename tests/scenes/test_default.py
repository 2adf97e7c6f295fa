"""The embedded default scene: analytic object, renders, cameras, ground-truth mesh and the on-disk cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from nsr.data.idr import load_idr_scene
from nsr.scenes import default as scene_module
from nsr.scenes.default import (
    BOUNDING_RADIUS,
    GENERATOR_VERSION,
    HANDLE_MAJOR_RADIUS,
    HANDLE_MINOR_RADIUS,
    SURFACE_TOLERANCE,
    default_cameras,
    default_object_albedo,
    default_object_normals,
    default_object_sdf,
    default_scale_mat,
    generate_default_scene,
    handle_hole_centre,
    is_cached,
    look_at,
    render_analytic_views,
    render_default_scene,
    trace_surface,
)
from nsr.scenes.shapes import sd_round_box, sd_sphere, sd_torus, smooth_subtraction, smooth_union

VIEWS, RES = 6, 96
"""A small scene for the file tests (the ground-truth mesh is always full resolution)."""


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_default_scene(tmp_path_factory.mktemp("default") / "scene", VIEWS, RES)


@pytest.fixture(scope="module")
def full_scene():
    """The default configuration (40 views at 128 x 128), rendered in memory."""
    return render_default_scene()


@pytest.fixture(scope="module")
def gt_mesh(scene_dir: Path) -> trimesh.Trimesh:
    return trimesh.load(scene_dir / "gt_mesh.ply", process=False)


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


# --- Analytic object ------------------------------------------------------------------------------------


def test_primitives_known_distances():
    p = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(sd_sphere(p, (0.0, 0.0, 0.0), 1.0), torch.tensor([1.0, -1.0, 3**0.5 - 1]))
    box = sd_round_box(p, (0.0, 0.0, 0.0), (0.5, 0.5, 0.5), 0.1)
    corner = ((0.6**2) * 3) ** 0.5 - 0.1  # distance to the rounded corner centred at (0.4, 0.4, 0.4)
    assert torch.allclose(box, torch.tensor([1.5, -0.5, corner]), atol=1e-6)
    torus = sd_torus(p, (0.0, 0.0, 0.0), 1.0, 0.25, axis=1)
    assert torch.allclose(torus[:2], torch.tensor([0.75, 0.75]))
    a, b = torch.tensor([0.0, 1.0, -0.3]), torch.tensor([0.5, 0.2, -0.3])
    assert torch.equal(smooth_union(a, b, 0.0), torch.minimum(a, b))
    assert (smooth_union(a, b, 0.1) <= torch.minimum(a, b)).all()
    assert (smooth_subtraction(a, b, 0.1) >= torch.maximum(a, -b)).all()


def test_sdf_is_conservative_and_bounded():
    points = (torch.rand(100_000, 3) * 2 - 1).requires_grad_(True)
    values = default_object_sdf(points)
    (grad,) = torch.autograd.grad(values.sum(), points)
    assert grad.norm(dim=-1).max() <= 1.0 + 1e-4  # the tracer needs a 1-Lipschitz SDF
    assert (values < 0).any() and (values > 0).any()
    outside = points.detach().norm(dim=-1) > BOUNDING_RADIUS
    assert (values.detach()[outside] > 0).all()


def test_albedo_is_coloured_and_in_range():
    points = torch.rand(20_000, 3) * 1.2 - 0.6
    colours = default_object_albedo(points)
    assert colours.min() >= 0.1 and colours.max() <= 0.9
    assert colours.std(dim=0).min() > 0.05  # varies in every channel
    assert (colours.max(dim=1).values - colours.min(dim=1).values).mean() > 0.2  # saturated, not grey


def test_traced_points_lie_on_the_surface():
    k, c2w = default_cameras(4, 64)
    points, hit = trace_surface(k, c2w, 64, 64)
    assert points.shape == (4, 64 * 64, 3) and hit.shape == (4, 64 * 64)
    assert hit.any(dim=1).all()
    assert default_object_sdf(points[hit]).abs().max() <= SURFACE_TOLERANCE
    normals = default_object_normals(points[hit])
    assert torch.allclose(normals.norm(dim=-1), torch.ones(len(normals)), atol=1e-5)


def test_handle_has_a_hole():
    centre = handle_hole_centre()
    # Rays along +y: through the hole centre it misses, through the tube (both sides, above) it hits.
    offsets = np.array(
        [
            [0.0, 0.0, 0.0],
            [-HANDLE_MAJOR_RADIUS, 0, 0],
            [HANDLE_MAJOR_RADIUS, 0, 0],
            [0, 0, HANDLE_MAJOR_RADIUS],
        ]
    )
    origins = torch.tensor(centre + offsets + np.array([0.0, -2.0, 0.0]), dtype=torch.float32)
    directions = torch.tensor([[0.0, 1.0, 0.0]]).expand(4, 3)
    result = scene_module.analytic_tracer().trace(default_object_sdf, origins, directions)
    assert result.hit.tolist() == [False, True, True, True]
    # Seen from the front, the hole is background inside the silhouette: a pixel at its centre is
    # background while pixels on the tube to its left, right and above are object.
    size = 128
    c2w = look_at(centre + np.array([0.0, -2.8, 0.0]), target=tuple(centre))
    k = np.array([[200.0, 0.0, (size - 1) / 2], [0.0, 200.0, (size - 1) / 2], [0.0, 0.0, 1.0]])
    view = render_analytic_views(k[None], c2w[None], size, size)
    mid = (size - 1) // 2
    ring = round(200.0 * HANDLE_MAJOR_RADIUS / 2.8)
    mask = view.masks[0]
    assert not mask[mid, mid] and not mask[mid - 5 : mid + 5, mid - 5 : mid + 5].any()
    assert mask[mid, mid - ring] and mask[mid, mid + ring] and mask[mid - ring, mid]
    tube_pixels = 200.0 * 2 * HANDLE_MINOR_RADIUS / 2.8
    assert tube_pixels > 6  # the tube is no sub-pixel detail at this scale


# --- Rendered views -------------------------------------------------------------------------------------


def test_default_views_frame_the_object(full_scene):
    masks = full_scene.masks
    assert full_scene.images.shape == (40, 128, 128, 3) and masks.shape == (40, 128, 128)
    coverage = masks.mean(axis=(1, 2))
    assert (coverage > 0.05).all() and (coverage < 0.5).all()
    # Never touches the border; spans most of the frame in its largest dimension.
    assert not masks[:, :3].any() and not masks[:, -3:].any()
    assert not masks[:, :, :3].any() and not masks[:, :, -3:].any()
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    extent = np.maximum(
        rows.shape[1] - np.argmax(rows[:, ::-1], axis=1) - np.argmax(rows, axis=1),
        cols.shape[1] - np.argmax(cols[:, ::-1], axis=1) - np.argmax(cols, axis=1),
    )
    assert extent.min() > 0.4 * 128 and extent.max() < 0.9 * 128 and extent.mean() > 0.6 * 128
    # Black background, shaded colours inside, some contrast from the light.
    assert (full_scene.images[~masks] == 0).all()
    inside = full_scene.images[masks]
    assert inside.min() > 0.0 and inside.max() <= 0.9
    assert np.percentile(inside.mean(axis=1), 90) - np.percentile(inside.mean(axis=1), 10) > 0.15


def test_cameras_surround_the_object():
    k, c2w = default_cameras(40, 128)
    centres = c2w[:, :3, 3]
    assert np.allclose(np.linalg.norm(centres, axis=1), scene_module.CAMERA_DISTANCE)
    elevation = np.degrees(np.arcsin(centres[:, 2] / np.linalg.norm(centres, axis=1)))
    assert elevation.min() >= -20 and elevation.max() <= 70
    assert elevation.min() < -15 and elevation.max() > 60
    # Each camera looks at the origin, x axis horizontal (z up), proper rotation.
    forward = c2w[:, :3, 2]
    assert np.allclose(forward, -centres / np.linalg.norm(centres, axis=1, keepdims=True))
    assert np.allclose(c2w[:, 2, 0], 0.0) and (c2w[:, 2, 1] < 0).all()
    assert np.allclose(np.linalg.det(c2w[:, :3, :3]), 1.0)
    azimuth = np.arctan2(centres[:, 1], centres[:, 0])
    assert np.histogram(azimuth, bins=8, range=(-np.pi, np.pi))[0].min() >= 3
    assert np.allclose(k[:, 0, 2], 63.5) and np.allclose(k[:, 0, 0], k[:, 1, 1])


# --- Files and cache ------------------------------------------------------------------------------------


def test_files_load_back(scene_dir: Path):
    loaded = load_idr_scene(scene_dir)
    rendered = render_default_scene(VIEWS, RES)
    assert loaded.num_views == VIEWS and loaded.images.shape == (VIEWS, RES, RES, 3)
    assert np.abs(loaded.intrinsics - rendered.intrinsics).max() < 1e-6
    assert np.abs(loaded.c2w - rendered.c2w).max() < 1e-6
    assert np.allclose(loaded.scale_mat, default_scale_mat())
    assert np.array_equal(loaded.masks, rendered.masks)
    assert np.abs(loaded.images - rendered.images).max() <= 0.5 / 255 + 1e-6
    description = json.loads((scene_dir / "scene.json").read_text())
    assert description["name"] == "nsr-default" and description["generator_version"] == GENERATOR_VERSION
    assert (description["num_views"], description["resolution"]) == (VIEWS, RES)
    assert not list(scene_dir.parent.glob(".scene.*"))  # no staging folders left behind


def test_generation_is_deterministic(scene_dir: Path, tmp_path: Path):
    again = generate_default_scene(tmp_path / "again", VIEWS, RES)
    first, second = load_idr_scene(scene_dir), load_idr_scene(again)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.masks, second.masks)
    with np.load(scene_dir / "cameras.npz") as a, np.load(again / "cameras.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[key], b[key]) for key in a.files)
    assert (scene_dir / "gt_mesh.ply").read_bytes() == (again / "gt_mesh.ply").read_bytes()


def test_cached_scene_is_not_regenerated(scene_dir: Path, monkeypatch: pytest.MonkeyPatch):
    before = _files(scene_dir)

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a cached scene")

    monkeypatch.setattr(scene_module, "render_default_scene", fail)
    assert is_cached(scene_dir, VIEWS, RES)
    assert generate_default_scene(scene_dir, VIEWS, RES) == scene_dir
    assert _files(scene_dir) == before
    assert not is_cached(scene_dir, VIEWS + 1, RES) and not is_cached(scene_dir, VIEWS, RES + 1)


def test_incomplete_or_stale_scene_is_regenerated(scene_dir: Path, tmp_path: Path):
    root = tmp_path / "scene"
    shutil.copytree(scene_dir, root)
    (root / "mask" / "003.png").unlink()
    assert not is_cached(root, VIEWS, RES)
    generate_default_scene(root, VIEWS, RES)
    assert is_cached(root, VIEWS, RES) and (root / "mask" / "003.png").is_file()

    description = json.loads((root / "scene.json").read_text())
    description["generator_version"] = GENERATOR_VERSION - 1
    (root / "scene.json").write_text(json.dumps(description))
    (root / "stale.txt").write_text("from the old version")
    assert not is_cached(root, VIEWS, RES)
    generate_default_scene(root, VIEWS, RES)
    assert is_cached(root, VIEWS, RES) and not (root / "stale.txt").exists()


def test_foreign_folder_is_not_replaced(tmp_path: Path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an NSR default scene"):
        generate_default_scene(root, 2, 32)
    assert (root / "notes.txt").read_text() == "keep me"


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scene_module, "default_object_mesh", killed)
    with pytest.raises(KeyboardInterrupt):
        generate_default_scene(tmp_path / "scene", 2, 32)
    assert list(tmp_path.iterdir()) == []


# --- Ground truth and cameras agree ---------------------------------------------------------------------


def test_gt_mesh_is_the_object_in_world_units(scene_dir: Path, gt_mesh: trimesh.Trimesh):
    assert gt_mesh.is_watertight and gt_mesh.euler_number == 0  # closed, genus one (the handle)
    scale_mat = default_scale_mat()
    normalised = (gt_mesh.vertices - scale_mat[:3, 3]) / scale_mat[0, 0]
    values = default_object_sdf(torch.tensor(normalised, dtype=torch.float32))
    assert values.abs().max() < 1e-2 * 0.1  # marching-cubes vertices are on the zero set
    assert np.linalg.norm(normalised, axis=1).max() < BOUNDING_RADIUS
    diagonal = json.loads((scene_dir / "scene.json").read_text())["gt_mesh"]["bbox_diagonal"]
    assert diagonal == pytest.approx(np.linalg.norm(np.ptp(gt_mesh.vertices, axis=0)))
    assert diagonal > 2.5 * 1.2  # world units (normalised diagonal ~1.42)


def test_cameras_and_mesh_agree(scene_dir: Path, gt_mesh: trimesh.Trimesh):
    loaded = load_idr_scene(scene_dir)
    scale = loaded.scale_mat[0, 0]
    tree = cKDTree(gt_mesh.vertices)
    with np.load(scene_dir / "cameras.npz") as cameras:
        world_mats = [cameras[f"world_mat_{i}"] for i in range(VIEWS)]
    vertices = np.concatenate([gt_mesh.vertices, np.ones((len(gt_mesh.vertices), 1))], axis=1)
    for i in range(VIEWS):
        # Traced mask pixels, mapped to world, lie on the ground-truth mesh.
        points, hit = trace_surface(loaded.intrinsics[i], loaded.c2w[i], RES, RES)
        assert np.array_equal(hit.numpy().reshape(RES, RES), loaded.masks[i])
        world = loaded.to_world(points[hit][::7].numpy().astype(np.float64))
        distance, _ = tree.query(world)
        assert distance.max() < 1e-2 * scale
        # Every mesh vertex projects (world_mat, world units) into the mask, up to edge pixels.
        projected = vertices @ world_mats[i][:3].T
        pixels = np.round(projected[:, :2] / projected[:, 2:]).astype(int)
        assert ((pixels >= 0) & (pixels < RES)).all()
        grown = loaded.masks[i].copy()
        for axis in (0, 1):
            for shift in (-1, 1):
                grown |= np.roll(loaded.masks[i], shift, axis=axis)
        assert grown[pixels[:, 1], pixels[:, 0]].mean() > 0.999


def test_abandoned_staging_folders_are_removed(tmp_path: Path):
    dead = tmp_path / ".scene.tmp-999999999-abcd1234"  # no such process
    alive = tmp_path / f".scene.tmp-{os.getpid()}-abcd1234"
    dead.mkdir()
    alive.mkdir()
    generate_default_scene(tmp_path / "scene", 2, 32)
    assert not dead.exists() and alive.exists()
