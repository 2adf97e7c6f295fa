"""Train a preset on a scene under wall-clock budgets and measure speed and quality at each budget.

For each budget (default 120, 300, 600 s of training time) the run's snapshot is evaluated: mesh at
`--resolution` in world units, Chamfer against the ground-truth mesh (when given), held-out PSNR,
plus iterations/s, rays/s and peak GPU memory. One JSON line per budget goes to stdout and to
`--out/results.json`.

    python benchmarks/baseline.py --scene .data/synthetic_spot_mitsuba --gt-mesh .data/meshes/spot_cow/cow.obj \
        --preset positional --budgets 120 300 600 --out .data/bench/spot --background 1 1 1

`--set model.sdf.encoding.base_sigma=1.0` overrides one config field (repeatable; parsed as `nsr train
--model.sdf.encoding.base-sigma 1.0` would be, several values space-separated). A budget longer than
one sitting can be split: `--pause-at 520` trains to 520 s of training time, writes the checkpoint and
exits without evaluating; the same command with `--resume` (and without `--pause-at`) continues from it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import trimesh

from nsr.cli.train import with_overrides
from nsr.config import TrainConfig, get_preset
from nsr.data.idr import load_idr_scene
from nsr.engine.trainer import Trainer
from nsr.evaluation.images import evaluate_views
from nsr.evaluation.meshes import extract_world_mesh
from nsr.metrics.geometry import mesh_metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--gt-mesh", type=Path)
    parser.add_argument("--preset", default="positional")
    parser.add_argument("--budgets", type=float, nargs="+", default=[120, 300, 600])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--holdout", type=int, default=8)
    parser.add_argument("--downscale", type=float, default=1.0)
    parser.add_argument("--background", type=float, nargs=3, default=None)
    parser.add_argument("--eval-only", action="store_true", help="evaluate the snapshots of an earlier run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    parser.add_argument(
        "--pause-at", type=float, default=0.0, help="stop at this training time, no evaluation"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/run/checkpoints/latest.pt")
    args = parser.parse_args()

    config = preset_config(args.preset, args.set)
    config.seed = args.seed
    config.data.path = args.scene
    config.data.holdout_every = args.holdout
    config.data.downscale = args.downscale
    config.max_seconds = max(args.budgets)
    config.snapshot_seconds = tuple(args.budgets)
    config.steps = 10**9
    config.val_every = 0
    config.tensorboard = False
    config.checkpoint_every = 1000 if args.pause_at or args.resume else 10**9
    if args.background is not None:
        config.model.background = tuple(args.background)
    scene = load_idr_scene(args.scene, downscale=args.downscale)
    run_dir = args.out / "run"
    trainer = Trainer(config, scene, run_dir)
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if args.resume and not trainer.resume():
        raise SystemExit(f"--resume: no checkpoint in {trainer.checkpoint_dir}")
    if not args.eval_only:
        wall = time.perf_counter()
        if args.pause_at:
            trainer.config.max_seconds = min(args.pause_at, config.max_seconds)
        trainer.train()
        print(
            f"trained {trainer.step} steps, {trainer.seconds:.1f} s training, {time.perf_counter() - wall:.1f} s wall"
        )
        if args.pause_at:
            print(f"paused at {trainer.seconds:.1f} s of training; continue with --resume")
            return
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    gt = trimesh.load(args.gt_mesh, force="mesh") if args.gt_mesh else None

    results = []
    for budget in sorted(args.budgets):
        trainer.load_checkpoint(run_dir / "checkpoints" / f"snapshot_{int(budget)}s.pt")
        row = {
            "scene": str(args.scene.name),
            "preset": args.preset,
            "overrides": args.set,
            "seed": args.seed,
            "budget_s": budget,
            "steps": trainer.step,
            "train_seconds": round(trainer.seconds, 2),
            "it_per_s": round(trainer.step / trainer.seconds, 3),
            "rays_per_s": round(trainer.step * config.rays_per_batch / trainer.seconds, 1),
            "peak_gpu_mem_gib": round(peak, 3),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        }
        t = time.perf_counter()
        mesh = extract_world_mesh(trainer.model, scene.scale_mat, args.resolution)
        row["mesh_seconds"] = round(time.perf_counter() - t, 2)
        mesh.export(args.out / f"mesh_{int(budget)}s.ply")
        if gt is not None:
            m = mesh_metrics(mesh, gt)
            row.update({k: m[k] for k in ("chamfer", "chamfer_rel", "accuracy", "completeness", "fscore")})
            # The same without clipping the SDF to the bounding sphere (what the mesh would be without it).
            raw = extract_world_mesh(
                trainer.model, scene.scale_mat, args.resolution, clip_to_bounding_sphere=False
            )
            row["chamfer_rel_unclipped"] = mesh_metrics(raw, gt)["chamfer_rel"]
        row.update(evaluate_views(trainer.model, scene, trainer.test_views))
        print(json.dumps(row), flush=True)
        results.append(row)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


def preset_config(preset: str, overrides: list[str]) -> TrainConfig:
    """The preset with `dotted.key=value` overrides (see `nsr.cli.train.with_overrides`)."""
    return with_overrides(get_preset(preset), overrides)


if __name__ == "__main__":
    main()
