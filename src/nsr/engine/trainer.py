"""The training loop: sampling, optimisation, schedules, logging, validation, checkpoints, resume.

What keeps a run's work safe (see also `nsr.engine.checkpoint`, `nsr.engine.lock`, `nsr.engine.health`):
the run folder is held by one process at a time; checkpoints are atomic, verified on load and hold
the run's config; `latest.pt` only ever points at a checkpoint written while the run looked healthy,
and a diverging run stops with `latest.pt` at the last state known to be good; Ctrl-C and SIGTERM
finish the current step, save a checkpoint and stop (`TrainingInterrupted`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from nsr import checks
from nsr.atomic import atomic_write
from nsr.cameras import pixel_grid, pixel_rays
from nsr.checks import resolve_device
from nsr.config.io import config_from_payload, config_payload, save_yaml, to_dict
from nsr.config.train import CONFIG_KIND, TrainConfig, resume_conflicts
from nsr.data.background import resolve_background
from nsr.data.scene import SceneData
from nsr.engine.camera_guard import CAMERA_HEALTH, CameraGuard, Recovery, ViewImages
from nsr.engine.cameras import initial_scene, save_run_cameras, uses_camera_init
from nsr.engine.checkpoint import (
    LATEST,
    link_latest,
    load_checkpoint,
    load_newest,
    prune_step_checkpoints,
    remove_temporaries,
    rng_state,
    rng_tensor,
    save_atomic,
    set_rng_state,
    step_checkpoints,
    step_name,
    supersede_after,
)
from nsr.engine.errors import RunError, TrainingError, TrainingInterrupted
from nsr.engine.graph_step import (
    ExtraTerm,
    GraphedStep,
    TrainedCameras,
    portable_optimizer_state,
    set_learning_rate,
)
from nsr.engine.health import HealthMonitor, parameters_finite
from nsr.engine.lock import RunLock
from nsr.engine.pockets import PocketFill
from nsr.engine.schedule import ScheduleRecord, run_progress
from nsr.engine.train_log import TrainLog
from nsr.models import Model, RayBatch, RenderOutputs

log = logging.getLogger("nsr.engine")
DEFAULT_BACKGROUND = (0.0, 0.0, 0.0)
"""The models' default background colour (black), which `data.background = auto` replaces."""


def split_views(num_views: int, holdout_every: int) -> tuple[list[int], list[int]]:
    """Train and test view indices: every `holdout_every`-th view (starting at 0) is held out."""
    if holdout_every <= 0:
        return list(range(num_views)), []
    test = list(range(0, num_views, holdout_every))
    train = [i for i in range(num_views) if i % holdout_every]
    return train, test


@dataclass
class StepMetrics:
    """What one step reports to progress bars and logs."""

    step: int
    """Steps done (1 after the first step)."""
    loss: float
    """The total loss."""
    lr: float
    """Learning rate of the networks."""
    seconds: float
    """Training time so far (validation and I/O excluded)."""
    terms: dict[str, float]
    """The model's unweighted loss terms (`LossOutput.terms`), and `pocket` when the pocket fill is on."""
    metrics: dict[str, float]
    """The model's indicators (`LossOutput.metrics`): `psnr` always, e.g. `hit_ratio`, `alpha`."""

    @property
    def psnr(self) -> float:
        """Training-batch PSNR."""
        return self.metrics["psnr"]


class RayBatcher:
    """Draws random (view, pixel) rays from a scene kept on the training device."""

    def __init__(self, scene: SceneData, device: torch.device, generator: torch.Generator) -> None:
        self.device = device
        self.generator = generator
        self.images = torch.from_numpy(scene.images).to(device).reshape(scene.num_views, -1, 3)
        self.masks = torch.from_numpy(scene.masks).to(device).reshape(scene.num_views, -1)
        self.intrinsics = torch.from_numpy(scene.intrinsics).float().to(device)
        self.c2w = torch.from_numpy(scene.c2w).float().to(device)
        self.uv = pixel_grid(scene.height, scene.width, device)

    def sample(self, num_rays: int, poses: torch.Tensor | None = None):
        """Returns (view indices, origins, directions, rgb, mask) of `num_rays` random rays (`draw`, then
        `gather`)."""
        view, pix = self.draw(num_rays)
        batch = self.gather(view, pix, poses)
        return view, batch.origins, batch.directions, batch.rgb, batch.mask

    def draw(self, num_rays: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) view positions and (N,) pixel indices of `num_rays` random rays, on the device (drawn on the
        CPU by the sampler's generator, so the draws do not depend on the device)."""
        n_views, n_pix = self.masks.shape
        view = torch.randint(n_views, (num_rays,), generator=self.generator).to(self.device)
        pix = torch.randint(n_pix, (num_rays,), generator=self.generator).to(self.device)
        return view, pix

    def gather(self, view: torch.Tensor, pix: torch.Tensor, poses: torch.Tensor | None = None) -> RayBatch:
        """The rays through (N,) pixels `pix` of (N,) views `view` with their colours and masks, by indexing
        only (no host synchronisation: a captured step makes its rays with it).

        `poses`: optional (n_views, 4, 4) camera-to-world transforms used instead of the scene's (e.g.
        refined cameras; rays then carry their gradients).
        """
        c2w = self.c2w if poses is None else poses
        origins, dirs = pixel_rays(self.intrinsics[view], c2w[view], self.uv[pix])
        return RayBatch(origins, dirs, self.images[view, pix], self.masks[view, pix])


def render_view(
    model: Model,
    scene: SceneData,
    index: int,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RenderOutputs:
    """Render one view of a scene at full resolution -> RenderOutputs with (H*W, ...) tensors;
    `progress(chunks done, chunks)` as `Model.render_camera`."""
    k, c2w = scene.intrinsics[index], scene.c2w[index]
    return model.render_camera(k, c2w, scene.height, scene.width, chunk, progress=progress)


class Trainer:
    """Owns the loop. Progress is reported through `on_step(metrics)`; nothing here prints."""

    def __init__(
        self,
        config: TrainConfig,
        scene: SceneData,
        run_dir: str | Path,
        on_step: Callable[[StepMetrics], None] | None = None,
    ) -> None:
        checks.validate_config(config)
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = resolve_device(config.device)
        self.on_step = on_step
        self.on_view: Callable[[int, int], None] | None = None
        """Called with (chunks done, chunks) while a validation view renders (a GPU preset's view on a CPU
        takes minutes, the last one after the final step)."""
        self.handle_signals = True
        """Whether `train` turns Ctrl-C and SIGTERM into a checkpoint and `TrainingInterrupted` (in the main
        thread only)."""
        self.lock = RunLock(self.run_dir)
        """This process's hold on the run folder, taken by `resume` and `train` (re-entrant)."""
        self.train_views, self.test_views = split_views(scene.num_views, config.data.holdout_every)
        if not self.train_views:
            raise checks.InvalidValue(
                "data.holdout_every",
                config.data.holdout_every,
                f"holds out every one of the scene's {scene.num_views} views; at least one must remain for "
                "training (0 = train on all views)",
            )
        self.gt_scene = scene
        """The scene as read, with its own (ground-truth) cameras."""
        scene = initial_scene(scene, config.cameras)
        self.scene = scene
        """The scene training sees: its cameras are the initial poses (noisy file or noise, if any)."""
        self.train_scene = scene.subset(self.train_views)
        if config.data.background != "auto" or config.model.background == DEFAULT_BACKGROUND:
            # The scene's background colour (given, or detected: nsr.data.background); a colour set on
            # the model itself (--model.background) stands while data.background is `auto`.
            config.model.background, _ = resolve_background(config.data.background, scene)
        if not (config.data.use_masks and scene.has_masks):
            # Whole images: every training pixel counts as object, and the model trains without masks.
            why = "the scene has no masks" if not scene.has_masks else "--no-masks"
            config.model = config.model.without_masks()
            config.data.use_masks = False
            self.train_scene = dataclasses.replace(
                self.train_scene, masks=np.ones_like(self.train_scene.masks), has_masks=False
            )
            log.info("training without masks (%s): whole images, a learned background", why)

        _seed_everything(config.seed)
        # process-wide: the run's matrix products (its captured step's too) follow its own config
        torch.backends.cuda.matmul.allow_tf32 = config.tf32
        self.model: Model = config.model.build().to(self.device)
        # what the model initialises from the data (a resume then loads its checkpoint over it)
        self.model.start_from(self.train_scene.images, self.train_scene.masks)
        # The fused CUDA Adam updates all parameters in a few kernels instead of several per tensor.
        fused = self.device.type == "cuda"
        groups = self.model.param_groups(config.optim.lr, config.optim.encoding_lr)
        for group in groups:
            group["initial_lr"] = group["lr"]  # the schedule multiplies this (nsr.engine.schedule)
        self.optimizer = torch.optim.Adam(groups, lr=config.optim.lr, fused=fused)
        self.cameras = config.cameras.build(scene.c2w).to(self.device) if config.cameras.trainable else None
        self.camera_optimizer = None
        if self.cameras is not None:
            self.camera_optimizer = torch.optim.Adam(
                [self.cameras.correction], lr=config.cameras.lr, fused=fused
            )
            self._train_view_ids = torch.tensor(self.train_views, dtype=torch.long, device=self.device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.batcher = RayBatcher(self.train_scene, self.device, self.generator)
        self.pockets = (
            PocketFill(config.pockets, self.device, config.seed) if config.pockets.enabled else None
        )
        if self.pockets is not None and self.device.type == "cpu":
            log.warning(
                "the pocket fill on a CPU: each of its %d refreshes renders a depth map of every training view"
                " (one to a few minutes each on a few cores); --pockets.every 0 turns it off",
                config.pockets.refresh_index(1.0),
            )
        self.camera_guard = self._build_camera_guard()
        self.graphed_step = self._build_graphed_step()
        """The whole step as one CUDA graph (`cuda_graph_step`), or None: ordinary steps."""
        self.step = 0
        self.seconds = 0.0
        self._first_step = True
        """This process has not run a step yet: the next one's time is set-up for the schedules."""
        self._last = dict.fromkeys(("val", "checkpoint", "good"), 0.0)
        self._validated = -1
        """The step of the last validation view."""
        self.schedule = ScheduleRecord(config.steps, config.max_seconds, self._schedule_fractions())
        self.health = HealthMonitor(config.health, self.model.coverage_key)
        self._suspect = False
        """A suspicion of divergence is running: checkpoints are not written (nsr.engine.health)."""
        self._good: tuple[int, dict] | None = None
        """(step, state on the CPU): the newest state known to be good (followed by good steps)."""
        self._candidate: tuple[int, dict] | None = None
        """(step, state on the CPU): the next good state, once the steps after it raise no suspicion."""
        self._saved_step: int | None = None
        """The step of the last step checkpoint written by this trainer."""
        self._writer = None
        self.train_log = TrainLog(self.run_dir)

    def _schedule_fractions(self) -> dict:
        """The run's schedules in fractions of the run, by owner (for RUN/schedule.json)."""
        cfg = self.config
        fractions = {"optim": to_dict(cfg.optim), "model": self.model.schedule_fractions()}
        if cfg.cameras.trainable:
            keys = ("warmup", "warmup_until", "lr_milestones", "lr_factor")
            fractions["cameras"] = {k: to_dict(getattr(cfg.cameras, k)) for k in keys}
        if cfg.pockets.enabled:
            fractions["pockets"] = {"start": cfg.pockets.start, "every": cfg.pockets.every}
        if self.camera_guard is not None:
            keys = ("start", "every", "stop", "halflife")
            fractions["camera_guard"] = {k: getattr(cfg.camera_guard, k) for k in keys}
        return fractions

    # ---------------------------------------------------------------- run folder
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def prepare_run_dir(self) -> None:
        """Write the resolved config and the view split into the run folder."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(self.config, self.run_dir / "config.yaml", CONFIG_KIND)
        split = {"train": self.train_views, "test": self.test_views, "image_names": self.scene.image_names}
        (self.run_dir / "split.json").write_text(json.dumps(split, indent=1))
        scene_info = {
            "root": str(self.scene.root) if self.scene.root else None,
            # the same folder from anywhere on this machine (`root` stays as given: portable with the run)
            "root_resolved": str(Path(self.scene.root).resolve()) if self.scene.root else None,
            "num_views": self.scene.num_views,
            "height": self.scene.height,
            "width": self.scene.width,
            "scale_mat": self.scene.scale_mat.tolist(),
        }
        (self.run_dir / "scene.json").write_text(json.dumps(scene_info, indent=1))
        if uses_camera_init(self.config.cameras):
            save_run_cameras(self.run_dir, self.gt_scene, self.scene)

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._writer

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        state = {
            "step": self.step,
            "seconds": self.seconds,
            "model": self.model.state_dict(),
            "progress": self.progress(),
            "optimizer": portable_optimizer_state(self.optimizer.state_dict()),
            "schedule": self.schedule.state_dict(),
            "rng": rng_state(),
            "sampler_rng": self.generator.get_state(),
            "health": self.health.state_dict(),
            "config": config_payload(self.config, CONFIG_KIND),
        }
        if self.cameras is not None:
            state["cameras"] = self.cameras.state_dict()
            state["camera_optimizer"] = portable_optimizer_state(self.camera_optimizer.state_dict())
        if self.pockets is not None:
            state["pockets"] = self.pockets.state_dict()
        if self.camera_guard is not None:
            state["camera_guard"] = self.camera_guard.state_dict()
        return state

    def save_checkpoint(self, name: str | None = None) -> Path:
        """Write a checkpoint: `step_<N>.pt` (then `latest.pt` is linked to it, unless a suspicion of
        divergence is running, and step checkpoints beyond `keep_checkpoints` are deleted), or `name`.

        Raises:
            TrainingError: the parameters are not finite (such a checkpoint is never written).
        """
        if not parameters_finite(self.model.parameters()):
            self._stop_diverged("parameters became non-finite")
        path = self.checkpoint_dir / (name or step_name(self.step))
        save_atomic(self.state_dict(), path)
        self.schedule.save(self.run_dir / "schedule.json")
        if name is None:
            self._saved_step = self.step
            if not self._suspect:
                link_latest(path, self.checkpoint_dir / LATEST)
            prune_step_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue from the checkpoint at `path` (verified; see `load_state`)."""
        self.load_state(load_checkpoint(path, self.device), path)

    def load_state(self, state: dict, path: str | Path = "checkpoint") -> None:
        """Put the trainer where a checkpoint's `state` was. The checkpoint's model and data must be this
        run's (RunError otherwise); the optimiser keeps its moments but takes this config's learning rates.
        """
        if "config" in state:
            saved = config_from_payload(TrainConfig, state["config"], CONFIG_KIND, str(path))
            conflicts = resume_conflicts(saved, self.config)
            if conflicts:
                key, old, new = conflicts[0]
                raise RunError(
                    f"{path}: this checkpoint was trained with {checks.flag(key)} {old}, not {new}; "
                    "the model's shape or the data cannot change when a run continues"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._apply_learning_rates()
        if "schedule" in state:
            self.schedule.load_state_dict(state["schedule"])
        if "health" in state:
            self.health.load_state_dict(state["health"])
        self.step = state["step"]
        self.seconds = state["seconds"]
        set_rng_state(state["rng"])
        self.generator.set_state(rng_tensor(state["sampler_rng"]))
        if self.cameras is not None:
            if "cameras" not in state:
                raise RunError(f"{path}: checkpoint of a run without trainable cameras")
            self.cameras.load_state_dict(state["cameras"])
            self.camera_optimizer.load_state_dict(state["camera_optimizer"])
            set_learning_rate(self.camera_optimizer.param_groups[0], self.config.cameras.lr)
        if self.pockets is not None and "pockets" in state:
            self.pockets.load_state_dict(state["pockets"])
        if self.camera_guard is not None and "camera_guard" in state:
            self.camera_guard.load_state_dict(state["camera_guard"])
        if self.graphed_step is not None:
            self.graphed_step.invalidate()  # it holds the replaced optimiser states

    def _apply_learning_rates(self) -> None:
        """The optimiser's base learning rates from this config (a resumed run may have changed them)."""
        cfg = self.config.optim
        fresh = {g["name"]: g["lr"] for g in self.model.param_groups(cfg.lr, cfg.encoding_lr)}
        for group in self.optimizer.param_groups:
            lr = fresh.get(group.get("name"), cfg.lr)
            if group.get("initial_lr") not in (None, lr):
                log.info("learning rate of the %s: %g (was %g)", group.get("name"), lr, group["initial_lr"])
            group["initial_lr"] = lr

    def resume(self, checkpoint: str | Path | None = None, state: dict | None = None) -> bool:
        """Continue from `checkpoint` (a path; `state`: its content, already loaded), else from the newest
        checkpoint of the run that loads (`latest.pt` first; a damaged one is skipped with a warning).
        Step checkpoints after the one resumed from belong to an abandoned continuation: they move to
        `checkpoints/superseded/`. Returns whether there was a checkpoint to resume from."""
        with self.lock:
            remove_temporaries(self.checkpoint_dir)
            if checkpoint is not None:
                path = Path(checkpoint)
                self._check_scene()
                self.load_state(state if state is not None else load_checkpoint(path, self.device), path)
            else:
                if not (self.checkpoint_dir / LATEST).is_file() and not step_checkpoints(self.checkpoint_dir):
                    return False
                path, state, problems = load_newest(self.checkpoint_dir, self.device)
                for problem in problems:
                    log.warning("%s; resuming from %s (step %d) instead", problem, path.name, state["step"])
                self._check_scene()
                self.load_state(state, path)
            moved = supersede_after(self.checkpoint_dir, self.step)
            if moved:
                log.warning(
                    "%d checkpoint(s) after step %d moved to %s (not continued)",
                    len(moved),
                    self.step,
                    moved[0].parent,
                )
            if path.name != LATEST:
                link_latest(self._checkpoint_file(path), self.checkpoint_dir / LATEST)
            return True

    def _check_scene(self) -> None:
        """A resumed run's scene must be the one it trained on (same views and image size, RUN/scene.json);
        it may have moved."""
        recorded = self.run_dir / "scene.json"
        if not recorded.is_file():
            return
        info = json.loads(recorded.read_text())
        now = {"num_views": self.scene.num_views, "height": self.scene.height, "width": self.scene.width}
        then = {key: info.get(key) for key in now}
        if then != now:
            raise RunError(
                f"{self.scene.root}: not the scene this run trained on ({then['num_views']} views of "
                f"{then['width']}x{then['height']} then, {now['num_views']} of {now['width']}x{now['height']} now)"
            )

    def _checkpoint_file(self, path: Path) -> Path:
        """A checkpoint that `latest.pt` may link to: `path` itself when it is in this run's checkpoint
        folder, else a copy written there as the step checkpoint."""
        if path.parent.resolve() == self.checkpoint_dir.resolve():
            return path
        target = self.checkpoint_dir / step_name(self.step)
        save_atomic(self.state_dict(), target)
        return target

    # ---------------------------------------------------------------- loop
    def train_step(self) -> StepMetrics:
        cfg = self.config
        start = time.perf_counter()
        self.model.train()
        progress = self.progress()
        self.model.before_step(self.step, progress)
        lr_factor = cfg.optim.lr_factor_at(progress)
        for group in self.optimizer.param_groups:
            set_learning_rate(group, group["initial_lr"] * lr_factor)
        self.schedule.add(self.step, self.seconds, progress, lr_factor)
        if self.camera_guard is not None and self.camera_guard.due(progress):
            self._check_cameras(progress)
        # Cameras move only once their learning rate is positive: while frozen by the warm-up, the rays carry
        # no gradient and Adam's moments are not fed the early (surface-still-a-blob) gradients.
        moving = False
        if self.cameras is not None:
            camera_factor = cfg.cameras.lr_factor_at(progress)
            set_learning_rate(self.camera_optimizer.param_groups[0], cfg.cameras.lr * camera_factor)
            moving = camera_factor > 0
        if self.graphed_step is not None:
            return self._graphed(moving, start, lr_factor, progress)
        poses = None
        if self.cameras is not None:
            with torch.set_grad_enabled(moving):
                poses = self.cameras(self._train_view_ids)
        if self.pockets is not None and self.pockets.due(progress):
            self._refresh_pockets(poses, progress)
        views, origins, dirs, rgb, mask = self.batcher.sample(cfg.rays_per_batch, poses)
        losses = self.model.training_loss(RayBatch(origins, dirs, rgb, mask))
        if self.camera_guard is not None and losses.ray_error is not None:
            self.camera_guard.observe(views, losses.ray_error, progress)
        total = losses.total
        terms = dict(losses.terms)
        if self.pockets is not None:
            terms["pocket"] = self.pockets.loss(self.model)
            total = total + cfg.pockets.weight * terms["pocket"]
        if not torch.isfinite(total):
            detail = ", ".join(f"{k} {v.item():.4g}" for k, v in terms.items())
            raise TrainingError(f"the loss became {total.item()} at step {self.step} ({detail})")
        self.optimizer.zero_grad(set_to_none=True)
        if self.camera_optimizer is not None:
            self.camera_optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        if self.camera_optimizer is not None:
            self.camera_optimizer.step()  # no gradient while frozen: Adam leaves the cameras and its moments alone
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._count_time(start)
        self.step += 1
        return StepMetrics(
            step=self.step,
            loss=total.item(),
            lr=self.optimizer.param_groups[0]["initial_lr"] * lr_factor,
            seconds=self.seconds,
            terms={k: v.item() for k, v in terms.items()},
            metrics={k: v.item() for k, v in losses.metrics.items()},
        )

    def _graphed(self, moving: bool, start: float, lr_factor: float, progress: float) -> StepMetrics:
        """The rest of `train_step` as one replayed CUDA graph (`nsr.engine.graph_step`): the batch's
        indices are drawn here, the rays made inside the graph (from the cameras' poses of this step, which
        move when `moving`). A non-finite loss is seen after the update (the graph does not wait for the
        host): the run then stops at its last good state as for any divergence."""
        inputs = ()
        if self.pockets is not None and self.pockets.due(progress):
            poses = None
            if self.cameras is not None:
                with torch.no_grad():
                    poses = self.cameras(self._train_view_ids)
            self._refresh_pockets(poses, progress)
        view, pix = self.batcher.draw(self.config.rays_per_batch)
        if self.pockets is not None:
            inputs = self.pockets.draw()
        raw, errors = self.graphed_step(view, pix, moving, inputs)
        if self.camera_guard is not None and errors is not None:
            self.camera_guard.observe(view, errors, progress)
        values = dict(zip(self.graphed_step.names, raw))
        terms = {k.removeprefix("term/"): v for k, v in values.items() if k.startswith("term/")}
        metrics = {k.removeprefix("metric/"): v for k, v in values.items() if k.startswith("metric/")}
        if not math.isfinite(values["loss"]):
            detail = ", ".join(f"{k} {v:.4g}" for k, v in terms.items())
            raise TrainingError(f"the loss became {values['loss']} at step {self.step} ({detail})")
        self._count_time(start)
        self.step += 1
        return StepMetrics(
            step=self.step,
            loss=values["loss"],
            lr=self.optimizer.param_groups[0]["initial_lr"] * lr_factor,
            seconds=self.seconds,
            terms=terms,
            metrics=metrics,
        )

    def _build_graphed_step(self) -> GraphedStep | None:
        """The captured step when `cuda_graph_step` asks for it and this run can have it (CUDA, a model with
        a static loss, and no pocket fill unless `pockets.in_graph`: its points are drawn on the host)."""
        cfg = self.config
        if not cfg.cuda_graph_step or self.device.type != "cuda":
            return None
        why = None
        if not self.model.graphable:
            why = f"the {cfg.model.kind} model has no static loss here (IDR: its tracer's mode is compact)"
        elif self.pockets is not None and not cfg.pockets.in_graph:
            why = "the pocket fill runs ordinary steps (--pockets.no-in-graph)"
        if why:
            log.info("cuda_graph_step off: %s", why)
            return None
        cameras = None
        if self.cameras is not None:
            cameras = TrainedCameras(self.cameras, self.camera_optimizer, self._train_view_ids)
        extra = None
        if self.pockets is not None:
            extra = ExtraTerm("pocket", cfg.pockets.weight, partial(PocketFill.term, self.model))
        return GraphedStep(
            self.model, self.optimizer, self.batcher.gather, cameras, cfg.optim.grad_clip, extra=extra
        )

    def _refresh_pockets(self, poses: torch.Tensor | None, progress: float) -> None:
        """Find the hidden pockets of the current SDF, seen from the training cameras at their current poses."""
        scene = self.train_scene
        c2w = scene.c2w if poses is None else poses.detach().cpu().numpy()
        found = self.pockets.refresh(self.model, scene.intrinsics, c2w, scene.height, scene.width, progress)
        if self.config.tensorboard:
            self.writer.add_scalar("train/pocket_points", found, self.step)

    def _build_camera_guard(self) -> CameraGuard | None:
        """The camera guard, when asked for and there are trained cameras to guard."""
        if not self.config.camera_guard.enabled:
            return None
        if self.cameras is None:
            log.info(
                "camera guard off: the cameras are not trained (--preset NAME-cams or --cameras.trainable)"
            )
            return None
        return CameraGuard(self.config.camera_guard, self.train_views, self.device, self.config.seed)

    def _check_cameras(self, progress: float) -> None:
        """Compare the training views' running errors and re-localise the cameras far behind the rest."""
        batcher, masked = self.batcher, self.config.data.use_masks
        images = [
            ViewImages(
                batcher.intrinsics[j], batcher.uv, batcher.images[j], batcher.masks[j] if masked else None
            )
            for j in range(len(self.train_views))
        ]
        guard = self.camera_guard
        recoveries = guard.check(self.model, self.cameras, images, self.camera_optimizer, self.step, progress)
        for r in recoveries:
            log.info(_recovery_line(r, self.scene.image_names))
        if self.config.tensorboard:
            check = guard.last_check
            self.writer.add_scalar("cameras/flagged", len(check.flagged), self.step)
            if not np.isnan(check.z).all():
                self.writer.add_scalar("cameras/max_z", float(np.nanmax(check.z)), self.step)
                self.writer.add_scalar("cameras/median_error", check.median, self.step)
            self.writer.add_scalar("cameras/recovered", sum(r.accepted for r in guard.history), self.step)
        self._write_camera_health()

    def _write_camera_health(self) -> None:
        """RUN/cameras_health.json: the guard's per-camera table (nsr.engine.camera_guard)."""
        health = {
            "step": self.step,
            "progress": self.progress(),
            **self.camera_guard.health(self.scene.image_names),
        }
        text = json.dumps(health, indent=1)
        atomic_write(self.run_dir / CAMERA_HEALTH, lambda file: file.write(text.encode()))

    def _count_time(self, start: float) -> None:
        """Add the step begun at `start` to the training time; the first step of a process (graph capture,
        compiles) also to the schedules' set-up time (nsr.engine.schedule)."""
        seconds = time.perf_counter() - start
        self.seconds += seconds
        if self._first_step:
            self.schedule.setup_seconds += seconds
            self._first_step = False

    def progress(self) -> float:
        """How far the run is, in [0, 1] (nsr.engine.schedule.run_progress)."""
        cfg = self.config
        return run_progress(self.step, self.seconds, cfg.steps, cfg.max_seconds, self.schedule.setup_seconds)

    def finished(self) -> bool:
        """Whether the run has reached `steps` (or spent `max_seconds`)."""
        return self._done()

    def _done(self) -> bool:
        cfg = self.config
        return self.step >= cfg.steps or (cfg.max_seconds > 0 and self.seconds >= cfg.max_seconds)

    def train(self) -> None:
        """Run until `steps` (or `max_seconds`), checkpointing, logging and validating on the way.

        Raises:
            TrainingError: the run diverged (`latest.pt` is then the last state known to be good).
            TrainingInterrupted: Ctrl-C or SIGTERM (a checkpoint of the last finished step was saved).
            RunError: another process holds the run folder.
        """
        cfg = self.config
        with self.lock, self._signals() as stop:
            remove_temporaries(self.checkpoint_dir)
            self.prepare_run_dir()
            # lines past the step this run starts from belong to a continuation it abandons
            self.train_log.truncate_after(self.step)
            start_ok = parameters_finite(self.model.parameters())
            self._good = (self.step, _cpu_copy(self.state_dict())) if start_ok else None
            self._candidate = None
            snapshots = sorted(s for s in cfg.snapshot_seconds if s > self.seconds)
            # the training time of the last validation / step checkpoint / good copy (for the *_min_seconds)
            self._last = dict.fromkeys(("val", "checkpoint", "good"), self.seconds)
            m = None
            try:
                while not self._done():
                    if stop:
                        self._interrupt(stop[0])
                    m = self._checked_step()
                    if self.on_step is not None:
                        self.on_step(m)
                    if m.step % cfg.log_every == 0 or m.step == 1:
                        self._log(m)
                    while snapshots and self.seconds >= snapshots[0]:
                        self.save_checkpoint(f"snapshot_{int(snapshots.pop(0))}s.pt")
                    if (
                        cfg.val_every
                        and m.step % cfg.val_every == 0
                        and self._due("val", cfg.val_min_seconds)
                    ):
                        self.validate()
                    if (
                        m.step % cfg.checkpoint_every == 0
                        and not self._suspect
                        and self._due("checkpoint", cfg.checkpoint_min_seconds)
                    ):
                        self.save_checkpoint()
                    self._keep_good()
                if stop:
                    self._interrupt(stop[0])
                if m is not None and m.step % cfg.log_every and m.step != 1:
                    self._log(m)  # the final step, for the curves' end
                if (
                    m is not None
                    and cfg.val_every
                    and cfg.val_min_seconds > 0
                    and self._validated != self.step
                ):
                    self.validate()  # views paced by time may all have been skipped: the run's end has one
                if self._suspect:
                    log.warning(
                        "the run ended while %s (since step %s); latest.pt stays at the last good checkpoint",
                        self.health.reason,
                        self.health.onset,
                    )
                if self._saved_step != self.step:
                    self.save_checkpoint()
                if self.camera_guard is not None:
                    self._write_camera_health()
            finally:
                if self._writer is not None:
                    self._writer.flush()

    def _checked_step(self) -> StepMetrics:
        """One training step, then the health checks (nsr.engine.health); stops a diverged run."""
        try:
            m = self.train_step()
        except TrainingError as err:  # a non-finite loss (the parameters are still those of the last step)
            self._stop_diverged(str(err).removeprefix("the "))
        except RuntimeError:
            # Non-finite parameters can make a step fail before its loss exists (e.g. a NaN opacity in a
            # BCE): that is the divergence, not a bug. With finite parameters the error is a bug: raised.
            if not parameters_finite(self.model.parameters()):
                self._stop_diverged(f"parameters became non-finite (step {self.step} failed on them)")
            raise
        verdict = self.health.observe(m.step, m.loss, m.metrics, self.progress())
        if verdict.note:
            log.warning("%s", verdict.note)
        if verdict.diverged is None and m.step % self.config.health.check_every == 0:
            verdict = self.health.check_parameters(m.step, self.model.parameters())
        if verdict.diverged is not None:
            self._stop_diverged(verdict.diverged)
        self._suspect = verdict.suspect
        return m

    def _keep_good(self) -> None:
        """Every `health.keep_good_every` steps (and `keep_good_min_seconds`): the previous copy of the state
        becomes the good one if no step since raised a suspicion, and a new copy is taken (unless a
        suspicion is running)."""
        health = self.config.health
        if self.step % health.keep_good_every or not self._due("good", health.keep_good_min_seconds):
            return
        if self._candidate is not None and self.health.last_suspect <= self._candidate[0]:
            self._good = self._candidate
        healthy = not self._suspect and parameters_finite(self.model.parameters())
        self._candidate = (self.step, _cpu_copy(self.state_dict())) if healthy else None

    def _due(self, what: str, min_seconds: float) -> bool:
        """Whether `what` (a periodic validation, step checkpoint or good copy, due by its step count) may
        run: at least `min_seconds` of training since the last one. Records the time when it may."""
        if min_seconds > 0 and self.seconds - self._last[what] < min_seconds:
            return False
        self._last[what] = self.seconds
        return True

    def _stop_diverged(self, what: str) -> NoReturn:
        """Make the last good state the run's latest checkpoint, then raise TrainingError saying so."""
        where = ""
        if self._good is not None:
            step, state = self._good
            path = self.checkpoint_dir / step_name(step)
            save_atomic(state, path)
            link_latest(path, self.checkpoint_dir / LATEST)
            moved = supersede_after(self.checkpoint_dir, step)
            where = f"; {self.checkpoint_dir / LATEST} is step {step}, the last good state"
            if moved:
                where += f" (later checkpoints moved to {moved[0].parent})"
        lr = self.config.optim.lr / 10
        raise TrainingError(
            f"training diverged at step {self.step}: {what}{where}; continue from it with a lower learning "
            f"rate, e.g. nsr train --out {self.run_dir} --resume --optim.lr {lr:.2g}"
        )

    @contextmanager
    def _signals(self) -> Iterator[list[str]]:
        """While training: the first Ctrl-C or SIGTERM is noted (the loop saves and stops after the step
        in progress), a second one interrupts at once. Yields the list of signals noted."""
        noted: list[str] = []
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield noted
            return

        def note(signum, frame):
            if noted:
                raise KeyboardInterrupt
            noted.append(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield noted
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupt(self, signal_name: str) -> None:
        """Save a checkpoint of the last finished step and raise TrainingInterrupted."""
        path = None
        if self._saved_step == self.step:
            path = self.checkpoint_dir / step_name(self.step)
        elif self.step > 0 and not self._suspect:
            path = self.save_checkpoint()
        elif (self.checkpoint_dir / LATEST).is_file():
            path = self.checkpoint_dir / LATEST
        raise TrainingInterrupted(signal_name, self.step, path, self.run_dir)

    def current_scene(self) -> SceneData:
        """The training scene with the current (refined) cameras; held-out views keep their initial poses."""
        if self.cameras is None:
            return self.scene
        return dataclasses.replace(self.scene, c2w=self.cameras.poses())

    def _log(self, m: StepMetrics) -> None:
        """A line of RUN/train_log.jsonl and, with `tensorboard`, the same scalars in RUN/tensorboard."""
        self.train_log.append(m.step, m.seconds, m.loss, m.lr, {**m.terms, **m.metrics})
        if not self.config.tensorboard:
            return
        w = self.writer
        scalars = {"loss": m.loss, **m.terms, **m.metrics, "lr": m.lr, "seconds": m.seconds}
        for key, value in scalars.items():
            w.add_scalar(f"train/{key}", value, m.step)

    def validate(self) -> Path:
        """Render one view (the first held-out view, else the first) and save colour | normals | GT."""
        from PIL import Image

        index = self.test_views[0] if self.test_views else 0
        scene = self.current_scene()
        out = render_view(self.model, scene, index, progress=self.on_view)
        image = validation_image(out, scene, index)
        path = self.run_dir / "validation" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        self._validated = self.step
        return path


def _recovery_line(r: Recovery, image_names: list[str]) -> str:
    """One log line for a re-localisation tried by the camera guard."""
    where = f"camera guard: view {r.view} ({image_names[r.view]}) at step {r.step}"
    if not r.accepted:
        return f"{where}: no better pose found (score {r.score_before:.4g}, best {r.score_after:.4g}); kept"
    return (
        f"{where}: re-localised, score {r.score_before:.4g} -> {r.score_after:.4g}, "
        f"moved {r.rotation_deg:.2f} deg and {100 * r.centre_moved:.2f}% of its distance ({r.candidates} poses tried)"
    )


def validation_image(out: RenderOutputs, scene: SceneData, index: int) -> np.ndarray:
    """(H, 3W, 3) uint8: rendered colour | normals (camera-independent, world axes) | ground truth."""
    h, w = scene.height, scene.width
    rgb = out.rgb.reshape(h, w, 3).cpu().numpy()
    normals = out.normals.reshape(h, w, 3).cpu().numpy()
    hit = out.hit.reshape(h, w, 1).cpu().numpy()
    normal_img = np.where(hit, normals * 0.5 + 0.5, 0.0)
    row = np.concatenate([rgb, normal_img, scene.images[index]], axis=1)
    return (np.clip(row, 0, 1) * 255 + 0.5).astype(np.uint8)


def _cpu_copy(state: Any) -> Any:
    """A copy of a state dict with every tensor on the CPU (detached from the live training state)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: _cpu_copy(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_cpu_copy(value) for value in state)
    return copy.deepcopy(state)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
