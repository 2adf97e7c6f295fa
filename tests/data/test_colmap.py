"""COLMAP models: text/binary round trips, scenes with masks, undistortion, bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.data.test_idr import _make_scene

from nsr.data.colmap import (
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoint,
    camera_matrix,
    distort,
    load_colmap_scene,
    qvec_to_rotmat,
    read_model,
    rotmat_to_qvec,
    scene_to_model,
    undistort_maps,
    write_model,
)
from nsr.data.errors import DataError
from nsr.data.formats import detect_format, load_scene
from nsr.data.scene import SceneData


def _random_model(seed: int = 0) -> ColmapModel:
    rng = np.random.default_rng(seed)
    cameras = {
        1: ColmapCamera(1, "PINHOLE", 8, 6, rng.random(4) * 10),
        2: ColmapCamera(2, "OPENCV", 8, 6, rng.random(8)),
        5: ColmapCamera(5, "SIMPLE_RADIAL", 8, 6, rng.random(4)),
    }
    images = {}
    for image_id, camera_id in ((1, 1), (2, 2), (7, 5)):
        q = rng.normal(size=4)
        images[image_id] = ColmapImage(
            image_id,
            q / np.linalg.norm(q),
            rng.normal(size=3),
            camera_id,
            f"sub dir/img_{image_id}.png",
            rng.random((3, 2)) * 8,
            np.array([-1, 4, 9], dtype=np.int64),
        )
    images[9] = ColmapImage(9, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "no_points.jpg")
    points = {
        pid: ColmapPoint(
            pid,
            rng.normal(size=3),
            rng.integers(0, 256, 3).astype(np.uint8),
            float(rng.random()),
            np.array([1, 2, 7], dtype=np.int32),
            np.array([1, 0, 2], dtype=np.int32),
        )
        for pid in (4, 9)
    }
    return ColmapModel(cameras, images, points)


def _assert_models_equal(a: ColmapModel, b: ColmapModel) -> None:
    assert a.cameras.keys() == b.cameras.keys() and a.images.keys() == b.images.keys()
    for key, cam in a.cameras.items():
        other = b.cameras[key]
        assert (cam.model, cam.width, cam.height) == (other.model, other.width, other.height)
        np.testing.assert_array_equal(cam.params, other.params)
    for key, img in a.images.items():
        other = b.images[key]
        assert (img.name, img.camera_id) == (other.name, other.camera_id)
        for field in ("qvec", "tvec", "xys", "point3d_ids"):
            np.testing.assert_array_equal(getattr(img, field), getattr(other, field))
    assert a.points.keys() == b.points.keys()
    for key, p in a.points.items():
        other = b.points[key]
        assert p.error == other.error
        for field in ("xyz", "rgb", "image_ids", "point2d_idxs"):
            np.testing.assert_array_equal(getattr(p, field), getattr(other, field))


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_model_round_trips_exactly(tmp_path: Path, binary: bool) -> None:
    model = _random_model()
    write_model(model, tmp_path, binary=binary)
    _assert_models_equal(read_model(tmp_path), model)


def test_text_and_binary_forms_agree(tmp_path: Path) -> None:
    model = _random_model(3)
    write_model(model, tmp_path / "t", binary=False)
    write_model(read_model(tmp_path / "t"), tmp_path / "b", binary=True)
    _assert_models_equal(read_model(tmp_path / "b"), model)


def test_quaternions_round_trip_for_any_rotation() -> None:
    rng = np.random.default_rng(0)
    rotations = [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]  # w = 0: 180-degree turns
    for _ in range(20):
        q = rng.normal(size=4)
        rotations.append(qvec_to_rotmat(q))
    for rotation in rotations:
        np.testing.assert_allclose(qvec_to_rotmat(rotmat_to_qvec(rotation)), rotation, atol=1e-12)


def _write_capture(root: Path, scene: SceneData, binary: bool, masks: bool = True) -> None:
    """A COLMAP capture of `scene` (world units via scale_mat): images/, masks/, sparse/0/."""
    names = [f"frame_{i:02d}.jpg" for i in range(scene.num_views)]
    (root / "images").mkdir(parents=True)
    for i, name in enumerate(names):
        # PNG content under a .jpg name keeps the pixels exact; readers go by content.
        Image.fromarray(np.round(scene.images[i] * 255).astype(np.uint8)).save(
            root / "images" / name, format="PNG"
        )
        if masks:
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray(scene.masks[i].astype(np.uint8) * 255).save(root / "masks" / f"{name}.png")
    model = scene_to_model(scene, names)
    rng = np.random.default_rng(0)
    centre, radius = scene.scale_mat[:3, 3], scene.scale_mat[0, 0]
    cloud = rng.normal(size=(300, 3))
    cloud = centre + 0.8 * radius * cloud / np.linalg.norm(cloud, axis=1, keepdims=True) * rng.random(
        (300, 1)
    )
    cloud[:5] = centre + 50 * radius  # far outliers, well observed
    for pid, xyz in enumerate(cloud, start=1):
        track = np.arange(1, 4 if pid % 10 else 2, dtype=np.int32)  # every 10th point: seen once
        model.points[pid] = ColmapPoint(pid, xyz, np.zeros(3, np.uint8), 0.5, track, np.zeros_like(track))
    write_model(model, root / "sparse" / "0", binary=binary)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_capture_loads_with_world_cameras_masks_and_point_sphere(tmp_path: Path, binary: bool) -> None:
    scene = _make_scene()
    _write_capture(tmp_path, scene, binary)
    assert detect_format(tmp_path) == "colmap"
    world = load_colmap_scene(tmp_path, normalize="none")
    assert world.image_names == [f"frame_{i:02d}.jpg" for i in range(3)]
    np.testing.assert_allclose(world.intrinsics, _pinhole(scene.intrinsics), atol=1e-9)
    expected = scene.c2w.copy()
    expected[:, :3, 3] = scene.to_world(scene.c2w[:, :3, 3])
    np.testing.assert_allclose(world.c2w, expected, atol=1e-9)
    np.testing.assert_array_equal(world.masks, scene.masks)
    np.testing.assert_allclose(world.images, scene.images, atol=0.5 / 255 + 1e-6)
    normalised = load_scene(
        tmp_path
    )  # auto: sphere from the sparse points, outliers and short tracks ignored
    centre, radius = normalised.scale_mat[:3, 3], normalised.scale_mat[0, 0]
    np.testing.assert_allclose(centre, scene.scale_mat[:3, 3], atol=0.25 * scene.scale_mat[0, 0])
    assert 0.6 * scene.scale_mat[0, 0] < radius < 1.1 * scene.scale_mat[0, 0]
    np.testing.assert_allclose(normalised.to_world(normalised.c2w[:, :3, 3]), expected[:, :3, 3], atol=1e-9)


def _pinhole(intrinsics: np.ndarray) -> np.ndarray:
    out = intrinsics.copy()
    out[:, 0, 1] = 0.0  # PINHOLE has no skew
    return out


def test_without_masks_every_pixel_is_object(tmp_path: Path) -> None:
    scene = _make_scene()
    scene.intrinsics[:, 0, 1] = 0.0
    _write_capture(tmp_path, scene, binary=False, masks=False)
    assert load_colmap_scene(tmp_path, normalize="none").masks.all()


def test_undistortion_maps_pinhole_pixels_to_their_distorted_positions() -> None:
    camera = ColmapCamera(1, "OPENCV", 40, 30, np.array([35.0, 33.0, 20.5, 15.0, -0.2, 0.05, 0.003, -0.002]))
    k, dist = camera_matrix(camera)
    maps = undistort_maps(k, dist, 30, 40)
    rng = np.random.default_rng(0)
    for _ in range(10):
        point = np.append(rng.uniform(-0.3, 0.3, 2), 1.0)
        pinhole = k @ point
        distorted = distort(point[None, :2], dist)[0]
        col, row = k[0, 0] * distorted[0] + k[0, 2], k[1, 1] * distorted[1] + k[1, 2]
        u, v = pinhole[:2]
        # maps is sampled at integer pixels: compare at the nearest one, with the local derivative.
        ui, vi = round(u), round(v)
        np.testing.assert_allclose(maps[:, vi, ui], [row, col], atol=1.5)
    identity = undistort_maps(k, np.zeros(4), 30, 40)
    np.testing.assert_allclose(identity, np.mgrid[0:30, 0:40], atol=1e-9)


def test_distorted_capture_is_undistorted_on_load(tmp_path: Path) -> None:
    scene = _make_scene()
    scene.intrinsics[:, 0, 1] = 0.0
    _write_capture(tmp_path, scene, binary=False)
    model = read_model(tmp_path / "sparse" / "0")
    for cam in model.cameras.values():
        fx, fy, cx, cy = cam.params
        cam.model, cam.params = "OPENCV", np.array([fx, fy, cx, cy, 0.1, 0.0, 0.0, 0.0])
    write_model(model, tmp_path / "sparse" / "0")
    loaded = load_colmap_scene(tmp_path, normalize="none")
    np.testing.assert_allclose(loaded.intrinsics, scene.intrinsics, atol=1e-9)
    assert loaded.masks.shape == scene.masks.shape
    assert not np.allclose(loaded.images, scene.images, atol=0.01)  # pixels moved by the undistortion


BAD = {
    "unsupported model": ("OPENCV_FISHEYE", "sparse/0/cameras.txt", "not supported"),
    "missing image": ("rm image", "images/frame_01.jpg", "not found"),
    "missing mask": ("rm mask", "masks", "no mask for image frame_01.jpg"),
    "missing images.txt": ("rm images.txt", "sparse/0/images.txt", "not found"),
    "truncated points": ("truncate", "sparse/0/points3D.txt", "expected POINT3D_ID"),
    "empty mask": ("empty mask", "masks/frame_02.jpg.png", "empty"),
}


@pytest.mark.parametrize("case", list(BAD), ids=lambda c: c.replace(" ", "_"))
def test_bad_capture_raises_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    scene = _make_scene()
    _write_capture(tmp_path, scene, binary=False)
    action, offender, words = BAD[case]
    sparse = tmp_path / "sparse" / "0"
    if action == "OPENCV_FISHEYE":
        text = (sparse / "cameras.txt").read_text().replace("PINHOLE", "OPENCV_FISHEYE")
        lines = [
            " ".join([*line.split()[:8], "0.1", "0.1", "0.0", "0.0"]) if "FISHEYE" in line else line
            for line in text.splitlines()
        ]
        (sparse / "cameras.txt").write_text("\n".join(lines))
    elif action == "rm image":
        (tmp_path / "images" / "frame_01.jpg").unlink()
    elif action == "rm mask":
        (tmp_path / "masks" / "frame_01.jpg.png").unlink()
    elif action == "rm images.txt":
        (sparse / "images.txt").unlink()
    elif action == "truncate":
        with open(sparse / "points3D.txt", "a") as file:
            file.write("77 1.0 2.0\n")
    elif action == "empty mask":
        Image.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "masks" / "frame_02.jpg.png")
    with pytest.raises(DataError) as caught:
        load_colmap_scene(tmp_path, normalize="none")
    assert caught.value.path == tmp_path / offender
    assert words in str(caught.value)


def test_truncated_binary_names_the_file(tmp_path: Path) -> None:
    write_model(_random_model(), tmp_path, binary=True)
    data = (tmp_path / "images.bin").read_bytes()
    (tmp_path / "images.bin").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"malformed COLMAP file.*ends early") as caught:
        read_model(tmp_path)
    assert caught.value.path == tmp_path / "images.bin"


def test_unknown_layout_lists_the_formats(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="unknown scene layout") as caught:
        detect_format(tmp_path)
    assert "transforms" in caught.value.hint and "COLMAP" in caught.value.hint
    shutil.rmtree(tmp_path / "stuff")
