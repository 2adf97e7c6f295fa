"""`nsr data SUBCOMMAND`: bring your own data (normalize, convert, download, synth). See docs/data.md."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from nsr.cli.common import CountProgress, friendly

FormatName = Literal["auto", "idr", "nerf-synthetic", "colmap"]


@dataclass
class NormalizeArgs:
    """Compute the bounding sphere of a scene and write DIR/cameras.npz (world_mat_i, scale_mat_i).

    `hull`: visual hull of the masks (voxel carving), the sphere centred on the hull's surface the cameras
    see and containing the whole hull; `points`: COLMAP's sparse points, robust to outliers.
    Reports how well the hull reprojects onto the masks (IoU per view) and how much of the sphere it fills.
    """

    dir: Annotated[Path, tyro.conf.Positional]
    """Scene folder (IDR with world_mat_i only, NeRF-synthetic or COLMAP)."""
    method: Literal["auto", "hull", "points"] = "auto"
    """`auto`: points for COLMAP models, else hull."""
    format: FormatName = "auto"
    """Force the scene format."""
    resolution: int = 128
    """Voxels per axis of the visual hull (over its bounding box)."""
    max_miss: float = 0.05
    """A voxel survives being outside the masks of this fraction of the views that see it."""
    min_track: int = 3
    """`points`: ignore sparse points seen by fewer images."""
    margin: float = 1.1
    """Grow the sphere by this factor."""
    out: str = "cameras.npz"
    """Camera file written inside DIR (an existing one is kept as <name>.bak)."""


@dataclass
class ConvertArgs:
    """Write any supported scene (NeRF-synthetic, COLMAP, IDR) as an IDR folder: image/, mask/, cameras.npz."""

    src: Annotated[Path, tyro.conf.Positional]
    """Input scene folder."""
    out: Path
    """Output folder (must not exist or be empty)."""
    format: FormatName = "auto"
    """Force the input format."""
    downscale: float = 1.0
    """Divide the image size by this factor."""
    background: Literal["white", "black"] = "white"
    """NeRF-synthetic: colour transparent pixels are composited on."""


@dataclass
class DownloadArgs:
    """Download the standard preprocessed DTU release (IDR's DTU.zip), resumable and checksum-verified."""

    dataset: Annotated[Literal["dtu"], tyro.conf.Positional]
    """Which dataset."""
    scans: tuple[int, ...] = ()
    """Scans to extract (default: all 15)."""
    dest: Path = Path("data/DTU")
    """Folder receiving scan<id>/ folders."""
    url: str = ""
    """Archive URL (default: IDR's release, nsr.data.download.DTU_URL)."""
    sha256: str = ""
    """Expected sha256 of the archive (verified when given; the computed one is always printed)."""
    archive: Path | None = None
    """Use this already downloaded archive instead of downloading."""
    keep_archive: bool = False
    """Keep DEST/DTU.zip after extraction."""


@dataclass
class SynthArgs:
    """Render a mesh (OBJ + texture, PLY with vertex colours, or untextured) into an IDR scene with exact
    masks, cameras and the ground-truth mesh (gt_mesh.ply, world units)."""

    mesh: Path
    """Mesh file."""
    out: Path
    """Output scene folder."""
    views: int = 48
    """Number of views."""
    res: int = 400
    """Square image size (pixels)."""
    layout: Literal["sphere", "turntable"] = "sphere"
    """Camera layout (sphere: the Mitsuba Spot spiral; turntable: a band around the up axis)."""
    elevation: float = 25.0
    """Turntable: mean elevation in degrees."""
    fov: float = 40.0
    """Horizontal field of view (degrees)."""
    up: str = "y"
    """The mesh's up axis (x, y, z, -y, ...)."""
    pose_noise: str = ""
    """ROT_DEG,TRANS_FRAC[,SEED]: cameras.npz gets perturbed cameras, cameras_gt.npz the true ones."""
    cameras: Path | None = None
    """Render at the cameras of this IDR npz (world units) instead of the layout."""
    spp: int = 1
    """Samples per pixel per axis (anti-aliasing; masks stay coverage > 1/2)."""
    shadows: bool = True
    """Shadow rays towards the key light."""
    background: Literal["white", "black"] = "white"
    """Background colour (without a backdrop)."""
    backdrop: Literal["none", "plane", "room"] = "none"
    """Textured surroundings instead of the background colour: `plane` (ground plane and dome) or `room`
    (ground, walls, ceiling); training then needs no masks (docs/data.md)."""
    force: bool = False
    """Replace a non-empty output folder."""


SUBCOMMANDS = {
    "normalize": (NormalizeArgs, "compute the bounding sphere (scale_mat) from masks or sparse points"),
    "convert": (ConvertArgs, "write any supported scene as an IDR folder"),
    "download": (DownloadArgs, "download the preprocessed DTU release"),
    "synth": (SynthArgs, "render a mesh into a scene with exact masks, cameras and GT mesh"),
}


def usage() -> str:
    lines = ["usage: nsr data SUBCOMMAND [options]   (nsr data SUBCOMMAND --help)", "", "subcommands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"nsr data: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    args = tyro.cli(SUBCOMMANDS[name][0], args=rest, prog=f"nsr data {name}")
    handler = {"normalize": _normalize, "convert": _convert, "download": _download, "synth": _synth}[name]
    return friendly(lambda: handler(args))


def _with_bar(desc: str, fn):
    bar = CountProgress(desc)
    try:
        return fn(bar)
    finally:
        bar.close()


def _world_scene(root: Path, kind: str):
    """The scene in world units, and the path its cameras came from."""
    from nsr.data.blender import load_nerf_synthetic
    from nsr.data.colmap import load_colmap_scene
    from nsr.data.idr import CAMERA_FILES, _list_images, _read_views
    from nsr.data.normalize import read_world_cameras
    from nsr.data.scene import SceneData

    if kind == "nerf-synthetic":
        return _with_bar(
            "reading images", lambda bar: load_nerf_synthetic(root, normalize=False, progress=bar)
        )
    if kind == "colmap":
        return _with_bar(
            "reading images", lambda bar: load_colmap_scene(root, normalize="none", progress=bar)
        )
    camera_path = next((root / n for n in CAMERA_FILES if (root / n).is_file()), root / CAMERA_FILES[0])
    intrinsics, c2w, _ = read_world_cameras(camera_path)
    images, masks = _list_images(root / "image"), _list_images(root / "mask")
    if not len(images) == len(masks) == len(c2w):
        from nsr.data.errors import DataError

        raise DataError(
            root,
            f"count mismatch: {len(images)} images, {len(masks)} masks, {len(c2w)} cameras in {camera_path.name}",
        )
    pixels, mask_pixels, _ = _with_bar("reading images", lambda bar: _read_views(images, masks, 1.0, bar))
    return SceneData(images=pixels, masks=mask_pixels, intrinsics=intrinsics, c2w=c2w, root=root)


def _normalize(args: NormalizeArgs) -> int:
    from nsr.atomic import atomic_write
    from nsr.cameras.projection import compose_projection
    from nsr.data.colmap import find_model, read_model
    from nsr.data.errors import DataError
    from nsr.data.formats import detect_format
    from nsr.data.normalize import carve_visual_hull, hull_silhouette_iou, hull_sphere, sphere_from_points

    root = args.dir
    kind = detect_format(root) if args.format == "auto" else args.format
    method = args.method if args.method != "auto" else ("points" if kind == "colmap" else "hull")
    if method == "points" and kind != "colmap":
        raise DataError(root, "--method points needs a COLMAP model (sparse points)", "use --method hull")
    t0 = time.perf_counter()
    scene = _world_scene(root, kind)
    has_masks = not bool(np.all(scene.masks))
    if method == "points":
        folder = find_model(root)
        model = read_model(folder)
        points = np.array([p.xyz for p in model.points.values()]).reshape(-1, 3)
        tracks = np.array([len(p.image_ids) for p in model.points.values()])
        sphere, kept = sphere_from_points(
            points, tracks, args.min_track, margin=args.margin, path=folder / "points3D"
        )
        print(f"sparse points: kept {kept} of {len(points)} (track >= {args.min_track}, outliers trimmed)")
    hull = None
    if method == "hull" or has_masks:
        if method == "hull" and not has_masks:
            raise DataError(root, "--method hull needs object masks, but every mask is all object")
        try:
            hull = _with_bar(
                "carving visual hull",
                lambda bar: carve_visual_hull(
                    scene.masks,
                    scene.intrinsics,
                    scene.c2w,
                    args.resolution,
                    args.max_miss,
                    progress=bar,
                    path=root,
                ),
            )
        except DataError as err:
            if method == "hull":
                raise
            print(f"warning: no hull report: {err}", file=sys.stderr)  # the points sphere stands
    if method == "hull":
        sphere = _with_bar(
            "centring on the seen surface",
            lambda bar: hull_sphere(
                hull, scene.masks, scene.intrinsics, scene.c2w, args.margin, progress=bar
            ),
        )
    scale_mat = sphere.scale_mat()
    inside = np.linalg.norm(scene.c2w[:, :3, 3] - sphere.centre, axis=1) <= sphere.radius
    if inside.any():
        print(f"warning: {int(inside.sum())} camera(s) lie inside the bounding sphere", file=sys.stderr)
    if hull is not None:
        ious = _with_bar(
            "hull vs masks",
            lambda bar: hull_silhouette_iou(hull, scene.masks, scene.intrinsics, scene.c2w, bar),
        )
        worst = int(np.argmin(ious))
        print(
            f"visual hull ({args.resolution}^3, {int(hull.occupancy.sum())} voxels) reprojected onto the masks: "
            f"IoU mean {ious.mean():.3f}, min {ious.min():.3f} (view {worst}"
            f"{', ' + scene.image_names[worst] if scene.image_names else ''})"
        )
        points = hull.points()
        box_centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
        reach = (np.linalg.norm(points - sphere.centre, axis=1).max() + 0.87 * hull.voxel) / sphere.radius
        print(
            f"the visual hull fills {100 * hull.fill(sphere):.1f}% of the sphere's volume (the object, inside "
            f"its hull, less) and reaches {reach:.2f} of its radius; the hull's box centre lies "
            f"{np.linalg.norm(box_centre - sphere.centre) / sphere.radius:.2f} radii from the sphere's"
        )
    target = root / args.out
    arrays: dict[str, np.ndarray] = {}
    if target.is_file():
        with np.load(target, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        shutil.copy2(target, target.with_name(target.name + ".bak"))
    for i in range(scene.num_views):
        arrays.setdefault(f"world_mat_{i}", compose_projection(scene.intrinsics[i], scene.c2w[i]))
        arrays[f"scale_mat_{i}"] = scale_mat
    atomic_write(target, lambda f: np.savez(f, **arrays))
    print(
        f"bounding sphere ({method}): centre {np.array2string(sphere.centre, precision=4)}, radius {sphere.radius:.4g} "
        f"(world units); wrote {target} ({time.perf_counter() - t0:.0f} s)"
    )
    return 0


def _convert(args: ConvertArgs) -> int:
    from nsr.data.errors import DataError
    from nsr.data.formats import load_scene
    from nsr.data.idr import write_idr_scene
    from nsr.scenes.default import _replace_folder, _sibling

    out = args.out
    if out.exists() and any(out.iterdir()):
        raise DataError(out, "output folder exists and is not empty", "choose another --out")
    scene = _with_bar(
        "loading",  # images, then the visual hull where the bounding sphere comes from the masks
        lambda bar: load_scene(
            args.src, args.format, args.downscale, background=args.background, progress=bar
        ),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(out, "tmp")
    try:
        _with_bar("writing", lambda bar: write_idr_scene(scene, staging, progress=bar))
        if out.exists():
            out.rmdir()
        _replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {out}: {scene.num_views} views of {scene.width}x{scene.height}, image/, mask/, cameras.npz")
    return 0


def _download(args: DownloadArgs) -> int:
    from nsr.data.download import DTU_SCANS, DTU_URL, download, extract_scans, sha256_file

    scans = list(args.scans) or list(DTU_SCANS)
    args.dest.mkdir(parents=True, exist_ok=True)
    if args.archive is not None:
        archive = args.archive
    else:
        url = args.url or DTU_URL
        archive = args.dest / "DTU.zip"
        print(f"downloading {url} -> {archive} (resumes from {archive.name}.part)")
        archive = _with_bar(
            "download", lambda bar: download(url, archive, args.sha256 or None, progress=_bytes_bar(bar))
        )
    digest = sha256_file(archive)
    if args.sha256 and digest != args.sha256.lower():
        from nsr.data.download import DownloadError

        raise DownloadError(f"{archive}: sha256 mismatch (got {digest}, expected {args.sha256.lower()})")
    print(f"sha256 {digest}  {archive}")
    folders = _with_bar(
        "extract", lambda bar: extract_scans(archive, args.dest, scans, progress=_bytes_bar(bar))
    )
    if args.archive is None and not args.keep_archive:
        archive.unlink()
    print(f"ready: {', '.join(str(f) for f in folders)}")
    return 0


def _bytes_bar(bar: CountProgress):
    def update(done: int, total: int) -> None:
        bar(done // (1 << 20), max(total // (1 << 20), done // (1 << 20)))

    bar.desc += " (MiB)"
    return update


def _synth(args: SynthArgs) -> int:
    from nsr.cameras.noise import parse_pose_noise
    from nsr.scenes.from_mesh import SynthConfig, write_mesh_scene

    try:
        noise = parse_pose_noise(args.pose_noise) if args.pose_noise else None
    except ValueError as err:
        print(f"nsr: error: --pose-noise: {err}", file=sys.stderr)
        return 2
    config = SynthConfig(
        views=args.views,
        resolution=args.res,
        layout=args.layout,
        elevation=args.elevation,
        fov=args.fov,
        up=args.up,
        spp=args.spp,
        shadows=args.shadows,
        background=(1.0, 1.0, 1.0) if args.background == "white" else (0.0, 0.0, 0.0),
        backdrop=args.backdrop,
        pose_noise=noise,
    )
    t0 = time.perf_counter()
    try:
        out = _with_bar(
            "rendering",
            lambda bar: write_mesh_scene(args.mesh, args.out, config, args.cameras, args.force, progress=bar),
        )
    except ImportError as err:
        print(f"nsr: error: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {out}: {args.views if args.cameras is None else 'given'} views, {time.perf_counter() - t0:.0f} s"
    )
    return 0
