"""NeRF-synthetic / instant-ngp transforms.json scenes: cameras, alpha masks, backgrounds, spheres, lego."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.data.test_idr import _make_scene

from nsr.data.blender import load_nerf_synthetic, write_transforms
from nsr.data.errors import DataError
from nsr.data.formats import detect_format, load_scene


@pytest.fixture
def written(tmp_path: Path):
    scene = _make_scene()
    scene.intrinsics[:, 0, 1] = 0.0  # transforms.json has no skew
    write_transforms(scene, tmp_path)
    return scene, tmp_path


def test_cameras_round_trip_through_the_opengl_convention(written) -> None:
    scene, root = written
    assert detect_format(root) == "nerf-synthetic"
    world = load_nerf_synthetic(root, normalize=False)
    np.testing.assert_allclose(world.intrinsics, scene.intrinsics, atol=1e-9)
    np.testing.assert_allclose(world.c2w[:, :3, :3], scene.c2w[:, :3, :3], atol=1e-9)
    np.testing.assert_allclose(world.c2w[:, :3, 3], scene.to_world(scene.c2w[:, :3, 3]), atol=1e-9)
    np.testing.assert_array_equal(world.masks, scene.masks)
    # The OpenGL camera looks down its -z: the stored matrix's third column is minus NSR's viewing axis.
    stored = json.loads((root / "transforms_train.json").read_text())["frames"][0]["transform_matrix"]
    np.testing.assert_allclose(np.asarray(stored)[:3, 2], -world.c2w[0, :3, 2], atol=1e-9)


def test_alpha_is_the_mask_and_colours_are_composited(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque
    rgba[2, :, 3] = 128  # half transparent: not object (alpha must be > 0.5), colour blended
    Image.fromarray(rgba).save(tmp_path / "a.png")
    meta = {"camera_angle_x": 1.0, "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    for background, value in (("white", 1.0), ("black", 0.0)):
        scene = load_nerf_synthetic(tmp_path, background=background, normalize=False)
        np.testing.assert_array_equal(scene.masks[0, :, 0], [True, True, True, False])
        np.testing.assert_allclose(scene.images[0, 0, 0], [200 / 255, 0, 0], atol=1e-6)
        np.testing.assert_allclose(scene.images[0, 3, 0], [value] * 3, atol=1e-6)
        a = 128 / 255
        np.testing.assert_allclose(scene.images[0, 2, 0, 1], value * (1 - a), atol=1e-6)
    k = scene.intrinsics[0]
    np.testing.assert_allclose([k[0, 0], k[0, 2], k[1, 2]], [2 / np.tan(0.5), 1.5, 1.5])


def test_aabb_and_instant_ngp_scale_offset_give_the_sphere(written) -> None:
    _, root = written
    path = root / "transforms_train.json"
    meta = json.loads(path.read_text())
    meta["aabb"] = [[-1, -2, 0], [3, 2, 4]]
    path.write_text(json.dumps(meta))
    scene = load_nerf_synthetic(root)
    np.testing.assert_allclose(scene.scale_mat[:3, 3], [1, 0, 2])
    np.testing.assert_allclose(scene.scale_mat[0, 0], np.sqrt(48) / 2)
    del meta["aabb"]
    meta.update(scale=0.5, offset=[0.5, 0.5, 0.5])
    path.write_text(json.dumps(meta))
    scene = load_nerf_synthetic(root)
    np.testing.assert_allclose(scene.scale_mat[:3, 3], 0.0, atol=1e-12)
    np.testing.assert_allclose(scene.scale_mat[0, 0], np.sqrt(3))


@pytest.mark.parametrize(
    ("edit", "offender", "words"),
    [
        (lambda m: m.update(frames=[]), "transforms_train.json", "no frames"),
        (lambda m: m["frames"][1].update(file_path="./train/missing"), "train/missing.png", "not found"),
        (lambda m: m["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]), "transforms_train.json", "4x4"),
        (
            lambda m: [f.pop(k) for f in m["frames"] for k in ("fl_x", "fl_y")],
            "transforms_train.json",
            "focal",
        ),
        (lambda m: m.update(k1=0.1), "transforms_train.json", "distortion"),
        (lambda m: m.update(aabb=[[0, 0, 0], [0, 1, 1]]), "transforms_train.json", "aabb"),
    ],
)
def test_bad_transforms_raise_data_error_naming_the_file(written, edit, offender, words) -> None:
    _, root = written
    path = root / "transforms_train.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=words) as caught:
        load_nerf_synthetic(root)
    assert caught.value.path == (root / offender).resolve() or caught.value.path == root / offender


def test_empty_alpha_is_an_error(written) -> None:
    _, root = written
    Image.fromarray(np.zeros((6, 8, 4), np.uint8)).save(root / "train" / "r_1.png")
    with pytest.raises(DataError, match="empty") as caught:
        load_nerf_synthetic(root)
    assert caught.value.path.name == "r_1.png"


def test_lego_loads_normalised_by_its_visual_hull(shared_data: Path, tmp_path: Path) -> None:
    assert detect_format(shared_data / "nerf_synthetic_lego") == "nerf-synthetic"
    # Every 4th view (25), to keep the test fast: absolute file paths in a json of our own.
    lego = shared_data / "nerf_synthetic_lego"
    meta = json.loads((lego / "transforms_train.json").read_text())
    meta["frames"] = meta["frames"][::4]
    for frame in meta["frames"]:
        frame["file_path"] = str(lego / frame["file_path"])
    (tmp_path / "transforms_train.json").write_text(json.dumps(meta))
    scene = load_scene(tmp_path, downscale=16)
    assert scene.images.shape == (25, 50, 50, 3) and scene.masks.any(axis=(1, 2)).all()
    # camera_angle_x = 0.6911112 at 800 px -> focal 1111.1 px -> /16.
    np.testing.assert_allclose(scene.intrinsics[:, 0, 0], 0.5 * 800 / np.tan(0.5 * 0.6911112) / 16, rtol=1e-6)
    # Cameras at radius ~4.03 around the lego; the hull's sphere (radius ~1.5) keeps them all outside.
    distances = np.linalg.norm(scene.c2w[:, :3, 3], axis=1)
    assert distances.min() > 1.5 and 1.0 < scene.scale_mat[0, 0] < 2.5
    # Every camera looks at the sphere: its optical axis passes within the unit sphere.
    along = np.einsum("ni,ni->n", -scene.c2w[:, :3, 3], scene.c2w[:, :3, 2])
    miss = np.linalg.norm(scene.c2w[:, :3, 3] + along[:, None] * scene.c2w[:, :3, 2], axis=1)
    assert np.all(miss < 0.5)


def test_progress_covers_reading_then_the_visual_hull(written) -> None:
    """Without an aabb the sphere comes from the masks: progress goes on through the hull, never back."""
    scene, root = written
    calls = []
    load_nerf_synthetic(root, hull_resolution=24, progress=lambda done, total: calls.append((done, total)))
    assert calls[: scene.num_views] == [(i + 1, scene.num_views) for i in range(scene.num_views)]
    done = [d for d, _ in calls]
    assert len(calls) > scene.num_views and done == sorted(done) and calls[-1][0] == calls[-1][1]
