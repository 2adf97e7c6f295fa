"""The top-level training config: data, model, optimisation, run-time behaviour."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nsr import checks
from nsr.cameras.refine import CameraRefineConfig
from nsr.config.io import MIGRATIONS, to_dict
from nsr.data.background import parse_background
from nsr.models import IDRModelConfig, ModelConfig


@dataclass
class DataConfig:
    """Where the scene is and how it is read."""

    path: Path | None = None
    """Scene folder (IDR/DTU/NeuS, NeRF-synthetic or COLMAP layout)."""
    downscale: float = 1.0
    """Divide the image size by this factor (intrinsics follow)."""
    camera_file: str | None = None
    """Camera file inside the scene folder (default: cameras.npz, then cameras_sphere.npz)."""
    holdout_every: int = 0
    """Hold out every k-th view for evaluation (0 = train on all views)."""
    use_masks: bool = True
    """Train with the scene's object masks. Off (`--no-masks`), or for a scene without masks, the model
    trains on whole images (a NeuS preset: no mask loss, a learned background beyond the bounding sphere);
    masks that exist are still used by `nsr eval` to score."""
    format: Literal["auto", "idr", "nerf-synthetic", "colmap"] = "auto"
    """Scene format: `auto` detects it (transforms*.json -> nerf-synthetic, a sparse model -> colmap,
    image/ + cameras npz -> idr); see docs/data.md."""
    background: str = "auto"
    """Background colour of the images (what the model renders where its rays miss the object): `auto`
    (the colour NeRF-synthetic RGBA images are composited on, else a uniform colour found outside the
    masks, else black), `white`, `black` or `R,G,B` in [0, 1]. `nsr train` resolves it into
    `model.background` before the model is built (nsr.data.background)."""

    def validate(self) -> None:
        checks.at_least("downscale", self.downscale, 1.0, "a factor that divides the image size")
        checks.non_negative("holdout_every", self.holdout_every, "0 = train on all views")
        try:
            parse_background(self.background)
        except ValueError:
            raise checks.InvalidValue(
                "background", self.background, "must be auto, white, black or R,G,B with each in [0, 1]"
            ) from None


@dataclass
class OptimConfig:
    """Adam with a learning-rate schedule in fractions of the run (see nsr.engine.schedule)."""

    lr: float = 1e-4
    """Learning rate of the networks' parameters."""
    encoding_lr: float = 0.0
    """Learning rate of grid tables (hash-grid entries, also inside filter banks); 0 = `lr`."""
    schedule: Literal["step", "cosine", "exponential"] = "step"
    """Decay of the learning rates over the run: `step` multiplies them by `lr_factor` at each of
    `lr_milestones`; `cosine` follows half a cosine from 1 to `final_factor`; `exponential` decays
    geometrically from 1 to `final_factor` (instant-ngp, NeuS2)."""
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    """`step` schedule: fractions of the run at which the learning rates are multiplied by `lr_factor`."""
    lr_factor: float = 0.5
    """`step` schedule: decay factor at each milestone."""
    final_factor: float = 0.1
    """`cosine` / `exponential` schedules: the learning rates at the end of the run, relative to the start."""
    warmup: float = 0.0
    """Fraction of the run over which the learning rates ramp up linearly from zero (NeuS: 5000 of 300000
    steps)."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value (0 = off)."""

    def validate(self) -> None:
        checks.positive("lr", self.lr)
        checks.non_negative("encoding_lr", self.encoding_lr, "0 = lr")
        checks.fractions("lr_milestones", self.lr_milestones)
        checks.positive("lr_factor", self.lr_factor)
        checks.positive("final_factor", self.final_factor)
        checks.in_range("warmup", self.warmup, 0.0, 0.99, "a fraction of the run")
        checks.non_negative("grad_clip", self.grad_clip, "0 = off")

    def lr_factor_at(self, progress: float) -> float:
        """Multiplier of the learning rates at a point of the run (`progress` in [0, 1])."""
        progress = min(max(progress, 0.0), 1.0)
        warm = min(1.0, progress / self.warmup) if self.warmup > 0 else 1.0
        # The smooth decays run over what follows the warm-up.
        t = max(0.0, progress - self.warmup) / (1 - self.warmup) if self.warmup < 1 else 1.0
        if self.schedule == "cosine":
            decay = self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * t))
        elif self.schedule == "exponential":
            decay = self.final_factor**t
        else:
            decay = self.lr_factor ** sum(1 for m in self.lr_milestones if progress >= m)
        return warm * decay


@dataclass
class PocketFillConfig:
    """Fill hidden pockets of the SDF while training (see nsr.engine.pockets).

    Every `every` of the run from `start` on, points are drawn in the bounding sphere and those that are
    positive, seen as empty by no training camera (depth maps of the model from the current poses) and
    enclosed by the surface are kept; until the next refresh, each step pushes `batch` of them to a
    negative SDF. Runs with trained cameras carve such pockets while the poses are still wrong."""

    every: float = 0.0
    """Fraction of the run between refreshes of the pocket points (0 = off)."""
    start: float = 0.0
    """First refresh at this fraction of the run (after the poses have settled)."""
    samples: int = 1 << 20
    """Candidate points drawn in the bounding sphere at each refresh."""
    batch: int = 1024
    """Pocket points pushed per step."""
    weight: float = 10.0
    """Weight of the loss mean(relu(sdf(p) + s_p)), s_p: the point's SDF at the refresh."""
    tolerance: float = 0.01
    """A point counts as seen empty when it lies at most this much behind a camera's first surface
    (normalised units)."""
    max_side: int = 200
    """Long side of the depth maps, in pixels."""
    in_graph: bool = True
    """With `cuda_graph_step`, compute the fill's loss inside the captured step (its points drawn on the host
    and copied in, as the batch's indices are); false: the run takes ordinary steps while the fill is on. A
    `hashgrid-fused-cams` step of 2048 rays: 4.10 ms in the graph against 13.48 ms ordinary (H100,
    2026-12-07, benchmarks/RESULTS.md section 2)."""

    @property
    def enabled(self) -> bool:
        return self.every > 0 and self.weight > 0

    def validate(self) -> None:
        checks.fraction("every", self.every)
        checks.fraction("start", self.start)
        checks.positive("samples", self.samples)
        checks.positive("batch", self.batch)
        checks.non_negative("weight", self.weight)
        checks.non_negative("tolerance", self.tolerance)
        checks.positive("max_side", self.max_side)

    def refresh_index(self, progress: float) -> int:
        """The number of refreshes due by a point of the run (`progress` in [0, 1]): a refresh is due before
        a step whenever this grows (0 before `start`)."""
        if not self.enabled or progress < self.start:
            return 0
        # The small tolerance keeps start + k * every, reached exactly, from rounding down to k - 1.
        return 1 + math.floor((progress - self.start) / self.every + 1e-6)


@dataclass
class HealthConfig:
    """When a run counts as diverged (nsr.engine.health): it then stops with one line, and its latest
    checkpoint is the last state known to be good."""

    loss_factor: float = 20.0
    """A step is suspect when its loss is above this many times the loss's running level (0 = off)."""
    coverage_floor: float = 0.02
    """A step is suspect when the model's coverage (`Model.coverage_key`: IDR's hit ratio, NeuS's opacity)
    has fallen below this fraction of its running peak: the surface is vanishing (0 = off)."""
    patience: int = 50
    """Steps a suspicion may last before the run counts as diverged (it clears after 10 good steps)."""
    coverage_patience: float = 0.25
    """A vanishing surface (the coverage rule alone) counts as diverged only once it has also lasted this
    fraction of the run (0 = `patience` steps alone). A NeuS run on a light object can lose its surface in its
    first steps and grow it back: Spot, `neus-nffb-fused` seed 2, 128 rays a step on a CPU, opacity 0 from
    step 15 to 153 of a 1000-step run and 0.63 at step 200 (benchmarks/early_opacity.py); with `patience`
    alone such runs were stopped as diverged."""
    max_parameter: float = 1e6
    """A parameter of larger magnitude has exploded (0 = off); a non-finite one always has."""
    check_every: int = 10
    """Steps between two checks of the parameters (also checked before every checkpoint)."""
    keep_good_every: int = 100
    """Steps between two in-memory copies of the state, kept as the last good one once the next
    `keep_good_every` steps raised no suspicion (written as the latest checkpoint if the run diverges)."""
    keep_good_min_seconds: float = 0.0
    """Seconds of training at least between two such copies (0 = every `keep_good_every` steps): a copy
    of a hash grid's state is 130 MiB off the GPU, and a fast preset takes hundreds of steps a second."""

    def validate(self) -> None:
        checks.non_negative("loss_factor", self.loss_factor, "0 = off")
        if 0 < self.loss_factor <= 1:
            raise checks.InvalidValue("loss_factor", self.loss_factor, "must be > 1 (or 0 = off)")
        checks.in_range("coverage_floor", self.coverage_floor, 0.0, 1.0, "0 = off")
        checks.fraction("coverage_patience", self.coverage_patience)
        checks.positive("patience", self.patience)
        checks.non_negative("max_parameter", self.max_parameter, "0 = off")
        checks.positive("check_every", self.check_every)
        checks.positive("keep_good_every", self.keep_good_every)
        checks.non_negative("keep_good_min_seconds", self.keep_good_min_seconds, "0 = by steps only")


@dataclass
class CameraGuardConfig:
    """Watch every trained camera's photometric error and re-localise the ones left far behind (see
    nsr.engine.camera_guard).

    Each step adds the training rays' errors (`LossOutput.ray_error`) to a running mean per view. Every
    `every` of the run from `start` to `stop`, a view whose mean lies more than `threshold` robust deviations
    (MAD) above the median of the views and `min_ratio` times above it is flagged, and its pose searched
    again with the current model: the pose that renders a sample of its pixels best, if it beats the
    current one by `min_gain` on a second sample, replaces it. Needs trainable cameras."""

    every: float = 0.0
    """Fraction of the run between checks (0 = off)."""
    start: float = 0.15
    """First check at this fraction of the run (once the surface has formed: the `-cams` presets put it
    where their cameras start to move)."""
    stop: float = 0.75
    """No check after this fraction of the run (a moved camera needs time to settle)."""
    halflife: float = 0.02
    """Half-life of the running per-view error, as a fraction of the run."""
    threshold: float = 6.0
    """A view is flagged when its error exceeds the median by this many MADs (scaled to a standard
    deviation: 1.4826 MAD) ..."""
    min_ratio: float = 1.5
    """... and is at least this many times the median."""
    min_rays: float = 200.0
    """Views with fewer rays in their running mean (decayed count) are not judged."""
    pixels: int = 1024
    """Pixels of a flagged view drawn (twice: search and confirmation) to score candidate poses."""
    search_range_deg: float = 20.0
    """The search first tries turns of the camera about its centre (x and y axes) on a grid out to this
    many degrees each way, spaced by half `search_deg`."""
    search_deg: float = 8.0
    """First step of the pose search: rotations about the pivot of this many degrees, translations of this
    angle times the camera's distance to the scene centre."""
    min_step_deg: float = 0.5
    """The search halves its step until below this."""
    max_candidates: int = 400
    """Most candidate poses scored per re-localisation (the grid of turns, 120 of them by default, is scored
    whole; the compass searches get what it leaves)."""
    min_gain: float = 0.2
    """A found pose replaces the current one only when its score on fresh pixels is at least this fraction
    lower (in [-1, 1]; a negative value also takes poses that much worse, which only tests want)."""
    max_recoveries: int = 3
    """Re-localisations per camera, at most."""

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def validate(self) -> None:
        for name in ("every", "start", "stop", "halflife"):
            checks.fraction(name, getattr(self, name))
        if self.every > 0 and self.halflife <= 0:
            raise checks.InvalidValue("halflife", self.halflife, "must be > 0 (a fraction of the run)")
        checks.non_negative("threshold", self.threshold)
        checks.non_negative("min_ratio", self.min_ratio)
        checks.non_negative("min_rays", self.min_rays)
        checks.positive("pixels", self.pixels)
        checks.non_negative("search_range_deg", self.search_range_deg)
        checks.positive("search_deg", self.search_deg)
        checks.positive("min_step_deg", self.min_step_deg)
        checks.positive("max_candidates", self.max_candidates)
        checks.in_range("min_gain", self.min_gain, -1.0, 1.0, "a fraction of the current pose's score")
        checks.non_negative("max_recoveries", self.max_recoveries)

    def check_index(self, progress: float) -> int:
        """The number of checks due by a point of the run (`progress` in [0, 1]): a check is due before a step
        whenever this grows (0 before `start`; it stops growing after `stop`)."""
        if not self.enabled or progress < self.start:
            return 0
        progress = min(progress, self.stop)
        return 1 + math.floor((progress - self.start) / self.every + 1e-6)


@dataclass
class TrainConfig:
    """A whole training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=IDRModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    cameras: CameraRefineConfig = field(default_factory=CameraRefineConfig)
    """Initial poses (ground truth, a noisy camera file or synthetic noise) and their refinement."""
    pockets: PocketFillConfig = field(default_factory=PocketFillConfig)
    """Filling hidden pockets during training (on in the `-cams` presets)."""
    camera_guard: CameraGuardConfig = field(default_factory=CameraGuardConfig)
    """Per-camera error monitoring and re-localisation of cameras left behind (trained cameras only)."""
    steps: int = 200000
    """Number of optimisation steps (the run's length when no `max_seconds` ends it first)."""
    rays_per_batch: int = 2048
    """Rays (pixels) per step, drawn uniformly from all training views."""
    seed: int = 0
    """Seed of every random number generator."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, `cuda`, `cuda:1`, ..."""
    checkpoint_every: int = 1000
    """Write a checkpoint every N steps (and always at the end)."""
    checkpoint_min_seconds: float = 0.0
    """Seconds of training at least between two step checkpoints (0 = every `checkpoint_every` steps): the
    GPU presets take hundreds of steps a second, and a checkpoint of a hash grid with its optimiser state
    is 130 MiB. The end of a run, an interruption and the snapshots are always written."""
    val_every: int = 1000
    """Render a validation view (colour + normals PNG) every N steps (0 = never)."""
    val_min_seconds: float = 0.0
    """Seconds of training at least between two validation views (0 = every `val_every` steps); with it, the
    run's last step also gets one (a short run might otherwise have none)."""
    log_every: int = 25
    """Write a line of RUN/train_log.jsonl (and TensorBoard scalars, with `tensorboard`) every N steps."""
    tensorboard: bool = True
    """Log scalars to RUN/tensorboard (needs the tensorboard package)."""
    max_seconds: float = 0.0
    """Stop after this much training time, in seconds (0 = no limit). Validation and I/O are not counted.
    Schedules then follow whichever of `steps` and `max_seconds` ends the run first (nsr.engine.schedule)."""
    snapshot_seconds: tuple[float, ...] = ()
    """Also save checkpoints `snapshot_<s>s.pt` when the training time passes each of these budgets."""
    health: HealthConfig = field(default_factory=HealthConfig)
    """Divergence detection beyond a NaN loss."""
    keep_checkpoints: int = 3
    """Keep the newest K step checkpoints `step_<N>.pt` and delete older ones (0 = keep all); `latest.pt`
    and the snapshots are always kept."""
    cuda_graph_step: bool = False
    """On CUDA, capture the whole training step (loss, backward pass, optimiser step) as one CUDA graph and
    replay it (`nsr.engine.graph_step`): for models with a static loss (IDR with the static tracer, NeuS), with
    fixed or trained cameras, the pocket fill inside the graph unless told otherwise; other runs take ordinary
    steps. Same results, fewer kernel launches from the host."""
    tf32: bool = False
    """On CUDA, let PyTorch's fp32 matrix products run on the tensor cores as TF32 (10-bit mantissa, fp32's
    range; `torch.backends.cuda.matmul.allow_tf32`) for this run's training. Faster products; the SDF's
    gradients get TF32's rounding too."""

    def validate(self) -> None:
        """Ranges of the run's own fields (`nsr.checks.validate_config` checks the nested configs)."""
        checks.positive("steps", self.steps)
        checks.positive("rays_per_batch", self.rays_per_batch)
        checks.non_negative("seed", self.seed)
        checks.device("device", self.device)
        checks.positive("checkpoint_every", self.checkpoint_every)
        checks.non_negative("val_every", self.val_every, "0 = never")
        checks.non_negative("checkpoint_min_seconds", self.checkpoint_min_seconds, "0 = by steps only")
        checks.non_negative("val_min_seconds", self.val_min_seconds, "0 = by steps only")
        checks.positive("log_every", self.log_every)
        checks.non_negative("max_seconds", self.max_seconds, "0 = no limit")
        for seconds in self.snapshot_seconds:
            checks.positive("snapshot_seconds", seconds)
        checks.non_negative("keep_checkpoints", self.keep_checkpoints, "0 = keep all")


RESUME_CHANGEABLE = (
    "steps",
    "max_seconds",
    "snapshot_seconds",
    "checkpoint_every",
    "checkpoint_min_seconds",
    "keep_checkpoints",
    "val_every",
    "val_min_seconds",
    "log_every",
    "tensorboard",
    "device",
    "rays_per_batch",
    "cuda_graph_step",
    "tf32",
    "model.sdf.encoding.compile_training",
    "model.colour_init",
    "optim",
    "health",
    "pockets",
    "cameras.lr",
    "cameras.lr_milestones",
    "cameras.lr_factor",
    "cameras.warmup",
    "cameras.warmup_until",
    "data.path",
)
"""What a resumed run may change (dotted fields and sections): its length and budgets, cadences, how its
products are computed, where a new NeuS run's colour network starts (a resumed one loads its own), the
optimiser, the device, the health checks, the pocket fill, the cameras' learning rates, and where the
scene is now. Everything else (the model, the data as read, the cameras' start, the seed) makes the run
what it is: a resumed run keeps it."""


def config_changes(old: object, new: object) -> list[tuple[str, object, object]]:
    """The fields in which two configs differ: (dotted name, old value, new value), as plain data."""
    changes: list[tuple[str, object, object]] = []

    def walk(a, b, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            if a.get("kind") != b.get("kind"):  # another kind of model or encoding: its kind says it all
                changes.append((f"{prefix}.kind", a.get("kind"), b.get("kind")))
                return
            for key in list(a) + [k for k in b if k not in a]:
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            changes.append((prefix, a, b))

    walk(to_dict(old), to_dict(new), "")
    return changes


def resume_conflicts(saved: TrainConfig, new: TrainConfig) -> list[tuple[str, object, object]]:
    """The changes from a run's config to `new` that a resumed run cannot make (see RESUME_CHANGEABLE)."""
    conflicts = [
        (key, old, value)
        for key, old, value in config_changes(saved, new)
        if not any(key == p or key.startswith(p + ".") for p in RESUME_CHANGEABLE)
    ]
    return sorted(conflicts, key=lambda change: not change[0].startswith("model."))  # the model first


def _v1_schedules_in_fractions(data: dict) -> dict:
    """A version-1 train config (schedules in steps, no model kind) as version 2 (fractions of `steps`)."""
    steps = max(1, int(data.get("steps", TrainConfig.steps)))

    def fraction(value):
        return value / steps

    def scale(section: dict | None, key: str, new_key: str | None = None) -> None:
        if not isinstance(section, dict) or key not in section:
            return
        value = section.pop(key)
        section[new_key or key] = [fraction(v) for v in value] if isinstance(value, list) else fraction(value)

    model = data.get("model")
    if isinstance(model, dict):
        model.setdefault("kind", "idr")
        scale(model.get("loss"), "alpha_milestones")
        encodings = [model.get("sdf", {}).get("encoding"), model.get("appearance", {}).get("view_encoding")]
        for encoding in encodings:
            scale(encoding, "steps_per_level", "unlock_every")
            scale(encoding, "coarse_to_fine_steps", "coarse_to_fine")
    scale(data.get("optim"), "lr_milestones")
    scale(data.get("cameras"), "warmup_steps", "warmup_until")
    scale(data.get("cameras"), "lr_milestones")
    scale(data.get("pockets"), "start")
    scale(data.get("pockets"), "every")
    return data


CONFIG_KIND = "train"
"""The `kind` of a saved training config (RUN/config.yaml)."""

MIGRATIONS[(CONFIG_KIND, 1)] = _v1_schedules_in_fractions
