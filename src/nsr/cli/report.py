"""`nsr report RUN [--out RUN/report.html]`: one self-contained HTML page for a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import trimesh
import tyro

from nsr.atomic import atomic_write
from nsr.cli.common import CountProgress, friendly
from nsr.engine.run import RunError
from nsr.report.html import collect_run, decimate, find_mesh, render_html


@dataclass
class ReportArgs:
    """Write one HTML page (opens offline, no CDN) with the run's config, training curves, metric tables
    (whatever `nsr eval` has produced), renders vs ground truth and an interactive 3D view of its mesh."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run folder written by `nsr train`."""
    out: Path | None = None
    """Output HTML file (default RUN/report.html)."""
    mesh: Path | None = None
    """Mesh to show (default: the newest mesh_*.ply of the run, else one extracted at --resolution)."""
    resolution: int = 128
    """Marching-cubes resolution when a mesh has to be extracted."""
    max_faces: int = 60_000
    """Meshes with more faces are decimated (vertex clustering) before being inlined."""
    max_images: int = 8
    """Held-out renders shown."""
    device: str = "auto"
    """Where to extract the mesh if needed."""


def run(argv: list[str]) -> int:
    args = tyro.cli(ReportArgs, args=argv, prog="nsr report")
    return friendly(lambda: _run(args))


def _run(args: ReportArgs) -> int:
    if not (args.run / "config.yaml").is_file():
        raise RunError(f"{args.run}: not a run folder (no config.yaml)")
    inputs = collect_run(args.run, args.max_images)
    mesh_path = args.mesh or find_mesh(args.run)
    if mesh_path is not None:
        mesh = trimesh.load(mesh_path, force="mesh", process=False)
        source = f"{mesh_path}"
    elif (args.run / "checkpoints" / "latest.pt").is_file():
        from nsr.engine.run import open_run
        from nsr.evaluation.meshes import extract_world_mesh

        run_ = open_run(args.run, "latest", args.device)
        progress = CountProgress("marching cubes")
        try:
            mesh = extract_world_mesh(run_.model, run_.scale_mat, args.resolution, progress=progress)
        finally:
            progress.close()
        source = f"extracted at resolution {args.resolution} from step {run_.step}"
    else:
        mesh = None
        source = "no mesh and no checkpoint in the run folder"
    if mesh is not None:
        faces = len(mesh.faces)
        mesh = decimate(mesh, args.max_faces)
        inputs.mesh = mesh
        shown = f"{len(mesh.faces)} faces" + (f" (decimated from {faces})" if len(mesh.faces) < faces else "")
        inputs.mesh_note = f"Mesh: {source}, {shown}."
    else:
        inputs.mesh_note = source
    out = args.out or args.run / "report.html"
    page = render_html(inputs)
    atomic_write(out, lambda f: f.write(page.encode()))
    print(f"wrote {out} ({len(page) / 1e6:.1f} MB)")
    return 0
