"""COLMAP sparse models (`cameras`, `images`, `points3D` in text or binary form) -> SceneData.

Reference for the file formats: COLMAP's `src/colmap/scene/reconstruction_io.cc` (text) and the binary
layout documented in the COLMAP manual ("Output format"). Camera conventions: world-to-camera rotation
quaternion (qw, qx, qy, qz) and translation t, OpenCV camera axes (x right, y down, z forward), pixel
centres at half-integers (the top-left pixel's centre is (0.5, 0.5)); NSR puts pixel centres at integers,
so the principal point moves by -0.5 (docs/data.md).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nsr.data.errors import DataError
from nsr.data.scene import SceneData

CAMERA_MODELS: dict[str, tuple[int, int]] = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
}
"""COLMAP camera model name -> (binary model id, number of parameters)."""
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
"""Models NSR reads; the distorted ones (SIMPLE_RADIAL, RADIAL, OPENCV) are undistorted on load."""
_MODEL_NAMES = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}


@dataclass
class ColmapCamera:
    """One COLMAP camera (intrinsics shared by the images that name it)."""

    camera_id: int
    model: str
    """Model name, e.g. `PINHOLE` (see CAMERA_MODELS)."""
    width: int
    height: int
    params: np.ndarray
    """(P,) float64 parameters in COLMAP's order for the model (e.g. fx, fy, cx, cy for PINHOLE)."""


@dataclass
class ColmapImage:
    """One registered image: its world-to-camera pose and 2-D observations."""

    image_id: int
    qvec: np.ndarray
    """(4,) world-to-camera rotation quaternion (w, x, y, z)."""
    tvec: np.ndarray
    """(3,) world-to-camera translation."""
    camera_id: int
    name: str
    """Image path relative to the images folder."""
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """(K, 2) float64 keypoint positions (COLMAP pixel convention)."""
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """(K,) int64 id of each keypoint's 3-D point, -1 when none."""


@dataclass
class ColmapPoint:
    """One sparse 3-D point."""

    point3d_id: int
    xyz: np.ndarray
    """(3,) float64 position (world units)."""
    rgb: np.ndarray
    """(3,) uint8 colour."""
    error: float
    """Mean reprojection error (pixels)."""
    image_ids: np.ndarray
    """(T,) int32 images observing the point (its track)."""
    point2d_idxs: np.ndarray
    """(T,) int32 index of the observation among each image's keypoints."""


@dataclass
class ColmapModel:
    """A whole sparse model, keyed by ids."""

    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: dict[int, ColmapPoint]


# --- Rotations --------------------------------------------------------------------------------------


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion (w, x, y, z) -> (3, 3) rotation matrix (normalised first)."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_qvec(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (4,) unit quaternion (w, x, y, z) with w >= 0 (robust for any rotation)."""
    r = np.asarray(rotation, dtype=np.float64).T  # COLMAP's rotmat2qvec reads R column-major
    # Symmetric 4x4 whose largest eigenvector is the quaternion (Bar-Itzhack), stable near w = 0.
    k = (
        np.array(
            [
                [r[0, 0] - r[1, 1] - r[2, 2], 0, 0, 0],
                [r[1, 0] + r[0, 1], r[1, 1] - r[0, 0] - r[2, 2], 0, 0],
                [r[2, 0] + r[0, 2], r[2, 1] + r[1, 2], r[2, 2] - r[0, 0] - r[1, 1], 0],
                [r[1, 2] - r[2, 1], r[2, 0] - r[0, 2], r[0, 1] - r[1, 0], r[0, 0] + r[1, 1] + r[2, 2]],
            ]
        )
        / 3.0
    )
    values, vectors = np.linalg.eigh(k)
    x, y, z, w = vectors[:, np.argmax(values)]
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


# --- Reading ----------------------------------------------------------------------------------------


def find_model(root: str | Path) -> Path | None:
    """The folder holding a COLMAP model under `root`: root/sparse/0, root/sparse or root (first found)."""
    root = Path(root)
    for folder in (root / "sparse" / "0", root / "sparse", root):
        if any((folder / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return folder
    return None


def read_model(folder: str | Path) -> ColmapModel:
    """Read cameras, images and points3D from `folder`, binary (.bin) when present, else text (.txt).

    Raises:
        DataError: naming the file, for missing or malformed files and unknown camera models.
    """
    folder = Path(folder)
    kind = ".bin" if (folder / "cameras.bin").is_file() else ".txt"
    paths = {name: folder / f"{name}{kind}" for name in ("cameras", "images", "points3D")}
    for name in ("cameras", "images"):
        if not paths[name].is_file():
            raise DataError(
                paths[name], "COLMAP model file not found", f"a model needs cameras{kind} and images{kind}"
            )
    readers = (
        (_read_cameras_bin, _read_images_bin, _read_points_bin)
        if kind == ".bin"
        else (_read_cameras_txt, _read_images_txt, _read_points_txt)
    )
    cameras = _guarded(readers[0], paths["cameras"])
    images = _guarded(readers[1], paths["images"])
    points = _guarded(readers[2], paths["points3D"]) if paths["points3D"].is_file() else {}
    if not images:
        raise DataError(paths["images"], "no registered images")
    for image in images.values():
        if image.camera_id not in cameras:
            raise DataError(
                paths["images"],
                f"image {image.name} refers to camera {image.camera_id}, not in {paths['cameras'].name}",
            )
    return ColmapModel(cameras=cameras, images=images, points=points)


def _guarded(reader, path: Path):
    try:
        return reader(path)
    except DataError:
        raise
    except (ValueError, IndexError, struct.error, UnicodeDecodeError, OSError) as err:
        raise DataError(path, f"malformed COLMAP file ({type(err).__name__}: {err})") from None


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-comment, non-empty lines of a text file."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append((number, line.split()))
    return lines


def _camera(
    path: Path, camera_id: int, model: str, width: int, height: int, params: list[float]
) -> ColmapCamera:
    if model not in CAMERA_MODELS:
        raise DataError(path, f"camera {camera_id}: unknown camera model {model!r}")
    expected = CAMERA_MODELS[model][1]
    if len(params) != expected:
        raise DataError(
            path, f"camera {camera_id}: model {model} takes {expected} parameters, got {len(params)}"
        )
    if width <= 0 or height <= 0:
        raise DataError(path, f"camera {camera_id}: size {width}x{height} is not positive")
    return ColmapCamera(camera_id, model, width, height, np.asarray(params, dtype=np.float64))


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for number, fields in _data_lines(path):
        if len(fields) < 4:
            raise DataError(path, f"line {number}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
        camera_id = int(fields[0])
        cameras[camera_id] = _camera(
            path, camera_id, fields[1], int(fields[2]), int(fields[3]), [float(v) for v in fields[4:]]
        )
    return cameras


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    # Two lines per image; the second (keypoints) may be empty, so blank lines count here.
    lines = [line.strip() for line in path.read_text().splitlines() if not line.strip().startswith("#")]
    while lines and not lines[-1]:
        lines.pop()
    images = {}
    for i in range(0, len(lines), 2):
        fields = lines[i].split()
        if len(fields) < 10:
            raise DataError(
                path, f"image record {i // 2}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
            )
        points = lines[i + 1].split() if i + 1 < len(lines) else []
        if len(points) % 3:
            raise DataError(path, f"image {fields[0]}: keypoint line is not triples of X Y POINT3D_ID")
        triples = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        image_id = int(fields[0])
        images[image_id] = ColmapImage(
            image_id=image_id,
            qvec=np.asarray(fields[1:5], dtype=np.float64),
            tvec=np.asarray(fields[5:8], dtype=np.float64),
            camera_id=int(fields[8]),
            name=" ".join(fields[9:]),
            xys=triples[:, :2],
            point3d_ids=triples[:, 2].astype(np.int64),
        )
    return images


def _read_points_txt(path: Path) -> dict[int, ColmapPoint]:
    points = {}
    for number, fields in _data_lines(path):
        if len(fields) < 8 or (len(fields) - 8) % 2:
            raise DataError(path, f"line {number}: expected POINT3D_ID X Y Z R G B ERROR TRACK[]")
        track = np.asarray(fields[8:], dtype=np.int64).reshape(-1, 2)
        point_id = int(fields[0])
        points[point_id] = ColmapPoint(
            point3d_id=point_id,
            xyz=np.asarray(fields[1:4], dtype=np.float64),
            rgb=np.asarray(fields[4:7], dtype=np.uint8),
            error=float(fields[7]),
            image_ids=track[:, 0].astype(np.int32),
            point2d_idxs=track[:, 1].astype(np.int32),
        )
    return points


class _Reader:
    """Little-endian binary reader that reports truncation as a ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"file ends early (at byte {len(self.data)}, needed {self.pos + size})")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype).newbyteorder("<")
        size = dt.itemsize * count
        if self.pos + size > len(self.data):
            raise ValueError(f"file ends early (at byte {len(self.data)}, needed {self.pos + size})")
        out = np.frombuffer(self.data, dtype=dt, count=count, offset=self.pos)
        self.pos += size
        return out

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ValueError("unterminated image name")
        out = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} trailing bytes after the last record")


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    reader = _Reader(path.read_bytes())
    cameras = {}
    for _ in range(reader.read("Q")[0]):
        camera_id, model_id, width, height = reader.read("iiQQ")
        if model_id not in _MODEL_NAMES:
            raise DataError(path, f"camera {camera_id}: unknown camera model id {model_id}")
        model = _MODEL_NAMES[model_id]
        params = reader.array("f8", CAMERA_MODELS[model][1])
        cameras[camera_id] = _camera(path, camera_id, model, width, height, list(params))
    reader.done()
    return cameras


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    reader = _Reader(path.read_bytes())
    images = {}
    for _ in range(reader.read("Q")[0]):
        image_id = reader.read("i")[0]
        qvec = np.array(reader.read("4d"))
        tvec = np.array(reader.read("3d"))
        camera_id = reader.read("i")[0]
        name = reader.string()
        count = reader.read("Q")[0]
        record = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
        size = record.itemsize * count
        if reader.pos + size > len(reader.data):
            raise ValueError("file ends early inside the keypoints of image " + name)
        keypoints = np.frombuffer(reader.data, dtype=record, count=count, offset=reader.pos)
        reader.pos += size
        images[image_id] = ColmapImage(
            image_id=image_id,
            qvec=qvec,
            tvec=tvec,
            camera_id=camera_id,
            name=name,
            xys=np.stack([keypoints["x"], keypoints["y"]], axis=-1).astype(np.float64),
            point3d_ids=keypoints["id"].astype(np.int64),
        )
    reader.done()
    return images


def _read_points_bin(path: Path) -> dict[int, ColmapPoint]:
    reader = _Reader(path.read_bytes())
    points = {}
    for _ in range(reader.read("Q")[0]):
        point_id = reader.read("Q")[0]
        xyz = np.array(reader.read("3d"))
        rgb = np.array(reader.read("3B"), dtype=np.uint8)
        error = reader.read("d")[0]
        track = reader.array("i4", 2 * reader.read("Q")[0]).reshape(-1, 2)
        points[point_id] = ColmapPoint(point_id, xyz, rgb, error, track[:, 0].copy(), track[:, 1].copy())
    reader.done()
    return points


# --- Writing ----------------------------------------------------------------------------------------


def write_model(model: ColmapModel, folder: str | Path, binary: bool = False) -> Path:
    """Write `model` as cameras, images, points3D (.bin when `binary`, else .txt) into `folder`.

    Text values are written with Python's shortest round-trip `repr`, so `read_model` gives back the very
    same numbers in both forms.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if binary:
        _write_bin(model, folder)
    else:
        _write_txt(model, folder)
    return folder


def _num(value: float) -> str:
    return repr(float(value))


def _write_txt(model: ColmapModel, folder: Path) -> None:
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
    ]
    for cam in model.cameras.values():
        lines.append(
            " ".join([str(cam.camera_id), cam.model, str(cam.width), str(cam.height), *map(_num, cam.params)])
        )
    (folder / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
    ]
    for img in model.images.values():
        lines.append(
            " ".join(
                [str(img.image_id), *map(_num, img.qvec), *map(_num, img.tvec), str(img.camera_id), img.name]
            )
        )
        lines.append(
            " ".join(f"{_num(x)} {_num(y)} {int(pid)}" for (x, y), pid in zip(img.xys, img.point3d_ids))
        )
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[]",
    ]
    for p in model.points.values():
        track = " ".join(f"{int(i)} {int(j)}" for i, j in zip(p.image_ids, p.point2d_idxs))
        lines.append(
            " ".join(
                [str(p.point3d_id), *map(_num, p.xyz), *(str(int(c)) for c in p.rgb), _num(p.error), track]
            )
        )
    (folder / "points3D.txt").write_text("\n".join(lines) + "\n")


def _write_bin(model: ColmapModel, folder: Path) -> None:
    out = [struct.pack("<Q", len(model.cameras))]
    for cam in model.cameras.values():
        out.append(struct.pack("<iiQQ", cam.camera_id, CAMERA_MODELS[cam.model][0], cam.width, cam.height))
        out.append(np.asarray(cam.params, dtype="<f8").tobytes())
    (folder / "cameras.bin").write_bytes(b"".join(out))
    out = [struct.pack("<Q", len(model.images))]
    record = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
    for img in model.images.values():
        out.append(struct.pack("<i4d3di", img.image_id, *img.qvec, *img.tvec, img.camera_id))
        out.append(img.name.encode("utf-8") + b"\0")
        keypoints = np.empty(len(img.point3d_ids), dtype=record)
        keypoints["x"], keypoints["y"], keypoints["id"] = img.xys[:, 0], img.xys[:, 1], img.point3d_ids
        out.append(struct.pack("<Q", len(keypoints)) + keypoints.tobytes())
    (folder / "images.bin").write_bytes(b"".join(out))
    out = [struct.pack("<Q", len(model.points))]
    for p in model.points.values():
        out.append(struct.pack("<Q3d3Bd", p.point3d_id, *p.xyz, *(int(c) for c in p.rgb), p.error))
        track = np.stack([p.image_ids, p.point2d_idxs], axis=-1).astype("<i4")
        out.append(struct.pack("<Q", len(track)) + track.tobytes())
    (folder / "points3D.bin").write_bytes(b"".join(out))


# --- Cameras -> NSR ---------------------------------------------------------------------------------


def camera_matrix(camera: ColmapCamera, path: Path | str = "cameras") -> tuple[np.ndarray, np.ndarray]:
    """NSR intrinsics (3, 3) (integer pixel centres) and distortion (k1, k2, p1, p2) of a COLMAP camera.

    Raises:
        DataError: for camera models NSR does not read (fisheye, FULL_OPENCV, FOV, ...).
    """
    p = camera.params
    model = camera.model
    if model not in SUPPORTED_MODELS:
        raise DataError(
            path,
            f"camera {camera.camera_id}: COLMAP camera model {model} is not supported",
            f"supported: {', '.join(SUPPORTED_MODELS)}; run `colmap image_undistorter` first "
            "and point NSR at its output (PINHOLE cameras)",
        )
    dist = np.zeros(4)
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
        if model == "SIMPLE_RADIAL":
            dist[0] = p[3]
        elif model == "RADIAL":
            dist[:2] = p[3:5]
    else:
        fx, fy, cx, cy = p[:4]
        if model == "OPENCV":
            dist[:] = p[4:8]
    if not (np.isfinite(p).all() and fx > 0 and fy > 0):
        raise DataError(
            path, f"camera {camera.camera_id}: focal length must be positive and finite, got {fx}, {fy}"
        )
    k = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
    return k, dist


def image_c2w(image: ColmapImage) -> np.ndarray:
    """(4, 4) camera-to-world pose (OpenCV axes, world units) of a COLMAP image."""
    rotation = qvec_to_rotmat(image.qvec)
    c2w = np.eye(4)
    c2w[:3, :3] = rotation.T
    c2w[:3, 3] = -rotation.T @ image.tvec
    return c2w


def distort(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply OpenCV radial-tangential distortion (k1, k2, p1, p2) to (M, 2) normalised image coordinates."""
    k1, k2, p1, p2 = dist
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1.0 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


def undistort_maps(intrinsics: np.ndarray, dist: np.ndarray, height: int, width: int) -> np.ndarray:
    """(2, H, W) source (row, column) in the distorted image of every pixel of the undistorted one.

    The undistorted image keeps the size and the pinhole intrinsics `intrinsics`; its pixel (u, v) looks
    along K^-1 (u, v, 1), which the distortion maps to the source pixel (pixel centres at integers).
    """
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    k = intrinsics
    y = (v - k[1, 2]) / k[1, 1]
    x = (u - k[0, 2] - k[0, 1] * y) / k[0, 0]
    xd = distort(np.stack([x.ravel(), y.ravel()], axis=-1), dist)
    cols = k[0, 0] * xd[:, 0] + k[0, 1] * xd[:, 1] + k[0, 2]
    rows = k[1, 1] * xd[:, 1] + k[1, 2]
    return np.stack([rows.reshape(height, width), cols.reshape(height, width)])


def undistort(pixels: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample (H, W, C) float pixels through `undistort_maps`; bilinear; also return the valid mask.

    Returns:
        (H, W, C) float32 undistorted pixels (0 where the source lies outside the image) and (H, W) bool
        True where the source pixel lies inside the distorted image.
    """
    from scipy.ndimage import map_coordinates

    height, width = pixels.shape[:2]
    rows, cols = maps
    valid = (rows >= -0.5) & (rows <= height - 0.5) & (cols >= -0.5) & (cols <= width - 0.5)
    out = np.stack(
        [map_coordinates(pixels[..., c], maps, order=1, mode="nearest") for c in range(pixels.shape[-1])],
        axis=-1,
    ).astype(np.float32)
    out[~valid] = 0.0
    return out, valid


# --- Scenes -----------------------------------------------------------------------------------------

MASK_FOLDERS = ("masks", "mask")
"""Mask folders looked for beside `images/` (first found)."""


def _mask_path(folder: Path, name: str) -> Path | None:
    """The mask of image `name`: same relative path, the path + `.png`, or the stem + `.png`."""
    for candidate in (folder / name, folder / f"{name}.png", (folder / name).with_suffix(".png")):
        if candidate.is_file():
            return candidate
    return None


def load_colmap_scene(
    root: str | Path,
    downscale: float = 1.0,
    images_dir: str = "images",
    mask_dir: str | None = None,
    normalize: str = "auto",
    min_track: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> SceneData:
    """Read a COLMAP capture: a model (root/sparse/0, root/sparse or root), `images/` and optional masks.

    Views are the registered images, sorted by name. Distorted cameras (SIMPLE_RADIAL, RADIAL, OPENCV) are
    undistorted to the pinhole camera with the same K and size (pixels whose source falls outside the image
    become black and background). Masks come from `mask_dir` (default: `masks/` or `mask/` when present;
    white = object, the same names as the images, or name + `.png`); without masks every pixel is object.

    Args:
        normalize: `auto` (the folder's cameras.npz scale_mat when present, else `points`), `points` (robust
            sphere of the sparse points), `hull` (visual hull of the masks) or `none` (world units).
        min_track: sparse points seen by fewer images are ignored by `points`.
        progress: called with (done, total) images read, then (images + hull steps) for `hull`.

    Raises:
        DataError: naming the file, for missing or malformed files, unsupported camera models, missing
            images or masks, empty masks, inconsistent sizes.
    """
    from nsr.data.idr import _read_pixels, _resize, _resize_intrinsics
    from nsr.data.normalize import apply_scale_mat, sphere_from_masks, sphere_from_points, stored_scale_mat

    if downscale < 1:
        raise ValueError(f"downscale must be >= 1, got {downscale}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "scene folder not found")
    folder = find_model(root)
    if folder is None:
        raise DataError(root, "no COLMAP model (cameras.bin/.txt) in sparse/0/, sparse/ or the folder itself")
    model = read_model(folder)
    image_root = root / images_dir
    if not image_root.is_dir():
        raise DataError(image_root, "image folder not found", "COLMAP captures keep their photos in images/")
    if mask_dir is not None:
        mask_root = root / mask_dir
        if not mask_root.is_dir():
            raise DataError(mask_root, "mask folder not found")
    else:
        mask_root = next((root / name for name in MASK_FOLDERS if (root / name).is_dir()), None)
    camera_file = folder / ("cameras.bin" if (folder / "cameras.bin").is_file() else "cameras.txt")
    views = sorted(model.images.values(), key=lambda image: image.name)
    images, masks, intrinsics, poses = [], [], [], []
    maps_cache: dict[int, np.ndarray] = {}
    for i, view in enumerate(views):
        camera = model.cameras[view.camera_id]
        k, dist = camera_matrix(camera, camera_file)
        path = image_root / view.name
        if not path.is_file():
            raise DataError(path, f"image {view.name} of the COLMAP model not found")
        pixels = _read_pixels(path)
        if pixels.shape[:2] != (camera.height, camera.width):
            raise DataError(
                path,
                f"image size {pixels.shape[1]}x{pixels.shape[0]} differs from {camera.width}x{camera.height} "
                f"of its COLMAP camera {camera.camera_id}",
                "were the images resized after reconstruction?",
            )
        pixels = np.broadcast_to(pixels, (*pixels.shape[:2], 3)) if pixels.shape[-1] == 1 else pixels
        if mask_root is not None:
            mask_path = _mask_path(mask_root, view.name)
            if mask_path is None:
                raise DataError(
                    mask_root, f"no mask for image {view.name} (tried {view.name}, {view.name}.png)"
                )
            mask = _read_pixels(mask_path).max(axis=-1, keepdims=True)
            if mask.shape[:2] != pixels.shape[:2]:
                raise DataError(
                    mask_path, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image's"
                )
        else:
            mask_path, mask = path, np.ones((*pixels.shape[:2], 1), dtype=np.float32)
        if np.any(dist):
            if camera.camera_id not in maps_cache:
                maps_cache[camera.camera_id] = undistort_maps(k, dist, camera.height, camera.width)
            pixels, valid = undistort(pixels, maps_cache[camera.camera_id])
            mask, _ = undistort(mask, maps_cache[camera.camera_id])
            mask[~valid] = 0.0
        if not np.any(mask > 0.5):
            raise DataError(mask_path, "mask is empty: every pixel is background (grey <= half range)")
        small = (max(1, round(camera.height / downscale)), max(1, round(camera.width / downscale)))
        if small != pixels.shape[:2]:
            pixels, mask = _resize(np.ascontiguousarray(pixels), *small), _resize(mask, *small)
            k = _resize_intrinsics(k, small[1] / camera.width, small[0] / camera.height)
        images.append(pixels)
        masks.append(mask[..., 0] > 0.5)
        intrinsics.append(k)
        poses.append(image_c2w(view))
        if progress is not None:
            progress(i + 1, len(views))
    if len({image.shape for image in images}) > 1:
        raise DataError(camera_file, "cameras of different image sizes: NSR needs one size for all views")
    scene = SceneData(
        images=np.stack(images).astype(np.float32, copy=False),
        masks=np.stack(masks),
        intrinsics=np.stack(intrinsics),
        c2w=np.stack(poses),
        image_names=[view.name for view in views],
        root=root,
    )
    if normalize == "none":
        return scene
    scale_mat = stored_scale_mat(root, scene.num_views) if normalize == "auto" else None
    if scale_mat is None and normalize in ("auto", "points"):
        points = np.array([p.xyz for p in model.points.values()]).reshape(-1, 3)
        tracks = np.array([len(p.image_ids) for p in model.points.values()])
        scale_mat = sphere_from_points(points, tracks, min_track, path=folder / "points3D")[0].scale_mat()
    elif scale_mat is None and normalize == "hull":
        count = scene.num_views

        def hull_progress(done: int, total: int) -> None:
            if progress is not None:
                progress(count + done, count + total)

        sphere = sphere_from_masks(
            scene.masks, scene.intrinsics, scene.c2w, 64, progress=hull_progress, path=camera_file
        )
        scale_mat = sphere.scale_mat()
    elif scale_mat is None:
        raise ValueError(f"normalize must be auto, points, hull or none, got {normalize!r}")
    return apply_scale_mat(scene, scale_mat)


def scene_to_model(scene: SceneData, names: list[str] | None = None) -> ColmapModel:
    """PINHOLE cameras and world-unit poses of a scene as a COLMAP model (no points), for writing test data."""
    cameras, images = {}, {}
    for i in range(scene.num_views):
        k = scene.intrinsics[i]
        cameras[i + 1] = ColmapCamera(
            i + 1,
            "PINHOLE",
            scene.width,
            scene.height,
            np.array([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5]),
        )
        c2w = scene.c2w[i].copy()
        c2w[:3, 3] = scene.to_world(c2w[None, :3, 3])[0]
        w2c = np.linalg.inv(c2w)
        name = names[i] if names else f"{i:03d}.png"
        images[i + 1] = ColmapImage(i + 1, rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3], i + 1, name)
    return ColmapModel(cameras=cameras, images=images, points={})
