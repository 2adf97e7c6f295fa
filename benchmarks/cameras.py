"""Fixed ground-truth cameras vs trained cameras from noisy poses, under one wall-clock budget each.

Trains PRESET-cams with the scene's cameras held fixed (every other setting of the -cams preset kept), then
PRESET-cams from perturbed poses (`--noise ROT_DEG,TRANS_FRAC[,SEED]`),
each for `--budget` seconds of training time; then reports the camera errors before/after (aligned to the
ground truth by a robust similarity, see docs/cameras.md) and, with `--gt-mesh`, the Chamfer distance of
both meshes (the trained-camera mesh mapped into the ground truth's world frame by the alignment).
Prints a table and writes OUT/results.json.

    python benchmarks/cameras.py --scene .data/synthetic_spot_mitsuba --gt-mesh .data/meshes/spot_cow/cow.obj \
        --background 1 1 1 --noise 3,0.03 --budget 600 --out /tmp/nsr-bench/cams-spot

`--set KEY=VALUE` overrides a config field of both runs (e.g. `model.sdf.encoding.unlock_every=0.04`), so
the fixed-camera run stays the same run as the trained one but for the cameras.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import trimesh

from nsr.cli.train import with_overrides
from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.engine.cameras import world_scale
from nsr.engine.run import evaluate_run_cameras, open_run
from nsr.engine.trainer import Trainer
from nsr.evaluation.meshes import extract_world_mesh, training_depth_views
from nsr.metrics.geometry import mesh_metrics
from nsr.metrics.poses import pose_errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--gt-mesh", type=Path)
    parser.add_argument("--preset", default="positional")
    parser.add_argument("--noise", default="3,0.03")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training per run")
    parser.add_argument(
        "--cam-lr", type=float, default=None, help="camera learning rate (default: the -cams preset's)"
    )
    parser.add_argument(
        "--warmup-until",
        type=float,
        default=None,
        help="fraction of the run with frozen cameras (default: the preset's)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train this many steps (the -cams schedule is in fractions of it; --budget still caps the time)",
    )
    parser.add_argument(
        "--track-every", type=int, default=0, help="print the camera errors every N steps of the trained run"
    )
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--holdout", type=int, default=8)
    parser.add_argument("--downscale", type=float, default=1.0)
    parser.add_argument("--background", type=float, nargs=3, default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field of both runs, after the options above (as `nsr train --KEY VALUE`)",
    )
    parser.add_argument(
        "--fill-unseen",
        action="store_true",
        help="also measure each mesh with its hidden pockets filled (nsr mesh --fill-unseen)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-fixed", action="store_true", help="only the trained-camera run")
    parser.add_argument("--skip-cams", action="store_true", help="only the fixed-camera run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    scene = load_idr_scene(args.scene, downscale=args.downscale)
    gt = trimesh.load(args.gt_mesh, force="mesh") if args.gt_mesh else None
    results = {
        "scene": args.scene.name,
        "preset": args.preset,
        "noise": args.noise,
        "budget_s": args.budget,
        "overrides": args.set,
        "seed": args.seed,
    }
    for mode in ("fixed", "cams"):
        if (mode == "fixed" and args.skip_fixed) or (mode == "cams" and args.skip_cams):
            continue
        # The fixed run is the -cams run with the cameras left alone (every other setting the same).
        config = get_preset(args.preset + "-cams")
        config.cameras.trainable = mode == "cams"
        config.data.path = args.scene
        config.data.holdout_every = args.holdout
        config.data.downscale = args.downscale
        config.max_seconds = args.budget
        # Schedules are fractions of the run, which ends at the steps or the budget, whichever comes first.
        config.steps = 10**9 if args.steps is None else args.steps
        config.val_every = 0
        config.tensorboard = False
        config.checkpoint_every = 10**9
        if args.background is not None:
            config.model.background = tuple(args.background)
        if mode == "cams":
            config.cameras.pose_noise = args.noise
            if args.warmup_until is not None:
                config.cameras.warmup = "frozen"
                config.cameras.warmup_until = args.warmup_until
            if args.cam_lr is not None:
                config.cameras.lr = args.cam_lr
        config.seed = args.seed
        config = with_overrides(config, args.set)
        run_dir = args.out / mode
        trainer = Trainer(config, scene, run_dir)
        if mode == "cams" and args.track_every:
            trainer.on_step = camera_tracker(trainer, args.track_every)
        wall = time.perf_counter()
        trainer.train()
        row = {"steps": trainer.step, "train_seconds": round(trainer.seconds, 1)}
        print(f"{mode}: {trainer.step} steps, {time.perf_counter() - wall:.0f} s wall", flush=True)
        run_ = open_run(run_dir, device=str(trainer.device)) if mode == "cams" or args.fill_unseen else None
        to_world = scene.scale_mat
        if mode == "cams":
            evaluation = evaluate_run_cameras(run_)
            summary = evaluation.summary()
            row["before"], row["after"] = summary["before"], summary["after"]
            # How far the rig drifted as a whole (model frame -> GT normalised frame: x -> s R x + t).
            row["alignment_scale"] = summary["alignment"]["scale"]
            row["alignment_shift"] = float(np.linalg.norm(summary["alignment"]["translation"]))
            to_world = evaluation.model_to_gt_world()
        mesh = extract_world_mesh(trainer.model, to_world, args.resolution)
        mesh.export(args.out / f"mesh_{mode}.ply")
        keys = ("chamfer", "chamfer_rel", "accuracy", "completeness", "precision", "recall", "fscore")
        if gt is not None:
            m = mesh_metrics(mesh, gt)
            row.update({k: m[k] for k in keys})
        if args.fill_unseen:  # the same mesh with the pockets no training camera sees filled
            views = training_depth_views(run_, data=args.scene)
            mesh = extract_world_mesh(trainer.model, to_world, args.resolution, views=views)
            mesh.export(args.out / f"mesh_{mode}_filled.ply")
            if gt is not None:
                m = mesh_metrics(mesh, gt)
                row["filled"] = {k: m[k] for k in keys}
        results[mode] = row
    results["world_scale"] = world_scale(scene.scale_mat)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    if "cams" in results:
        print_table(results)
    else:
        print(json.dumps(results))


def camera_tracker(trainer: Trainer, every: int):
    """An on_step callback printing the aligned camera errors of the training views every `every` steps."""
    views = np.asarray(trainer.train_views)
    gt = trainer.gt_scene.c2w[views]

    def track(m) -> None:
        if m.step % every == 0:
            errors = pose_errors(trainer.cameras.poses()[views], gt)
            align = errors.alignment
            print(
                f"step {m.step}: rotation {errors.rotation_deg.mean():.3f} deg, "
                f"centre {100 * errors.centre_rel.mean():.3f}% (mean, aligned), psnr {m.psnr:.2f}, "
                f"rig scale {align.scale:.4f} shift {np.linalg.norm(align.translation):.4f}",
                flush=True,
            )

    return track


def print_table(results: dict) -> None:
    cams = results["cams"]
    b, a = cams["before"], cams["after"]
    print(
        f"\n{results['scene']} {results['preset']} noise {results['noise']}, {results['budget_s']:.0f} s per run"
    )
    print("| | before | after |\n|---|---|---|")
    print(f"| rotation error mean / median (deg) | {b['rotation_deg_mean']:.3f} / {b['rotation_deg_median']:.3f} "
          f"| {a['rotation_deg_mean']:.3f} / {a['rotation_deg_median']:.3f} |")  # fmt: skip
    print(f"| centre error mean / median (% of distance) | {100 * b['centre_rel_mean']:.3f} / "
          f"{100 * b['centre_rel_median']:.3f} | {100 * a['centre_rel_mean']:.3f} / {100 * a['centre_rel_median']:.3f} |")  # fmt: skip
    print(
        f"| centre error mean (world units) | {b['centre_world_mean']:.4g} | {a['centre_world_mean']:.4g} |"
    )
    print(f"| rig drift: alignment scale / shift (normalised units) | | {cams['alignment_scale']:.4f} / "
          f"{cams['alignment_shift']:.4f} |")  # fmt: skip
    if "chamfer_rel" in cams:
        fixed = results.get("fixed", {})
        fixed_text = f"{100 * fixed['chamfer_rel']:.3f}%" if "chamfer_rel" in fixed else "n/a"
        print(
            f"| Chamfer (% of GT diagonal): fixed GT cameras / trained | {fixed_text} | {100 * cams['chamfer_rel']:.3f}% |"
        )
    if "filled" in cams and "chamfer_rel" in cams["filled"]:
        fixed = results.get("fixed", {}).get("filled", {})
        fixed_text = f"{100 * fixed['chamfer_rel']:.3f}%" if "chamfer_rel" in fixed else "n/a"
        print(
            f"| Chamfer, hidden pockets filled: fixed / trained | {fixed_text} | {100 * cams['filled']['chamfer_rel']:.3f}% |"
        )


if __name__ == "__main__":
    main()
