"""`nsr report RUN [--compare OTHER_RUN] [--out RUN/report.html]`: one self-contained HTML page for a run
(and, with `--compare`, its held-out renders beside another run's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from nsr.atomic import atomic_write
from nsr.cli.common import CountProgress, friendly
from nsr.data.meshes import read_mesh
from nsr.engine.run import RunError
from nsr.report.html import (
    ReportInputs,
    camera_line,
    camera_table,
    collect_run,
    compare_views,
    decimate,
    find_mesh,
    render_html,
    run_summary,
)


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
    compare: Path | None = None
    """Another run folder (e.g. NeuS beside IDR on the same scene): its summary beside this run's, and each
    held-out view that both runs evaluated as ground truth | this run | the other | their error maps."""
    device: str = "auto"
    """Where to extract the mesh (or evaluate trained cameras) if needed."""


def run(argv: list[str]) -> int:
    args = tyro.cli(ReportArgs, args=argv, prog="nsr report")
    return friendly(lambda: _run(args))


def _run(args: ReportArgs) -> int:
    out = args.out or args.run / "report.html"
    page = build_report(args)
    atomic_write(out, lambda f: f.write(page.encode()))
    print(f"wrote {out} ({len(page) / 1e6:.1f} MB)")
    return 0


def build_report(args: ReportArgs) -> str:
    """The page of `args.run` (and `args.compare`) as one HTML string."""
    for run in (args.run, args.compare):
        if run is not None and not (run / "config.yaml").is_file():
            raise RunError(f"{run}: not a run folder (no config.yaml)")
    print(f"report of {args.run}: reading the run folder")
    inputs = collect_run(args.run, args.max_images)
    _add_camera_errors(args, inputs)
    if args.compare is not None:
        inputs.title += f" beside {args.compare.resolve().name}"
        inputs.summary.append((args.compare.resolve().name, run_summary(args.compare)))
        inputs.comparison, inputs.comparison_note = compare_views(args.run, args.compare, args.max_images)
    mesh_path = args.mesh or find_mesh(args.run)
    if mesh_path is not None:
        mesh = read_mesh(mesh_path)
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
    return render_html(inputs)


def _add_camera_errors(args: ReportArgs, inputs: ReportInputs) -> None:
    """For a run whose cameras started elsewhere than the scene's (noisy file, pose noise, trained cameras)
    and that `nsr eval --cameras` has not measured yet: measure them now (no mesh) for the summary."""
    from nsr.engine.cameras import GT_CAMERAS
    from nsr.engine.run import cameras_start_elsewhere, evaluate_run_cameras, open_run

    if (args.run / "eval_cameras.json").is_file() or not (args.run / GT_CAMERAS).is_file():
        return
    if not (args.run / "checkpoints" / "latest.pt").is_file():
        return
    run_ = open_run(args.run, "latest", args.device)
    if not cameras_start_elsewhere(run_):
        return
    summary = evaluate_run_cameras(run_).summary()
    inputs.summary[0][1]["cameras"] = f"{camera_line(summary)} (step {run_.step})"
    inputs.tables.append((f"trained cameras (step {run_.step})", camera_table(summary)))
