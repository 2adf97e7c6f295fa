"""`nsr demo [--out DIR]`: the whole pipeline on NSR's generated scene, in minutes on a CPU.

Leaves DIR/scene/ (the generated scene, IDR layout, with gt_mesh.ply), DIR/run/ (the run folder, with its
evaluation in run/eval/step_XXXXXXX/ as `nsr eval` writes it), DIR/mesh.ply (world units),
DIR/metrics.json (mesh-to-GT-mesh distances and held-out PSNR / SSIM) and DIR/report.html.
Running it again resumes or reuses what is already there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import trimesh
import tyro

from nsr import checks
from nsr.atomic import atomic_write, check_writable_folder
from nsr.cli.common import CountProgress, friendly, train_with_progress
from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.engine.errors import TrainingInterrupted
from nsr.engine.trainer import Trainer
from nsr.evaluation.antialias import AntialiasConfig
from nsr.evaluation.images import evaluate_images, save_image_evaluation, write_json
from nsr.evaluation.meshes import extract_world_mesh
from nsr.mesh.extract import save_mesh
from nsr.metrics.geometry import mesh_metrics
from nsr.scenes import generate_default_scene


@dataclass
class DemoArgs:
    """Generate the default scene, train the `demo` preset on it, extract the mesh and evaluate it."""

    out: Path = Path("nsr-demo")
    """Output folder."""
    steps: int | None = None
    """Override the number of training steps (default: the preset's)."""
    max_seconds: float = 0.0
    """Stop training after this many seconds of training time (0: no limit), whichever of it and the steps
    comes first; the schedules follow the run's length, so a shortened demo still ends annealed."""
    resolution: int = 256
    """Marching-cubes resolution of the exported mesh."""
    device: str = "auto"
    """`auto` (CUDA when present) or `cpu`."""
    seed: int = 0
    """Seed of the run."""

    def validate(self) -> None:
        if self.steps is not None:
            checks.positive("steps", self.steps)
        checks.non_negative("max_seconds", self.max_seconds, "0 = no limit")
        checks.at_least("resolution", self.resolution, 2)
        checks.device("device", self.device)
        checks.non_negative("seed", self.seed)


def run(argv: list[str]) -> int:
    args = tyro.cli(DemoArgs, args=argv, prog="nsr demo")
    return friendly(lambda: _run(args))


def _run(args: DemoArgs) -> int:
    checks.validate_config(args)
    check_writable_folder(args.out)
    t0 = time.perf_counter()
    scene_dir = args.out / "scene"
    bars = {"render": CountProgress("rendering scene"), "mesh": CountProgress("ground-truth mesh")}
    try:
        generate_default_scene(scene_dir, progress=lambda stage, done, total: bars[stage](done, total))
    finally:
        for bar in bars.values():
            bar.close()
    print(f"scene: {scene_dir} ({time.perf_counter() - t0:.0f} s)")

    config = demo_config(args, scene_dir)
    scene = load_idr_scene(scene_dir)
    trainer = Trainer(config, scene, args.out / "run")
    try:
        train_with_progress(trainer, resume=True)
    except TrainingInterrupted as err:
        err.resume_command = resume_command(args)
        raise

    done = _finished_metrics(args, trainer.step)
    if done is not None:
        print(
            f"nsr demo: already measured at step {trainer.step} ({args.out / 'metrics.json'}; delete it to measure again)"
        )
        _print_summary(args, done)
        return 0

    progress = CountProgress("marching cubes")
    try:
        mesh = extract_world_mesh(trainer.model, scene.scale_mat, args.resolution, progress=progress)
    finally:
        progress.close()
    save_mesh(mesh, args.out / "mesh.ply")
    print("measuring the mesh against the ground truth ...", flush=True)
    gt = trimesh.load(scene_dir / "gt_mesh.ply", force="mesh")
    geometry = mesh_metrics(mesh, gt)
    # The evaluation goes where `nsr eval` puts it, so that `nsr report` (and the report below) finds it.
    eval_dir = args.out / "run" / "eval" / f"step_{trainer.step:07d}"
    antialias = AntialiasConfig()
    progress = CountProgress("rendering held-out views")
    try:
        rows = evaluate_images(
            trainer.model, scene, trainer.test_views, out_dir=eval_dir, progress=progress, antialias=antialias
        )
    finally:
        progress.close()
    images = save_image_evaluation(
        rows,
        eval_dir,
        f"demo step {trainer.step} (test views)",
        split="test",
        resolution=[scene.width, scene.height],
        downscale=config.data.downscale,
        antialias_samples=antialias.samples,
        antialias_everywhere=antialias.everywhere,
    )
    write_json(geometry, eval_dir / "geometry.json")
    write_json(
        {"run": str(args.out / "run"), "step": trainer.step, **images, **geometry}, eval_dir / "summary.json"
    )
    metrics = {**geometry, **{k: v for k, v in images.items() if k != "conventions"}}
    metrics["train_seconds"] = trainer.seconds
    metrics["steps"] = trainer.step
    metrics["mesh_resolution"] = args.resolution
    metrics["total_seconds"] = time.perf_counter() - t0
    text = json.dumps(metrics, indent=2)
    atomic_write(args.out / "metrics.json", lambda f: f.write(text.encode()))

    from nsr.cli.report import ReportArgs, build_report

    page = build_report(ReportArgs(run=args.out / "run", mesh=args.out / "mesh.ply", device=args.device))
    atomic_write(args.out / "report.html", lambda f: f.write(page.encode()))

    _print_summary(args, metrics)
    return 0


def demo_config(args: DemoArgs, scene_dir: Path):
    """The `demo` preset's TrainConfig for the generated scene in `scene_dir`, with the arguments' overrides."""
    config = get_preset("demo")
    config.data.path = scene_dir
    config.device = args.device
    config.seed = args.seed
    if args.steps is not None:
        config.steps = args.steps
    config.max_seconds = args.max_seconds
    return config


def resume_command(args: DemoArgs) -> str:
    """The command that goes on with an interrupted demo (the same length of run)."""
    command = f"nsr demo --out {args.out}"
    if args.steps:
        command += f" --steps {args.steps}"
    if args.max_seconds:
        command += f" --max-seconds {args.max_seconds:g}"
    return command


def _finished_metrics(args: DemoArgs, step: int) -> dict | None:
    """The metrics of an earlier `nsr demo` into the same folder when they measured this step at this mesh
    resolution and its mesh and report are there (a second `nsr demo` then only reports), else None."""
    path = args.out / "metrics.json"
    if not (path.is_file() and (args.out / "mesh.ply").is_file() and (args.out / "report.html").is_file()):
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: measured again (and rewritten atomically)
    if not isinstance(metrics, dict) or metrics.get("steps") != step:
        return None
    return metrics if metrics.get("mesh_resolution") == args.resolution else None


def _print_summary(args: DemoArgs, metrics: dict) -> None:
    print(
        f"mesh: {args.out / 'mesh.ply'}   metrics: {args.out / 'metrics.json'}   report: {args.out / 'report.html'}"
    )
    print(
        f"chamfer {metrics['chamfer']:.4f} (world units) = {100 * metrics['chamfer_rel']:.2f}% of the GT bbox diagonal, "
        f"F-score {metrics['fscore']:.3f}, held-out PSNR {metrics['psnr']:.2f} dB "
        f"({metrics['psnr_mask']:.2f} dB inside the mask, {metrics['psnr_mask_aa']:.2f} dB anti-aliased), "
        f"{metrics['total_seconds']:.0f} s in all"
    )
