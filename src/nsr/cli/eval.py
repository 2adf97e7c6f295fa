"""`nsr eval RUN [--checkpoint latest|STEP] [--split test|train|all] [--json]`: measure a run.

Sections, run in order, each adding keys to one flat result:

- images (default unless a geometry reference is given, or with `--images on`): render the views of the
  split, PSNR / SSIM / LPIPS (conventions in nsr.evaluation.images and docs/evaluation.md);
- geometry (`--gt-mesh PATH`): mesh (extracted, or `--mesh PATH`) to GT mesh or point cloud;
- dtu (`--dtu-gt DIR --scan N`): the DTU surface protocol against the official evaluation data.

Outputs go to RUN/eval/step_XXXXXXX/ (or `--out`): views.csv, summary.json, metrics.png, renders/,
geometry.json, dtu.json and the DTU error clouds; image metrics of another split or resolution than the
held-out views at the training resolution go to RUN/eval/step_XXXXXXX_<split>_<W>x<H>/ (`eval_folder`),
so that no evaluation overwrites another. `--json` prints the result as JSON on stdout.

To add a section (e.g. camera accuracy for runs with trainable cameras): add its flags to `EvalArgs`,
write `_section_x(args, ctx) -> dict | None` and append it to `SECTIONS`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import trimesh
import tyro

from nsr import checks
from nsr.atomic import check_writable_folder
from nsr.cli.common import CountProgress, friendly, stdout_to_stderr
from nsr.data.meshes import read_mesh
from nsr.engine.cameras import CameraEvaluation, poses_in_model_frame
from nsr.engine.run import (
    Run,
    RunError,
    cameras_start_elsewhere,
    evaluate_run_cameras,
    open_run,
    run_poses,
)
from nsr.evaluation.antialias import AntialiasConfig
from nsr.evaluation.images import (
    evaluate_images,
    load_run_scene,
    save_image_evaluation,
    select_views,
    write_json,
)
from nsr.evaluation.meshes import extract_world_mesh
from nsr.mesh.extract import save_mesh, transform_mesh
from nsr.metrics.geometry import MaskCulling, mesh_metrics


@dataclass
class EvalArgs:
    """Evaluate a run folder (any checkpoint, on any machine): image metrics on held-out views, geometry
    against a GT mesh, the DTU protocol."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run folder written by `nsr train`."""
    checkpoint: str = "latest"
    """`latest`, a step number, or a checkpoint file name."""
    split: Literal["test", "train", "all"] = "test"
    """Views to render: held-out (`test`), training, or all."""
    json: bool = False
    """Print the result as one JSON object on stdout (progress goes to stderr)."""
    data: Path | None = None
    """Scene folder, when the one recorded in the run folder does not exist on this machine."""
    downscale: float | None = None
    """Render and compare at this image downscale instead of the run's training one (1 = full images)."""
    out: Path | None = None
    """Output folder (default RUN/eval/step_XXXXXXX, with _<split> and _<W>x<H> for another split or
    resolution)."""
    images: Literal["auto", "on", "off"] = "auto"
    """Image metrics: `auto` = on unless --gt-mesh or --dtu-gt is given."""
    antialias: int = 4
    """Anti-aliased renders: K x K rays per silhouette pixel (psnr_aa, psnr_mask_aa; the saved renders);
    1 = one ray per pixel only."""
    antialias_everywhere: bool = False
    """Supersample every pixel, not only the silhouette's (K^2 times the rays)."""
    lpips_weights: Path | None = None
    """AlexNet checkpoint for LPIPS (default: the torch hub cache, alexnet-owt-7be5be79.pth)."""
    gt_mesh: Path | None = None
    """Ground-truth mesh or point cloud (PLY/OBJ...) in world units, for the geometry metrics."""
    mesh: Path | None = None
    """Evaluate this mesh (in the run's world units, as `nsr mesh RUN` writes it) instead of extracting one;
    for a run with noisy or trained cameras it is aligned like an extracted one."""
    resolution: int = 512
    """Marching-cubes resolution when the mesh is extracted."""
    num_samples: int = 200_000
    """Samples per mesh for the geometry metrics."""
    threshold: float | None = None
    """F-score distance in world units (default 0.5% of the GT bbox diagonal)."""
    cull: Literal["none", "masks"] = "none"
    """Cull geometry samples to the region seen inside the (dilated) masks of all views (needs the scene)."""
    cull_dilation: int | None = None
    """Mask dilation in pixels for --cull masks (default: DTU's 12 px at 1600 px wide, scaled to the masks'
    width, at least 1; 0 = none, which drops every point near a silhouette in one view)."""
    dtu_gt: Path | None = None
    """Official DTU evaluation data folder (Points/stl, ObsMask); needs --scan."""
    scan: int | None = None
    """DTU scan number, e.g. 24."""
    dtu_density: float = 0.2
    """DTU sampling / thinning distance in mm."""
    seed: int = 0
    """Seed of the samplings."""
    device: str = "auto"
    """Where to render and evaluate the SDF."""

    def validate(self) -> None:
        if self.downscale is not None:
            checks.at_least("downscale", self.downscale, 1.0, "1 = full images")
        checks.at_least("resolution", self.resolution, 2)
        checks.positive("num_samples", self.num_samples)
        if self.threshold is not None:
            checks.positive("threshold", self.threshold)
        if self.cull_dilation is not None:
            checks.non_negative("cull_dilation", self.cull_dilation)
        if self.scan is not None:
            checks.non_negative("scan", self.scan)
        checks.positive("dtu_density", self.dtu_density)
        checks.non_negative("seed", self.seed)
        checks.device("device", self.device)


@dataclass
class Context:
    """What the sections share: the run, its scene (loaded on demand), its mesh (extracted once)."""

    args: EvalArgs
    run: Run
    out: Path
    _gt_scene: object = None
    _scene: object = None
    _mesh: trimesh.Trimesh | None = None
    _cameras: CameraEvaluation | None = None
    _cameras_done: bool = False
    notes: dict = field(default_factory=dict)
    """What the result should say about how it was computed."""

    def camera_alignment(self) -> CameraEvaluation | None:
        """For a run whose cameras started elsewhere than the scene's (a camera file, pose noise, trained
        cameras): its cameras aligned to the scene's by a robust similarity; None for the scene's cameras."""
        if not self._cameras_done:
            self._cameras_done = True
            if cameras_start_elsewhere(self.run):
                self._cameras = evaluate_run_cameras(self.run)
                after = self._cameras.after
                self.notes["camera_frame"] = (
                    f"the run's cameras did not start at the scene's: held-out views are rendered at their "
                    f"ground-truth poses mapped into the model's frame, and the mesh is mapped into the "
                    f"ground truth's world frame, by the similarity fitted on the {len(self._cameras.views)} "
                    f"training cameras ({int(after.inliers.sum())} inliers); training views at the run's poses"
                )
        return self._cameras

    def gt_scene(self):
        """The scene as on disk (the ground-truth cameras, in the scene's normalised frame)."""
        if self._gt_scene is None:
            self._gt_scene = load_run_scene(self.run, self.args.data, self.args.downscale)
        return self._gt_scene

    def scene(self):
        """The scene in the model's frame, for rendering (see `poses_in_model_frame`)."""
        if self._scene is None:
            scene, evaluation = self.gt_scene(), self.camera_alignment()
            if evaluation is not None:
                _, final = run_poses(self.run)
                c2w = poses_in_model_frame(evaluation, final, scene.c2w).astype(scene.c2w.dtype)
                scene = dataclasses.replace(scene, c2w=c2w)
            self._scene = scene
        return self._scene

    def mesh(self) -> trimesh.Trimesh:
        """The mesh in the ground truth's world units (given, or extracted from the checkpoint)."""
        if self._mesh is None:
            evaluation = self.camera_alignment()
            to_world = self.run.scale_mat if evaluation is None else evaluation.model_to_gt_world()
            if self.args.mesh is not None:
                mesh = _load_mesh(self.args.mesh)
                if evaluation is not None:  # the run's world -> its model frame -> the ground truth's world
                    mesh = transform_mesh(mesh, to_world @ np.linalg.inv(self.run.scale_mat))
                self._mesh = mesh
            else:
                progress = CountProgress("marching cubes")
                try:
                    self._mesh = extract_world_mesh(
                        self.run.model, to_world, self.args.resolution, progress=progress
                    )
                finally:
                    progress.close()
                save_mesh(self._mesh, self.out / f"mesh_{self.run.step:07d}.ply")
        return self._mesh

    def culling(self) -> MaskCulling | None:
        if self.args.cull == "none":
            return None
        return MaskCulling.from_scene(self.gt_scene(), self.args.cull_dilation)


def _load_mesh(path: Path) -> trimesh.Trimesh:
    return read_mesh(path, "mesh")


def images_wanted(args: EvalArgs) -> bool:
    """Whether the image section runs (`--images auto`: unless a geometry reference is given)."""
    if args.images == "auto":
        return args.gt_mesh is None and args.dtu_gt is None
    return args.images == "on"


def eval_folder(args: EvalArgs, ctx: Context) -> Path:
    """RUN/eval/step_XXXXXXX for the held-out views at the training resolution (and for geometry alone);
    `_<split>` and `_<W>x<H>` are appended for image metrics of another split or resolution."""
    name = f"step_{ctx.run.step:07d}"
    if images_wanted(args):
        if args.split != "test":
            name += f"_{args.split}"
        if args.downscale is not None and args.downscale != ctx.run.config.data.downscale:
            scene = ctx.gt_scene()
            name += f"_{scene.width}x{scene.height}"
    return args.run / "eval" / name


def _section_images(args: EvalArgs, ctx: Context) -> dict | None:
    if not images_wanted(args):
        return None
    from nsr.metrics.lpips import load_lpips

    views = select_views(ctx.run, args.split)
    scene = ctx.scene()
    device = next(ctx.run.model.parameters()).device
    lpips_model, status = load_lpips(args.lpips_weights, device)
    if lpips_model is None:
        print(status.message, file=sys.stderr)
    antialias = AntialiasConfig(samples=args.antialias, everywhere=args.antialias_everywhere).validate()
    progress = CountProgress(f"rendering {args.split} views")
    try:
        rows = evaluate_images(ctx.run.model, scene, views, lpips_model, ctx.out, progress, antialias)
    finally:
        progress.close()
    return save_image_evaluation(
        rows,
        ctx.out,
        f"{ctx.run.path.name} step {ctx.run.step} ({args.split} views)",
        split=args.split,
        resolution=[scene.width, scene.height],
        downscale=ctx.run.config.data.downscale if args.downscale is None else args.downscale,
        antialias_samples=antialias.samples,
        antialias_everywhere=antialias.everywhere,
        lpips_status=status.message,
    )


def _section_geometry(args: EvalArgs, ctx: Context) -> dict | None:
    if args.gt_mesh is None:
        return None
    gt = read_mesh(args.gt_mesh, "ground-truth mesh", points_ok=True)
    mesh = ctx.mesh()
    print(f"measuring the mesh against {args.gt_mesh} ({args.num_samples} samples each) ...", flush=True)
    keep = ctx.culling()
    metrics = mesh_metrics(
        mesh, gt, num_samples=args.num_samples, threshold=args.threshold, seed=args.seed, keep=keep
    )
    metrics["cull"] = "none" if keep is None else keep.describe()
    write_json(metrics, ctx.out / "geometry.json")
    return metrics


def _section_dtu(args: EvalArgs, ctx: Context) -> dict | None:
    if args.dtu_gt is None:
        return None
    if args.scan is None:
        raise RunError("--dtu-gt needs --scan N (the DTU scan number)")
    from nsr.metrics.dtu import evaluate_dtu_mesh, load_dtu_ground_truth, save_error_clouds

    print(f"DTU scan {args.scan}: reading the ground truth, thinning and measuring ...", flush=True)
    gt = load_dtu_ground_truth(args.dtu_gt, args.scan)
    keep = ctx.culling()
    result = evaluate_dtu_mesh(ctx.mesh(), gt, density=args.dtu_density, seed=args.seed, keep=keep)
    d2s, s2d = save_error_clouds(result, ctx.out, args.scan)
    metrics = result.as_dict()
    metrics.update({"dtu_scan": args.scan, "dtu_error_clouds": [str(d2s), str(s2d)]})
    metrics["cull"] = "none" if keep is None else keep.describe()
    write_json(metrics, ctx.out / "dtu.json")
    return metrics


SECTIONS: list[Callable[[EvalArgs, Context], dict | None]] = [
    _section_images,
    _section_geometry,
    _section_dtu,
]


def run(argv: list[str]) -> int:
    if "--cameras" in argv:  # camera accuracy: its own options (nsr eval RUN --cameras --help)
        from nsr.cli import eval_cameras

        return eval_cameras.run([a for a in argv if a != "--cameras"], prog="nsr eval RUN --cameras")
    args = tyro.cli(EvalArgs, args=argv, prog="nsr eval")
    return friendly(lambda: _run(args))


def _run(args: EvalArgs) -> int:
    with stdout_to_stderr(args.json):  # with --json, everything but the final JSON goes to stderr
        result, out = evaluate(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_human(result, out)
    return 0


def evaluate(args: EvalArgs) -> tuple[dict, Path]:
    """Run the sections `args` asks for, write their files and merge the result into the folder's
    summary.json -> (result, output folder). Progress bars go to stderr; nothing else is printed."""
    checks.validate_config(args)  # before any work
    AntialiasConfig(samples=args.antialias).validate()
    run_ = open_run(args.run, args.checkpoint, args.device)
    ctx = Context(args=args, run=run_, out=Path())
    out = ctx.out = args.out or eval_folder(args, ctx)
    check_writable_folder(out)
    result: dict = {"run": str(args.run), "step": run_.step, "checkpoint": args.checkpoint}
    for section in SECTIONS:
        part = section(args, ctx)
        if part is not None:
            result.update(part)
    result.update(ctx.notes)
    summary_path = out / "summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    write_json({**previous, **result}, summary_path)  # sections from earlier calls are kept
    return result, out


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _print_human(result: dict, out: Path) -> None:
    if "psnr" in result:
        width, height = result["resolution"]
        print(
            f"{result['num_views']} {result['split']} views at {width}x{height}: PSNR {_fmt(result['psnr'], '.2f')} dB "
            f"(mask {_fmt(result['psnr_mask'], '.2f')}, interior {_fmt(result['psnr_interior'], '.2f')}), "
            f"SSIM {_fmt(result['ssim'], '.4f')} (mask {_fmt(result['ssim_mask'], '.4f')}), "
            f"LPIPS {_fmt(result['lpips'], '.4f')}"
        )
        if result.get("psnr_aa") is not None:
            k = result["antialias_samples"]
            print(
                f"anti-aliased ({k}x{k} rays per silhouette pixel): PSNR {_fmt(result['psnr_aa'], '.2f')} dB "
                f"(mask {_fmt(result['psnr_mask_aa'], '.2f')})"
            )
    if "chamfer" in result:
        nc = result["normal_consistency"]
        print(
            f"geometry: chamfer {result['chamfer']:.5g} ({100 * result['chamfer_rel']:.3f}% of the GT diagonal), "
            f"accuracy {result['accuracy']:.5g}, completeness {result['completeness']:.5g}, "
            f"F-score {result['fscore']:.4f} at {result['threshold']:.4g}, normal consistency {_fmt(nc, '.4f')}"
        )
        if result.get("detail_chamfer_rel") is not None:
            print(
                f"fine detail (the 10% of the GT whose normal varies most): chamfer "
                f"{100 * result['detail_chamfer_rel']:.3f}% of the GT diagonal, normal consistency "
                f"{_fmt(result['detail_normal_consistency'], '.4f')}"
            )
    if "dtu_overall" in result:
        print(
            f"DTU scan {result['dtu_scan']}: accuracy {result['dtu_accuracy']:.3f} mm, completeness "
            f"{result['dtu_completeness']:.3f} mm, overall {result['dtu_overall']:.3f} mm"
        )
    if result.get("cull", "none") != "none":
        print(f"geometry samples culled by the scene's {result['cull']}")
    print(f"wrote {out}/summary.json")
