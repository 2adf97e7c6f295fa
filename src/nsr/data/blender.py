"""NeRF-synthetic / instant-ngp scenes: `transforms*.json` + RGBA images -> SceneData.

Cameras: `transform_matrix` is a Blender/OpenGL camera-to-world (camera x right, y up, looking down -z);
NSR's OpenCV camera (x right, y down, z forward) is `c2w @ diag(1, -1, -1, 1)`. Intrinsics: `fl_x`/`fl_y`
when given, else from `camera_angle_x` (and `camera_angle_y`); principal point `cx`/`cy` when given (pixel
centres at half-integers, as in instant-ngp, so NSR's is `cx - 0.5`), else the image centre
((W - 1) / 2 with NSR's integer pixel centres). The alpha channel is the mask (alpha > 0.5) and colours are
composited on a background colour (white, as NeRF-synthetic is usually shown, or black).

Bounding sphere (these files have no scale_mat), first that applies: a `cameras.npz` in the folder with
`scale_mat_0` (written by `nsr data normalize`); an `aabb` [[x, y, z], [x, y, z]] in world units; the unit
cube of instant-ngp's `scale`/`offset`; else the visual hull of the alpha masks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from nsr.data.errors import DataError
from nsr.data.idr import _resize, _resize_intrinsics
from nsr.data.normalize import Sphere, apply_scale_mat, sphere_from_masks, stored_scale_mat
from nsr.data.scene import SceneData

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
"""Background colours that transparent pixels are composited on."""
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiply a Blender/OpenGL camera-to-world by this to get NSR's OpenCV camera axes (and back)."""


def transforms_files(root: Path) -> list[Path]:
    """The `transforms*.json` files of a folder, sorted by name."""
    return sorted(root.glob("transforms*.json")) if root.is_dir() else []


def _pick_file(root: Path, split: str) -> Path:
    candidates = [root / f"transforms_{split}.json", root / "transforms.json"]
    for path in candidates:
        if path.is_file():
            return path
    found = ", ".join(p.name for p in transforms_files(root)) or "none"
    raise DataError(root, f"no transforms_{split}.json or transforms.json (found: {found})")


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"unreadable JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise DataError(path, "no frames: expected a JSON object with a non-empty `frames` list")
    return data


def _image_path(root: Path, json_path: Path, frame: dict, index: int) -> Path:
    name = frame.get("file_path")
    if not isinstance(name, str):
        raise DataError(json_path, f"frame {index} has no file_path")
    path = (root / name).resolve()
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg") and not path.is_file():
        path = path.with_name(path.name + ".png")
    if not path.is_file():
        raise DataError(path, f"image of frame {index} not found (file_path {name!r} in {json_path.name})")
    return path


def _read_rgba(path: Path) -> np.ndarray:
    """(H, W, 4) float32 straight-alpha RGBA in [0, 1]; files without alpha get alpha = 1."""
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(path, f"unreadable image ({err})") from None
    return pixels


def _intrinsics(meta: dict, width: int, height: int, path: Path) -> np.ndarray:
    def number(key: str) -> float | None:
        value = meta.get(key)
        if value is None:
            return None
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise DataError(path, f"{key} must be a positive number, got {value!r}")
        return float(value)

    fx = number("fl_x")
    if fx is None:
        angle = number("camera_angle_x")
        if angle is None:
            raise DataError(path, "no focal length: give fl_x or camera_angle_x")
        fx = 0.5 * width / np.tan(0.5 * angle)
    fy = number("fl_y")
    if fy is None:
        angle_y = number("camera_angle_y")
        fy = 0.5 * height / np.tan(0.5 * angle_y) if angle_y is not None else fx
    cx = meta.get("cx")
    cy = meta.get("cy")
    cx = float(cx) - 0.5 if cx is not None else 0.5 * (width - 1)
    cy = float(cy) - 0.5 if cy is not None else 0.5 * (height - 1)
    distortion = [meta.get(key, 0.0) or 0.0 for key in ("k1", "k2", "k3", "k4", "p1", "p2")]
    if any(distortion):
        raise DataError(
            path,
            "lens distortion (k1, k2, p1, p2 ...) is not supported for transforms.json scenes",
            "undistort the images first, or export the capture as a COLMAP model",
        )
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _sphere_from_meta(meta: dict, path: Path) -> Sphere | None:
    """Bounding sphere given by an `aabb` (world units) or instant-ngp's `scale`/`offset` unit cube."""
    if "aabb" in meta:
        box = np.asarray(meta["aabb"], dtype=np.float64)
        if box.shape != (2, 3) or not np.all(np.isfinite(box)) or np.any(box[1] <= box[0]):
            raise DataError(
                path, f"aabb must be [[xmin, ymin, zmin], [xmax, ymax, zmax]], got {meta['aabb']!r}"
            )
        return Sphere(centre=box.mean(axis=0), radius=float(0.5 * np.linalg.norm(box[1] - box[0])))
    if "scale" in meta or "offset" in meta:
        scale = float(meta.get("scale", 0.33))
        offset = np.asarray(meta.get("offset", [0.5, 0.5, 0.5]), dtype=np.float64)
        if scale <= 0 or offset.shape != (3,):
            raise DataError(
                path, f"instant-ngp scale must be > 0 and offset 3 numbers, got {scale}, {offset}"
            )
        # instant-ngp: ngp = (world[y], world[z], world[x]) * scale + offset; its unit cube is [0, 1]^3.
        ngp_centre = (0.5 - offset) / scale
        centre = np.array([ngp_centre[2], ngp_centre[0], ngp_centre[1]])
        return Sphere(centre=centre, radius=float(0.5 * np.sqrt(3.0) / scale))
    return None


def load_nerf_synthetic(
    root: str | Path,
    downscale: float = 1.0,
    background: str = "white",
    split: str = "train",
    normalize: bool = True,
    hull_resolution: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> SceneData:
    """Read a NeRF-synthetic / instant-ngp folder (`transforms_<split>.json`, else `transforms.json`).

    Args:
        root: the folder holding the json file; image paths are relative to it.
        downscale: >= 1; images are area-resized (alpha included) and intrinsics follow.
        background: `white` or `black`, the colour transparent pixels are composited on.
        split: which `transforms_<split>.json` to read.
        normalize: express the cameras in the normalised frame of the bounding sphere (module docstring);
            False keeps world units with `scale_mat` = identity.
        hull_resolution: voxels per axis of the visual hull when the sphere comes from the masks.
        progress: called with (done, total) images read, then (images + hull steps) while the visual hull
            is carved (when the bounding sphere comes from the masks).

    Returns:
        SceneData: images (N, H, W, 3) float32, masks (N, H, W) bool from alpha, K (N, 3, 3), c2w (N, 4, 4).

    Raises:
        DataError: naming the file, for every missing, unreadable or inconsistent input.
    """
    if downscale < 1:
        raise ValueError(f"downscale must be >= 1, got {downscale}")
    if background not in BACKGROUNDS:
        raise DataError(root, f"unknown background {background!r}", "use white or black")
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "scene folder not found")
    json_path = _pick_file(root, split)
    meta = _load_json(json_path)
    frames = meta["frames"]
    bg = np.asarray(BACKGROUNDS[background], dtype=np.float32)
    images, masks, intrinsics, poses, names = [], [], [], [], []
    full_size = None
    for i, frame in enumerate(frames):
        path = _image_path(root, json_path, frame, i)
        rgba = _read_rgba(path)
        if full_size is None:
            full_size = rgba.shape[:2]
        elif rgba.shape[:2] != full_size:
            raise DataError(
                path,
                f"image size {rgba.shape[1]}x{rgba.shape[0]} differs from {full_size[1]}x{full_size[0]} of frame 0",
            )
        height, width = full_size
        matrix = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise DataError(
                json_path, f"frame {i} ({path.name}): transform_matrix must be a finite 4x4 matrix"
            )
        rotation = matrix[:3, :3]
        if abs(np.linalg.det(rotation) - 1.0) > 1e-3 or not np.allclose(
            rotation.T @ rotation, np.eye(3), atol=1e-3
        ):
            raise DataError(
                json_path, f"frame {i} ({path.name}): transform_matrix rotation is not a rotation"
            )
        k = _intrinsics({**meta, **frame}, width, height, json_path)
        small = (max(1, round(height / downscale)), max(1, round(width / downscale)))
        if small != (height, width):
            rgba = _resize(rgba, *small)
            k = _resize_intrinsics(k, small[1] / width, small[0] / height)
        alpha = rgba[..., 3:4]
        images.append(rgba[..., :3] * alpha + bg * (1.0 - alpha))
        mask = alpha[..., 0] > 0.5
        if not mask.any():
            raise DataError(path, "mask is empty: alpha <= 0.5 everywhere (the object is not in this view)")
        masks.append(mask)
        intrinsics.append(k)
        c2w = matrix @ OPENGL_TO_OPENCV
        c2w[:3, :3] /= np.cbrt(np.linalg.det(c2w[:3, :3]))
        poses.append(c2w)
        names.append(path.name)
        if progress is not None:
            progress(i + 1, len(frames))
    scene = SceneData(
        images=np.stack(images).astype(np.float32, copy=False),
        masks=np.stack(masks),
        intrinsics=np.stack(intrinsics),
        c2w=np.stack(poses),
        image_names=names,
        root=root,
        composited_on=BACKGROUNDS[background],
    )
    if not normalize:
        return scene
    scale_mat = stored_scale_mat(root, scene.num_views)
    if scale_mat is None:
        sphere = _sphere_from_meta(meta, json_path)
        if sphere is None:
            count = scene.num_views

            def hull_progress(done: int, total: int) -> None:
                if progress is not None:
                    progress(count + done, count + total)

            sphere = sphere_from_masks(
                scene.masks,
                scene.intrinsics,
                scene.c2w,
                hull_resolution,
                progress=hull_progress,
                path=json_path,
            )
        scale_mat = sphere.scale_mat()
    return apply_scale_mat(scene, scale_mat)


def write_transforms(scene: SceneData, root: str | Path, file_name: str = "transforms_train.json") -> Path:
    """Write a scene (world units: cameras composed with `scene.scale_mat`) as RGBA PNGs + transforms json.

    Alpha is the mask (0 or 255); intrinsics are written as fl_x, fl_y, cx, cy (half-integer pixel centres),
    so `load_nerf_synthetic` reads the very same cameras back. Used by the tests and `nsr data convert`.
    """
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(scene.num_views):
        rgba = np.concatenate([scene.images[i], scene.masks[i][..., None].astype(np.float32)], axis=-1)
        Image.fromarray(np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8)).save(
            root / "train" / f"r_{i}.png"
        )
        c2w = scene.c2w[i].copy()
        c2w[:3, 3] = scene.to_world(c2w[None, :3, 3])[0]
        k = scene.intrinsics[i]
        frames.append(
            {
                "file_path": f"./train/r_{i}",
                "fl_x": k[0, 0],
                "fl_y": k[1, 1],
                "cx": k[0, 2] + 0.5,
                "cy": k[1, 2] + 0.5,
                "transform_matrix": (c2w @ OPENGL_TO_OPENCV).tolist(),
            }
        )
    path = root / file_name
    path.write_text(json.dumps({"frames": frames}, indent=1))
    return path
