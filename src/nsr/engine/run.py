"""Re-opening a run folder: config, view split, world transform, and a model at any checkpoint."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nsr.cameras.refine import CameraRefinement
from nsr.config.io import config_from_payload, load_yaml
from nsr.config.train import CONFIG_KIND, TrainConfig
from nsr.data.errors import DataError
from nsr.data.idr import load_cameras
from nsr.data.scene import SceneData
from nsr.engine.cameras import GT_CAMERAS, INIT_CAMERAS, CameraEvaluation, evaluate_cameras
from nsr.engine.checkpoint import load_checkpoint, load_newest
from nsr.engine.errors import RunError
from nsr.engine.trainer import resolve_device
from nsr.models import Model

log = logging.getLogger("nsr.engine")


@dataclass
class Run:
    """A trained model and what is needed to interpret it."""

    path: Path
    config: TrainConfig
    model: Model
    step: int
    scale_mat: np.ndarray
    """(4, 4) normalised frame -> world units."""
    train_views: list[int]
    test_views: list[int]
    cameras: CameraRefinement | None = None
    """The refined cameras of a run trained with `cameras.trainable` (None for fixed cameras)."""
    progress: float = 1.0
    """How far through its schedule the run was at this checkpoint (nsr.engine.schedule)."""


def checkpoint_path(run_dir: str | Path, checkpoint: str = "latest") -> Path:
    """`latest`, a step number, or a file name inside RUN/checkpoints, or a path."""
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints"
    if checkpoint.isdigit():
        path = folder / f"step_{int(checkpoint):07d}.pt"
    elif Path(checkpoint).suffix == ".pt" and Path(checkpoint).is_file():
        path = Path(checkpoint)
    else:
        name = checkpoint if checkpoint.endswith(".pt") else f"{checkpoint}.pt"
        path = folder / name
    if not path.is_file():
        available = sorted(p.name for p in folder.glob("*.pt")) if folder.is_dir() else []
        raise RunError(f"{path}: checkpoint not found (available: {', '.join(available) or 'none'})")
    return path


def run_config(run_dir: str | Path, state: dict | None = None) -> TrainConfig:
    """A run's config: RUN/config.yaml, or, when that file is lost, the copy inside a checkpoint (`state`,
    else the newest checkpoint of the run that loads)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        return load_yaml(TrainConfig, config_path, CONFIG_KIND)
    if not (run_dir / "checkpoints").is_dir():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml, no checkpoints/)")
    where = "the given checkpoint"
    if state is None:
        path, state, _ = load_newest(run_dir / "checkpoints")
        where = str(path)
    if "config" not in state:
        raise RunError(f"{run_dir}: config.yaml is missing and {where} predates configs in checkpoints")
    log.warning("%s: config.yaml is missing; using the config stored in %s", run_dir, where)
    return config_from_payload(TrainConfig, state["config"], CONFIG_KIND, where)


def open_run(run_dir: str | Path, checkpoint: str = "latest", device: str = "auto") -> Run:
    """Load a run folder written by the trainer, on any machine. With `latest`, a damaged latest.pt
    falls back to the newest checkpoint that loads (with a warning)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "no such folder"
        raise RunError(f"{run_dir}: not a run folder ({what})")
    if not (run_dir / "config.yaml").is_file() and not (run_dir / "checkpoints").is_dir():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml)")
    dev = resolve_device(device)
    if checkpoint == "latest" and (run_dir / "checkpoints").is_dir():
        path, state, problems = load_newest(run_dir / "checkpoints", map_location=dev)
        for problem in problems:
            log.warning("%s; using %s (step %d) instead", problem, path.name, state["step"])
    else:
        state = load_checkpoint(checkpoint_path(run_dir, checkpoint), map_location=dev)
    config = run_config(run_dir, state)
    model = config.model.build().to(dev)
    model.load_state_dict(state["model"])
    progress = state.get("progress", 1.0)  # checkpoints from before schedules in fractions: the end
    model.set_progress(progress)
    model.eval()
    cameras = CameraRefinement.from_state_dict(state["cameras"]) if "cameras" in state else None
    scene_info = json.loads((run_dir / "scene.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    return Run(
        path=run_dir,
        config=config,
        model=model,
        step=state["step"],
        scale_mat=np.asarray(scene_info["scale_mat"], dtype=np.float64),
        train_views=split["train"],
        test_views=split["test"],
        cameras=cameras,
        progress=progress,
    )


def model_sdf(model: Model):
    """The SDF of a model as a plain (M, 3) -> (M,) function."""

    def sdf(x: torch.Tensor) -> torch.Tensor:
        return model.sdf(x)

    return sdf


def cameras_start_elsewhere(run_: Run) -> bool:
    """Whether the run's cameras started elsewhere than the scene's (a camera file, pose noise, trained
    cameras): training then kept RUN/cameras_init.npz."""
    return (run_.path / INIT_CAMERAS).is_file()


def run_poses(run_: Run) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) initial and final camera-to-world transforms of a run, in the model's frame."""
    if run_.cameras is not None:
        return run_.cameras.initial_c2w.cpu().numpy(), run_.cameras.poses()
    if not cameras_start_elsewhere(run_):
        raise RunError(
            f"{run_.path}: trained with the scene's own fixed cameras (no {INIT_CAMERAS}); "
            "train with --pose-noise, --cameras.init-file or a -cams preset to evaluate cameras"
        )
    num_views = len(run_.train_views) + len(run_.test_views)
    _, c2w, _ = load_cameras(run_.path / INIT_CAMERAS, num_views)
    return c2w, c2w  # fixed (noisy) cameras: they never moved


def with_run_poses(run_: Run, scene: SceneData) -> SceneData:
    """The scene with the run's own final camera poses (the model's frame) when its cameras did not start
    at the scene's (a camera file, pose noise, trained cameras); the scene itself otherwise.

    For camera paths through the training views (`nsr render`, `nsr transfer`). Held-out views keep their
    initial poses here; `nsr eval` renders them at their aligned ground-truth poses instead.
    """
    if not cameras_start_elsewhere(run_):
        return scene
    _, final = run_poses(run_)
    return dataclasses.replace(scene, c2w=final.astype(scene.c2w.dtype))


def evaluate_run_cameras(
    run_: Run,
    gt_cameras: Path | None = None,
    views: str = "train",
    inlier_threshold: float = 0.05,
    alignment: str = "look-at",
) -> CameraEvaluation:
    """The library side of the command: errors of a run's cameras against the ground truth (`alignment`: how
    the reconstruction is placed, `nsr.engine.cameras.evaluate_cameras`)."""
    initial, final = run_poses(run_)
    gt_path = gt_cameras or run_.path / GT_CAMERAS
    if not gt_path.is_file():
        raise DataError(gt_path, "ground-truth camera file not found", "pass --gt-cameras FILE")
    _, gt_c2w, gt_scale = load_cameras(gt_path, len(initial))
    selected = run_.train_views if views == "train" else list(range(len(initial)))
    return evaluate_cameras(initial, final, gt_c2w, gt_scale, selected, inlier_threshold, alignment)
