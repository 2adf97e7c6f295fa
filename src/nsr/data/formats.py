"""One entry point for every supported scene format: detection and loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from nsr.data.blender import load_nerf_synthetic, transforms_files
from nsr.data.colmap import find_model, load_colmap_scene
from nsr.data.errors import DataError
from nsr.data.idr import CAMERA_FILES, load_idr_scene
from nsr.data.scene import SceneData

SceneFormat = Literal["auto", "idr", "nerf-synthetic", "colmap"]
"""`auto` detects; `idr` covers IDR, DTU and NeuS folders."""
FORMATS = ("idr", "nerf-synthetic", "colmap")


def detect_format(root: str | Path) -> str:
    """The format of a scene folder: `nerf-synthetic` (a transforms*.json), `colmap` (a sparse model),
    `idr` (image/ and a camera npz), checked in this order.

    Raises:
        DataError: when the folder is missing or matches no format (naming what was looked for).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "scene folder not found")
    if transforms_files(root):
        return "nerf-synthetic"
    if find_model(root) is not None:
        return "colmap"
    if (root / "image").is_dir() or any((root / name).is_file() for name in CAMERA_FILES):
        return "idr"
    raise DataError(
        root,
        "unknown scene layout",
        "expected image/ + mask/ + cameras.npz (IDR/DTU/NeuS), transforms*.json (NeRF-synthetic) "
        "or sparse/0/cameras.bin|txt + images/ (COLMAP); see docs/data.md",
    )


def load_scene(
    root: str | Path,
    format: SceneFormat = "auto",
    downscale: float = 1.0,
    camera_file: str | None = None,
    background: str = "white",
    progress: Callable[[int, int], None] | None = None,
) -> SceneData:
    """Load a scene folder of any supported format, in its normalised frame.

    Args:
        format: `auto` (detect_format) or one of FORMATS.
        camera_file: IDR only: the camera npz inside the folder.
        background: NeRF-synthetic only: `white` or `black`.
        progress: called with (done, total): images read, then steps of the visual hull where the
            bounding sphere comes from the masks.
    """
    kind = detect_format(root) if format == "auto" else format
    if kind == "idr":
        return load_idr_scene(root, downscale=downscale, camera_file=camera_file, progress=progress)
    if kind == "nerf-synthetic":
        return load_nerf_synthetic(root, downscale=downscale, background=background, progress=progress)
    if kind == "colmap":
        return load_colmap_scene(root, downscale=downscale, progress=progress)
    raise DataError(root, f"unknown format {format!r}", f"use one of auto, {', '.join(FORMATS)}")
