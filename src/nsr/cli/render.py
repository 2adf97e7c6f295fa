"""`nsr render RUN --path orbit|spline [--frames N] [--out DIR]`: novel views along a smooth path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from nsr import checks
from nsr.atomic import check_writable_folder
from nsr.cli.common import CountProgress, friendly
from nsr.engine.run import open_run, with_run_poses
from nsr.evaluation.antialias import AntialiasConfig
from nsr.evaluation.images import load_run_scene, select_views
from nsr.evaluation.novel_views import camera_path, render_to_folder


@dataclass
class RenderArgs:
    """Render novel views of a trained run along an orbit around, or a spline through, its training cameras.

    Writes DIR/frame_XXXX.png, DIR/video.gif and, when imageio-ffmpeg is installed, DIR/video.mp4.
    """

    run: Annotated[Path, tyro.conf.Positional]
    """Run folder written by `nsr train`."""
    path: Literal["orbit", "spline"] = "orbit"
    """`orbit`: circle around the cameras' focus point and mean up axis; `spline`: closed spline through the
    training cameras (ordered by azimuth)."""
    frames: int = 60
    """Number of frames."""
    out: Path | None = None
    """Output folder (default RUN/render_<path>_<step>)."""
    checkpoint: str = "latest"
    """`latest`, a step number, or a checkpoint file name."""
    downscale: float = 1.0
    """Render at the training resolution divided by this (faster previews)."""
    fps: int = 15
    """Frames per second of the GIF / MP4."""
    antialias: int = 4
    """K x K rays per silhouette pixel (anti-aliased frames); 1 = one ray per pixel."""
    data: Path | None = None
    """Scene folder (for the cameras), when the recorded one does not exist on this machine."""
    device: str = "auto"
    """Where to render."""

    def validate(self) -> None:
        checks.positive("frames", self.frames)
        checks.at_least("downscale", self.downscale, 1.0, "1 = the training resolution")
        checks.positive("fps", self.fps)
        checks.device("device", self.device)


def run(argv: list[str]) -> int:
    args = tyro.cli(RenderArgs, args=argv, prog="nsr render")
    return friendly(lambda: _run(args))


def _run(args: RenderArgs) -> int:
    checks.validate_config(args)
    antialias = AntialiasConfig(samples=args.antialias).validate()
    if args.out is not None:
        check_writable_folder(args.out)
    run_ = open_run(args.run, args.checkpoint, args.device)
    scene = with_run_poses(run_, load_run_scene(run_, args.data))
    path = camera_path(scene, select_views(run_, "train"), args.path, args.frames, args.downscale)
    out = args.out or args.run / f"render_{args.path}_{run_.step:07d}"
    check_writable_folder(out)
    progress = CountProgress(f"rendering {args.path}")
    try:
        _, line = render_to_folder(run_.model, path, out, args.fps, progress, antialias)
    finally:
        progress.close()
    print(f"wrote {line}")
    return 0
