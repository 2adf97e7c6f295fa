"""`nsr demo [--out DIR]`: the whole pipeline on NSR's generated scene, in minutes on a CPU.

Leaves DIR/scene/ (the generated scene, IDR layout, with gt_mesh.ply), DIR/run/ (the run folder),
DIR/mesh.ply (world units) and DIR/metrics.json (mesh-to-GT-mesh distances and held-out PSNR).
Running it again resumes or reuses what is already there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import trimesh
import tyro

from nsr.cli.common import CountProgress, friendly, train_with_progress
from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.engine.trainer import Trainer
from nsr.evaluation.images import evaluate_views
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
    resolution: int = 256
    """Marching-cubes resolution of the exported mesh."""
    device: str = "auto"
    """`auto` (CUDA when present) or `cpu`."""
    seed: int = 0
    """Seed of the run."""


def run(argv: list[str]) -> int:
    args = tyro.cli(DemoArgs, args=argv, prog="nsr demo")
    return friendly(lambda: _run(args))


def _run(args: DemoArgs) -> int:
    t0 = time.perf_counter()
    scene_dir = args.out / "scene"
    bars = {"render": CountProgress("rendering scene"), "mesh": CountProgress("ground-truth mesh")}
    try:
        generate_default_scene(scene_dir, progress=lambda stage, done, total: bars[stage](done, total))
    finally:
        for bar in bars.values():
            bar.close()
    print(f"scene: {scene_dir} ({time.perf_counter() - t0:.0f} s)")

    config = get_preset("demo")
    config.data.path = scene_dir
    config.device = args.device
    config.seed = args.seed
    if args.steps is not None:
        config.steps = args.steps
    scene = load_idr_scene(scene_dir)
    trainer = Trainer(config, scene, args.out / "run")
    train_with_progress(trainer, resume=True)

    progress = CountProgress("marching cubes")
    try:
        mesh = extract_world_mesh(trainer.model, scene.scale_mat, args.resolution, progress=progress)
    finally:
        progress.close()
    save_mesh(mesh, args.out / "mesh.ply")
    gt = trimesh.load(scene_dir / "gt_mesh.ply", force="mesh")
    metrics = mesh_metrics(mesh, gt)
    metrics.update(evaluate_views(trainer.model, scene, trainer.test_views, args.out))
    metrics["train_seconds"] = trainer.seconds
    metrics["steps"] = trainer.step
    metrics["total_seconds"] = time.perf_counter() - t0
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    print(f"mesh: {args.out / 'mesh.ply'}   metrics: {args.out / 'metrics.json'}")
    print(
        f"chamfer {metrics['chamfer']:.4f} (world units) = {100 * metrics['chamfer_rel']:.2f}% of the GT bbox diagonal, "
        f"F-score {metrics['fscore']:.3f}, held-out PSNR {metrics['psnr']:.2f} dB "
        f"({metrics['psnr_mask']:.2f} dB inside the mask), {metrics['total_seconds']:.0f} s in all"
    )
    return 0
