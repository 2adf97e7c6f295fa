"""Novel views: render a model from arbitrary cameras, write frames as PNG + GIF (+ MP4 when an encoder
is installed), and compose one run's geometry with another run's appearance network (transfer)."""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsr.atomic import atomic_write
from nsr.cameras.paths import orbit_path, spline_path
from nsr.cameras.rays import scale_intrinsics
from nsr.data.scene import SceneData
from nsr.engine.run import Run, RunError
from nsr.evaluation.antialias import AntialiasConfig, render_camera_antialiased
from nsr.models import Model


@dataclass
class CameraPath:
    """Cameras of a novel-view path, all with the same intrinsics and image size."""

    intrinsics: np.ndarray
    """(3, 3) K."""
    poses: np.ndarray
    """(F, 4, 4) camera-to-world, normalised frame."""
    height: int
    width: int


def camera_path(
    scene: SceneData, views: list[int], kind: str, frames: int, downscale: float = 1.0
) -> CameraPath:
    """An `orbit` or `spline` path around / through the cameras of `views`, intrinsics of the first view."""
    if frames < 1:
        raise ValueError(f"--frames must be positive, got {frames}")
    if downscale < 1:
        raise ValueError(f"--downscale must be >= 1, got {downscale}")
    c2w = scene.c2w[views]
    if kind == "orbit":
        poses = orbit_path(c2w, frames)
    elif kind == "spline":
        poses = spline_path(c2w, frames)
    else:
        raise ValueError(f"unknown path {kind!r} (orbit or spline)")
    height, width = round(scene.height / downscale), round(scene.width / downscale)
    k = scene.intrinsics[views[0]]
    if (height, width) != (scene.height, scene.width):
        k = scale_intrinsics(k, width / scene.width)
    return CameraPath(intrinsics=k, poses=poses, height=height, width=width)


def render_path(
    model: Model,
    path: CameraPath,
    progress: Callable[[int, int], None] | None = None,
    antialias: AntialiasConfig | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render every camera of a path, anti-aliased as `antialias` says (default `AntialiasConfig()`:
    K x K rays per silhouette pixel) -> (frames as (H, W, 3) float [0, 1], hit masks (H, W) bool of the
    pixel centres' rays)."""
    frames, hits = [], []
    if progress is not None:
        progress(0, len(path.poses))
    for i, pose in enumerate(path.poses):
        both = render_camera_antialiased(model, path.intrinsics, pose, path.height, path.width, antialias)
        frames.append(both.antialiased.rgb.reshape(path.height, path.width, 3).cpu().numpy().clip(0, 1))
        hits.append(both.plain.hit.reshape(path.height, path.width).cpu().numpy())
        if progress is not None:
            progress(i + 1, len(path.poses))
    return frames, hits


def has_mp4_encoder() -> bool:
    """Whether imageio with the imageio-ffmpeg plugin is installed (a probe: never raises)."""
    try:
        return (
            importlib.util.find_spec("imageio") is not None
            and importlib.util.find_spec("imageio_ffmpeg") is not None
        )
    except (ImportError, ValueError):
        return False


def render_to_folder(
    model: Model,
    path: CameraPath,
    out_dir: Path,
    fps: int = 15,
    progress: Callable[[int, int], None] | None = None,
    antialias: AntialiasConfig | None = None,
) -> tuple[list[Path], str]:
    """Render a path and write its frames and videos (`write_frames`) -> (videos written, summary line)."""
    frames, _ = render_path(model, path, progress, antialias)
    written = write_frames(frames, out_dir, fps)
    line = f"{len(frames)} frames of {path.width}x{path.height} in {out_dir}: {', '.join(p.name for p in written)}"
    if not has_mp4_encoder():
        line += " (no MP4: pip install imageio-ffmpeg)"
    return written, line


def write_frames(frames: list[np.ndarray], out_dir: Path, fps: int = 15) -> list[Path]:
    """frame_XXXX.png for every frame, video.gif (pillow), and video.mp4 when an encoder is available.
    Returns the video files written."""
    from PIL import Image

    out_dir = Path(out_dir)
    images = [Image.fromarray((np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)) for f in frames]
    for i, image in enumerate(images):
        png = io.BytesIO()
        image.save(png, format="PNG")
        data = png.getvalue()
        atomic_write(out_dir / f"frame_{i:04d}.png", lambda f, data=data: f.write(data))
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
    written = [atomic_write(out_dir / "video.gif", lambda f: f.write(buffer.getvalue()))]
    if has_mp4_encoder():
        import imageio.v2 as imageio

        mp4 = out_dir / "video.mp4"
        arrays = [np.asarray(im) for im in images]
        # even sizes for yuv420p
        arrays = [a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2] for a in arrays]
        with imageio.get_writer(mp4, fps=fps, macro_block_size=1) as writer:
            for a in arrays:
                writer.append_data(a)
        written.append(mp4)
    return written


class TransferError(RunError):
    """Two runs whose networks cannot be combined."""


def transfer_model(geometry: Run, appearance: Run) -> Model:
    """A model with `geometry`'s SDF field (its surface, normals and feature vectors) and `appearance`'s
    appearance network (with its view-direction encoding). Background and tracer come from `geometry`.

    The appearance network then consumes feature vectors of a geometry network it was not trained
    with: that is the disentanglement demo of IDR and the original system; colours follow B only as far
    as B's network depends on points, normals and view directions rather than on the features.
    """
    a_cfg, b_cfg = geometry.config.model, appearance.config.model
    b_net = appearance.model.appearance
    expected_in = b_net.layers[0].in_features - b_net.feature_dim + a_cfg.sdf.feature_dim
    if a_cfg.sdf.feature_dim != b_net.feature_dim:
        raise TransferError(
            f"incompatible runs: {geometry.path} has geometry features of width {a_cfg.sdf.feature_dim} but the "
            f"appearance network of {appearance.path} takes {b_net.feature_dim} "
            f"(its first layer takes {b_net.layers[0].in_features} inputs, {expected_in} would be needed); "
            "train both with the same --model.sdf.feature-dim"
        )
    from dataclasses import replace

    config = replace(a_cfg, appearance=b_cfg.appearance)
    device = next(geometry.model.parameters()).device
    model = config.build().to(device)
    model.sdf_field.load_state_dict(geometry.model.sdf_field.state_dict())
    model.appearance.load_state_dict(appearance.model.appearance.state_dict())
    model.set_progress(geometry.progress)
    if model.appearance.view_encoding is not None:
        model.appearance.view_encoding.set_progress(appearance.progress)
    model.eval()
    return model
