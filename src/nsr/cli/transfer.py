"""`nsr transfer --geometry RUN_A --appearance RUN_B --out DIR`: A's geometry with B's appearance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from nsr import checks
from nsr.atomic import check_writable_folder
from nsr.cli.common import CountProgress, friendly
from nsr.engine.run import open_run, with_run_poses
from nsr.evaluation.antialias import AntialiasConfig
from nsr.evaluation.images import load_run_scene, select_views
from nsr.evaluation.novel_views import camera_path, render_to_folder, transfer_model


@dataclass
class TransferArgs:
    """Appearance transfer (the disentanglement demo): render run A's surface (SDF, normals, geometry
    features) with run B's appearance network, along a camera path of A's scene.

    B's network receives A's feature vectors, which it was not trained on (as in IDR and the original
    system); both runs need the same geometry-feature width.
    """

    geometry: Path
    """Run folder whose SDF field gives the surface (A)."""
    appearance: Path
    """Run folder whose appearance network gives the colours (B)."""
    out: Path
    """Output folder: frame_XXXX.png, video.gif (and video.mp4 when an encoder is installed)."""
    path: Literal["orbit", "spline"] = "orbit"
    """Camera path around / through A's training cameras."""
    frames: int = 30
    """Number of frames."""
    checkpoint_geometry: str = "latest"
    """Checkpoint of A."""
    checkpoint_appearance: str = "latest"
    """Checkpoint of B."""
    downscale: float = 1.0
    """Render at A's training resolution divided by this."""
    fps: int = 15
    """Frames per second of the GIF / MP4."""
    antialias: int = 4
    """K x K rays per silhouette pixel (anti-aliased frames); 1 = one ray per pixel."""
    data: Path | None = None
    """A's scene folder (for the cameras), when the recorded one does not exist on this machine."""
    device: str = "auto"
    """Where to render."""

    def validate(self) -> None:
        checks.positive("frames", self.frames)
        checks.at_least("downscale", self.downscale, 1.0, "1 = the training resolution")
        checks.positive("fps", self.fps)
        checks.device("device", self.device)


def run(argv: list[str]) -> int:
    args = tyro.cli(TransferArgs, args=argv, prog="nsr transfer")
    return friendly(lambda: _run(args))


def _run(args: TransferArgs) -> int:
    checks.validate_config(args)
    check_writable_folder(args.out)
    run_a = open_run(args.geometry, args.checkpoint_geometry, args.device)
    run_b = open_run(args.appearance, args.checkpoint_appearance, args.device)
    model = transfer_model(run_a, run_b)
    scene = with_run_poses(run_a, load_run_scene(run_a, args.data))
    path = camera_path(scene, select_views(run_a, "train"), args.path, args.frames, args.downscale)
    antialias = AntialiasConfig(samples=args.antialias).validate()
    progress = CountProgress("rendering transfer")
    try:
        _, line = render_to_folder(model, path, args.out, args.fps, progress, antialias)
    finally:
        progress.close()
    print(f"geometry of {args.geometry}, appearance of {args.appearance}: {line}")
    return 0
