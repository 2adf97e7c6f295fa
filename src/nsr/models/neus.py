"""The NeuS model: SDF field + appearance field + learned variance + volume renderer + losses.

Every sample along a ray contributes colour with NeuS's unbiased opacity of the SDF (Wang et al. 2021),
so the SDF is supervised densely along whole rays (not at one traced point), silhouettes are soft, and
no mask is needed: with `renderer.background = "field"` a NeRF++ background model explains what lies
outside the bounding sphere. With masks (`loss.mask_weight > 0`) the colour loss is taken inside the
mask and the opacity is pushed to the mask, as in NeuS's `wmask` setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.nn.utils import parametrize

from nsr import checks
from nsr.fields import AppearanceFieldConfig, BackgroundFieldConfig, SDFFieldConfig, VarianceConfig
from nsr.losses import (
    curvature_loss,
    eikonal_loss,
    opacity_mask_loss,
    ray_photometric_error,
    rgb_l1_loss,
    uniform_background_l1_loss,
)
from nsr.models.base import LossOutput, Model, ModelError, RayBatch, RenderOutputs
from nsr.renderers import FieldSamples, VolumeRenderer, VolumeRendererConfig


@dataclass
class NeuSLossConfig:
    """Loss weights (NeuS's `wmask` values unless said)."""

    eikonal_weight: float = 0.1
    """Weight of the eikonal term on the samples inside the bounding sphere."""
    mask_weight: float = 0.1
    """Weight of the BCE between opacity and object mask (0: no masks; the colour loss then covers every
    ray and a background model should explain what lies outside the object)."""
    curvature_weight: float = 0.0
    """Weight of the mean absolute SDF Laplacian on the samples (Neuralangelo: 5e-4 with grids; 0 = off)."""
    curvature_warmup: float = 0.0
    """Fraction of the run over which the curvature weight ramps up from 0 (Neuralangelo)."""
    tv_weight: float = 0.0
    """Weight of the SDF encoding's total-variation regulariser (grid encodings; 0 = off)."""
    surface_colour_until: float = 0.0
    """Inside the masks the colour loss compares the surface's colour (the foreground's colour divided by its
    opacity, at least `surface_floor`) for this fraction of the run, and the rendered colour (the foreground
    over the background, as NeuS) after it; 0 = the rendered colour throughout, 1 = the surface's throughout.
    The surface's colour neither rewards nor punishes the opacity, which the mask loss alone then sets. With
    the rendered colour a ray whose surface vanishes shows the background, and on a light object on white
    that fits better than an untrained colour network: every NeuS run on Spot lost most of its opacity in its
    first steps, a filter-bank run for 139 steps of 1000 (CPU, 128 rays, `benchmarks/early_opacity.py`); on
    the surface's colour the lowest was 0.47-0.56 over three seeds. Throughout the run it leaves the
    opacity inside the masks short of 1 (0.85 against 0.91 on the demo scene at 600 steps: in-mask PSNR 20.3
    against 25.5 dB), hence a first part of the run (benchmarks/RESULTS.md section 4)."""
    surface_floor: float = 0.05
    """The opacity below which the surface's colour divides by this instead (a ray with almost no surface
    then reads dark, which pushes its opacity up rather than dividing by ~0)."""
    masked_background: Literal["scene", "random", "uniform"] = "scene"
    """What the rendered colour inside the masks shows behind the foreground in the colour loss: the scene's
    background (`scene`, NeuS), a random colour per ray and step (`random`, as instant-ngp trains on
    transparent images), or the loss's expectation over such a colour in closed form (`uniform`: the same
    pull without the noise, `nsr.losses.uniform_background_l1_loss`). Behind an object pixel a random colour
    fits nothing, so any transparency costs colour loss whatever the object's colour, where the scene's white
    background rewards a vanishing surface on a light object (a black one on a dark object). Outside the masks
    only the mask loss applies either way."""

    def validate(self) -> None:
        checks.non_negative("eikonal_weight", self.eikonal_weight)
        checks.non_negative("mask_weight", self.mask_weight, "0 = no masks")
        checks.fraction("surface_colour_until", self.surface_colour_until)
        checks.in_range("surface_floor", self.surface_floor, 1e-6, 1.0, "an opacity")
        checks.one_of("masked_background", self.masked_background, ("scene", "random", "uniform"))
        checks.non_negative("curvature_weight", self.curvature_weight, "0 = off")
        checks.fraction("curvature_warmup", self.curvature_warmup)
        checks.non_negative("tv_weight", self.tv_weight, "0 = off")


@dataclass
class NeuSModelConfig:
    """Everything that defines a NeuS model."""

    kind: Literal["neus"] = "neus"
    """Renderer family: NeuS (volume rendering of the SDF's logistic density)."""
    sdf: SDFFieldConfig = field(default_factory=SDFFieldConfig)
    appearance: AppearanceFieldConfig = field(default_factory=AppearanceFieldConfig)
    renderer: VolumeRendererConfig = field(
        default_factory=lambda: VolumeRendererConfig(background="constant")
    )
    """Sampling, occupancy grid and background (`constant`: the colour below, for masked scenes; `field`:
    a learned NeRF++ background, for unmasked ones)."""
    variance: VarianceConfig = field(default_factory=VarianceConfig)
    """The learned inverse standard deviation of the logistic density."""
    background_field: BackgroundFieldConfig = field(default_factory=BackgroundFieldConfig)
    """The background model, built when `renderer.background == "field"`."""
    loss: NeuSLossConfig = field(default_factory=NeuSLossConfig)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Colour behind the object with `renderer.background = "constant"` (the scene's background)."""
    cos_anneal: float = 0.1
    """Fraction of the run over which NeuS's cosine annealing ratio goes from 0 to 1 (NeuS: 50k of 300k
    steps)."""
    colour_init: Literal["grey", "mean"] = "grey"
    """Where the colour network starts: `grey` (as initialised: about mid-grey everywhere, the sigmoid of small
    values) or `mean` (its output layer's bias set so that a zero pre-activation gives the training images'
    mean colour inside the masks, over whole images without masks; `AppearanceField.start_at`).

    Under NeuS with masks the colour loss is taken inside the masks, where a surface that vanishes shows
    the constant background: on a light object (Spot: mean colour 0.84 / 0.76 / 0.72 on white) that fits
    better than a grey colour network, and in the first 10-20 steps every NeuS preset loses opacity (Spot,
    128 rays on a CPU: the grid to 0.05-0.25 of the masked rays, the filter bank to 0.000-0.004 before it
    recovers or not; on an H100 a `neus-stylemod-nffb-fused` run never did). Starting at the mean colour
    removes that pull: the bank's lowest opacity became 0.11-0.48 and the grid's 0.46-0.68, three seeds
    each (`benchmarks/early_opacity.py`). But the banks' 120 s surfaces were worse started at the mean in five
    pairs of six on an H100 (benchmarks/RESULTS.md section 4), so every preset starts grey."""

    def validate(self) -> None:
        for value in self.background:
            checks.in_range("background", value, 0.0, 1.0, "an RGB colour")
        checks.fraction("cos_anneal", self.cos_anneal)
        checks.one_of("colour_init", self.colour_init, ("grey", "mean"))

    def build(self) -> NeuSModel:
        return NeuSModel(self)

    def without_masks(self) -> NeuSModelConfig:
        """This config for a scene trained without masks: no mask loss, colour on every ray, a learned
        background beyond the bounding sphere."""
        self.loss.mask_weight = 0.0
        self.renderer.background = "field"
        return self


class NeuSModel(Model):
    """NeuS: volume-render the SDF's logistic density; colour from every sample along the ray."""

    progress_keys = ("inv_s", "opacity")
    coverage_key = "opacity"
    graphable = True

    def __init__(self, config: NeuSModelConfig) -> None:
        super().__init__()
        self.config = config
        self.sdf_field = config.sdf.build()
        self.appearance = config.appearance.build(config.sdf.feature_dim)
        self.variance = config.variance.build()
        self.renderer = VolumeRenderer(config.renderer)
        self.background_field = (
            config.background_field.build() if config.renderer.background == "field" else None
        )
        occupancy = config.renderer.occupancy
        self.occupancy = occupancy.build(config.renderer.bounding_radius) if occupancy.enabled else None
        self.register_buffer(
            "background", torch.tensor(config.background, dtype=torch.float32), persistent=False
        )
        self.step = 0
        self.progress = 0.0
        # The schedules a captured step reads, as tensors updated in place (`set_progress`).
        self.register_buffer("_anneal", torch.tensor(self._anneal_at(0.0)), persistent=False)
        self.register_buffer("_curvature_ramp", torch.tensor(self._curvature_ramp_at(0.0)), persistent=False)
        self.register_buffer("_surface_colour", torch.tensor(self._surface_colour_at(0.0)), persistent=False)

    @property
    def bounding_radius(self) -> float:
        return self.config.renderer.bounding_radius

    def set_progress(self, progress: float) -> None:
        super().set_progress(progress)
        self._anneal.fill_(self._anneal_at(progress))
        self._curvature_ramp.fill_(self._curvature_ramp_at(progress))
        self._surface_colour.fill_(self._surface_colour_at(progress))

    def _anneal_at(self, progress: float) -> float:
        cos_anneal = self.config.cos_anneal
        return 1.0 if cos_anneal <= 0 else min(1.0, progress / cos_anneal)

    def _curvature_ramp_at(self, progress: float) -> float:
        warmup = self.config.loss.curvature_warmup
        return 1.0 if warmup <= 0 else min(1.0, progress / warmup)

    def _surface_colour_at(self, progress: float) -> float:
        """1 while the colour loss inside the masks is on the surface's colour, else 0."""
        return float(progress < self.config.loss.surface_colour_until)

    @property
    def background_rgb(self) -> tuple[float, float, float] | None:
        return None if self.config.renderer.background == "field" else tuple(self.config.background)

    def schedule_fractions(self) -> dict:
        cfg = self.config
        return {
            **super().schedule_fractions(),
            "cos_anneal": cfg.cos_anneal,
            "curvature_warmup": cfg.loss.curvature_warmup,
            "surface_colour_until": cfg.loss.surface_colour_until,
        }

    def before_step(self, step: int, progress: float) -> None:
        super().before_step(step, progress)
        if self.occupancy is not None:
            self.occupancy.update_if_due(step, self._sampling_sdf, self.variance.inv_s().detach())

    def cos_anneal_ratio(self) -> float:
        """NeuS's annealing ratio: 0 -> 1 over the first `cos_anneal` of the run; 1 when not training."""
        return self._anneal_at(self.progress) if self.training else 1.0

    def _field_fn(self, create_graph: bool, laplacian: bool = False):
        def field_fn(points: torch.Tensor, view_dirs: torch.Tensor) -> FieldSamples:
            out = self.sdf_field.with_gradient(points, create_graph=create_graph, laplacian=laplacian)
            rgb = self.appearance(points, out.gradient, view_dirs, out.features)
            return FieldSamples(sdf=out.sdf, gradient=out.gradient, rgb=rgb, laplacian=out.laplacian)

        return field_fn

    def _sampling_sdf(self, x: torch.Tensor) -> torch.Tensor:
        """The SDF where the renderer places samples (no gradients): weight-normalised weights computed once
        per call. Never cache across the whole render: weights cached under no_grad would carry no graph
        into the differentiable field evaluation that follows, and the SDF network would not train."""
        with parametrize.cached():
            return self.sdf(x)

    def _render(self, origins, directions, training: bool, laplacian: bool = False, static: bool = False):
        return self.renderer.render(
            origins,
            directions,
            self._sampling_sdf,
            self._field_fn(create_graph=training, laplacian=laplacian),
            self.variance.inv_s(),
            self._anneal if static else self.cos_anneal_ratio(),
            occupancy=self.occupancy,
            background_fn=self.background_field,
            background_color=self.background,
            training=training,
        )

    def start_from(self, images: np.ndarray, masks: np.ndarray) -> None:
        """`colour_init: mean`: the colour network starts at the mean colour of the masked training pixels."""
        if self.config.colour_init == "mean":
            self.appearance.start_at(torch.from_numpy(mean_colour(images, masks)))

    def training_loss(self, batch: RayBatch, static: bool = False) -> LossOutput:
        """Colour L1 (inside the mask with masks, else on every ray), eikonal on the samples inside the
        bounding sphere, opacity-mask BCE, and the optional curvature and TV terms.

        The path has fixed shapes and no host synchronisation either way; `static` reads the annealing
        ratio and the curvature ramp from their tensors (a captured step sees them change)."""
        cfg = self.config.loss
        curvature = cfg.curvature_weight > 0
        out = self._render(batch.origins, batch.directions, training=True, laplacian=curvature, static=static)
        samples = out.samples
        masked = cfg.mask_weight > 0
        rgb_mask = batch.mask if masked else None
        background = cfg.masked_background if masked else "scene"
        if background == "uniform":
            rgb = uniform_background_l1_loss(out.foreground, out.opacity, batch.rgb, rgb_mask)
        elif background == "random":
            noise = torch.rand_like(out.foreground)
            rgb = rgb_l1_loss(out.foreground + (1.0 - out.opacity)[:, None] * noise, batch.rgb, rgb_mask)
        else:
            rgb = rgb_l1_loss(out.rgb, batch.rgb, rgb_mask)
        if masked and cfg.surface_colour_until > 0:
            surface = out.foreground / out.opacity.clamp_min(cfg.surface_floor)[:, None]
            on_surface = self._surface_colour if static else self._surface_colour_at(self.progress)
            # one or the other (the switch a tensor in a captured step)
            rgb = rgb + on_surface * (rgb_l1_loss(surface, batch.rgb, rgb_mask) - rgb)
        terms = {"rgb": rgb, "eikonal": eikonal_loss(samples.gradients, samples.inside)}
        total = terms["rgb"] + cfg.eikonal_weight * terms["eikonal"]
        if masked:
            terms["mask"] = opacity_mask_loss(out.opacity, batch.mask)
            total = total + cfg.mask_weight * terms["mask"]
        if curvature:
            terms["curvature"] = curvature_loss(samples.laplacian, samples.inside)
            ramp = self._curvature_ramp if static else self._curvature_ramp_at(self.progress)
            total = total + ramp * cfg.curvature_weight * terms["curvature"]
        if cfg.tv_weight > 0:
            tv = self.sdf_field.encoding.total_variation()
            if tv is not None:
                terms["tv"] = tv
                total = total + cfg.tv_weight * tv
        with torch.no_grad():
            weight = batch.mask.float() if masked else torch.ones_like(out.opacity)
            squared = ((out.rgb - batch.rgb) ** 2).mean(-1)
            mse = (squared * weight).sum() / weight.sum().clamp_min(1.0)
            metrics = {
                "psnr": -10 * torch.log10(mse.clamp_min(1e-10)),
                "inv_s": out.inv_s.detach(),
                "opacity": (out.opacity * weight).sum() / weight.sum().clamp_min(1.0),
            }
            if self.occupancy is not None:
                metrics["occupied"] = self.occupancy.occupied_fraction()
            ray_error = ray_photometric_error(out.rgb, batch.rgb, out.opacity, batch.mask if masked else None)
        return LossOutput(total=total, terms=terms, metrics=metrics, ray_error=ray_error)

    @property
    def eval_chunk_size(self) -> int:
        """`renderer.chunk_size` (4096): every ray has its samples, each evaluated with its normal; 16384 rays
        of `neus-positional` need about 44 GB (`benchmarks/eval_memory.py`), and a validation view of
        `neus-nffb-fused` at that size overran a 24 GB CPU machine."""
        return self.config.renderer.chunk_size

    def render(
        self, origins: torch.Tensor, directions: torch.Tensor, chunk_size: int | None = None
    ) -> RenderOutputs:
        chunk_size = chunk_size or self.eval_chunk_size
        parts = []
        with torch.no_grad():
            for o, d in zip(origins.split(chunk_size), directions.split(chunk_size)):
                out = self._render(o, d, training=False)
                parts.append((out.rgb, out.opacity, out.depth, out.normals))
        if not parts:
            raise ModelError("render needs at least one ray")
        rgb, opacity, depth, normals = (torch.cat(p).detach() for p in zip(*parts))
        return RenderOutputs(rgb=rgb, opacity=opacity, depth=depth, normals=normals)


def mean_colour(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The (3,) float32 mean colour of (N, H, W, 3) images over their (N, H, W) masks, a view at a time (no
    copy of all the masked pixels); mid-grey where no pixel is masked."""
    total, count = np.zeros(3, dtype=np.float64), 0
    for image, mask in zip(images, masks, strict=True):
        total += image[mask].sum(0, dtype=np.float64)
        count += int(mask.sum())
    return (total / count if count else np.full(3, 0.5)).astype(np.float32)
