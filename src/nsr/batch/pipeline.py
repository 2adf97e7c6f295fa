"""One run of a batch, start to finish, in one function: train (resuming from the run's latest checkpoint),
extract the mesh, measure the held-out views, the geometry against a ground-truth mesh and, for runs whose
cameras started elsewhere than the scene's, the cameras; then the run's HTML report.

The same library functions as `nsr train`, `nsr mesh`, `nsr eval` and `nsr eval --cameras`, and the same
files in the run folder (eval/step_XXXXXXX/{summary,geometry}.json, views.csv, renders/; eval_cameras.json;
mesh_XXXXXXX.ply, or mesh_aligned_XXXXXXX.ply in the ground truth's frame; report.html), so any `nsr`
command can re-open a batch run. Nothing here prints; a run's outcome is its `RunResult`, written last
(atomically) as RUN/batch_result.json: the marker of a finished run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import trimesh

from nsr.atomic import atomic_write
from nsr.batch.jobs import RunSpec, build_config
from nsr.data.formats import load_scene
from nsr.data.meshes import read_mesh
from nsr.engine.cameras import CameraEvaluation, poses_in_model_frame
from nsr.engine.errors import TrainingInterrupted
from nsr.engine.run import Run, RunError, cameras_start_elsewhere, evaluate_run_cameras, open_run, run_poses
from nsr.engine.schedule import run_progress
from nsr.engine.train_log import last_logged
from nsr.engine.trainer import StepMetrics, Trainer
from nsr.errors import USER_ERRORS, one_line
from nsr.evaluation.images import (
    IMAGE_CONVENTIONS,
    evaluate_images,
    load_run_scene,
    summarise,
    write_json,
    write_views_csv,
)
from nsr.evaluation.meshes import extract_world_mesh
from nsr.mesh.extract import save_mesh
from nsr.report.html import collect_run, decimate, render_html

log = logging.getLogger("nsr.batch")

RESULT_FILE = "batch_result.json"
"""A finished run's result, written atomically at the very end: its presence marks the run done."""
FAILED_FILE = "batch_failed.json"
"""A failed run's result (the run is tried again by the next invocation)."""
SPEC_FILE = "batch_spec.json"
"""What the run folder was started for (its training fingerprint); a different job is refused."""
WORKER_FILE = "batch_worker.json"
"""The process running the run now: pid, host, attempt number, start time."""
ERROR_LOG = "batch_error.log"
"""The traceback of a run that failed on something other than its input (a bug)."""


@dataclass
class RunResult:
    """One row of the results table (OUT/results.csv): what ran, how it went, what it measured.

    Relative errors are in % (Chamfer, accuracy and completeness of the ground truth's bounding-box
    diagonal; camera centres of their distance to the scene centre); None where not measured."""

    name: str
    scene: str
    preset: str
    variant: str
    seed: int
    budget: str
    status: str
    """`ok`, `failed` or `interrupted` (stopped by Ctrl-C or SIGTERM after a checkpoint: the next invocation
    resumes it)."""
    error: str = ""
    """The one-line error of a failed run (of an interrupted one: where it stopped)."""
    seconds: float | None = None
    """Wall time of the run's last attempt (training, mesh, evaluation, report)."""
    train_seconds: float | None = None
    """Training time (I/O and validation excluded), over all attempts."""
    train_wall_seconds: float | None = None
    """Wall time of the last attempt's training: `train_seconds`' share of it plus the checkpoints,
    validation views, logs and health checks written on the way (and start-up: data, CUDA graphs)."""
    setup_seconds: float | None = None
    """Training time of the first step of each process (CUDA-graph capture, Inductor's compiles), over all
    attempts: what the schedules' clock leaves out (nsr.engine.schedule); part of `train_seconds`."""
    eval_seconds: float | None = None
    """Wall time of the measurements after training (cameras, mesh, held-out images, Chamfer, report)."""
    steps: int | None = None
    it_per_s: float | None = None
    gpu_mem_gib: float | None = None
    """Peak GPU memory of the training (torch's allocator; None on a CPU)."""
    train_psnr: float | None = None
    """PSNR of the last training batch (RUN/train_log.jsonl): beside the held-out PSNR, how far the run fits
    its training views better than new ones."""
    inv_s: float | None = None
    """NeuS's learned inverse standard deviation at the end of training (None for IDR)."""
    surface_lost_steps: int | None = None
    """Steps the model's running coverage (IDR's hit ratio, NeuS's opacity, averaged over about 10 steps)
    spent below the divergence guard's floor (`health.coverage_floor` of its peak): a NeuS run's early
    collapse, grown back or not (nsr.engine.health)."""
    chamfer_pct: float | None = None
    fscore: float | None = None
    """F-score (0-1) at `fscore_threshold_pct` of the ground truth's diagonal."""
    fscore_threshold_pct: float | None = None
    accuracy_pct: float | None = None
    completeness_pct: float | None = None
    detail_chamfer_pct: float | None = None
    """Chamfer restricted to the GT's fine detail (`nsr.metrics.geometry`, detail_*), % of the diagonal."""
    chamfer_icp_pct: float | None = None
    """With the jobs file's `icp`: the Chamfer after moving the mesh onto the GT by ICP, % of the diagonal."""
    psnr: float | None = None
    """Mean over the held-out views, full image (conventions: nsr.evaluation.images)."""
    psnr_mask: float | None = None
    ssim: float | None = None
    ssim_mask: float | None = None
    lpips: float | None = None
    rotation_deg_mean: float | None = None
    """Camera rotation errors after training (trained views, aligned to the ground truth)."""
    rotation_deg_max: float | None = None
    centre_pct_mean: float | None = None
    centre_pct_max: float | None = None
    rotation_deg_mean_before: float | None = None
    centre_pct_mean_before: float | None = None
    attempt: int = 1
    """1 for a run that went through at once; more where Ray restarted it after its worker died."""
    resumed_from_step: int = 0
    """The checkpoint step the last attempt resumed from (0: started fresh)."""
    device: str = ""
    """What trained the run (the GPU's name, or `cpu`)."""
    run_dir: str = ""
    report: str = ""
    """The run's HTML report (relative to the batch's output folder), if written."""
    train_key: str = ""
    eval_key: str = ""


class BatchError(RunError):
    """A batch that cannot run as asked (a run folder of another job, resources the cluster lacks)."""


def run_one(
    spec: RunSpec,
    runs_dir: str | Path,
    progress: Callable[[float], None] | None = None,
    batch_id: str = "",
) -> RunResult:
    """Train, mesh, measure and report one run in RUNS_DIR/spec.name; never raises for a failing run.

    A run fails alone: an NSR error (bad input, NaN loss, ...) becomes its one-line `error`; any other
    exception too, with its traceback in RUN/batch_error.log. `progress(fraction)` follows training.
    Ctrl-C or SIGTERM while it trains stops it after a checkpoint, as `interrupted` (the next invocation
    resumes it); a killed process, or a KeyboardInterrupt elsewhere, ends it without a result, and started
    again it resumes from its latest checkpoint. `batch_id` names the invocation: `attempt` counts the
    starts within it."""
    runs_dir = Path(runs_dir)
    run_dir = runs_dir / spec.name
    start = time.perf_counter()
    result = new_result(spec, runs_dir, "ok", attempt=_record_worker(run_dir, batch_id))
    try:
        _pipeline(spec, run_dir, result, progress)
    except TrainingInterrupted as err:
        saved = f", checkpoint {err.checkpoint.name}" if err.checkpoint is not None else ""
        result.status = "interrupted"
        result.error = (
            f"stopped by {err.signal_name} at step {err.step}{saved}; the next invocation resumes it"
        )
    except USER_ERRORS as err:
        result.status, result.error = "failed", one_line(err)
    except Exception as err:
        text = "".join(traceback.format_exception(err))
        atomic_write(run_dir / ERROR_LOG, lambda f: f.write(text.encode()))
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err} (traceback: {run_dir / ERROR_LOG})"
    result.seconds = time.perf_counter() - start
    if result.report:
        result.report = os.path.relpath(result.report, runs_dir.parent)
    done, stale = (RESULT_FILE, FAILED_FILE) if result.status == "ok" else (FAILED_FILE, RESULT_FILE)
    (run_dir / stale).unlink(missing_ok=True)
    write_json(dataclasses.asdict(result), run_dir / done)
    return result


def warm_up_specs(todo: list[RunSpec]) -> list[RunSpec]:
    """The first run of each (preset, variant) of `todo`: what `warm_up` trains before the timed runs (the
    compiled graphs depend on the configuration and the step's shapes, not on the scene, seed or budget)."""
    first: dict[tuple[str, str], RunSpec] = {}
    for spec in todo:
        first.setdefault((spec.preset, spec.variant), spec)
    return list(first.values())


def warm_up(spec: RunSpec, steps: int, warm_dir: str | Path) -> dict:
    """Train `spec`'s configuration for `steps` steps in WARM_DIR/<preset>[_<variant>] (deleted after), untimed and
    unmeasured, so that what a process's first steps compile is in this machine's caches (Inductor's and
    Triton's, on disk) before the timed runs. Never raises for a failing configuration (its timed runs will
    report the error): {"config", "steps", "seconds", "error"} ("" when it trained). Ctrl-C / SIGTERM raises
    KeyboardInterrupt."""
    name = "_".join(part for part in (spec.preset, spec.variant) if part)
    run_dir = Path(warm_dir) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    row = {"config": name, "steps": 0, "seconds": 0.0, "error": ""}
    try:
        config = build_config(spec)
        config.steps, config.max_seconds = steps, 0.0
        config.val_every, config.tensorboard = 0, False
        scene = load_scene(
            config.data.path, config.data.format, config.data.downscale, camera_file=config.data.camera_file
        )
        trainer = Trainer(config, scene, run_dir)
        trainer.train()
        row["steps"] = trainer.step
    except TrainingInterrupted:
        raise KeyboardInterrupt(f"warm-up of {name} stopped") from None
    except Exception as err:  # the timed runs of this configuration report it in full
        row["error"] = one_line(err) if isinstance(err, USER_ERRORS) else f"{type(err).__name__}: {err}"
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def finished_result(spec: RunSpec, runs_dir: str | Path) -> RunResult | None:
    """The result of a finished run of this very job (same training and measurements), else None."""
    path = Path(runs_dir) / spec.name / RESULT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        result = RunResult(**data)
    except (ValueError, TypeError):
        return None  # unreadable or from another NSR version: run it again
    if result.train_key != spec.train_key() or result.eval_key != spec.eval_key():
        return None
    return result


def last_attempt(spec: RunSpec, runs_dir: str | Path) -> RunResult | None:
    """The row of this run's last attempt that did not finish (`failed` or `interrupted`), else None."""
    try:
        return RunResult(**json.loads((Path(runs_dir) / spec.name / FAILED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def new_result(spec: RunSpec, runs_dir: str | Path, status: str, **values) -> RunResult:
    """A row for `spec` with nothing measured yet (`values`: other fields, e.g. the error of a run whose
    worker died more often than it was retried)."""
    return RunResult(
        name=spec.name,
        scene=spec.scene_label,
        preset=spec.preset,
        variant=spec.variant,
        seed=spec.seed,
        budget=spec.budget,
        status=status,
        run_dir=str(Path(runs_dir) / spec.name),
        train_key=spec.train_key(),
        eval_key=spec.eval_key(),
        **values,
    )


def worker_info(run_dir: str | Path) -> dict | None:
    """RUN/batch_worker.json (pid, host, attempt, started) when present and readable."""
    try:
        return json.loads((Path(run_dir) / WORKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _record_worker(run_dir: Path, batch_id: str) -> int:
    previous = worker_info(run_dir) or {}
    attempt = int(previous.get("attempt", 0)) + 1 if previous.get("batch") == batch_id else 1
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "batch": batch_id,
        "attempt": attempt,
        "started": time.time(),
    }
    write_json(info, run_dir / WORKER_FILE)
    return attempt


def _claim_folder(spec: RunSpec, run_dir: Path) -> None:
    """Refuse a run folder that holds a run of another job (changed overrides, budget...)."""
    path = run_dir / SPEC_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded.get("train_key") != spec.train_key():
            raise BatchError(
                f"{run_dir}: holds a run of another job (its scene, preset, seed, budget, hold-out or "
                "overrides differ; see batch_spec.json); delete the folder or use another --out"
            )
        return
    if (run_dir / "checkpoints").is_dir():
        raise BatchError(f"{run_dir}: holds a run not started by `nsr batch`; delete it or use another --out")
    write_json({"train_key": spec.train_key(), "spec": dataclasses.asdict(spec)}, path)


def _pipeline(
    spec: RunSpec, run_dir: Path, result: RunResult, progress: Callable[[float], None] | None
) -> None:
    _claim_folder(spec, run_dir)
    config = build_config(spec)
    config.cameras.validate()
    scene = load_scene(
        config.data.path, config.data.format, config.data.downscale, camera_file=config.data.camera_file
    )
    trainer = Trainer(config, scene, run_dir)
    if trainer.resume():
        result.resumed_from_step = trainer.step
    if progress is not None:
        trainer.on_step = _fraction(config.steps, config.max_seconds, progress)
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
    start = time.perf_counter()
    trainer.train()
    result.train_wall_seconds = time.perf_counter() - start
    result.steps, result.train_seconds = trainer.step, trainer.seconds
    result.it_per_s = trainer.step / trainer.seconds if trainer.seconds > 0 else None
    result.setup_seconds = trainer.schedule.setup_seconds
    final = last_logged(run_dir)
    result.train_psnr, result.inv_s = final.get("psnr"), final.get("inv_s")
    result.surface_lost_steps = trainer.health.vanished_steps
    result.device = torch.cuda.get_device_name(trainer.device) if cuda else trainer.device.type
    if cuda:
        result.gpu_mem_gib = torch.cuda.max_memory_allocated(trainer.device) / 2**30
    del trainer

    start = time.perf_counter()
    _measure(spec, run_dir, result)
    result.eval_seconds = time.perf_counter() - start


def _measure(spec: RunSpec, run_dir: Path, result: RunResult) -> None:
    """The run's measurements after training, into `result`."""
    run_ = open_run(run_dir, "latest", spec.device)
    out = run_dir / "eval" / f"step_{run_.step:07d}"
    cameras = evaluate_run_cameras(run_) if cameras_start_elsewhere(run_) else None
    if cameras is not None:
        _measure_cameras(run_, cameras, result)
    mesh = world_mesh(run_, cameras, spec.mesh_resolution)
    name = "mesh_aligned" if cameras is not None else "mesh"
    save_mesh(mesh, run_dir / f"{name}_{run_.step:07d}.ply")
    if run_.test_views:
        _measure_images(run_, cameras, spec.lpips, out, result)
    if spec.gt_mesh is not None:
        _measure_geometry(mesh, spec, out, result)
    if spec.report:
        result.report = str(_write_report(run_dir, mesh, run_.step))


def _fraction(steps: int, max_seconds: float, progress: Callable[[float], None], every: float = 0.5):
    """A trainer's `on_step` that reports the run's finished fraction at most every `every` seconds (a fast
    run takes hundreds of steps a second; the bar needs a few updates a second)."""
    last = -math.inf

    def on_step(m: StepMetrics) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every:
            last = now
            progress(min(run_progress(m.step, m.seconds, steps, max_seconds), 1.0))

    return on_step


def scene_in_model_frame(run_: Run, cameras: CameraEvaluation | None):
    """The run's scene, for rendering: for a run whose cameras started elsewhere, every view that was not
    trained gets its ground-truth pose mapped into the model's frame (`poses_in_model_frame`)."""
    scene = load_run_scene(run_)
    if cameras is None:
        return scene
    _, final = run_poses(run_)
    c2w = poses_in_model_frame(cameras, final, scene.c2w).astype(scene.c2w.dtype)
    return dataclasses.replace(scene, c2w=c2w)


def world_mesh(run_: Run, cameras: CameraEvaluation | None, resolution: int) -> trimesh.Trimesh:
    """The run's mesh in world units: the scene's, or the ground truth's for a run whose cameras started
    elsewhere (through the similarity that aligns its cameras)."""
    to_world = run_.scale_mat if cameras is None else cameras.model_to_gt_world()
    return extract_world_mesh(run_.model, to_world, resolution)


def _measure_cameras(run_: Run, cameras: CameraEvaluation, result: RunResult) -> None:
    summary = cameras.summary()
    summary["step"] = run_.step
    write_json(summary, run_.path / "eval_cameras.json")
    before, after = summary["before"], summary["after"]
    result.rotation_deg_mean, result.rotation_deg_max = after["rotation_deg_mean"], after["rotation_deg_max"]
    result.centre_pct_mean = 100 * after["centre_rel_mean"]
    result.centre_pct_max = 100 * after["centre_rel_max"]
    result.rotation_deg_mean_before = before["rotation_deg_mean"]
    result.centre_pct_mean_before = 100 * before["centre_rel_mean"]


def _measure_images(
    run_: Run, cameras: CameraEvaluation | None, lpips: bool, out: Path, result: RunResult
) -> None:
    device = next(run_.model.parameters()).device
    lpips_model, status = None, None
    if lpips:
        from nsr.metrics.lpips import load_lpips

        lpips_model, status = load_lpips(None, device)
        if lpips_model is None:
            log.warning("%s: %s", run_.path.name, status.message)
    scene = scene_in_model_frame(run_, cameras)
    rows = evaluate_images(run_.model, scene, list(run_.test_views), lpips_model, out)
    summary = summarise(rows)
    summary.update(
        {"run": str(run_.path), "step": run_.step, "split": "test", "conventions": IMAGE_CONVENTIONS}
    )
    if status is not None:
        summary["lpips_status"] = status.message
    write_views_csv(rows, out / "views.csv")
    write_json(summary, out / "summary.json")
    for key in ("psnr", "psnr_mask", "ssim", "ssim_mask", "lpips"):
        value = summary.get(key)
        setattr(result, key, None if value is None or not math.isfinite(value) else float(value))


def load_reference(path: str | Path) -> trimesh.Trimesh | trimesh.PointCloud:
    """A ground-truth mesh, or a point cloud (a mesh without faces, or a PLY of points); DataError for a
    file that is neither (`nsr.data.meshes.read_mesh`)."""
    return read_mesh(path, "ground-truth mesh", points_ok=True)


def _measure_geometry(mesh: trimesh.Trimesh, spec: RunSpec, out: Path, result: RunResult) -> None:
    from nsr.metrics.geometry import mesh_metrics

    keep, cull = None, "none"
    if spec.cull_masks is not None:
        from nsr.metrics.geometry import MaskCulling

        scene = load_scene(spec.scene)
        keep = MaskCulling.from_scene(scene, None if spec.cull_masks == "auto" else spec.cull_masks)
        cull = keep.describe()
    reference = load_reference(spec.gt_mesh)
    metrics = mesh_metrics(mesh, reference, num_samples=spec.geometry_samples, keep=keep)
    metrics.update({"gt_mesh": spec.gt_mesh, "cull": cull})
    if spec.icp:
        from nsr.metrics.geometry import icp_onto

        try:
            moved, motion = icp_onto(mesh, reference)
        except ValueError as error:  # a mesh nowhere near the GT: the run's other measurements stand
            log.warning("%s: no Chamfer after ICP: %s", spec.name, error)
        else:
            after = mesh_metrics(moved, reference, num_samples=spec.geometry_samples, keep=keep)
            metrics["icp"] = {**motion, "chamfer_rel": after["chamfer_rel"], "fscore": after["fscore"]}
            result.chamfer_icp_pct = 100 * after["chamfer_rel"]
    write_json(metrics, out / "geometry.json")
    diagonal = metrics["bbox_diagonal"]
    result.chamfer_pct = 100 * metrics["chamfer_rel"]
    result.accuracy_pct = 100 * metrics["accuracy_rel"]
    result.completeness_pct = 100 * metrics["completeness_rel"]
    detail = metrics.get("detail_chamfer_rel")
    result.detail_chamfer_pct = None if detail is None or not math.isfinite(detail) else 100 * detail
    result.fscore = metrics["fscore"]
    result.fscore_threshold_pct = 100 * metrics["threshold"] / diagonal if diagonal > 0 else None


def _write_report(run_dir: Path, mesh: trimesh.Trimesh, step: int, max_faces: int = 60_000) -> Path:
    """RUN/report.html as `nsr report RUN` writes it, with the mesh just extracted."""
    inputs = collect_run(run_dir)
    shown = decimate(mesh, max_faces)
    inputs.mesh = shown
    inputs.mesh_note = f"Mesh: extracted by nsr batch from step {step}, {len(shown.faces)} faces shown."
    page = render_html(inputs)
    return atomic_write(run_dir / "report.html", lambda f: f.write(page.encode()))


__all__ = [
    "BatchError",
    "RunResult",
    "finished_result",
    "load_reference",
    "new_result",
    "run_one",
    "scene_in_model_frame",
    "world_mesh",
]
