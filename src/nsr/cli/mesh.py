"""`nsr mesh RUN [--resolution 512] [--out mesh.ply] [--fill-unseen]`: marching cubes in world units."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from nsr.cli.common import CountProgress, friendly
from nsr.engine.run import open_run
from nsr.evaluation.meshes import extract_world_mesh, training_depth_views
from nsr.mesh.extract import save_mesh


@dataclass
class MeshArgs:
    """Extract the zero level set of a trained SDF as a PLY mesh in the scene's world units."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run folder written by `nsr train`."""
    resolution: int = 512
    """Grid resolution per axis over the bounding cube of the unit sphere."""
    out: Path | None = None
    """Output PLY (default: RUN/mesh_<step>.ply)."""
    checkpoint: str = "latest"
    """`latest`, a step number, or a checkpoint file name."""
    keep_largest: bool = True
    """Keep only the largest connected component."""
    fill_unseen: bool = False
    """Fill the SDF's hidden pockets first: positive space that no training camera sees as empty and that
    the surface encloses (inner sheets left by trained cameras; see docs/cameras.md). Reads the cameras
    from the run's scene."""
    data: Path | None = None
    """The run's scene folder, if it moved since training (for --fill-unseen)."""
    device: str = "auto"
    """Where to evaluate the SDF."""


def run(argv: list[str]) -> int:
    args = tyro.cli(MeshArgs, args=argv, prog="nsr mesh")
    return friendly(lambda: _run(args))


def _run(args: MeshArgs) -> int:
    run_ = open_run(args.run, args.checkpoint, args.device)
    views = training_depth_views(run_, args.data) if args.fill_unseen else None
    progress = CountProgress("marching cubes")
    try:
        mesh = extract_world_mesh(
            run_.model,
            run_.scale_mat,
            args.resolution,
            keep_largest=args.keep_largest,
            progress=progress,
            views=views,
        )
    finally:
        progress.close()
    out = args.out or args.run / f"mesh_{run_.step:07d}.ply"
    save_mesh(mesh, out)
    print(f"wrote {out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces (world units)")
    return 0
