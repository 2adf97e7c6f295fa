"""`nsr eval RUN --cameras [--gt-cameras FILE] [--mesh FILE | --resolution R] [--json]` (also spelled
`nsr eval-cameras RUN ...`): how well were the poses recovered?

Aligns the run's initial and final cameras to the ground truth with a robust similarity (RANSAC +
Umeyama on the camera centres), reports rotation errors (degrees) and camera-centre errors (normalised
units, world units via the ground truth's scale_mat, and relative to the camera's distance to the scene
centre), mean, median and max, before and after training, and what the camera guard did in training
(RUN/cameras_health.json). Writes RUN/eval_cameras.json and the mesh mapped
into the ground truth's world frame (RUN/mesh_aligned_<step>.ply). See docs/cameras.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from nsr.atomic import atomic_write
from nsr.cli.common import CountProgress, friendly, stdout_to_stderr
from nsr.data.meshes import read_mesh
from nsr.engine.camera_guard import CAMERA_HEALTH
from nsr.engine.cameras import GT_CAMERAS
from nsr.engine.errors import RunError
from nsr.engine.run import evaluate_run_cameras, open_run
from nsr.evaluation.meshes import extract_world_mesh, training_depth_views
from nsr.mesh.extract import save_mesh, transform_mesh
from nsr.metrics.geometry import icp_onto, mesh_metrics


@dataclass
class EvalCamerasArgs:
    """Compare a run's cameras (before and after training) with the ground truth and export the aligned mesh."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run folder written by `nsr train`."""
    gt_cameras: Path | None = None
    """Ground-truth camera file (cameras.npz layout); default: RUN/cameras_gt.npz kept by training."""
    checkpoint: str = "latest"
    """`latest`, a step number, or a checkpoint file name."""
    views: Literal["train", "all"] = "train"
    """Cameras compared: the training views (held-out cameras are never refined) or all views."""
    inlier_threshold: float = 0.05
    """RANSAC inlier distance, as a fraction of the RMS spread of the ground-truth camera centres."""
    object_alignment: Literal["look-at", "centres"] = "look-at"
    """How the mesh is placed in the ground truth's frame: the cameras' alignment with its translation from where
    the cameras look (`look-at`), or the centres' fit alone (`centres`, as before 2026-12-07); docs/cameras.md."""
    mesh: Path | None = None
    """Align this existing mesh (in the run's world units, e.g. from `nsr mesh RUN`) instead of extracting one."""
    resolution: int = 256
    """Marching-cubes resolution of the extracted mesh (when --mesh is not given)."""
    no_mesh: bool = False
    """Skip the aligned mesh."""
    fill_unseen: bool = False
    """Fill the SDF's hidden pockets before extracting the mesh (as `nsr mesh --fill-unseen`)."""
    data: Path | None = None
    """The run's scene folder, if it moved since training (for --fill-unseen)."""
    gt_mesh: Path | None = None
    """Ground-truth mesh in the ground truth's world frame: also report Chamfer / F-score of the aligned mesh."""
    icp: bool = False
    """With --gt-mesh: also move the aligned mesh onto the ground truth by ICP (rigid motion and scale) and report
    its Chamfer / F-score there and the motion: the surface's error without the camera alignment's
    (docs/cameras.md)."""
    out: Path | None = None
    """JSON report (default: RUN/eval_cameras.json)."""
    json: bool = False
    """Print the report as one JSON object on stdout (everything else goes to stderr)."""
    device: str = "auto"
    """Where to evaluate the SDF."""


def run(argv: list[str], prog: str = "nsr eval-cameras") -> int:
    args = tyro.cli(EvalCamerasArgs, args=argv, prog=prog)
    return friendly(lambda: _run(args))


def _table(summary: dict) -> str:
    rows = [
        ("rotation error (deg)", "rotation_deg", 1.0, ".3f"),
        ("centre error (normalised)", "centre", 1.0, ".5f"),
        ("centre error (world units)", "centre_world", 1.0, ".5g"),
        ("centre error (% of distance)", "centre_rel", 100.0, ".3f"),
    ]
    widths = (12, 10, 10, 12, 10, 10)
    lines = [
        f"{'':30} {'before mean':>12} {'median':>10} {'max':>10} {'after mean':>12} {'median':>10} {'max':>10}"
    ]
    for label, key, factor, fmt in rows:
        b, a = summary["before"], summary["after"]
        values = [part[f"{key}_{stat}"] for part in (b, a) for stat in ("mean", "median", "max")]
        lines.append(f"{label:30} " + " ".join(f"{factor * v:>{w}{fmt}}" for v, w in zip(values, widths)))
    after = summary["after"]
    per_view = summary["per_view"]
    worst = int(np.argmax(per_view["rotation_deg_after"]))
    lines.append(
        f"{after['num_cameras']} cameras, {after['num_inliers']} inliers of the alignment; worst after: view "
        f"{summary['views'][worst]} at {per_view['rotation_deg_after'][worst]:.3f} deg, "
        f"{100 * per_view['centre_rel_after'][worst]:.3f}% of its distance"
    )
    return "\n".join(lines)


def _guard_lines(health: dict) -> list[str]:
    """What the camera guard did in training (RUN/cameras_health.json), one line per camera it moved."""
    moved = [(c, r) for c in health["cameras"] for r in c["recoveries"] if r["accepted"]]
    tried = sum(len(c["recoveries"]) for c in health["cameras"])
    lines = [
        f"camera guard: {health['checks']} checks, {tried} re-localisations tried, {len(moved)} accepted"
    ]
    for camera, r in moved:
        lines.append(
            f"  view {camera['view']} at step {r['step']}: score {r['score_before']:.4g} -> "
            f"{r['score_after']:.4g}, moved {r['rotation_deg']:.2f} deg and {100 * r['centre_moved']:.2f}% of its distance"
        )
    return lines


def _run(args: EvalCamerasArgs) -> int:
    with stdout_to_stderr(args.json):
        summary = _evaluate(args)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: EvalCamerasArgs) -> dict:
    if args.icp and (args.gt_mesh is None or args.no_mesh):
        raise RunError(
            "--icp moves the aligned mesh onto the ground truth: it needs --gt-mesh (and no --no-mesh)"
        )
    run_ = open_run(args.run, args.checkpoint, args.device)
    evaluation = evaluate_run_cameras(
        run_, args.gt_cameras, args.views, args.inlier_threshold, args.object_alignment
    )
    summary = evaluation.summary()
    summary["step"] = run_.step
    summary["gt_cameras"] = str(args.gt_cameras or run_.path / GT_CAMERAS)
    print(_table(summary))
    health_path = run_.path / CAMERA_HEALTH
    if health_path.is_file():
        summary["guard"] = json.loads(health_path.read_text())
        print("\n".join(_guard_lines(summary["guard"])))

    if not args.no_mesh:
        to_gt_world = evaluation.model_to_gt_world()
        if args.mesh is not None:
            mesh = read_mesh(args.mesh)
            # The given mesh is in the run's world units: back to the model frame, then into the GT world.
            mesh = transform_mesh(mesh, to_gt_world @ np.linalg.inv(run_.scale_mat))
        else:
            views = training_depth_views(run_, args.data) if args.fill_unseen else None
            progress = CountProgress("marching cubes")
            try:
                mesh = extract_world_mesh(
                    run_.model, to_gt_world, args.resolution, progress=progress, views=views
                )
            finally:
                progress.close()
        mesh_path = save_mesh(mesh, args.run / f"mesh_aligned_{run_.step:07d}.ply")
        summary["mesh_aligned"] = str(mesh_path)
        print(f"aligned mesh (ground truth's world frame): {mesh_path}")
        if args.gt_mesh is not None:
            gt = read_mesh(args.gt_mesh, "ground-truth mesh", points_ok=True)
            metrics = mesh_metrics(mesh, gt)
            summary["mesh_metrics"] = metrics
            print(
                f"chamfer {metrics['chamfer']:.5g} = {100 * metrics['chamfer_rel']:.3f}% of the GT diagonal"
            )
            if args.icp:
                moved, motion = icp_onto(mesh, gt)
                summary["icp"] = motion
                summary["mesh_metrics_icp"] = after = mesh_metrics(moved, gt)
                print(
                    f"after ICP onto the ground truth (it turned the mesh {motion['rotation_deg']:.3f} deg, moved it "
                    f"{100 * motion['shift_rel']:.3f}% of the GT diagonal, scaled it {motion['scale']:.4f}): chamfer "
                    f"{100 * after['chamfer_rel']:.3f}%"
                )

    out = args.out or args.run / "eval_cameras.json"
    text = json.dumps(summary, indent=1)
    atomic_write(out, lambda file: file.write(text.encode()))
    print(f"wrote {out}")
    return summary
