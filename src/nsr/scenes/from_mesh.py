"""Synthetic scenes from any mesh: exact masks, cameras and ground truth, in the IDR layout.

`render_mesh_scene` ray casts a mesh (Embree through trimesh; `pip install "nsr[synth]"`) from cameras on
a sphere or a turntable band around it and shades it for real: albedo from the texture (OBJ + UVs +
image), the vertex colours (PLY) or a uniform grey; Lambert diffuse from a key light fixed in the world
(direction `light`, optional shadow rays) plus ambient, computed in linear light and stored sRGB-encoded.
Masks are the ray hits at pixel centres (exact: the object covers the pixel centre). With `spp` > 1,
colours average spp x spp sub-pixel samples and the mask is the covered fraction > 1/2.

Backdrop (`backdrop`): `none` composites the object on the flat `background` colour; `plane` (ground
plane and dome) and `room` (ground, walls, ceiling) render it inside textured surroundings, so that
training needs no masks and masks are not a colour threshold (layout: nsr.scenes.backdrop). The
`sphere` layout then keeps its cameras above the ground (elevations 8 to 64 degrees).

World frame: the mesh's own coordinates. `scale_mat` maps the unit sphere onto the mesh's bounding sphere
(centre of its bounding box, radius `radius_margin` x the farthest vertex), as for the Mitsuba Spot scene,
so `gt_mesh.ply` (the input mesh, world units) and the cameras share one frame.

Folder written by `write_mesh_scene` (atomically: a staging folder renamed into place):

    image/000.png ...   8-bit RGB renders, composited on the background colour or the backdrop
    mask/000.png ...    8-bit masks of the object (0 or 255)
    cameras.npz         world_mat_i (K [R|t], world units) and scale_mat_i; perturbed with pose noise
    cameras_gt.npz      with pose noise only: the cameras the images were rendered with
    gt_mesh.ply         the mesh in world units (the object alone, also with a backdrop)
    scene.json          the generation parameters (and the backdrop's layout)
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh

from nsr.accel.embree import ray_intersector
from nsr.cameras.noise import perturb_poses
from nsr.cameras.projection import compose_projection
from nsr.data.errors import DataError
from nsr.data.idr import write_idr_scene
from nsr.data.normalize import apply_scale_mat, read_world_cameras
from nsr.data.scene import SceneData
from nsr.scenes.backdrop import BackdropLayout, backdrop_layout, backdrop_radiance
from nsr.scenes.default import _replace_folder, _sibling, look_at

Progress = Callable[[int, int], None]


@dataclass
class SynthConfig:
    """How a mesh is turned into a scene."""

    views: int = 48
    """Number of views."""
    resolution: int = 400
    """Square image size in pixels."""
    layout: str = "sphere"
    """`sphere`: golden-angle spiral over elevations [-60, 64] degrees (as the Mitsuba Spot set);
    `turntable`: evenly spaced azimuths, elevations alternating `elevation` -/+ 10 degrees."""
    elevation: float = 25.0
    """Mean elevation (degrees) of the turntable band."""
    fov: float = 40.0
    """Horizontal field of view, degrees."""
    distance_factor: float = 1.15
    """The sphere through the farthest vertex, grown by this factor, exactly fills the field of view."""
    up: str = "y"
    """The mesh's up axis: `x`, `y`, `z` (or `-y`, ...)."""
    radius_margin: float = 1.05
    """Bounding-sphere radius = this x the farthest vertex from the bounding-box centre."""
    light: tuple[float, float, float] = (0.4, 1.0, 0.6)
    """Direction towards the key light, world axes (normalised)."""
    ambient: float = 0.3
    """Ambient share of the lighting (the key light gets 1 - ambient)."""
    shadows: bool = True
    """Cast shadow rays towards the key light."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour (sRGB, [0, 1]) behind the object when `backdrop` is `none`."""
    backdrop: str = "none"
    """`none` (the background colour), `plane` (textured ground plane and dome) or `room` (textured
    ground, walls and ceiling): nsr.scenes.backdrop."""
    spp: int = 1
    """Samples per pixel per axis (spp x spp)."""
    albedo: tuple[float, float, float] = (0.7, 0.7, 0.7)
    """Albedo of untextured meshes (sRGB)."""
    pose_noise: tuple[float, float, int] | None = None
    """(rot_deg, trans_frac, seed): write perturbed cameras to cameras.npz, the true ones to cameras_gt.npz."""


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def load_mesh(path: str | Path) -> trimesh.Trimesh:
    """Load a mesh file (OBJ with its material and texture, PLY with vertex colours, ...) as one Trimesh.

    Raises:
        DataError: when the file is missing, unreadable or holds no triangles.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "mesh file not found")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for broken files
        raise DataError(path, f"unreadable mesh ({type(err).__name__}: {err})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise DataError(path, "the file holds no triangles")
    if not np.all(np.isfinite(mesh.vertices)):
        raise DataError(path, "mesh vertices are not finite")
    return mesh


class _Albedo:
    """Surface colour lookup (linear RGB) at hit points: texture, vertex colours or a constant."""

    def __init__(self, mesh: trimesh.Trimesh, default: tuple[float, float, float]) -> None:
        self.mesh = mesh
        self.kind = "constant"
        self.constant = _srgb_to_linear(np.asarray(default, dtype=np.float64))
        visual = mesh.visual
        if visual.kind == "texture" and getattr(visual, "uv", None) is not None:
            material = visual.material
            image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
            if image is not None:
                self.kind = "texture"
                self.uv = np.asarray(visual.uv, dtype=np.float64)
                self.texture = _srgb_to_linear(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
            else:
                colour = getattr(material, "main_color", None)
                if colour is not None:
                    self.constant = _srgb_to_linear(np.asarray(colour[:3], dtype=np.float64) / 255.0)
        elif visual.kind == "vertex":
            self.kind = "vertex"
            self.colours = _srgb_to_linear(np.asarray(visual.vertex_colors[:, :3], dtype=np.float64) / 255.0)
        elif visual.kind == "face":
            self.kind = "face"
            self.colours = _srgb_to_linear(np.asarray(visual.face_colors[:, :3], dtype=np.float64) / 255.0)

    def __call__(self, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """(M, 3) linear albedo for hits on `faces` (M,) with barycentrics (M, 3)."""
        corners = self.mesh.faces[faces]
        if self.kind == "texture":
            uv = np.einsum("mk,mkj->mj", bary, self.uv[corners])
            height, width = self.texture.shape[:2]
            x = np.mod(uv[:, 0], 1.0) * width - 0.5
            y = (1.0 - np.mod(uv[:, 1], 1.0)) * height - 0.5
            x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
            fx, fy = (x - x0)[:, None], (y - y0)[:, None]
            tex = self.texture

            def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
                return tex[np.mod(yy, height), np.mod(xx, width)]

            return (
                at(y0, x0) * (1 - fx) * (1 - fy)
                + at(y0, x0 + 1) * fx * (1 - fy)
                + at(y0 + 1, x0) * (1 - fx) * fy
                + at(y0 + 1, x0 + 1) * fx * fy
            )
        if self.kind == "vertex":
            return np.einsum("mk,mkj->mj", bary, self.colours[corners])
        if self.kind == "face":
            return self.colours[faces]
        return np.broadcast_to(self.constant, (len(faces), 3))


def _up_vector(up: str) -> np.ndarray:
    axes = {"x": 0, "y": 1, "z": 2}
    sign = -1.0 if up.startswith("-") else 1.0
    name = up.lstrip("+-")
    if name not in axes:
        raise ValueError(f"up must be x, y or z (optionally signed), got {up!r}")
    out = np.zeros(3)
    out[axes[name]] = sign
    return out


def bounding_scale_mat(mesh: trimesh.Trimesh, margin: float = 1.05) -> np.ndarray:
    """(4, 4) normalised -> world: the unit sphere onto the mesh's bounding sphere (module docstring)."""
    lower, upper = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    centre = 0.5 * (lower + upper)
    radius = margin * np.linalg.norm(mesh.vertices - centre, axis=1).max()
    out = np.diag([radius, radius, radius, 1.0])
    out[:3, 3] = centre
    return out


def synth_cameras(config: SynthConfig, scale_mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 3) K and (N, 4, 4) world c2w of the layout, looking at the bounding sphere's centre."""
    if config.views < 1 or config.resolution < 8:
        raise ValueError("views must be >= 1 and resolution >= 8")
    up = _up_vector(config.up)
    # Two horizontal axes completing `up` to a right-handed frame.
    a = np.roll(np.abs(up), -1)  # y up: a = x, b = z (the Mitsuba Spot layout); z up: a = y, b = x
    b = np.cross(a, up)
    half_fov = math.radians(config.fov) / 2
    radius = scale_mat[0, 0] / config.radius_margin
    centre = scale_mat[:3, 3]
    distance = config.distance_factor * radius / math.sin(half_fov)
    focal = (config.resolution / 2) / math.tan(half_fov)
    c = (config.resolution - 1) / 2
    k = np.array([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]])
    golden = math.pi * (3 - math.sqrt(5))
    poses = []
    for i in range(config.views):
        if config.layout == "sphere":
            # sin(elevation) from 0.9 down to -0.85 (64 to -60 degrees); with a backdrop down to 0.14
            # (8 degrees: the cameras stay above the ground).
            span = 1.75 if config.backdrop == "none" else 0.76
            height = 0.9 - span * (i + 0.5) / config.views
            theta = i * golden
        elif config.layout == "turntable":
            elevation = math.radians(config.elevation + (10.0 if i % 2 else -10.0))
            height = math.sin(elevation)
            theta = 2 * math.pi * i / config.views
        else:
            raise ValueError(f"layout must be sphere or turntable, got {config.layout!r}")
        ring = math.sqrt(max(0.0, 1 - height * height))
        direction = ring * math.cos(theta) * a + height * up + ring * math.sin(theta) * b
        poses.append(look_at(centre + distance * direction, tuple(centre), tuple(up)))
    return np.repeat(k[None], config.views, axis=0), np.stack(poses)


def render_mesh_views(
    mesh: trimesh.Trimesh,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    height: int,
    width: int,
    config: SynthConfig,
    progress: Progress | None = None,
    backdrop: BackdropLayout | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ray cast and shade the mesh from world-unit cameras, on the background colour or `backdrop`.

    Returns:
        images (N, H, W, 3) float32 sRGB in [0, 1] and masks (N, H, W) bool.
    """
    intersector = ray_intersector(mesh)
    albedo = _Albedo(mesh, config.albedo)
    normals_v = mesh.vertex_normals
    light = np.asarray(config.light, dtype=np.float64)
    light /= np.linalg.norm(light)
    background = _srgb_to_linear(np.asarray(config.background, dtype=np.float64))
    spp = max(1, int(config.spp))
    offsets = (np.arange(spp) + 0.5) / spp - 0.5
    scale = np.linalg.norm(mesh.extents)
    images = np.empty((len(c2w), height, width, 3), dtype=np.float32)
    masks = np.empty((len(c2w), height, width), dtype=bool)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    for view in range(len(c2w)):
        colour = np.zeros((height * width, 3))
        coverage = np.zeros(height * width)
        k, pose = intrinsics[view], c2w[view]
        for dy in offsets:
            for dx in offsets:
                v, u = (rows + dy).ravel(), (cols + dx).ravel()
                y = (v - k[1, 2]) / k[1, 1]
                x = (u - k[0, 2] - k[0, 1] * y) / k[0, 0]
                dirs = np.stack([x, y, np.ones_like(x)], axis=-1) @ pose[:3, :3].T
                dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
                origins = np.broadcast_to(pose[:3, 3], dirs.shape)
                faces, ray_index, points = intersector.intersects_id(
                    origins, dirs, multiple_hits=False, return_locations=True
                )
                bary = trimesh.triangles.points_to_barycentric(mesh.triangles[faces], points)
                normal = np.einsum("mk,mkj->mj", bary, normals_v[mesh.faces[faces]])
                normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
                facing = np.einsum("mj,mj->m", normal, dirs[ray_index])
                normal[facing > 0] *= -1.0  # shade the side the camera sees
                lambert = np.clip(normal @ light, 0.0, None)
                if config.shadows and len(points):
                    lit = lambert > 0
                    starts = points[lit] + normal[lit] * 1e-4 * scale
                    blocked = intersector.intersects_any(starts, np.broadcast_to(light, starts.shape))
                    shade = lambert.copy()
                    shade[np.flatnonzero(lit)[blocked]] = 0.0
                    lambert = shade
                radiance = albedo(faces, bary) * (config.ambient + (1 - config.ambient) * lambert)[:, None]
                if backdrop is None:
                    sample = np.broadcast_to(background, (height * width, 3)).copy()
                else:
                    sample = backdrop_radiance(backdrop, pose[:3, 3], dirs, light, config.ambient)
                sample[ray_index] = radiance
                colour += sample
                hit = np.zeros(height * width)
                hit[ray_index] = 1.0
                coverage += hit
        images[view] = _linear_to_srgb(colour / spp**2).reshape(height, width, 3)
        masks[view] = (coverage / spp**2 > 0.5).reshape(height, width)
        if progress is not None:
            progress(view + 1, len(c2w))
    return images, masks


def _write_cameras(path: Path, intrinsics: np.ndarray, c2w: np.ndarray, scale_mat: np.ndarray) -> None:
    arrays = {}
    for i in range(len(c2w)):
        arrays[f"world_mat_{i}"] = compose_projection(intrinsics[i], c2w[i])
        arrays[f"scale_mat_{i}"] = scale_mat
    from nsr.atomic import atomic_write

    atomic_write(path, lambda f: np.savez(f, **arrays))


def write_mesh_scene(
    mesh_path: str | Path,
    out: str | Path,
    config: SynthConfig,
    cameras_file: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Render `mesh_path` into an IDR scene folder `out` (module docstring); returns `out`.

    Args:
        cameras_file: render at these cameras (an IDR npz: world_mat_i in the mesh's world units; its
            scale_mat_0 is kept when present) instead of the layout; images are config.resolution square.
        force: replace an existing non-empty `out`.
        progress: called with (done, total) steps: each view rendered, then each view written.

    Raises:
        DataError: for a bad mesh or camera file, an existing output folder without `force`, or a view
            where the mesh is not visible.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(out, "output folder exists and is not empty", "choose another --out or pass --force")
    mesh = load_mesh(mesh_path)
    scale_mat = bounding_scale_mat(mesh, config.radius_margin)
    if cameras_file is not None:
        intrinsics, c2w, stored = read_world_cameras(cameras_file)
        if stored is not None:
            scale_mat = stored
    else:
        intrinsics, c2w = synth_cameras(config, scale_mat)
    backdrop = None
    if config.backdrop != "none":
        backdrop = backdrop_layout(
            config.backdrop,
            np.asarray(mesh.vertices),
            scale_mat,
            _up_vector(config.up),
            c2w[:, :3, 3],
            path=cameras_file or "--layout",
        )
    size = config.resolution
    views = len(c2w)

    def rendering(done: int, total: int) -> None:  # rendering and writing: one job of 2 x views steps
        if progress is not None:
            progress(done, 2 * views)

    def writing(done: int, total: int) -> None:
        if progress is not None:
            progress(views + done, 2 * views)

    images, masks = render_mesh_views(mesh, intrinsics, c2w, size, size, config, rendering, backdrop)
    for view in np.flatnonzero(~masks.any(axis=(1, 2))):
        raise DataError(mesh_path, f"the mesh is not visible in view {view}", "check --cameras / --up")
    world = SceneData(images=images, masks=masks, intrinsics=intrinsics, c2w=c2w)
    scene = apply_scale_mat(world, scale_mat)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(out, "tmp")
    try:
        write_idr_scene(scene, staging, progress=writing)
        if config.pose_noise is not None:
            rot, trans, seed = config.pose_noise
            (staging / "cameras.npz").replace(staging / "cameras_gt.npz")
            noisy = perturb_poses(c2w, rot, trans, seed, center=scale_mat[:3, 3])
            _write_cameras(staging / "cameras.npz", intrinsics, noisy, scale_mat)
        mesh.export(staging / "gt_mesh.ply")
        description = {
            "name": "nsr-synth",
            "mesh": str(Path(mesh_path).resolve()),
            "cameras_file": str(cameras_file) if cameras_file else None,
            "albedo_source": _Albedo(mesh, config.albedo).kind,
            "config": asdict(config),
            "backdrop": backdrop.describe() if backdrop is not None else None,
        }
        (staging / "scene.json").write_text(json.dumps(description, indent=2, default=list))
        _replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out
