"""NSR's embedded default scene: an analytic object rendered by NSR's own tracer into an IDR folder.

Nothing is downloaded or copied in: the scene is generated, deterministically, from the analytic
signed distance function below, and cached on disk by `generate_default_scene`.

The object (normalised frame, z up, inside a sphere of radius 0.66 at the origin, bounding box
about 1.08 x 0.48 x 0.81) looks like a padlock: a rounded box body with a shallow spherical dent
(0.07 deep) carved in its front (-y) face, a torus shackle standing on its top (tube diameter 0.13)
whose D-shaped hole is seen through from the -y and +y sides, and a tilted fin (a rounded plate
0.09 thick) sticking out of its -x end, all joined by smooth unions (fillets of ~0.05). Its SDF is
1-Lipschitz, exact away from the fillets. It is coloured by soft slanted bands of orange and teal
mixed with a yellow-to-violet drift along x, and shaded by a light fixed in the object frame (0.35
ambient + 0.65 Lambert diffuse, light from above, in front and to the right); no shadows, black
background, masks = the tracer's hits.

Cameras: `num_views` pinhole cameras on a Fibonacci spiral over the band of elevations
[-20, +70] degrees (uniform in area), at distance 2.8 from the origin, looking at the origin with
+z up (OpenCV camera axes), square images whose focal length makes the object's bounding sphere
span 97% of the image width: the object never leaves the frame and spans 50-80% of it.

World frame: the scene's `scale_mat` maps the normalised frame to world units with scale 2.5 and
translation (0.4, -0.3, 1.2); `gt_mesh.ply` is the exact object (marching cubes of its analytic SDF)
in those world units.

Folder layout written by `generate_default_scene`:

    image/000.png ...   8-bit RGB renders
    mask/000.png ...    8-bit masks (0 or 255)
    cameras.npz         world_mat_i (K [R|t], world units), scale_mat_i
    gt_mesh.ply         ground-truth mesh, world units
    scene.json          description, generation parameters and `generator_version`
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import trimesh

from nsr import __version__
from nsr.cameras.rays import pixel_grid, pixel_rays
from nsr.data.idr import write_idr_scene
from nsr.data.scene import SceneData
from nsr.mesh.extract import extract_mesh, save_mesh, transform_mesh
from nsr.renderers.sphere_tracing import SphereTracer, SphereTracerConfig, intersect_sphere
from nsr.scenes.shapes import rotate, sd_round_box, sd_sphere, sd_torus, smooth_subtraction, smooth_union

SCENE_NAME = "nsr-default"
"""The `name` written to scene.json; identifies folders this module generated."""
GENERATOR_VERSION = 1
"""Bump whenever the object, texture, shading, cameras or file layout change: invalidates caches."""

# --- The object (normalised frame, z up) --------------------------------------------------------------

OFFSET = (0.137, 0.0, -0.182)
"""Added to every part's position below, to centre the object's bounding box on the origin."""
BODY_CENTRE = (0.0, 0.0, 0.0)
BODY_HALF_EXTENTS = (0.4, 0.24, 0.22)
BODY_ROUNDING = 0.1
DENT_CENTRE = (-0.08, -0.37, -0.01)
"""Centre of the sphere carved from the body's front (-y) face: a dent 0.07 deep, ~0.3 wide."""
DENT_RADIUS = 0.2
HANDLE_CENTRE = (0.04, 0.0, 0.32)
"""Centre of the torus handle standing on the body's top; its axis is y, so its hole is seen by
cameras facing -y or +y. The centre is 0.1 above the top face: the tube enters the flat top at
a steep angle (no crevice) and the hole is a D bounded by the top face and the tube."""
HANDLE_MAJOR_RADIUS = 0.2
HANDLE_MINOR_RADIUS = 0.065
HANDLE_AXIS = 1
FIN_CENTRE = (-0.48, 0.0, 0.02)
FIN_HALF_EXTENTS = (0.18, 0.045, 0.1)
"""The fin is a rounded plate 0.09 thick (along y) sticking out of the body's -x face."""
FIN_ROUNDING = 0.03
FIN_TILT = 0.35
"""Rotation of the fin about the y axis (radians)."""
BLEND = 0.05
"""Fillet size of the smooth unions and of the dent's rim."""

BOUNDING_RADIUS = 0.66
"""Radius of a sphere at the origin that contains the object (checked by the tests)."""

# --- Appearance --------------------------------------------------------------------------------------

LIGHT_DIRECTION = (0.35, -0.55, 0.76)
"""Direction towards the light, object frame (normalised on use): from above, in front (-y) and right."""
AMBIENT = 0.35
DIFFUSE = 0.65
_ORANGE = (0.88, 0.45, 0.14)
_TEAL = (0.12, 0.58, 0.62)
_YELLOW = (0.9, 0.8, 0.35)
_VIOLET = (0.55, 0.2, 0.7)

# --- Cameras and world frame -------------------------------------------------------------------------

CAMERA_DISTANCE = 2.8
"""Distance of every camera centre from the origin (normalised units)."""
MIN_ELEVATION_DEG = -20.0
MAX_ELEVATION_DEG = 70.0
FILL = 0.97
"""Fraction of the image width spanned by the bounding sphere (radius BOUNDING_RADIUS) in every view."""
WORLD_SCALE = 2.5
WORLD_TRANSLATION = (0.4, -0.3, 1.2)
GT_MESH_RESOLUTION = 384
"""Marching-cubes grid points per axis for gt_mesh.ply (cell 0.0037 normalised units)."""
GT_MESH_BOUND = 0.7
"""The gt_mesh.ply grid spans [-GT_MESH_BOUND, GT_MESH_BOUND]^3 (normalised frame). Chosen with the
resolution so that no flat face of the object lies on a grid plane (exact zeros make marching cubes
emit pinched, non-manifold pieces); the tests check the mesh is watertight."""

ProgressFn = Callable[[str, int, int], None]
"""Called as progress(stage, done, total) while a scene is generated; stage is "render" or "mesh"."""


def _shifted(position: tuple[float, float, float]) -> tuple[float, float, float]:
    return (position[0] + OFFSET[0], position[1] + OFFSET[1], position[2] + OFFSET[2])


def default_object_sdf(points: torch.Tensor) -> torch.Tensor:
    """Signed distance of the default object (1-Lipschitz, exact away from fillets).

    Args:
        points: (M, 3) points in the normalised frame.

    Returns:
        (M,) signed distances, negative inside.
    """
    body = sd_round_box(points, _shifted(BODY_CENTRE), BODY_HALF_EXTENTS, BODY_ROUNDING)
    dent = sd_sphere(points, _shifted(DENT_CENTRE), DENT_RADIUS)
    body = smooth_subtraction(body, dent, BLEND)
    handle = sd_torus(points, _shifted(HANDLE_CENTRE), HANDLE_MAJOR_RADIUS, HANDLE_MINOR_RADIUS, HANDLE_AXIS)
    fin_points = rotate(points, _shifted(FIN_CENTRE), axis=1, angle=FIN_TILT)
    fin = sd_round_box(fin_points, _shifted(FIN_CENTRE), FIN_HALF_EXTENTS, FIN_ROUNDING)
    return smooth_union(smooth_union(body, handle, BLEND), fin, BLEND)


def handle_hole_centre() -> np.ndarray:
    """(3,) centre of the handle's hole, normalised frame (a line along y through it misses the object)."""
    return np.asarray(_shifted(HANDLE_CENTRE), dtype=np.float64)


def default_object_albedo(points: torch.Tensor) -> torch.Tensor:
    """Procedural surface colour: soft diagonal bands with a hue drift along x.

    Args:
        points: (M, 3) points in the normalised frame.

    Returns:
        (M, 3) colours in [0.1, 0.9].
    """
    x, y, z = points.unbind(-1)
    # Bands of period ~0.4 across z (slanted by x and y), with soft edges of width ~0.06.
    band = torch.sin(2.0 * math.pi * (2.4 * z + 0.9 * x - 0.5 * y))
    band = torch.sigmoid(band / 0.25)[:, None]
    bands = torch.lerp(points.new_tensor(_TEAL), points.new_tensor(_ORANGE), band)
    # Large-scale drift: towards yellow on the -x end, towards violet on the +x end.
    drift = torch.sigmoid(x / 0.15)[:, None]
    tint = torch.lerp(points.new_tensor(_YELLOW), points.new_tensor(_VIOLET), drift)
    colour = torch.lerp(bands, tint, 0.3)
    return colour.clamp(0.1, 0.9)


def default_object_normals(points: torch.Tensor) -> torch.Tensor:
    """Unit outward normals: the normalised analytic SDF gradient. points (M, 3) -> (M, 3)."""
    with torch.enable_grad():
        p = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(default_object_sdf(p).sum(), p)
    return torch.nn.functional.normalize(grad, dim=-1)


def shade(points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Lambertian colour under the scene's fixed light. points, normals (M, 3) -> (M, 3) in [0, 1]."""
    light = torch.nn.functional.normalize(points.new_tensor(LIGHT_DIRECTION), dim=0)
    diffuse = (normals @ light).clamp_min(0.0)[:, None]
    return (default_object_albedo(points) * (AMBIENT + DIFFUSE * diffuse)).clamp(0.0, 1.0)


def default_scale_mat() -> np.ndarray:
    """(4, 4) similarity normalised -> world: x_world = 2.5 x_norm + (0.4, -0.3, 1.2)."""
    scale_mat = np.eye(4)
    scale_mat[:3, :3] *= WORLD_SCALE
    scale_mat[:3, 3] = WORLD_TRANSLATION
    return scale_mat


def focal_length(resolution: int) -> float:
    """Focal length (pixels) making the bounding sphere span FILL of a square image of `resolution`."""
    half_angle = math.asin(BOUNDING_RADIUS / CAMERA_DISTANCE)
    return FILL * (resolution / 2.0) / math.tan(half_angle)


def look_at(
    eye: np.ndarray | tuple[float, float, float],
    target: tuple[float, float, float] = (0.0, 0.0, 0.0),
    up: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world transform of a camera at `eye` looking at `target`, `up` up.

    Camera axes: x right, y down (towards -up), z forward. Fails for a view direction parallel to `up`.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    norm = np.linalg.norm(right)
    if norm < 1e-8:
        raise ValueError(f"look_at: view direction {forward} is parallel to up {up}")
    right /= norm
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def default_cameras(num_views: int = 40, resolution: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The scene's cameras: a Fibonacci spiral over elevations [-20, 70] degrees, uniform in area.

    View i has sin(elevation) = lerp(sin(-20 deg), sin(70 deg), (i + 0.5) / num_views) and azimuth
    i times the golden angle, so any prefix of the views is spread over the band.

    Returns:
        intrinsics (N, 3, 3) for square images of `resolution` pixels (principal point at the image
        centre, pixel centres at integers) and c2w (N, 4, 4) in the normalised frame.
    """
    if num_views < 1:
        raise ValueError(f"num_views must be positive, got {num_views}")
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 pixels, got {resolution}")
    low, high = math.sin(math.radians(MIN_ELEVATION_DEG)), math.sin(math.radians(MAX_ELEVATION_DEG))
    golden_angle = math.pi * (3.0 - math.sqrt(5.0))
    focal = focal_length(resolution)
    centre = (resolution - 1) / 2.0
    k = np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])
    c2w = np.empty((num_views, 4, 4))
    for i in range(num_views):
        elevation = math.asin(low + (high - low) * (i + 0.5) / num_views)
        azimuth = i * golden_angle
        eye = CAMERA_DISTANCE * np.array(
            [
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            ]
        )
        c2w[i] = look_at(eye)
    return np.repeat(k[None], num_views, axis=0), c2w


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the previous count.

    The tracer and marching cubes issue thousands of small tensor operations; on a CPU shared with
    other processes, several intra-op threads spin on each other and run them up to 40x slower
    (measured: 85 s instead of 2 s for the 40 default views on 2 busy cores), while one thread
    costs little when the cores are idle. Decorates the rendering and meshing functions below.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


VIEWS_PER_BATCH = 8
"""Views traced together (fewer, larger tracer calls are faster on a CPU)."""
SURFACE_TOLERANCE = 1e-4
"""A rendered surface point has |SDF| below this (normalised units); others are re-solved."""


def analytic_tracer() -> SphereTracer:
    """A tracer tuned for the exact analytic SDF (many steps, tight threshold)."""
    return SphereTracer(
        SphereTracerConfig(
            bounding_radius=1.0,
            sdf_threshold=1e-5,
            sphere_tracing_iters=64,
            num_samples=128,
            num_secant_steps=12,
            chunk_size=1 << 20,
        )
    )


@single_threaded()
def trace_surface(
    intrinsics: np.ndarray, c2w: np.ndarray, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Surface points of the default object seen by every pixel of one or several cameras.

    All rays are traced together with `analytic_tracer()`; hits whose point is not on the surface
    to within SURFACE_TOLERANCE (the tracer's sampling fallback can return a front that overshot
    into the object, or a NaN secant step) are solved again by dense marching and bisection.

    Args:
        intrinsics: (3, 3) or (B, 3, 3) K; c2w: (4, 4) or (B, 4, 4) camera-to-world, normalised frame.

    Returns:
        points (H * W, 3) or (B, H * W, 3) float32 (valid where hit) and hit (H * W,) or
        (B, H * W) bool; pixels row-major.
    """
    k = torch.as_tensor(np.asarray(intrinsics), dtype=torch.float32)
    pose = torch.as_tensor(np.asarray(c2w), dtype=torch.float32)
    batch_shape = k.shape[:-2]
    k, pose = k.reshape(-1, 3, 3), pose.reshape(-1, 4, 4)
    uv = pixel_grid(height, width)
    rays = [pixel_rays(k[i], pose[i], uv) for i in range(len(k))]
    origins = torch.cat([o for o, _ in rays])
    directions = torch.cat([d for _, d in rays])
    result = analytic_tracer().trace(default_object_sdf, origins, directions)
    depth, hit = result.depth.clone(), result.hit.clone()
    residual = default_object_sdf(origins + directions * depth[:, None]).abs()
    suspect = hit & ~(residual <= SURFACE_TOLERANCE)  # also catches NaN
    if suspect.any():
        idx = suspect.nonzero().squeeze(1)
        depth[idx], hit[idx] = _march(origins[idx], directions[idx])
    points = origins + directions * depth[:, None]
    size = height * width
    return points.reshape(*batch_shape, size, 3), hit.reshape(*batch_shape, size)


def _march(
    origins: torch.Tensor, directions: torch.Tensor, samples: int = 2048, bisections: int = 40
) -> tuple[torch.Tensor, torch.Tensor]:
    """First zero crossing along rays by dense sampling inside the unit sphere, then bisection.

    Returns depth (N,) and hit (N,) bool; slow but robust, for the few rays the tracer got wrong.
    """
    near, far, inside = intersect_sphere(origins, directions, 1.0)
    steps = torch.linspace(0.0, 1.0, samples)
    z = near[:, None] + (far - near)[:, None] * steps[None]  # (n, samples)
    values = default_object_sdf((origins[:, None] + directions[:, None] * z[..., None]).reshape(-1, 3))
    negative = values.reshape(z.shape) < 0
    hit = inside & negative.any(dim=1)
    first = torch.argmax(negative.to(torch.int8), dim=1).clamp_min(1)
    rows = torch.arange(len(z))
    lo, hi = z[rows, first - 1], z[rows, first]
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        outside = default_object_sdf(origins + directions * mid[:, None]) > 0
        lo, hi = torch.where(outside, mid, lo), torch.where(outside, hi, mid)
    return 0.5 * (lo + hi), hit


@single_threaded()
def render_analytic_views(
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    height: int,
    width: int,
    scale_mat: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SceneData:
    """Render the default object from arbitrary cameras (e.g. held-out views for evaluation).

    Args:
        intrinsics: (N, 3, 3) K; c2w: (N, 4, 4) camera-to-world transforms in the normalised frame.
        height, width: image size in pixels.
        scale_mat: (4, 4) normalised -> world (default: `default_scale_mat()`).
        progress: optional callable(done, total) counting views, called after each batch of views.

    Returns:
        SceneData with images (N, H, W, 3) float32 (black background), masks (N, H, W) = tracer hits.
    """
    intrinsics = np.asarray(intrinsics, dtype=np.float64).reshape(-1, 3, 3)
    c2w = np.asarray(c2w, dtype=np.float64).reshape(-1, 4, 4)
    if len(intrinsics) != len(c2w):
        raise ValueError(f"{len(intrinsics)} intrinsics for {len(c2w)} poses")
    num_views = len(c2w)
    images = np.zeros((num_views, height * width, 3), dtype=np.float32)
    masks = np.zeros((num_views, height * width), dtype=bool)
    for start in range(0, num_views, VIEWS_PER_BATCH):
        stop = min(start + VIEWS_PER_BATCH, num_views)
        points, hit = trace_surface(intrinsics[start:stop], c2w[start:stop], height, width)
        surface = points[hit]
        colours = np.zeros((stop - start, height * width, 3), dtype=np.float32)
        colours[hit.numpy()] = shade(surface, default_object_normals(surface)).numpy()
        images[start:stop], masks[start:stop] = colours, hit.numpy()
        if progress is not None:
            progress(stop, num_views)
    images = images.reshape(num_views, height, width, 3)
    masks = masks.reshape(num_views, height, width)
    digits = max(3, len(str(num_views - 1)))
    return SceneData(
        images=images,
        masks=masks,
        intrinsics=intrinsics,
        c2w=c2w,
        scale_mat=default_scale_mat() if scale_mat is None else np.asarray(scale_mat, dtype=np.float64),
        image_names=[f"{i:0{digits}d}.png" for i in range(num_views)],
    )


def render_default_scene(
    num_views: int = 40, resolution: int = 128, progress: Callable[[int, int], None] | None = None
) -> SceneData:
    """The default scene in memory (what `generate_default_scene` writes, before 8-bit quantisation)."""
    intrinsics, c2w = default_cameras(num_views, resolution)
    return render_analytic_views(intrinsics, c2w, resolution, resolution, progress=progress)


@single_threaded()
def default_object_mesh(
    resolution: int = GT_MESH_RESOLUTION,
    world: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> trimesh.Trimesh:
    """Marching-cubes mesh of the analytic object (what gt_mesh.ply holds at the default resolution).

    Args:
        resolution: grid points per axis over [-GT_MESH_BOUND, GT_MESH_BOUND]^3.
        world: True for world units (through `default_scale_mat()`), False for the normalised frame.
        progress: optional callable(done, total) counting SDF queries (see `extract_mesh`).
    """
    mesh = extract_mesh(
        default_object_sdf, resolution=resolution, bound=GT_MESH_BOUND, narrow_band=True, progress=progress
    )
    return transform_mesh(mesh, default_scale_mat()) if world else mesh


def _description(num_views: int, resolution: int) -> dict:
    return {
        "name": SCENE_NAME,
        "version": __version__,
        "generator_version": GENERATOR_VERSION,
        "num_views": num_views,
        "resolution": resolution,
        "camera_distance": CAMERA_DISTANCE,
        "focal_length": focal_length(resolution),
        "elevation_range_deg": [MIN_ELEVATION_DEG, MAX_ELEVATION_DEG],
        "scale_mat": default_scale_mat().tolist(),
        "object": (
            "padlock-like solid: rounded box body with a spherical dent in its front (-y) face, a torus "
            "shackle on top (hole seen along y) and a tilted fin 0.09 thick out of its -x end, smoothly "
            "blended; z up; procedural orange/teal bands with a yellow-to-violet drift along x; 0.35 "
            "ambient + 0.65 Lambert diffuse under a light fixed in the object frame; black background"
        ),
        "bounding_radius": BOUNDING_RADIUS,
        "gt_mesh": {
            "file": "gt_mesh.ply",
            "units": "world",
            "marching_cubes_resolution": GT_MESH_RESOLUTION,
        },
    }


def _expected_files(root: Path, num_views: int) -> list[Path]:
    digits = max(3, len(str(num_views - 1)))
    names = [f"{i:0{digits}d}.png" for i in range(num_views)]
    return [
        root / "cameras.npz",
        root / "gt_mesh.ply",
        *(root / "image" / name for name in names),
        *(root / "mask" / name for name in names),
    ]


def _read_description(root: Path) -> dict | None:
    try:
        description = json.loads((root / "scene.json").read_text())
    except (OSError, ValueError):
        return None
    return description if isinstance(description, dict) else None


def is_cached(root: str | Path, num_views: int = 40, resolution: int = 128) -> bool:
    """Whether `root` holds a complete default scene generated with these parameters by this version."""
    root = Path(root)
    description = _read_description(root)
    if description is None:
        return False
    expected = _description(num_views, resolution)
    same = all(
        description.get(key) == expected[key]
        for key in ("name", "generator_version", "num_views", "resolution")
    )
    return same and all(path.is_file() for path in _expected_files(root, num_views))


def generate_default_scene(
    root: str | Path,
    num_views: int = 40,
    resolution: int = 128,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Write the default scene as an IDR folder (see the module docstring), or reuse a cached one.

    The scene is generated in a temporary sibling folder and renamed into place, so an interrupted
    generation never leaves a folder that looks complete (scene.json is written last).

    Args:
        root: the scene folder. An existing folder is reused when it holds a complete scene of the
            same parameters and generator version; replaced when it holds another version of the
            default scene (or `overwrite` is set); otherwise it must be absent or empty.
        num_views: number of cameras. resolution: square image size in pixels.
        overwrite: regenerate even when a matching scene is cached.
        progress: optional callable(stage, done, total), stage "render" (views) then "mesh" (SDF queries).

    Returns:
        `root`.

    Raises:
        FileExistsError: `root` holds files that are not a default scene and `overwrite` is False.
    """
    root = Path(root)
    if not overwrite and is_cached(root, num_views, resolution):
        return root
    if root.exists() and not overwrite:
        if not root.is_dir():
            raise FileExistsError(f"{root}: is a file, not a scene folder; choose another path")
        foreign = any(root.iterdir()) and (_read_description(root) or {}).get("name") != SCENE_NAME
        if foreign:
            raise FileExistsError(
                f"{root}: folder exists and is not an NSR default scene; choose an empty or new folder "
                "(or pass overwrite=True to replace it)"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_siblings(root)
    staging = _sibling(root, "tmp")
    try:
        render_progress = None if progress is None else (lambda done, total: progress("render", done, total))
        scene = render_default_scene(num_views, resolution, progress=render_progress)
        write_idr_scene(scene, staging)
        mesh_progress = None if progress is None else (lambda done, total: progress("mesh", done, total))
        mesh = default_object_mesh(progress=mesh_progress)
        save_mesh(mesh, staging / "gt_mesh.ply")
        description = _description(num_views, resolution)
        description["gt_mesh"]["bbox_diagonal"] = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
        (staging / "scene.json").write_text(json.dumps(description, indent=2) + "\n")
        _replace_folder(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _sibling(root: Path, tag: str) -> Path:
    """Create and return a new hidden folder next to `root` (mode from the umask, unlike mkdtemp)."""
    for _ in range(100):
        path = root.parent / f".{root.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root.parent}: could not create a temporary folder")


def _remove_abandoned_siblings(root: Path) -> None:
    """Delete staging folders next to `root` left by generations that were killed (their process is gone)."""
    for path in root.parent.glob(f".{root.name}.*-*-*"):
        tag, _, rest = path.name[len(root.name) + 2 :].partition("-")
        pid = rest.partition("-")[0]
        if tag not in ("tmp", "old") or not pid.isdigit() or not path.is_dir() or _process_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or cannot be probed: leave its folder alone
        return True
    return True


def _replace_folder(staging: Path, root: Path) -> None:
    """Move `staging` to `root`, replacing an existing `root` (moved aside first, then deleted)."""
    old = None
    if root.exists():
        old = _sibling(root, "old")
        os.replace(root, old / root.name)
    try:
        os.replace(staging, root)
    except OSError:
        if old is not None and not root.exists():
            os.replace(old / root.name, root)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
