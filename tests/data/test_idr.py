"""IDR/DTU/NeuS scene folders: round trip, downscaling, camera-file fallback, every bad input, real scans."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nsr.cameras.projection import compose_projection
from nsr.data.errors import DataError
from nsr.data.idr import load_idr_scene, write_idr_scene
from nsr.data.scene import SceneData

HEIGHT, WIDTH, VIEWS = 6, 8, 3


def _look_at_origin(centre: np.ndarray) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world pose at `centre` whose z axis points at the origin."""
    z = -centre / np.linalg.norm(centre)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    c2w[:3, 3] = centre
    return c2w


def _make_scene(seed: int = 0) -> SceneData:
    rng = np.random.default_rng(seed)
    intrinsics = np.stack(
        [np.array([[9.0 + i, 0.3, 3.6], [0.0, 10.0 - i, 2.4], [0.0, 0.0, 1.0]]) for i in range(VIEWS)]
    )
    centres = rng.normal(size=(VIEWS, 3))
    centres *= 3.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    masks = rng.random((VIEWS, HEIGHT, WIDTH)) > 0.5
    masks[:, 0, 0] = True
    scale_mat = np.diag([2.5, 2.5, 2.5, 1.0])
    scale_mat[:3, 3] = [10.0, -4.0, 600.0]
    return SceneData(
        images=rng.random((VIEWS, HEIGHT, WIDTH, 3)).astype(np.float32),
        masks=masks,
        intrinsics=intrinsics,
        c2w=np.stack([_look_at_origin(c) for c in centres]),
        scale_mat=scale_mat,
    )


@pytest.fixture
def scene_root(tmp_path: Path) -> Path:
    root = tmp_path / "scene"
    write_idr_scene(_make_scene(), root)
    return root


def _project(intrinsics: np.ndarray, c2w: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(3,) point -> (2,) pixel (column, row)."""
    uvw = compose_projection(intrinsics, c2w)[:3] @ np.append(point, 1.0)
    return uvw[:2] / uvw[2]


def _edit_cameras(root: Path, **changes: np.ndarray | None) -> None:
    """Rewrite root/cameras.npz with keys replaced (or removed when None)."""
    with np.load(root / "cameras.npz") as npz:
        arrays = dict(npz)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(root / "cameras.npz", **arrays)


def test_round_trip_preserves_cameras_images_and_masks(tmp_path: Path) -> None:
    scene = _make_scene()
    written, read = [], []
    write_idr_scene(scene, tmp_path, progress=lambda done, total: written.append((done, total)))
    assert written == [(1, 3), (2, 3), (3, 3)]
    with np.load(tmp_path / "cameras.npz") as npz:
        # Stored in world units: a normalised point x projects like scale_mat @ x through world_mat.
        point = np.array([0.1, -0.2, 0.3])
        world_uvw = npz["world_mat_0"][:3] @ scene.scale_mat @ np.append(point, 1.0)
        np.testing.assert_allclose(
            world_uvw[:2] / world_uvw[2], _project(scene.intrinsics[0], scene.c2w[0], point)
        )
    loaded = load_idr_scene(tmp_path, progress=lambda done, total: read.append((done, total)))
    assert read == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose(loaded.intrinsics, scene.intrinsics, atol=1e-6)
    np.testing.assert_allclose(loaded.c2w, scene.c2w, atol=1e-6)
    np.testing.assert_allclose(loaded.scale_mat, scene.scale_mat)
    assert loaded.images.dtype == np.float32 and loaded.images.shape == scene.images.shape
    np.testing.assert_allclose(loaded.images, scene.images, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(loaded.masks, scene.masks)
    assert loaded.image_names == ["000.png", "001.png", "002.png"]
    assert loaded.root == tmp_path


def test_world_mat_may_be_3x4(scene_root: Path) -> None:
    with np.load(scene_root / "cameras.npz") as npz:
        _edit_cameras(scene_root, **{f"world_mat_{i}": npz[f"world_mat_{i}"][:3] for i in range(VIEWS)})
    np.testing.assert_allclose(load_idr_scene(scene_root).c2w, _make_scene().c2w, atol=1e-6)


@pytest.mark.parametrize(("downscale", "size"), [(2, (3, 4)), (4, (2, 2)), (1.6, (4, 5))])
def test_downscale_resizes_by_area_and_moves_projections_to_matching_pixels(
    scene_root: Path, downscale: float, size: tuple[int, int]
) -> None:
    full = load_idr_scene(scene_root)
    small = load_idr_scene(scene_root, downscale=downscale)
    assert small.images.shape == (VIEWS, *size, 3) and small.masks.shape == (VIEWS, *size)
    np.testing.assert_allclose(small.c2w, full.c2w)
    factors = np.array([size[1] / WIDTH, size[0] / HEIGHT])  # (x, y): 6 / 4 rows round to 2 -> 1/3 != 1/4
    for point in np.random.default_rng(1).normal(scale=0.3, size=(4, 3)):
        for view in range(VIEWS):
            uv = _project(full.intrinsics[view], full.c2w[view], point)
            expected = (uv + 0.5) * factors - 0.5
            np.testing.assert_allclose(
                _project(small.intrinsics[view], small.c2w[view], point), expected, atol=1e-9
            )
    if downscale == 2:
        blocks = full.images.reshape(VIEWS, 3, 2, 4, 2, 3).mean(axis=(2, 4))
        np.testing.assert_allclose(small.images, blocks, atol=1e-5)


def test_a_scene_without_a_mask_folder_loads_unmasked(tmp_path: Path) -> None:
    scene = _make_scene()
    write_idr_scene(scene, tmp_path)
    shutil.rmtree(tmp_path / "mask")
    loaded = load_idr_scene(tmp_path)
    assert not loaded.has_masks and loaded.masks.all() and loaded.masks.shape == scene.masks.shape
    np.testing.assert_allclose(loaded.images, scene.images, atol=1 / 255)
    assert load_idr_scene(tmp_path, downscale=2).masks.all()
    assert not loaded.subset([0, 1]).has_masks


def test_downscaled_masks_threshold_the_area_average(tmp_path: Path) -> None:
    scene = _make_scene()
    scene.masks[:] = False
    scene.masks[:, :2, :2] = True  # one full 2x2 block -> kept
    scene.masks[:, 4, 4] = True  # one pixel of a 2x2 block -> 1/4 covered -> dropped
    scene.masks[:, 4:6, 7] = True  # half of a block -> exactly half -> dropped (strictly above half)
    write_idr_scene(scene, tmp_path)
    masks = load_idr_scene(tmp_path, downscale=2).masks
    expected = np.zeros((VIEWS, 3, 4), dtype=bool)
    expected[:, 0, 0] = True
    np.testing.assert_array_equal(masks, expected)


def test_camera_file_fallback_and_choice(tmp_path: Path) -> None:
    scene = _make_scene()
    write_idr_scene(scene, tmp_path, camera_file="cameras_sphere.npz")
    with np.load(tmp_path / "cameras_sphere.npz") as npz:
        arrays = dict(npz)
    np.savez(tmp_path / "cameras_sphere.npz", world_mat_inv_0=np.eye(4), camera_mat_0=np.eye(4), **arrays)
    np.testing.assert_allclose(load_idr_scene(tmp_path).c2w, scene.c2w, atol=1e-6)  # extra keys ignored

    other = _make_scene(seed=1)
    other.scale_mat = np.eye(4)
    write_idr_scene(other, tmp_path / "other")
    shutil.copy(tmp_path / "other" / "cameras.npz", tmp_path / "my_cameras.npz")
    np.testing.assert_allclose(
        load_idr_scene(tmp_path, camera_file="my_cameras.npz").c2w, other.c2w, atol=1e-6
    )
    shutil.copy(
        tmp_path / "my_cameras.npz", tmp_path / "cameras.npz"
    )  # cameras.npz wins over cameras_sphere.npz
    np.testing.assert_allclose(load_idr_scene(tmp_path).scale_mat, np.eye(4))


def test_grey_rgba_16bit_and_rgb_files_are_converted(scene_root: Path) -> None:
    grey = np.arange(HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH) * 5
    Image.fromarray(grey).save(scene_root / "image" / "000.png")
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent: alpha is dropped, not composited
    Image.fromarray(rgba).save(scene_root / "image" / "001.png")
    mask16 = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
    mask16[0, :3] = [32767, 32768, 65535]  # > half range
    Image.fromarray(mask16).save(scene_root / "mask" / "000.png")
    mask_rgb = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask_rgb[1, 1, 2], mask_rgb[2, 2, 0] = 128, 127  # max over channels > 127.5
    Image.fromarray(mask_rgb).save(scene_root / "mask" / "001.png")
    scene = load_idr_scene(scene_root)
    np.testing.assert_allclose(scene.images[0], np.repeat(grey[..., None] / 255.0, 3, axis=-1), atol=1e-6)
    np.testing.assert_allclose(
        scene.images[1], np.broadcast_to([200 / 255, 0, 0], (HEIGHT, WIDTH, 3)), atol=1e-6
    )
    assert set(zip(*np.nonzero(scene.masks[0]))) == {(0, 1), (0, 2)}
    assert set(zip(*np.nonzero(scene.masks[1]))) == {(1, 1)}


def test_jpeg_files_of_any_case_are_read_in_name_order(scene_root: Path) -> None:
    image = np.asarray(Image.open(scene_root / "image" / "000.png"))
    (scene_root / "image" / "000.png").unlink()
    Image.fromarray(image).save(scene_root / "image" / "000.JPG", quality=95)
    (scene_root / "image" / ".hidden.png").write_bytes(b"")
    (scene_root / "image" / "notes.txt").write_text("ignored")
    scene = load_idr_scene(scene_root)
    assert scene.image_names == ["000.JPG", "001.png", "002.png"]


def test_writer_refuses_folders_holding_other_views(tmp_path: Path) -> None:
    write_idr_scene(_make_scene(), tmp_path)
    write_idr_scene(_make_scene(seed=2), tmp_path)  # same names: overwritten
    Image.fromarray(np.zeros((HEIGHT, WIDTH), dtype=np.uint8)).save(tmp_path / "image" / "009.png")
    with pytest.raises(DataError, match=r"009\.png"):
        write_idr_scene(_make_scene(), tmp_path)


def _write_png(path: Path, shape: tuple[int, ...], value: int = 255) -> None:
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as file:
        np.save(file, array)


def _singular_world_mat() -> np.ndarray:
    world = np.eye(4)
    world[2, :3] = world[0, :3]
    return world


def _differing_scale_mat() -> np.ndarray:
    scale = _make_scene().scale_mat.copy()
    scale[0, 3] += 1e-3
    return scale


# name -> (how to break a valid scene, offending path relative to the scene, words of the problem)
BAD_INPUTS: dict[str, tuple[Callable[[Path], object], str, tuple[str, ...]]] = {
    "missing root": (lambda root: shutil.rmtree(root), "", ("not found",)),
    "missing image folder": (lambda root: shutil.rmtree(root / "image"), "image", ("not found",)),
    "misnamed mask folder": (lambda root: (root / "mask").rename(root / "masks"), "mask", ("not found",)),
    "empty image folder": (
        lambda root: [p.unlink() for p in (root / "image").iterdir()],
        "image",
        ("empty",),
    ),
    "empty mask folder": (lambda root: [p.unlink() for p in (root / "mask").iterdir()], "mask", ("empty",)),
    "image mask count mismatch": (
        lambda root: (root / "mask" / "002.png").unlink(),
        "mask",
        ("mismatch", "2 masks", "3 images"),
    ),
    "camera count mismatch": (
        lambda root: _edit_cameras(root, world_mat_2=None, scale_mat_2=None),
        "cameras.npz",
        ("mismatch", "2 cameras", "3 images"),
    ),
    "missing npz": (
        lambda root: (root / "cameras.npz").unlink(),
        "",
        ("not found", "cameras.npz", "cameras_sphere.npz"),
    ),
    "garbage npz": (
        lambda root: (root / "cameras.npz").write_bytes(b"not a zip"),
        "cameras.npz",
        ("unreadable",),
    ),
    "npy saved as npz": (
        lambda root: _save_npy(root / "cameras.npz", np.eye(4)),
        "cameras.npz",
        ("unreadable",),
    ),
    "missing world_mat": (
        lambda root: _edit_cameras(root, world_mat_1=None, world_mat_7=np.eye(4)),
        "cameras.npz",
        ("missing", "world_mat_1"),
    ),
    "missing scale_mat": (
        lambda root: _edit_cameras(root, scale_mat_1=None),
        "cameras.npz",
        ("missing", "scale_mat_1"),
    ),
    "world_mat shape": (
        lambda root: _edit_cameras(root, world_mat_1=np.eye(3)),
        "cameras.npz",
        ("world_mat_1", "shape"),
    ),
    "scale_mat shape": (
        lambda root: _edit_cameras(root, scale_mat_0=np.eye(4)[:3]),
        "cameras.npz",
        ("scale_mat_0", "shape"),
    ),
    "world_mat not finite": (
        lambda root: _edit_cameras(root, world_mat_2=np.full((4, 4), np.nan)),
        "cameras.npz",
        ("world_mat_2", "finite"),
    ),
    "scale_mat not finite": (
        lambda root: _edit_cameras(root, scale_mat_1=np.diag([1.0, np.inf, 1.0, 1.0])),
        "cameras.npz",
        ("scale_mat_1", "finite"),
    ),
    "world_mat singular": (
        lambda root: _edit_cameras(root, world_mat_1=_singular_world_mat()),
        "cameras.npz",
        ("world_mat_1", "singular"),
    ),
    "scale_mat singular": (
        lambda root: _edit_cameras(
            root, **{f"scale_mat_{i}": np.diag([1.0, 0.0, 1.0, 1.0]) for i in range(3)}
        ),
        "cameras.npz",
        ("scale_mat_0", "singular"),
    ),
    "scale_mat not affine": (
        lambda root: _edit_cameras(root, **{f"scale_mat_{i}": np.ones((4, 4)) + np.eye(4) for i in range(3)}),
        "cameras.npz",
        ("scale_mat_0", "affine"),
    ),
    "scale_mats differ": (
        lambda root: _edit_cameras(root, scale_mat_2=_differing_scale_mat()),
        "cameras.npz",
        ("scale_mat_2", "differs"),
    ),
    "unreadable image": (
        lambda root: (root / "image" / "001.png").write_bytes(b"garbage"),
        "image/001.png",
        ("unreadable",),
    ),
    "truncated image": (
        lambda root: (root / "image" / "001.png").write_bytes((root / "image" / "001.png").read_bytes()[:60]),
        "image/001.png",
        ("unreadable",),
    ),
    "unreadable mask": (
        lambda root: (root / "mask" / "002.png").write_bytes(b""),
        "mask/002.png",
        ("unreadable",),
    ),
    "image sizes differ": (
        lambda root: _write_png(root / "image" / "002.png", (HEIGHT, WIDTH + 1, 3)),
        "image/002.png",
        ("size", "9x6", "8x6", "000.png"),
    ),
    "mask size differs": (
        lambda root: _write_png(root / "mask" / "001.png", (HEIGHT + 1, WIDTH)),
        "mask/001.png",
        ("size", "8x7", "8x6"),
    ),
    "empty mask": (
        lambda root: _write_png(root / "mask" / "001.png", (HEIGHT, WIDTH), 127),
        "mask/001.png",
        ("empty",),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=lambda case: case.replace(" ", "_"))
def test_bad_input_raises_one_data_error_naming_the_file(scene_root: Path, case: str) -> None:
    damage, offender, words = BAD_INPUTS[case]
    damage(scene_root)
    with pytest.raises(DataError) as caught:
        load_idr_scene(scene_root)
    error = caught.value
    assert error.path == scene_root / offender
    assert str(scene_root / offender) in str(error)
    for word in words:
        assert word in error.problem
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_missing_explicit_camera_file_names_it(scene_root: Path) -> None:
    with pytest.raises(DataError, match=r"not found \(tried mine\.npz\)"):
        load_idr_scene(scene_root, camera_file="mine.npz")


def _assert_cameras_surround_the_unit_sphere(scene: SceneData) -> None:
    centres = scene.c2w[:, :3, 3]
    axes = scene.c2w[:, :3, 2]
    assert np.all(np.linalg.norm(centres, axis=1) > 1.0)
    along = np.einsum("ni,ni->n", -centres, axes)
    assert np.all(along > 0.0)  # the origin is in front of every camera
    miss = np.linalg.norm(centres + along[:, None] * axes, axis=1)
    assert np.all(miss < 1.0)


def test_dtu_scan24_loads_downscaled(shared_data: Path) -> None:
    scene = load_idr_scene(shared_data / "dtu_scan24", downscale=4)
    assert scene.num_views == 49
    assert scene.images.shape == (49, 150, 200, 3) and scene.masks.shape == (49, 150, 200)
    assert scene.images.min() >= 0.0 and scene.images.max() <= 1.0
    assert np.all(scene.masks.any(axis=(1, 2)))
    _assert_cameras_surround_the_unit_sphere(scene)
    # Full-resolution focal ~2892 px at 1600 px wide (SOURCE.md) -> 1/8 of it at 200 px wide.
    np.testing.assert_allclose(scene.intrinsics[:, 0, 0].mean(), 2892.33 / 8, rtol=0.02)


def test_synthetic_spot_loads_with_documented_cameras(shared_data: Path) -> None:
    scene = load_idr_scene(shared_data / "synthetic_spot_mitsuba", downscale=4)
    assert scene.images.shape == (48, 100, 100, 3)
    assert np.all(scene.masks.any(axis=(1, 2)))
    _assert_cameras_surround_the_unit_sphere(scene)
    # SOURCE.md: f = 200 / tan(20 deg), principal point 199.5 at 400 px -> (199.5 + 0.5) / 4 - 0.5 at 100 px.
    np.testing.assert_allclose(scene.intrinsics[:, 0, 0], 200 / np.tan(np.radians(20)) / 4, rtol=1e-5)
    np.testing.assert_allclose(scene.intrinsics[:, :2, 2], 49.5, atol=1e-4)
    np.testing.assert_allclose(np.diag(scene.scale_mat)[:3], 1.1386486, rtol=1e-6)
    np.testing.assert_allclose(scene.scale_mat[:3, 3], [0.0, 0.108431, 0.1900455], atol=1e-6)
