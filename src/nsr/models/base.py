"""The model contract: all that the trainer, run folders, evaluation, meshing, the pocket fill and reports
know of a model.

A model composes an SDF field (geometry), an appearance field and a renderer, and owns its losses and
schedules. IDR (sphere tracing, `nsr.models.idr`) and NeuS (volume rendering, `nsr.models.neus`)
implement it; code outside `models/` never asks which one it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from nsr.cameras.rays import pixel_grid, pixel_rays
from nsr.fields import AppearanceField, SDFField
from nsr.renderers import SphereTracer, SphereTracerConfig


class ModelError(ValueError):
    """A model that cannot be used as asked (e.g. IDR on a scene without masks); one line for the user."""


SCHEDULE_FIELDS = ("start_levels", "unlock_every", "coarse_to_fine")
"""Encoding config fields that describe a coarse-to-fine schedule."""


@dataclass
class RayBatch:
    """N training rays with their ground truth."""

    origins: torch.Tensor
    """(N, 3) ray origins (normalised frame; may carry gradients to trained cameras)."""
    directions: torch.Tensor
    """(N, 3) unit directions (may carry gradients to trained cameras)."""
    rgb: torch.Tensor
    """(N, 3) ground-truth colours in [0, 1]."""
    mask: torch.Tensor
    """(N,) bool object mask (all True where the scene has no masks and none are used)."""


@dataclass
class RenderOutputs:
    """Per-ray outputs of any renderer for N rays."""

    rgb: torch.Tensor
    """(N, 3) colours in [0, 1] (the background where the ray sees no object)."""
    opacity: torch.Tensor
    """(N,) how much of the ray the object covers, in [0, 1] (IDR: 1 where the ray hits the surface, else 0;
    NeuS: the accumulated weight of the samples inside the bounding sphere)."""
    depth: torch.Tensor
    """(N,) distance along the ray to the surface (meaningful where `hit`)."""
    normals: torch.Tensor
    """(N, 3) unit surface normals (zero where the ray sees no object)."""

    @property
    def hit(self) -> torch.Tensor:
        """(N,) bool, the ray sees the object (opacity above one half)."""
        return self.opacity > 0.5

    @staticmethod
    def cat(parts: list[RenderOutputs]) -> RenderOutputs:
        """The outputs of consecutive ray batches as one."""
        names = [f.name for f in fields(RenderOutputs)]
        return RenderOutputs(**{name: torch.cat([getattr(p, name) for p in parts]) for name in names})


@dataclass
class LossOutput:
    """One training step's loss, its terms and indicators."""

    total: torch.Tensor
    """Scalar loss to minimise (weighted sum of the terms)."""
    terms: dict[str, torch.Tensor]
    """Unweighted loss terms by name (e.g. rgb, eikonal, mask), scalars, for logging."""
    metrics: dict[str, torch.Tensor]
    """Training-time indicators by name (e.g. psnr, hit_ratio, inv_s), scalars, for logging; `psnr` is
    always present."""
    ray_error: torch.Tensor | None = None
    """(N,) detached per-ray photometric error of the batch's rays (`nsr.losses.ray_photometric_error`), in
    the batch's order: the trainer's camera guard averages it per view. None: the model gives none (the
    guard then has nothing to judge the cameras by)."""


class Model(nn.Module, ABC):
    """A surface reconstruction model: SDF field + appearance field + renderer + losses + schedules.

    Attributes every model has:
        config: its dataclass config (a member of `nsr.models.ModelConfig`).
        sdf_field: the SDF field (`SDFField`); meshing, pocket fill and evaluation use `sdf`.
        appearance: the appearance field (`AppearanceField`), colour from point, normal, view, features.
    """

    config: object
    sdf_field: SDFField
    appearance: AppearanceField

    progress_keys: tuple[str, ...] = ()
    """Keys of `LossOutput.metrics` worth showing on a progress bar besides the loss and PSNR."""
    coverage_key: str | None = None
    """The key of `LossOutput.metrics` that says how much of the object the model covers, in [0, 1] (IDR:
    the hit ratio inside the mask; NeuS: the opacity). The trainer counts its collapse towards 0 as a sign
    of divergence (`nsr.engine.health`); None: the model has no such indicator."""

    # ------------------------------------------------------------------ geometry
    @property
    @abstractmethod
    def bounding_radius(self) -> float:
        """Radius of the sphere about the origin (normalised frame) that contains the object."""

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(M, 3) points -> (M,) signed distances (positive outside)."""
        return self.sdf_field.sdf(x)

    @property
    def surface_tracer(self) -> SphereTracer:
        """A sphere tracer of this model's SDF (depth maps for the pocket fill and unseen-space filling)."""
        return SphereTracer(SphereTracerConfig(bounding_radius=self.bounding_radius))

    # ------------------------------------------------------------------ training
    def start_from(self, images: np.ndarray, masks: np.ndarray) -> None:
        """Called once by the trainer on a new run, before the first step, with the training views'
        (N, H, W, 3) images and (N, H, W) masks (all True without masks): whatever a model initialises from
        the data. The base model initialises nothing."""

    def param_groups(self, lr: float, encoding_lr: float = 0.0) -> list[dict]:
        """Optimiser parameter groups: grid tables (parameters named `table`, e.g. hash-grid entries) at
        `encoding_lr` (0 = `lr`), everything else at `lr`. Grid entries are each touched by few points per
        step and need a larger step size than weights shared by every point (instant-ngp). Empty groups
        are left out."""
        tables = [p for name, p in self.named_parameters() if name.rsplit(".", 1)[-1] == "table"]
        table_ids = {id(p) for p in tables}
        rest = [p for p in self.parameters() if id(p) not in table_ids]
        groups = [{"name": "networks", "params": rest, "lr": lr}]
        if tables:
            groups.append({"name": "encodings", "params": tables, "lr": encoding_lr or lr})
        return groups

    def before_step(self, step: int, progress: float) -> None:
        """Training callback, called by the trainer before every training step: the schedules
        (`set_progress`) and whatever else a model refreshes while it trains.

        Args:
            step: the 0-based index of the step about to run.
            progress: how far the run is, in [0, 1] (`nsr.engine.schedule.run_progress`); every schedule
                of a model is written in fractions of the run.
        """
        self.step = step
        self.set_progress(progress)

    def set_progress(self, progress: float) -> None:
        """Put every schedule-dependent state (coarse-to-fine windows, ...) where it is at `progress` of the
        run (also when a trained model is re-opened)."""
        self.progress = progress
        self.sdf_field.encoding.set_progress(progress)
        if self.appearance.view_encoding is not None:
            self.appearance.view_encoding.set_progress(progress)

    def schedule_fractions(self) -> dict:
        """The model's schedules in fractions of the run, by name (recorded in RUN/schedule.json)."""
        fractions = {}
        for name, encoding in (
            ("sdf_encoding", self.sdf_field.encoding),
            ("view_encoding", self.appearance.view_encoding),
        ):
            config = getattr(encoding, "config", None)
            found = {k: getattr(config, k) for k in SCHEDULE_FIELDS if hasattr(config, k)}
            if found:
                fractions[name] = found
        return fractions

    graphable: bool = False
    """Whether `training_loss(batch, static=True)` exists: the same loss computed with fixed shapes and no
    host synchronisation, which the trainer can capture with the backward pass and the optimiser step as
    one CUDA graph (`TrainConfig.cuda_graph_step`)."""

    @abstractmethod
    def training_loss(self, batch: RayBatch, static: bool = False) -> LossOutput:
        """The loss of one batch of rays (gradients reach the fields and, through the rays, the cameras).

        `static`: compute it with fixed shapes and no host synchronisation (only for `graphable` models)."""

    def schedule_key(self) -> tuple:
        """The schedule state that changes what a training step computes, not only the values it reads
        (e.g. the number of unlocked grid levels): a captured step is captured again when it changes."""
        view = self.appearance.view_encoding
        return (self.sdf_field.encoding.schedule_key(), None if view is None else view.schedule_key())

    # ------------------------------------------------------------------ rendering
    @property
    def background_rgb(self) -> tuple[float, float, float] | None:
        """The constant colour the model renders where a ray sees no object, against which evaluation
        composites the ground truth outside the object mask; None when the model renders the scene's own
        background (a background model), and images are compared as they are."""
        return tuple(self.config.background)

    @property
    def eval_chunk_size(self) -> int:
        """Rays an evaluation renders at once (`render`'s default): what bounds its memory. IDR's rays cost
        little each (one traced point with gradient); a volume renderer overrides it."""
        return 16384

    @abstractmethod
    def render(
        self, origins: torch.Tensor, directions: torch.Tensor, chunk_size: int | None = None
    ) -> RenderOutputs:
        """Render N rays for evaluation (no gradients to parameters), `chunk_size` (default
        `eval_chunk_size`) at a time."""

    def render_camera(
        self,
        intrinsics: np.ndarray,
        c2w: np.ndarray,
        height: int,
        width: int,
        chunk_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RenderOutputs:
        """Render a (3, 3) K / (4, 4) camera-to-world camera (normalised frame) -> (H*W, ...) outputs, in
        eval mode (the model's previous mode is restored). `progress(chunks done, chunks)` is called after
        each `chunk_size` (default `eval_chunk_size`) rays."""
        device = next(self.parameters()).device
        k = torch.as_tensor(intrinsics, dtype=torch.float32, device=device)
        pose = torch.as_tensor(c2w, dtype=torch.float32, device=device)
        origins, directions = pixel_rays(k, pose, pixel_grid(height, width, device))
        was_training = self.training
        self.eval()
        try:
            if progress is None:
                return self.render(origins, directions, chunk_size)
            chunk_size = chunk_size or self.eval_chunk_size
            chunks = list(zip(origins.split(chunk_size), directions.split(chunk_size)))
            parts = []
            for done, (o, d) in enumerate(chunks, start=1):
                parts.append(self.render(o, d, chunk_size))
                progress(done, len(chunks))
            return RenderOutputs.cat(parts)
        finally:
            self.train(was_training)
