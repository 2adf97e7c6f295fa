"""IDR / DTU / NeuS scene folders: `image/`, `mask/` and a cameras npz (see docs/conventions.md)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from nsr.cameras.projection import compose_projection, decompose_projection
from nsr.cameras.rays import scale_intrinsics
from nsr.data.errors import DataError
from nsr.data.scene import SceneData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Image and mask file types read from `image/` and `mask/` (any letter case)."""
CAMERA_FILES = ("cameras.npz", "cameras_sphere.npz")
"""Camera files tried, in this order, when no `camera_file` is given."""

_CAMERA_KEY = re.compile(r"(world|scale)_mat_\d+")


def load_idr_scene(
    root: str | Path,
    downscale: float = 1.0,
    camera_file: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SceneData:
    """Read an IDR/DTU/NeuS scene folder.

    Args:
        root: folder holding `image/`, optionally `mask/` (files sorted by name, view i = i-th file) and the
            camera npz with `world_mat_i` (K [R|t], world -> pixel) and `scale_mat_i` (normalised -> world).
        downscale: >= 1; images and masks are area-resized to round(H / downscale) x round(W / downscale)
            and the intrinsics follow.
        camera_file: camera npz relative to `root`; by default the first of `CAMERA_FILES` present.
        progress: called with (done, total) views read.

    Returns:
        SceneData with N views: images (N, H, W, 3) float32 in [0, 1], masks (N, H, W) bool,
        intrinsics (N, 3, 3) and c2w (N, 4, 4) in the normalised frame, scale_mat (4, 4).

    Raises:
        DataError: naming the file or folder, for any missing, unreadable or inconsistent input.
    """
    if downscale < 1:
        raise ValueError(f"downscale must be >= 1, got {downscale}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "scene folder not found")
    image_paths = _list_images(root / "image")
    # No mask/ folder: a scene without masks (every pixel is object; NeuS trains on whole images). A
    # masks/ folder instead is a misnamed one: _list_images says so.
    mask_dir = root / "mask"
    mask_paths = _list_images(mask_dir) if mask_dir.is_dir() or (root / "masks").is_dir() else []
    has_masks = bool(mask_paths)
    if has_masks and len(mask_paths) != len(image_paths):
        raise DataError(
            root / "mask", f"count mismatch: {len(mask_paths)} masks for {len(image_paths)} images in image/"
        )
    intrinsics, c2w, scale_mat = _read_cameras(_camera_path(root, camera_file), len(image_paths))
    images, masks, (full_height, full_width) = _read_views(image_paths, mask_paths, downscale, progress)
    height, width = images.shape[1:3]
    if (height, width) != (full_height, full_width):
        intrinsics = np.stack(
            [_resize_intrinsics(k, width / full_width, height / full_height) for k in intrinsics]
        )
    return SceneData(
        images=images,
        masks=masks,
        intrinsics=intrinsics,
        c2w=c2w,
        scale_mat=scale_mat,
        image_names=[path.name for path in image_paths],
        root=root,
        has_masks=has_masks,
    )


def load_cameras(path: str | Path, num_views: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a camera file alone (cameras.npz layout, e.g. DTU's `cameras_linear_init.npz`).

    Returns:
        intrinsics (N, 3, 3), c2w (N, 4, 4) in that file's normalised frame, and its scale_mat (4, 4).

    Raises:
        DataError: naming the file, for a missing, unreadable or inconsistent file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "camera file not found")
    return _read_cameras(path, num_views)


def write_idr_scene(
    scene: SceneData,
    root: str | Path,
    camera_file: str = "cameras.npz",
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write a scene as an IDR folder that `load_idr_scene` reads back (up to 8-bit quantisation).

    Writes `image/000.png ...` (8-bit RGB), `mask/000.png ...` (8-bit, 0 or 255) and `camera_file` with
    `world_mat_i` (4, 4) = K [R|t] in world units (compose_projection(K, c2w) @ inv(scale_mat)) and
    `scale_mat_i` (4, 4) = scene.scale_mat. Creates the folders and overwrites files of the same names.
    `progress` is called with (done, total) views written.

    Raises:
        DataError: when `image/` or `mask/` already holds other images, which would be read as extra views.
    """
    root = Path(root)
    digits = max(3, len(str(scene.num_views - 1)))
    names = [f"{i:0{digits}d}.png" for i in range(scene.num_views)]
    for folder in (root / "image", root / "mask"):
        folder.mkdir(parents=True, exist_ok=True)
        others = sorted(path.name for path in _image_files(folder) if path.name not in names)
        if others:
            raise DataError(
                folder, f"holds {len(others)} other images (e.g. {others[0]})", "write into an empty folder"
            )
    colours = np.round(np.clip(scene.images, 0.0, 1.0) * 255.0).astype(np.uint8)
    world_from_norm = np.linalg.inv(scene.scale_mat)
    cameras = {}
    for i, name in enumerate(names):
        Image.fromarray(colours[i]).save(root / "image" / name)
        Image.fromarray(scene.masks[i].astype(np.uint8) * 255).save(root / "mask" / name)
        cameras[f"world_mat_{i}"] = compose_projection(scene.intrinsics[i], scene.c2w[i]) @ world_from_norm
        cameras[f"scale_mat_{i}"] = np.asarray(scene.scale_mat, dtype=np.float64)
        if progress is not None:
            progress(i + 1, scene.num_views)
    np.savez(root / camera_file, **cameras)


def _image_files(folder: Path) -> list[Path]:
    """Image files of a folder sorted by name (hidden files skipped)."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        hint = (
            f"found {folder.name}s/; IDR/NeuS scenes use {folder.name}/"
            if folder.with_name(folder.name + "s").is_dir()
            else ""
        )
        raise DataError(folder, "folder not found", hint)
    paths = _image_files(folder)
    if not paths:
        raise DataError(folder, "folder is empty: no *.png, *.jpg or *.jpeg files")
    return paths


def _camera_path(root: Path, camera_file: str | None) -> Path:
    names = (camera_file,) if camera_file else CAMERA_FILES
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DataError(root, f"camera file not found (tried {', '.join(names)})")


def _read_cameras(path: Path, num_views: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3, 3) K, (N, 4, 4) c2w in the normalised frame and the (4, 4) scale_mat of a camera npz."""
    if not zipfile.is_zipfile(path):
        raise DataError(path, "unreadable camera file: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in npz.files if _CAMERA_KEY.fullmatch(key)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(path, f"unreadable camera file ({err})") from None
    num_cameras = sum(key.startswith("world_mat_") for key in arrays)
    if num_cameras != num_views:
        raise DataError(path, f"count mismatch: {num_cameras} cameras (world_mat_i) for {num_views} images")
    intrinsics, c2w = np.empty((num_views, 3, 3)), np.empty((num_views, 4, 4))
    scale_mat = None
    for i in range(num_views):
        scale = _matrix(arrays, f"scale_mat_{i}", path)
        if scale_mat is None:
            scale_mat = scale
        elif np.abs(scale - scale_mat).max() > 1e-6 * np.abs(scale_mat).max():
            raise DataError(
                path, f"scale_mat_{i} differs from scale_mat_0", "NSR assumes one scale_mat per scene"
            )
        world = _matrix(arrays, f"world_mat_{i}", path)
        try:
            intrinsics[i], c2w[i] = decompose_projection(world[:3, :4] @ scale)
        except ValueError as err:
            raise DataError(path, f"world_mat_{i}: {err}") from None
    return intrinsics, c2w, scale_mat


def _matrix(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    """A checked float64 camera matrix: world_mat (4, 4) or (3, 4), scale_mat (4, 4) affine, invertible."""
    if key not in arrays:
        hint = "compute it with `nsr data normalize`" if key.startswith("scale_mat_") else ""
        raise DataError(path, f"missing key {key}", hint)
    matrix = arrays[key]
    shapes = ((4, 4), (3, 4)) if key.startswith("world_mat_") else ((4, 4),)
    if matrix.shape not in shapes:
        expected = " or ".join(f"{rows}x{cols}" for rows, cols in shapes)
        raise DataError(path, f"{key} has shape {matrix.shape}, expected {expected}")
    if not np.issubdtype(matrix.dtype, np.number) or not np.all(np.isfinite(matrix)):
        raise DataError(path, f"{key} is not finite (NaN, infinite or non-numeric values)")
    matrix = matrix.astype(np.float64)
    if key.startswith("scale_mat_"):
        linear = matrix[:3, :3]
        if abs(np.linalg.det(linear)) <= 1e-12 * np.abs(linear).max() ** 3:
            raise DataError(path, f"{key} is singular (its 3x3 block has zero determinant)")
        if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise DataError(path, f"{key} is not affine: its last row is {matrix[3]}, expected 0 0 0 1")
    return matrix


def _read_pixels(path: Path) -> np.ndarray:
    """(H, W, C) float32 values in [0, 1] of an image file: C = 1 for grey, 3 for colour; alpha dropped."""
    try:
        with Image.open(path) as img:
            if img.mode.startswith("I"):  # 16-bit grey PNG
                return np.asarray(img, dtype=np.float32)[..., None] / 65535.0
            if img.mode not in ("L", "RGB"):
                img = img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # Pillow reports some broken PNG chunks as SyntaxError.
        raise DataError(path, f"unreadable image ({err})") from None
    return pixels.reshape(*pixels.shape[:2], -1)


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area (box-filter) resize of (H, W, C) float32 values to (height, width, C)."""
    channels = [
        Image.fromarray(np.ascontiguousarray(pixels[..., c])).resize((width, height), Image.Resampling.BOX)
        for c in range(pixels.shape[-1])
    ]
    return np.stack([np.asarray(channel) for channel in channels], axis=-1)


def _resize_intrinsics(intrinsics: np.ndarray, factor_x: float, factor_y: float) -> np.ndarray:
    """K of an image resized by factor_x along columns and factor_y along rows (exact when they differ)."""
    k = scale_intrinsics(intrinsics, factor_x)
    k[1] = scale_intrinsics(intrinsics, factor_y)[1]
    return k


def _size_text(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"


def _read_views(
    image_paths: list[Path],
    mask_paths: list[Path],
    downscale: float,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(N, h, w, 3) float32 images and (N, h, w) bool masks resized by 1 / downscale, and the file (H, W)."""
    first = _read_pixels(image_paths[0])
    full_size = first.shape[:2]
    height, width = (max(1, round(n / downscale)) for n in full_size)
    images = np.empty((len(image_paths), height, width, 3), dtype=np.float32)
    masks = np.ones((len(image_paths), height, width), dtype=bool)
    for i, image_path in enumerate(image_paths):
        image = first if i == 0 else _read_pixels(image_path)
        if image.shape[:2] != full_size:
            raise DataError(
                image_path,
                f"image size {_size_text(image)} differs from {_size_text(first)} of {image_paths[0].name}",
                "sizes are width x height; all views must have one size",
            )
        if not mask_paths:  # no mask/ folder: every pixel is object (train without masks)
            images[i] = image if (height, width) == full_size else _resize(image, height, width)
            continue
        mask_path = mask_paths[i]
        mask = _read_pixels(mask_path).max(axis=-1, keepdims=True)
        if mask.shape[:2] != full_size:
            raise DataError(
                mask_path,
                f"mask size {_size_text(mask)} differs from {_size_text(image)} of its image {image_path.name}",
            )
        if not np.any(mask > 0.5):
            raise DataError(mask_path, "mask is empty: every pixel is background (grey <= half range)")
        if (height, width) != full_size:
            image, mask = _resize(image, height, width), _resize(mask, height, width)
        images[i] = image  # grey (h, w, 1) broadcasts to RGB
        masks[i] = mask[..., 0] > 0.5
        if progress is not None:
            progress(i + 1, len(image_paths))
    return images, masks, full_size
